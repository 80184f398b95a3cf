"""Run a detector over a NAB-style corpus, score it, and write NAB results files.

The folder is laid out like NAB's: ``data/<category>/<file>.csv`` with ``timestamp,value``
and ``labels/combined_windows.json``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from anomalake.errors import AnomalakeError
from anomalake.evaluation.metrics import EventMetrics, PointMetrics, event_metrics, point_metrics
from anomalake.evaluation.nab import (
    PROFILES,
    LabelledSeries,
    best_threshold,
    candidate_thresholds,
    normalised,
    probation_rows,
    sweep,
)


@dataclass(frozen=True)
class NabFile:
    """One series: its relative name, timestamps, values and windows as row ranges."""

    name: str
    timestamps: list[str]
    values: list[float]
    windows: list[tuple[int, int]]


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("T", " ").split(".")[0])


_EPOCH = datetime(1970, 1, 1)


def seconds(f: NabFile) -> list[float]:
    """Each row's time in seconds (naive timestamps, so no daylight-saving jumps)."""
    return [(_parse(t) - _EPOCH).total_seconds() for t in f.timestamps]


def load_corpus(root: Path) -> list[NabFile]:
    """Every labelled file under ``root/data`` with its windows from ``root/labels``."""
    labels_file = root / "labels" / "combined_windows.json"
    if not labels_file.exists():
        raise AnomalakeError(f"no {labels_file}", "point at a NAB-style folder (data/, labels/)")
    windows = json.loads(labels_file.read_text())
    corpus = []
    for name in sorted(windows):
        path = root / "data" / name
        if not path.exists():
            continue
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        stamps = [_parse(r["timestamp"]) for r in rows]
        ranges = []
        for start, end in windows[name]:
            lo, hi = _parse(start), _parse(end)
            inside = [i for i, t in enumerate(stamps) if lo <= t <= hi]
            if inside:
                ranges.append((inside[0], inside[-1]))
        corpus.append(
            NabFile(name, [r["timestamp"] for r in rows], [float(r["value"]) for r in rows], ranges)
        )
    if not corpus:
        raise AnomalakeError(f"no data files under {root / 'data'}", "check the folder")
    return corpus


def score_corpus(
    corpus: list[NabFile], make_detector: Callable[[], Callable[[float], float]]
) -> dict[str, list[float]]:
    """Each file's anomaly scores from a fresh detector, run from its first row."""
    scores = {}
    for f in corpus:
        update = make_detector()
        scores[f.name] = [update(v) for v in f.values]
    return scores


def labelled(corpus: list[NabFile], scores: dict[str, list[float]]) -> list[LabelledSeries]:
    """The files' scores with their windows, as the scorer takes them."""
    return [LabelledSeries(scores[f.name], f.windows) for f in corpus]


def optimise(
    corpus: list[NabFile], scores: dict[str, list[float]]
) -> dict[str, tuple[float, float]]:
    """Per profile: (threshold, normalised score) with the threshold chosen on these files."""
    series = labelled(corpus, scores)
    candidates = candidate_thresholds(series)
    return {p: best_threshold(series, w, candidates) for p, w in PROFILES.items()}


def at_thresholds(
    corpus: list[NabFile], scores: dict[str, list[float]], thresholds: dict[str, float]
) -> dict[str, float]:
    """Per profile: the normalised score at a threshold fixed beforehand."""
    series = labelled(corpus, scores)
    out = {}
    for profile, weights in PROFILES.items():
        raw = float(sweep(series, [thresholds[profile]]).raw(weights)[0])
        out[profile] = normalised(raw, series, weights)
    return out


def detections(
    corpus: list[NabFile], scores: dict[str, list[float]], threshold: float
) -> tuple[PointMetrics, EventMetrics]:
    """Point and event metrics of ``score >= threshold`` against the windows.

    As in NAB's scorer, rows of the probationary period are never flagged. For point
    metrics a row is anomalous when it lies in a window (NAB windows are wide, about a
    tenth of a file, so point recall is low by construction); events are the windows.
    """
    points, events = PointMetrics(0, 0, 0, 0), EventMetrics()
    for f in corpus:
        probation = probation_rows(len(f.values))
        flags = [i >= probation and s >= threshold for i, s in enumerate(scores[f.name])]
        inside = [False] * len(flags)
        for a, b in f.windows:
            inside[a : b + 1] = [True] * (b - a + 1)
        points = points + point_metrics(flags, inside)
        events = events + event_metrics(flags, f.windows, seconds(f), probation)
    return points, events


def evaluate(
    corpus: list[NabFile],
    make_detector: Callable[[], Callable[[float], float]],
    thresholds: list[float],
) -> tuple[dict[str, tuple[float, float]], dict[str, list[float]]]:
    """Scores per profile (threshold, normalised score) and each file's anomaly scores."""
    scores = score_corpus(corpus, make_detector)
    series = labelled(corpus, scores)
    results = {p: best_threshold(series, w, thresholds) for p, w in PROFILES.items()}
    return results, scores


def write_results(
    out: Path, detector: str, corpus: list[NabFile], scores: dict[str, list[float]]
) -> None:
    """NAB's results layout: ``<out>/<detector>/<category>/<detector>_<file>.csv``."""
    name = detector.replace("_", "")
    for f in corpus:
        category, filename = f.name.split("/", 1)
        target = out / name / category / f"{name}_{filename}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["timestamp", "value", "anomaly_score"])
            for ts, v, s in zip(f.timestamps, f.values, scores[f.name], strict=True):
                writer.writerow([ts, v, f"{s:.6f}"])
