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

import numpy as np

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


@dataclass(frozen=True)
class ThresholdSweep:
    """A corpus's score components at many thresholds at once (one entry per threshold).

    ``hits`` sums ``sigma`` of each window's first detection, ``false`` sums ``sigma`` of
    the detections outside windows, ``missed`` counts windows without a detection; a
    profile's raw score is ``tp * hits + fp * false - fn * missed``.
    """

    thresholds: np.ndarray
    hits: np.ndarray
    false: np.ndarray
    missed: np.ndarray

    def raw(self, profile: dict[str, float]) -> np.ndarray:
        """Raw corpus score at each threshold under ``profile``."""
        return profile["tp"] * self.hits + profile["fp"] * self.false - profile["fn"] * self.missed


def sweep(corpus: Sequence[LabelledSeries], thresholds: Sequence[float]) -> ThresholdSweep:
    """Score components of ``corpus`` at every threshold, the same as :func:`raw_score`.

    Each file is sorted once: the sum of ``sigma`` over detections outside windows is a
    suffix sum of the outside rows ordered by score, and a window's first detection is
    where the running maximum of its scores first reaches the threshold.
    """
    t = np.asarray(thresholds, dtype=float)
    hits, false, missed = np.zeros(t.size), np.zeros(t.size), np.zeros(t.size)
    for series in corpus:
        n = len(series.scores)
        scores = np.asarray(series.scores, dtype=float)
        weights = row_weights(n, series.windows)
        window = np.fromiter((w for w, _ in weights), dtype=int, count=n)
        sigma = np.fromiter((s for _, s in weights), dtype=float, count=n)
        live = np.arange(n) >= probation_rows(n)
        outside = live & (window < 0)
        order = np.argsort(scores[outside], kind="stable")
        ranked = scores[outside][order]
        suffix = np.concatenate([np.cumsum(sigma[outside][order][::-1])[::-1], [0.0]])
        false += suffix[np.searchsorted(ranked, t, side="left")]
        for w in range(len(series.windows)):
            rows = np.flatnonzero(live & (window == w))
            if rows.size == 0:
                missed += 1
                continue
            first = np.searchsorted(np.maximum.accumulate(scores[rows]), t, side="left")
            found = first < rows.size
            hits += np.where(found, sigma[rows[np.minimum(first, rows.size - 1)]], 0.0)
            missed += ~found
    return ThresholdSweep(t, hits, false, missed)


def best_threshold(
    corpus: Sequence[LabelledSeries], profile: dict[str, float], candidates: Sequence[float]
) -> tuple[float, float]:
    """The threshold with the highest corpus score (the first such), and that normalised score."""
    totals = sweep(corpus, candidates).raw(profile)
    best = int(np.argmax(totals))
    return float(candidates[best]), normalised(float(totals[best]), corpus, profile)


def candidate_thresholds(corpus: Sequence[LabelledSeries], count: int = 400) -> list[float]:
    """Thresholds worth trying: high quantiles of all scored rows, and a fixed ladder near 1.

    The quantile levels are spaced evenly in log(1 - level), from the median to the single
    highest score, so the rare high scores that NAB rewards get most of the candidates; the
    ladder ``1 - 10^(-k/4)`` (0.9 ... 1 - 1e-15) adds cuts between saturated scores, where
    erf-mapped z-scores crowd. Scores at or below 0 are never a candidate.
    """
    ladder = 1.0 - 10.0 ** (-np.arange(4, 61) / 4.0)
    pooled = np.concatenate(
        [np.asarray(s.scores[probation_rows(len(s.scores)) :], dtype=float) for s in corpus]
    )
    quantiles = np.zeros(0)
    if pooled.size:
        tail = np.logspace(np.log10(0.5), np.log10(1.0 / pooled.size), count)
        levels = np.clip(1.0 - tail, 0.0, 1.0)
        quantiles = np.quantile(pooled, levels, method="higher")
    values = np.unique(np.concatenate([quantiles, ladder]))
    return [float(v) for v in values[values > 0.0]]
