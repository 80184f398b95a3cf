"""SKAB-format sensor runs and their point-wise evaluation.

A run is ``;``-separated with ``datetime``, 8 sensors, ``anomaly`` and ``changepoint``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from anomalake.errors import AnomalakeError
from anomalake.evaluation.metrics import PointMetrics, point_metrics

LABELS = ("anomaly", "changepoint")


def load_run(path: Path) -> pd.DataFrame:
    """One run, indexed by time, sensors as float columns plus the label columns."""
    frame = pd.read_csv(path, sep=";", parse_dates=["datetime"]).set_index("datetime")
    missing = [c for c in LABELS if c not in frame.columns]
    if missing and "anomaly-free" not in path.name:
        raise AnomalakeError(f"{path}: no {missing} column", "expected a SKAB-format file")
    return frame.sort_index()


def labelled_runs(root: Path) -> list[Path]:
    """Every run with anomaly labels under ``root`` (the anomaly-free run left out)."""
    runs = sorted(p for p in root.rglob("*.csv") if "anomaly-free" not in p.parts)
    if not runs:
        raise AnomalakeError(f"no SKAB runs under {root}", "point at the SKAB folder")
    return runs


def sensors(frame: pd.DataFrame) -> list[str]:
    """The sensor columns of a run."""
    return [c for c in frame.columns if c not in LABELS]


def evaluate_runs(
    runs: list[Path],
    make_detector: Callable[[], Callable[[np.ndarray], float]],
    threshold: float,
) -> tuple[PointMetrics, dict[str, PointMetrics]]:
    """Each run scored from its first row; totals and per-run confusion counts."""
    total = PointMetrics(0, 0, 0, 0)
    per_run = {}
    for path in runs:
        frame = load_run(path)
        update = make_detector()
        values = frame[sensors(frame)].to_numpy(dtype=float)
        scores = [update(row) for row in values]
        metrics = point_metrics(
            [s > threshold for s in scores], frame["anomaly"].astype(bool).tolist()
        )
        per_run[str(path.relative_to(path.parents[1]))] = metrics
        total = total + metrics
    return total, per_run
