"""Point metrics of binary detections against labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PointMetrics:
    """Counts and rates over all points."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_alarm_rate(self) -> float:
        """FP / (FP + TN): share of normal points flagged."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def missed_alarm_rate(self) -> float:
        """FN / (FN + TP): share of anomalous points not flagged."""
        return self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0

    def __add__(self, other: PointMetrics) -> PointMetrics:
        return PointMetrics(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )


def point_metrics(predicted: Sequence[bool], actual: Sequence[bool]) -> PointMetrics:
    """Confusion counts of ``predicted`` against ``actual``."""
    tp = fp = fn = tn = 0
    for p, a in zip(predicted, actual, strict=True):
        if p and a:
            tp += 1
        elif p:
            fp += 1
        elif a:
            fn += 1
        else:
            tn += 1
    return PointMetrics(tp, fp, fn, tn)
