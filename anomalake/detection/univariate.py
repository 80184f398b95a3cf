"""Univariate streaming detectors.

All scores are in [0, 1]. For the deviation detectors the score is ``erf(|z| / sqrt 2)``,
the probability mass of a normal distribution within ``|z|`` standard deviations, so a
threshold on the score is a threshold on ``|z|`` (``|z| > 3`` <=> score > 0.9973).
Before ``warmup`` observations a detector scores 0 and learns.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

from anomalake.detection.state import JsonState


def z_score_to_unit(z: float) -> float:
    """``erf(|z| / sqrt 2)``: 0 at the mean, -> 1 far from it."""
    return math.erf(abs(z) / math.sqrt(2.0))


@dataclass
class RollingZScore(JsonState):
    """Distance from the mean of the last ``window`` values, in their standard deviations.

    The simple-moving-average baseline with a deviation band: ``|x - SMA| > k * std`` is
    ``|z| > k``. The current value is scored against the window *before* it is added.
    Memory: ``window`` floats. Warm-up: ``min(window, warmup)`` values.
    """

    window: int = 60
    warmup: int = 30
    values: deque[float] = field(default_factory=deque)
    total: float = 0.0
    total_sq: float = 0.0

    def update(self, x: float) -> float:
        """Score ``x``, then learn it."""
        n = len(self.values)
        score = 0.0
        if n >= min(self.window, self.warmup):
            mean = self.total / n
            var = max(self.total_sq / n - mean * mean, 0.0)
            std = math.sqrt(var)
            score = (
                z_score_to_unit((x - mean) / std)
                if std > 1e-12
                else (0.0 if abs(x - mean) <= 1e-12 else 1.0)
            )
        self.values.append(x)
        self.total += x
        self.total_sq += x * x
        if len(self.values) > self.window:
            old = self.values.popleft()
            self.total -= old
            self.total_sq -= old * old
        return score


@dataclass
class EwmaBand(JsonState):
    """Exponentially weighted moving average and variance; score from the EW z-score.

    ``alpha`` is the weight of the newest value (half-life ``ln 2 / -ln(1 - alpha)``).
    Memory: three floats. Warm-up: ``warmup`` values.
    """

    alpha: float = 0.05
    warmup: int = 30
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, x: float) -> float:
        """Score ``x`` against the current band, then learn it."""
        score = 0.0
        if self.n >= self.warmup:
            std = math.sqrt(self.var)
            score = (
                z_score_to_unit((x - self.mean) / std)
                if std > 1e-12
                else (0.0 if abs(x - self.mean) <= 1e-12 else 1.0)
            )
        if self.n == 0:
            self.mean = x
        else:
            diff = x - self.mean
            incr = self.alpha * diff
            self.mean += incr
            self.var = (1 - self.alpha) * (self.var + diff * incr)
        self.n += 1
        return score


@dataclass
class ThresholdDuration(JsonState):
    """Fires while the value has been outside ``[low, high]`` for at least ``duration``.

    Time-based: ``update(x, t)`` takes the observation time in seconds. Score 1 while
    firing, else 0. Memory: the time the current excursion began.
    """

    low: float = -math.inf
    high: float = math.inf
    duration: float = 60.0
    since: float | None = None

    def update(self, x: float, t: float) -> float:
        """1.0 when ``x`` has been out of bounds for ``duration`` seconds up to ``t``."""
        if self.low <= x <= self.high:
            self.since = None
            return 0.0
        if self.since is None:
            self.since = t
        return 1.0 if t - self.since >= self.duration else 0.0


@dataclass
class PageHinkley(JsonState):
    """Page-Hinkley test for an increase in the mean, e.g. of a model's prediction errors.

    ``m_t = sum(x_i - mean_i - delta)``; alarm when ``m_t - min(m) > threshold``; the test
    restarts after an alarm. Score: ``(m_t - min m) / threshold`` capped at 1.
    Memory: four numbers.
    """

    delta: float = 0.005
    threshold: float = 50.0
    warmup: int = 30
    n: int = 0
    mean: float = 0.0
    cumulative: float = 0.0
    minimum: float = 0.0

    def update(self, x: float) -> float:
        """Add ``x``; return the test statistic scaled to [0, 1] (1 = change detected)."""
        self.n += 1
        self.mean += (x - self.mean) / self.n
        self.cumulative += x - self.mean - self.delta
        self.minimum = min(self.minimum, self.cumulative)
        if self.n < self.warmup:
            return 0.0
        stat = (self.cumulative - self.minimum) / self.threshold
        if stat >= 1.0:
            self.n, self.mean, self.cumulative, self.minimum = 0, 0.0, 0.0, 0.0
            return 1.0
        return max(stat, 0.0)


@dataclass
class CountSpike(JsonState):
    """Event-frequency spikes or dips: a window's count against the EW mean of past counts.

    Feed it the count of each closed window (the stream counts per key and window). Score
    from the Poisson z-score ``(c - lambda) / sqrt(lambda)``, two-sided. Memory: two numbers.
    """

    alpha: float = 0.1
    warmup: int = 10
    rate: float = 0.0
    n: int = 0

    def update(self, count: float) -> float:
        """Score a window's ``count``, then learn it."""
        score = 0.0
        if self.n >= self.warmup:
            score = z_score_to_unit((count - self.rate) / math.sqrt(max(self.rate, 1.0)))
        self.rate = count if self.n == 0 else self.rate + self.alpha * (count - self.rate)
        self.n += 1
        return score


