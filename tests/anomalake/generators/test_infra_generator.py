"""The infra generator: SKAB format, labelled faults, deterministic, optional bad rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from anomalake.generators.infra import write_infra_files
from anomalake.loaders.skab import asset_from_path, load_run, read_raw_rows, skab_files
from anomalake.settings import SKAB_SENSORS


def test_files_are_skab_format_with_labels_matching_the_anomaly_column(tmp_path: Path) -> None:
    counts = write_infra_files(tmp_path, assets=2, hours=1.0, seed=3)
    files = skab_files(tmp_path)
    assert [f.name for f in files] == ["pump01.csv", "pump02.csv"]
    labels = pd.read_csv(tmp_path / "labels.csv", parse_dates=["start", "end"])
    assert len(labels) == counts["episodes"] > 0
    for f in files:
        run = load_run(f)
        assert list(run.columns) == [*SKAB_SENSORS, "anomaly", "changepoint"]
        assert len(run) == 3600 and run.index.is_monotonic_increasing
        mine = labels[labels["asset"] == f.stem]
        inside = pd.Series(False, index=run.index)
        for ep in mine.itertuples():
            inside |= (run.index >= ep.start) & (run.index <= ep.end)
        assert (run["anomaly"].astype(bool) == inside).all()
        assert int(run["changepoint"].sum()) == len(mine)


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_infra_files(tmp_path / name, assets=1, hours=0.2, seed=seed)
    a, b, c = ((tmp_path / n / "pump01.csv").read_text() for n in "abc")
    assert a == b and a != c


def test_bad_rows_are_logged_and_read_back_as_text(tmp_path: Path) -> None:
    counts = write_infra_files(tmp_path, assets=1, hours=0.2, seed=0, bad_rows=True)
    faults = pd.read_csv(tmp_path / "faults.csv")
    assert counts["bad_rows"] == len(faults) == 5
    rows = list(read_raw_rows(tmp_path / "pump01.csv"))
    assert len(rows) == 720 + 5
    assert any(r["timestamp"] == "2026-13-45 99:00:00" for r in rows)
    assert any("n/a" in r.values() for r in rows)
    assert any(None in (r[s] for s in SKAB_SENSORS) for r in rows)
    assert asset_from_path(tmp_path / "pump01.csv", tmp_path) == "pump01"
    assert asset_from_path(tmp_path / "valve1" / "0.csv", tmp_path) == "valve1-0"
