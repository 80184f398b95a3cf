from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalake.generators.hosts import (
    ATTACK_TYPES,
    FILE_NAMES,
    attack_schedule,
    generate_memory,
    generate_process,
    write_host_files,
)
from anomalake.loaders.toniot import load_toniot
from tests.conftest import SHARED_DATA

SHARED_TONIOT = SHARED_DATA / "ton-iot-linux-sample"
HEADERS = {
    "memory": "ts,PID,MINFLT,MAJFLT,VSTEXT,VSIZE,RSIZE,VGROW,RGROW,MEM,CMD,label,type",
    "process": "ts,PID,TRUN,TSLPI,TSLPU,POLI,NICE,PRI,RTPR,CPUNR,Status,EXC,State,CPU,CMD,"
    "label,type",
}


def test_the_schedule_has_the_attack_fraction_in_episodes_spread_over_time() -> None:
    schedule = attack_schedule(3000, 0.1, seed=1)
    attack = schedule != "normal"
    assert attack.sum() == 300
    runs = [(kind, len(list(g))) for kind, g in itertools.groupby(schedule)]
    episodes = [n for kind, n in runs if kind != "normal"]
    assert 8 <= len(episodes) <= 30 and np.mean(episodes) > 5
    assert set(schedule) - {"normal"} <= set(ATTACK_TYPES)
    assert len(set(schedule) - {"normal"}) >= 4
    thirds = np.array_split(attack, 3)
    assert all(part.any() for part in thirds)  # a split by time sees attacks everywhere
    assert (attack_schedule(100, 0.0) == "normal").all()
    with pytest.raises(ValueError, match="attack_fraction"):
        attack_schedule(100, 1.0)


def test_generation_is_deterministic_and_files_share_the_schedule() -> None:
    a = generate_memory(500, seed=7, attack_fraction=0.2)
    b = generate_memory(500, seed=7, attack_fraction=0.2)
    c = generate_memory(500, seed=8, attack_fraction=0.2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["MINFLT"].equals(c["MINFLT"])
    process = generate_process(500, seed=7, attack_fraction=0.2)
    assert process["type"].tolist() == a["type"].tolist()
    assert process["ts"].equals(a["ts"])
    assert (a["ts"].diff().dropna() == pd.Timedelta(seconds=5)).all()


def test_attacks_shift_the_distributions_but_overlap_normal_rows() -> None:
    memory = generate_memory(6000, seed=3, attack_fraction=0.2)
    process = generate_process(6000, seed=3, attack_fraction=0.2)
    floods = process["type"].isin(["dos", "ddos"])
    normal = process["label"] == 0
    assert process.loc[floods, "CPU"].median() > 5 * process.loc[normal, "CPU"].median()
    flood_minflt = memory.loc[memory["type"].isin(["dos", "ddos"]), "MINFLT"].median()
    assert flood_minflt > memory.loc[memory["label"] == 0, "MINFLT"].median()
    assert (memory["MEM"].between(0, 1)).all() and (process["CPU"].between(0, 1)).all()
    # Half the attack processes borrow a normal service's name, so CMD alone cannot tell.
    normal_names = set(memory.loc[memory["label"] == 0, "CMD"])
    borrowed = memory.loc[memory["label"] == 1, "CMD"].isin(normal_names).mean()
    assert 0.3 < borrowed < 0.7
    # Attack processes mostly get fresh PIDs above the normal pool's.
    assert (memory.loc[memory["label"] == 1, "PID"] >= 4000).mean() > 0.6
    assert (memory.loc[memory["label"] == 0, "PID"] < 4000).all()


def test_written_files_have_the_toniot_layout_and_read_back(tmp_path: Path) -> None:
    paths = write_host_files(tmp_path, 400, seed=2, attack_fraction=0.15, label_column="attack")
    assert {k: p.name for k, p in paths.items()} == FILE_NAMES
    for activity, path in paths.items():
        header = path.read_text().splitlines()[0]
        assert header == HEADERS[activity].replace(",label,", ",attack,")
        frame = load_toniot(path, activity)
        generated = (generate_memory if activity == "memory" else generate_process)(
            400, seed=2, attack_fraction=0.15
        )
        pd.testing.assert_frame_equal(frame, generated, check_exact=False, rtol=1e-6)
        assert frame["label"].sum() == 60
    first = paths["memory"].read_text().splitlines()[1].split(",")
    assert first[0] == "1554218915" and "." not in first[1]  # Unix seconds, integer PIDs
    with pytest.raises(ValueError, match="label_column"):
        write_host_files(tmp_path, 10, label_column="y")


@pytest.mark.skipif(
    not SHARED_TONIOT.exists(), reason=f"ToN-IoT sample not found at {SHARED_TONIOT}"
)
def test_generated_headers_match_the_real_sample() -> None:
    for activity, name in FILE_NAMES.items():
        real = (SHARED_TONIOT / name).read_text(encoding="utf-8-sig").splitlines()[0]
        assert real == HEADERS[activity]
