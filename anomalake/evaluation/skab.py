"""SKAB-format sensor runs and their point-wise evaluation.

A run is ``;``-separated with ``datetime``, 8 sensors, ``anomaly`` and ``changepoint``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from anomalake.errors import AnomalakeError
from anomalake.evaluation.metrics import (
    EventMetrics,
    PointMetrics,
    changepoint_delays,
    event_metrics,
    point_metrics,
)
from anomalake.evaluation.metrics import runs as runs_of
from anomalake.loaders.skab import LABELS, load_run, skab_files


def labelled_runs(root: Path) -> list[Path]:
    """Every labelled run under ``root`` (no anomaly-free run, labels.csv or faults.csv)."""
    runs = [p for p in skab_files(root) if "anomaly-free" not in p.parts]
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


def run_name(path: Path) -> str:
    """A run's name as reported and split on: its folder and file, e.g. ``valve1/0.csv``."""
    return str(path.relative_to(path.parents[1]))


@dataclass(frozen=True)
class ScoredRun:
    """One run's anomaly scores beside its labels."""

    name: str
    scores: np.ndarray
    anomaly: np.ndarray
    changepoints: list[int]
    seconds: list[float]


def score_runs(
    runs: list[Path],
    make_detector: Callable[[], Callable[[np.ndarray], float]],
    exclude: list[str] | None = None,
) -> list[ScoredRun]:
    """Each run scored from its first row by a fresh detector, on its sensors but ``exclude``."""
    out = []
    for path in runs:
        frame = load_run(path)
        chosen = [c for c in sensors(frame) if c not in (exclude or [])]
        if not chosen:
            raise AnomalakeError(f"{path}: every sensor is excluded", "check the config")
        update = make_detector()
        values = frame[chosen].to_numpy(dtype=float)
        start = frame.index[0]
        out.append(
            ScoredRun(
                run_name(path),
                np.array([update(row) for row in values], dtype=float),
                frame["anomaly"].to_numpy(dtype=float) > 0,
                np.flatnonzero(frame["changepoint"].to_numpy(dtype=float) > 0).tolist(),
                [(t - start).total_seconds() for t in frame.index],
            )
        )
    return out


def best_f1_threshold(scored: list[ScoredRun]) -> tuple[float, PointMetrics]:
    """The threshold (flag ``score > threshold``) with the highest point-wise F1 over all runs.

    Every distinct score is tried (sorted once, counts accumulated), so the choice is exact.
    """
    scores = np.concatenate([r.scores for r in scored])
    actual = np.concatenate([r.anomaly for r in scored])
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], actual[order]
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    # flagging everything scored above ranked[i]: the rows before the first of its ties
    last = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])  # last row of each tie
    thresholds = ranked[last[1:]]
    tp_at, fp_at = tp[last[:-1]], fp[last[:-1]]
    if thresholds.size == 0:
        return float(ranked[-1]), PointMetrics(0, 0, int(actual.sum()), int((~actual).sum()))
    positives = int(actual.sum())
    f1 = 2 * tp_at / np.maximum(tp_at + fp_at + positives, 1)
    k = int(np.argmax(f1))
    tp_k, fp_k = int(tp_at[k]), int(fp_at[k])
    negatives = int(actual.size - positives)
    return float(thresholds[k]), PointMetrics(tp_k, fp_k, positives - tp_k, negatives - fp_k)


def run_metrics(
    scored: list[ScoredRun], threshold: float
) -> tuple[PointMetrics, EventMetrics, list[int | None]]:
    """Point metrics, event metrics (events: runs of anomaly = 1) and change-point delays."""
    points, events = PointMetrics(0, 0, 0, 0), EventMetrics()
    delays: list[int | None] = []
    for run in scored:
        flags = (run.scores > threshold).tolist()
        actual = run.anomaly.tolist()
        points = points + point_metrics(flags, actual)
        events = events + event_metrics(flags, runs_of(actual), run.seconds)
        delays += changepoint_delays(flags, run.changepoints)
    return points, events, delays
