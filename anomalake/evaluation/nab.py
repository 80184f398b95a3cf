"""NAB scoring, implemented from the published definition (Lavin & Ahmad, 2015).

For one detector on a corpus of labelled series, with a profile's weights (A_TP, A_FP,
A_FN) and an anomaly-score threshold:

* rows in the first 15 % of a file (at most 750 rows) are a probationary period:
  detections there are ignored;
* each anomaly window that holds at least one detection earns ``A_TP * sigma(y)`` for
  its *first* detection, where ``y`` is the detection's relative position in the window
  (-1 at its first row, near 0 at its last) and ``sigma(y) = 2 / (1 + e^{5y}) - 1``; later
  detections in the same window count nothing;
* each window without a detection costs ``A_FN``;
* each detection outside every window costs ``A_FP * sigma(y)`` with ``y`` its distance
  past the end of the preceding window in window lengths (``-1`` when no window precedes
  it, and for ``y > 3``): so false positives just after a window cost little;
* the threshold is chosen per profile to maximise the corpus total;
* the total is normalised: 0 is the null detector (every window missed), 100 the
  perfect detector (each window detected at its first row, nothing else).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}


def scaled_sigmoid(position: float) -> float:
    """NAB's ``2 * sigmoid(-5 y) - 1``, and -1 beyond three window lengths."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_rows(length: int, fraction: float = 0.15) -> int:
    """Rows at the start of a file whose detections are ignored."""
    return int(min(math.floor(fraction * length), fraction * 5000))


@dataclass(frozen=True)
class LabelledSeries:
    """Anomaly scores of one file and its windows as (first row, last row) inclusive."""

    scores: Sequence[float]
    windows: Sequence[tuple[int, int]]


def row_weights(length: int, windows: Sequence[tuple[int, int]]) -> list[tuple[int, float]]:
    """For each row: (window index or -1, unweighted score sigma(y) of a detection there)."""
    out: list[tuple[int, float]] = []
    ordered = sorted(windows)
    w = 0
    previous: tuple[int, int] | None = None
    for i in range(length):
        while w < len(ordered) and i > ordered[w][1]:
            previous = ordered[w]
            w += 1
        if w < len(ordered) and ordered[w][0] <= i <= ordered[w][1]:
            start, end = ordered[w]
            width = end - start + 1
            out.append((w, scaled_sigmoid(-(end - i + 1) / width)))
        elif previous is None:
            out.append((-1, -1.0))
        else:
            start, end = previous
            width = end - start + 1
            out.append((-1, scaled_sigmoid(abs(end - i) / max(width - 1, 1))))
    return out


def raw_score(series: LabelledSeries, threshold: float, profile: dict[str, float]) -> float:
    """The un-normalised NAB score of one file at ``threshold``."""
    weights = row_weights(len(series.scores), series.windows)
    probation = probation_rows(len(series.scores))
    detected: dict[int, float] = {}
    total = 0.0
    for i, (score, (window, sigma)) in enumerate(zip(series.scores, weights, strict=True)):
        if i < probation or score < threshold:
            continue
        if window >= 0:
            detected.setdefault(window, profile["tp"] * sigma)
        else:
            total += profile["fp"] * sigma
    total += sum(detected.values())
    total -= profile["fn"] * (len(series.windows) - len(detected))
    return total


def perfect_score(corpus: Sequence[LabelledSeries], profile: dict[str, float]) -> float:
    """Raw total of a detector that flags exactly the first row of every window."""
    return sum(profile["tp"] * scaled_sigmoid(-1.0) * len(s.windows) for s in corpus)


def null_score(corpus: Sequence[LabelledSeries], profile: dict[str, float]) -> float:
    """Raw total of a detector that flags nothing."""
    return -sum(profile["fn"] * len(s.windows) for s in corpus)


def normalised(raw: float, corpus: Sequence[LabelledSeries], profile: dict[str, float]) -> float:
    """100 x (raw - null) / (perfect - null)."""
    null, perfect = null_score(corpus, profile), perfect_score(corpus, profile)
    return 100.0 * (raw - null) / (perfect - null)


def best_threshold(
    corpus: Sequence[LabelledSeries], profile: dict[str, float], candidates: Sequence[float]
) -> tuple[float, float]:
    """The threshold with the highest corpus score, and that normalised score."""
    best = max(candidates, key=lambda t: sum(raw_score(s, t, profile) for s in corpus))
    raw = sum(raw_score(s, best, profile) for s in corpus)
    return best, normalised(raw, corpus, profile)