def combine(scores: list[float], weights: list[float] | None = None, how: str = "max") -> float:
    """Several detectors' scores as one in [0, 1]: their maximum or weighted mean."""
    if not scores:
        return 0.0
    if how == "max":
        return max(scores)
    w = weights or [1.0] * len(scores)
    return sum(s * x for s, x in zip(scores, w, strict=True)) / sum(w)


@dataclass
class PeakFilter(JsonState):
    """Passes a score only when it beats every score of the previous ``window`` rows.

    Feed it another detector's scores. A sustained excursion then yields one high score at
    its onset (and one at each escalation) instead of a run of them, so a threshold raises
    one alarm per incident, not one per row. Anything else scores 0. Memory: ``window``
    floats.
    """

    window: int = 100
    recent: deque[float] = field(default_factory=deque)

    def update(self, score: float) -> float:
        """``score`` if it is a new maximum of the last ``window`` rows, else 0."""
        out = score if not self.recent or score > max(self.recent) else 0.0
        self.recent.append(score)
        if len(self.recent) > self.window:
            self.recent.popleft()
        return out


@dataclass
class HoldFilter(JsonState):
    """The maximum of the last ``window`` scores: an alarm is held for ``window`` rows.

    Feed it another detector's scores. It bridges short gaps inside a long anomaly (one
    alarm instead of several) at the cost of ending each alarm ``window - 1`` rows late.
    Memory: ``window`` floats.
    """

    window: int = 30
    recent: deque[float] = field(default_factory=deque)

    def update(self, score: float) -> float:
        """The highest of ``score`` and the previous ``window - 1`` scores."""
        self.recent.append(score)
        if len(self.recent) > self.window:
            self.recent.popleft()
        return max(self.recent)


@dataclass
class ForecastErrorChange(JsonState):
    """Change detection on a model's prediction errors: Page-Hinkley on ``|x - forecast|``.

    The model is an EWMA one-step forecast (``alpha``); the absolute errors, divided by
    their own long-run mean so the test is scale-free, feed a :class:`PageHinkley` test for
    an increase. Warm-up: ``warmup`` readings. Memory: six numbers.
    """

    alpha: float = 0.1
    delta: float = 0.05
    threshold: float = 30.0
    warmup: int = 100
    forecast: float | None = None
    error_scale: float = 0.0
    n: int = 0
    test: PageHinkley = field(default_factory=PageHinkley)

    _nested: ClassVar[dict[str, type[JsonState]]] = {"test": PageHinkley}

    def __post_init__(self) -> None:
        if self.test.n == 0 and self.test.cumulative == 0.0:
            self.test = PageHinkley(delta=self.delta, threshold=self.threshold, warmup=0)

    def update(self, x: float) -> float:
        """Score the error of the forecast of ``x``, then update the forecast."""
        if self.forecast is None:
            self.forecast = x
            self.n = 1
            return 0.0
        error = abs(x - self.forecast)
        self.forecast += self.alpha * (x - self.forecast)
        self.n += 1
        self.error_scale += (error - self.error_scale) / min(self.n, self.warmup)
        if self.n <= self.warmup:
            return 0.0
        return self.test.update(error / self.error_scale if self.error_scale > 1e-12 else 0.0)


@dataclass
class WindowCount(JsonState):
    """Readings per event-time window of ``window_seconds``, scored by :class:`CountSpike`.

    A reading that opens a new window closes the previous one and the empty windows in
    between (at most ``max_gap_windows`` of them, as dips to zero), and carries the score of
    the windows it closed. Memory: the open window and a :class:`CountSpike`.
    """

    window_seconds: float = 60.0
    alpha: float = 0.1
    warmup: int = 10
    max_gap_windows: int = 60
    window: int | None = None
    count: int = 0
    spike: CountSpike = field(default_factory=CountSpike)

    _nested: ClassVar[dict[str, type[JsonState]]] = {"spike": CountSpike}

    def __post_init__(self) -> None:
        if self.spike.n == 0:
            self.spike = CountSpike(alpha=self.alpha, warmup=self.warmup)

    def update(self, t: float) -> float:
        """Count a reading at event time ``t`` (seconds)."""
        index = math.floor(t / self.window_seconds)
        if self.window is None:
            self.window, self.count = index, 1
            return 0.0
        if index <= self.window:
            self.count += 1
            return 0.0
        score = self.spike.update(self.count)
        for _ in range(min(index - self.window - 1, self.max_gap_windows)):
            score = max(score, self.spike.update(0))
        self.window, self.count = index, 1
        return score
