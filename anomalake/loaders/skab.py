"""SKAB-format sensor files: ``;``-separated; ``datetime``, sensors, ``anomaly``, ``changepoint``.

The real Skoltech Anomaly Benchmark runs and the project's generator
(:mod:`anomalake.generators.infra`) share this format. :func:`read_raw_rows` gives each
row's text as it is (the stream validates it); :func:`load_run` gives a typed frame for
offline evaluation.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from anomalake.errors import AnomalakeError

LABELS = ("anomaly", "changepoint")
TIME_COLUMN = "datetime"


def skab_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``.csv`` under it except ``labels.csv``/``faults.csv``."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*.csv") if p.name not in ("labels.csv", "faults.csv"))
    if not files:
        raise AnomalakeError(f"no SKAB-format files under {path}", "point at a folder of runs")
    return files


def asset_from_path(path: Path, root: Path) -> str:
    """The asset a file's readings belong to: its path under ``root`` without ``.csv``."""
    relative = path.relative_to(root) if path != root else Path(path.name)
    return "-".join(relative.with_suffix("").parts)


def read_raw_rows(path: Path) -> Iterator[dict[str, str | None]]:
    """Each data row as text keyed by column (``datetime`` renamed ``timestamp``).

    A short row has its missing columns as ``None``; labels are left out.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=";")
        header = next(reader, None)
        if not header or TIME_COLUMN not in header:
            raise AnomalakeError(f"{path}: no '{TIME_COLUMN}' column", "expected a SKAB file")
        for cells in reader:
            if not cells:
                continue
            row: dict[str, str | None] = {}
            for i, name in enumerate(header):
                if name in LABELS:
                    continue
                text = cells[i].strip() if i < len(cells) else None
                row["timestamp" if name == TIME_COLUMN else name] = text or None
            yield row


def load_run(path: Path) -> pd.DataFrame:
    """One run, indexed by time, sensors as float columns plus the label columns."""
    frame = pd.read_csv(path, sep=";", parse_dates=[TIME_COLUMN]).set_index(TIME_COLUMN)
    missing = [c for c in LABELS if c not in frame.columns]
    if missing and "anomaly-free" not in path.name:
        raise AnomalakeError(f"{path}: no {missing} column", "expected a SKAB-format file")
    return frame.sort_index()
