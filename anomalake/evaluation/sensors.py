"""The infra detector set over labelled SKAB-format runs, through the speed layer's own step.

Each file is replayed offline (:func:`anomalake.replay.infra_messages` then
:func:`anomalake.speed.infra.score_messages`: the producer's messages and the stream's
per-asset function, no Kafka or Spark), and the readings flagged as anomalies are compared
with the file's ``anomaly`` column: point metrics and event metrics (an event is a run of
labelled rows; delay from its first row to the first flag inside it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from anomalake.detection.detector_set import DetectorSetConfig
from anomalake.evaluation.metrics import (
    EventMetrics,
    PointMetrics,
    event_metrics,
    point_metrics,
    runs,
)
from anomalake.evaluation.skab import labelled_runs
from anomalake.loaders.skab import load_run
from anomalake.replay import infra_messages
from anomalake.settings import Settings


@dataclass(frozen=True)
class SensorReport:
    """Totals over the files: point and event metrics, files and readings scored."""

    points: PointMetrics
    events: EventMetrics
    files: int
    readings: int


def evaluate_files(path: Path, settings: Settings, config: DetectorSetConfig) -> SensorReport:
    """Score every labelled SKAB-format file under ``path`` (anomaly-free runs skipped)."""
    from anomalake.speed.infra import score_messages

    points, events = PointMetrics(0, 0, 0, 0), EventMetrics()
    files = labelled_runs(path)
    readings = 0
    for file in files:
        run = load_run(file)
        if "anomaly" not in run.columns:
            continue
        scored = score_messages(infra_messages(file), settings, config)
        scored = scored[scored["reason"].isna()].set_index("event_time")
        flags = scored["anomaly"].reindex(pd.DatetimeIndex(run.index)).fillna(False).astype(bool)
        labels = run["anomaly"].fillna(0).astype(bool).tolist()
        times = [t.timestamp() for t in run.index]
        points = points + point_metrics(flags.tolist(), labels)
        events = events + event_metrics(flags.tolist(), runs(labels), times)
        readings += len(run)
    return SensorReport(points, events, len(files), readings)
