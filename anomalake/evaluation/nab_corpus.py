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
from anomalake.evaluation.nab import PROFILES, LabelledSeries, best_threshold


@dataclass(frozen=True)
class NabFile:
    """One series: its relative name, timestamps, values and windows as row ranges."""

    name: str
    timestamps: list[str]
    values: list[float]
    windows: list[tuple[int, int]]


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("T", " ").split(".")[0])


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


def evaluate(
    corpus: list[NabFile],
    make_detector: Callable[[], Callable[[float], float]],
    thresholds: list[float],
) -> tuple[dict[str, tuple[float, float]], dict[str, list[float]]]:
    """Scores per profile (threshold, normalised score) and each file's anomaly scores."""
    scores = {}
    for f in corpus:
        update = make_detector()
        scores[f.name] = [update(v) for v in f.values]
    labelled = [LabelledSeries(scores[f.name], f.windows) for f in corpus]
    results = {p: best_threshold(labelled, w, thresholds) for p, w in PROFILES.items()}
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
