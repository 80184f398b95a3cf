from __future__ import annotations

import random

import pytest

from anomalake.evaluation.split import folder, split_names, stable_hash
from tests.conftest import SHARED_DATA

SHARED = SHARED_DATA

NAMES = [f"{c}/file_{i}.csv" for c in ("alpha", "beta", "gamma") for i in range(7)]


def test_stable_hash_is_sha256_based_not_python_hash() -> None:
    # the first 8 bytes of sha256(b"a"), big-endian: the same in every process
    assert stable_hash("a") == 0xCA978112CA1BBDCA


def test_split_is_deterministic_disjoint_and_complete() -> None:
    tune, test = split_names(NAMES)
    shuffled = NAMES[:]
    random.Random(3).shuffle(shuffled)
    assert split_names(shuffled) == (tune, test)
    assert not set(tune) & set(test)
    assert sorted(tune + test) == sorted(NAMES)


def test_split_halves_each_folder() -> None:
    tune, test = split_names(NAMES)
    for group in ("alpha", "beta", "gamma"):
        assert sum(folder(n) == group for n in tune) == 4  # 7 files: the odd one to tuning
        assert sum(folder(n) == group for n in test) == 3


def test_adding_a_file_moves_no_file_of_another_folder() -> None:
    tune, test = split_names(NAMES)
    tune2, test2 = split_names([*NAMES, "delta/new.csv"])
    assert [n for n in tune2 if not n.startswith("delta/")] == tune
    assert [n for n in test2 if not n.startswith("delta/")] == test


@pytest.mark.skipif(not (SHARED / "nab-dev").exists(), reason=f"no NAB data at {SHARED}")
def test_the_documented_nab_dev_split() -> None:
    from anomalake.evaluation.nab_corpus import load_corpus

    corpus = load_corpus(SHARED / "nab-dev")
    tune, test = split_names([f.name for f in corpus])
    assert (len(tune), len(test)) == (18, 16)  # as docs/detection.md states
    windows = {f.name: len(f.windows) for f in corpus}
    assert sum(windows[n] for n in tune) == 26 and sum(windows[n] for n in test) == 24
    assert "realAWSCloudwatch/grok_asg_anomaly.csv" in tune


@pytest.mark.skipif(not (SHARED / "skab").exists(), reason=f"no SKAB data at {SHARED}")
def test_the_documented_skab_split() -> None:
    from anomalake.evaluation.skab import labelled_runs, run_name

    tune, test = split_names([run_name(p) for p in labelled_runs(SHARED / "skab")])
    assert (len(tune), len(test)) == (17, 17)  # as docs/detection.md states
    assert "valve1/0.csv" in test and "other/1.csv" in tune
