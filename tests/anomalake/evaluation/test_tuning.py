from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from anomalake.cli import app
from anomalake.evaluation import tuning
from anomalake.evaluation.split import split_names

GOOD = {"kind": "ewma", "alpha": 0.05, "warmup": 20}
NEVER_READY = {"kind": "ewma", "alpha": 0.05, "warmup": 100_000}  # scores 0: the null detector
JUMPY = {"kind": "ewma", "alpha": 0.9, "warmup": 20}  # its band follows the noise


def _nab_folder(root: Path, per_category: int = 4) -> None:
    """Noise with one spike per file, inside a window; NAB's layout."""
    rng = np.random.default_rng(0)
    start = datetime(2026, 1, 1)
    windows: dict[str, list[list[str]]] = {}
    for category in ("artificialWithAnomaly", "realThings"):
        (root / "data" / category).mkdir(parents=True)
        for k in range(per_category):
            name = f"{category}/series_{k}.csv"
            values = 10 + rng.normal(size=600)
            spike = 380 + 10 * k
            values[spike] += 12
            stamps = [start + timedelta(minutes=5 * i) for i in range(600)]
            with open(root / "data" / name, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["timestamp", "value"])
                writer.writerows(
                    (t.strftime("%Y-%m-%d %H:%M:%S"), f"{v:.4f}")
                    for t, v in zip(stamps, values, strict=True)
                )
            lo, hi = stamps[spike - 15], stamps[spike + 15]
            windows[name] = [[f"{lo:%Y-%m-%d %H:%M:%S}.000000", f"{hi:%Y-%m-%d %H:%M:%S}.000000"]]
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def test_tuning_on_a_tiny_nab_folder_picks_the_obviously_better_detector(tmp_path: Path) -> None:
    _nab_folder(tmp_path)
    seen: list[str] = []
    tuned = tuning.tune_nab(tmp_path, grid=[NEVER_READY, JUMPY, GOOD], echo=seen.append)
    r = tuned.report
    assert r["detector"] == GOOD
    assert [g["tuning_standard"] for g in r["grid"]][0] == 0.0  # null detector scores 0
    assert r["tuning"]["standard"] > 90.0
    assert r["held_out"]["standard"] > 90.0  # the test half, thresholds fixed on the tuning half
    tune, test = r["split"]["tuning"], r["split"]["test"]
    assert (tune, test) == split_names(tune + test) and not set(tune) & set(test)
    assert len(tune) == len(test) == 4
    assert tuned.held_out.events.detected == 4 and tuned.held_out.events.false_alarms == 0
    assert seen[0].startswith("split of 8 files: 4 to tune")
    # the same folder gives the same report
    again = tuning.tune_nab(tmp_path, grid=[NEVER_READY, JUMPY, GOOD]).report
    assert json.dumps(again, sort_keys=True) == json.dumps(r, sort_keys=True)


def test_tune_then_eval_with_the_saved_config_writes_nab_results(tmp_path: Path) -> None:
    data, out = tmp_path / "nab", tmp_path / "tuned" / "nab.json"
    _nab_folder(data)
    tuned = tuning.tune_nab(data, grid=[JUMPY, GOOD])
    tuning.save({**tuned.report, "command": "test"}, out)
    assert tuning.load(out, "nab")["detector"] == GOOD
    result = CliRunner().invoke(
        app,
        ["eval", "nab", str(data), "--config", str(out), "--results", str(tmp_path / "res")],
    )
    assert result.exit_code == 0, result.output
    assert "4 of these 8 files were in its tuning half" in result.output
    assert "windows: 8/8 detected" in result.output
    written = sorted((tmp_path / "res" / "anomalake").rglob("*.csv"))
    assert len(written) == 8 and written[0].name.startswith("anomalake_series_")
    header = written[0].read_text().splitlines()[0]
    assert header == "timestamp,value,anomaly_score"


def test_the_tune_command_saves_where_asked(tmp_path: Path) -> None:
    data, out = tmp_path / "nab", tmp_path / "chosen.json"
    _nab_folder(data, per_category=2)
    result = CliRunner().invoke(app, ["tune", "nab", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "TEST HALF (held out)" in result.output and "tuning files (2)" in result.output
    saved = json.loads(out.read_text())
    assert saved["command"] == f"anomalake tune nab {data}" and saved["dataset"] == "nab"


def _skab_run(path: Path, anomalous: range, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = ["datetime;s1;s2;anomaly;changepoint"]
    for i in range(500):
        a = rng.normal()
        b = a + 0.1 * rng.normal() if i not in anomalous else -a + 2
        cp = 1.0 if i in (anomalous.start, anomalous.stop) else 0.0
        rows.append(
            f"2020-01-01 {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d};{a:.4f};{b:.4f};"
            f"{1.0 if i in anomalous else 0.0};{cp}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_skab_tuning_picks_the_warm_up_that_excludes_the_anomaly(tmp_path: Path) -> None:
    for k in range(4):
        _skab_run(tmp_path / "valve1" / f"{k}.csv", range(300, 360), seed=k)
    # warm-up 350 learns the anomaly as normal; warm-up 200 does not
    grid: list[dict[str, Any]] = [
        {"detector": {"kind": "hotelling_t2", "warmup": 350}, "exclude": []},
        {"detector": {"kind": "mewma_t2", "warmup": 200, "lam": 0.5}, "exclude": []},
    ]
    tuned = tuning.tune_skab(tmp_path, grid=grid)
    r = tuned.report
    assert r["detector"] == {"kind": "mewma_t2", "warmup": 200, "lam": 0.5}
    assert tuned.held_out.points.f1 > 0.9 and tuned.held_out.events.detected == 2
    assert r["held_out"]["changepoint_delays"][0] is not None
    out = tmp_path / "skab.json"
    tuning.save(r, out)
    result = CliRunner().invoke(app, ["eval", "skab", str(tmp_path), "--config", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 of these 4 runs were in its tuning half" in result.output
