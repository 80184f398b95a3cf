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


def runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive True values as (first row, last row), inclusive."""
    out: list[tuple[int, int]] = []
    start = -1
    for i, flag in enumerate(flags):
        if flag and start < 0:
            start = i
        elif not flag and start >= 0:
            out.append((start, i - 1))
            start = -1
    if start >= 0:
        out.append((start, len(flags) - 1))
    return out


@dataclass(frozen=True)
class EventOutcome:
    """One labelled event (rows ``start``..``end``) and the first detection inside it."""

    start: int
    end: int
    detected_at: int | None
    delay_seconds: float | None = None

    @property
    def detected(self) -> bool:
        """Whether any row of the event was flagged."""
        return self.detected_at is not None

    @property
    def delay_rows(self) -> int | None:
        """Rows from the event's first row to its first flagged row (0 = at once)."""
        return None if self.detected_at is None else self.detected_at - self.start


@dataclass(frozen=True)
class EventMetrics:
    """Event-level outcome of binary detections.

    An *event* is a labelled window (NAB) or a contiguous run of labelled rows (SKAB). It
    is detected when at least one of its rows is flagged; its delay runs from its first
    row to the first flagged row inside it. An *alarm* is a run of consecutive flagged
    rows; it is a *false alarm* when it starts outside every event (so a multi-row alarm
    counts once, and an alarm that starts inside an event and outlasts it is not false).
    """

    events: tuple[EventOutcome, ...] = ()
    alarms: int = 0
    false_alarms: int = 0
    rows: int = 0
    seconds: float = 0.0

    @property
    def detected(self) -> int:
        """Events with at least one flagged row."""
        return sum(e.detected for e in self.events)

    @property
    def missed(self) -> int:
        """Events without a flagged row."""
        return len(self.events) - self.detected

    @property
    def recall(self) -> float:
        """Detected events / events."""
        return self.detected / len(self.events) if self.events else 0.0

    @property
    def missed_rate(self) -> float:
        """Missed events / events."""
        return self.missed / len(self.events) if self.events else 0.0

    @property
    def precision(self) -> float:
        """Detected events / (detected events + false alarms)."""
        hits = self.detected
        return hits / (hits + self.false_alarms) if hits + self.false_alarms else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of event precision and event recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_alarms_per_day(self) -> float | None:
        """False alarms per day of data (None without timestamps)."""
        return self.false_alarms * 86400.0 / self.seconds if self.seconds > 0 else None

    def delays_rows(self) -> list[int]:
        """Detection delay of each detected event, in rows."""
        return [e.delay_rows for e in self.events if e.delay_rows is not None]

    def delays_seconds(self) -> list[float]:
        """Detection delay of each detected event, in seconds (where timestamps were given)."""
        return [e.delay_seconds for e in self.events if e.delay_seconds is not None]

    def __add__(self, other: EventMetrics) -> EventMetrics:
        return EventMetrics(
            self.events + other.events,
            self.alarms + other.alarms,
            self.false_alarms + other.false_alarms,
            self.rows + other.rows,
            self.seconds + other.seconds,
        )


def event_metrics(
    flags: Sequence[bool],
    events: Sequence[tuple[int, int]],
    times: Sequence[float] | None = None,
    ignore_before: int = 0,
) -> EventMetrics:
    """Events detected or missed, their delays and the false alarms of ``flags``.

    ``events`` are (first row, last row) inclusive; ``times`` (seconds, one per row) turn
    delays into seconds; flags before row ``ignore_before`` (e.g. NAB's probationary
    period) are ignored, as NAB's scorer ignores them.
    """
    flagged = [bool(f) and i >= ignore_before for i, f in enumerate(flags)]
    inside = [False] * len(flagged)
    outcomes = []
    for start, end in sorted(events):
        first = next((i for i in range(start, end + 1) if flagged[i]), None)
        delay = None
        if first is not None and times is not None:
            delay = float(times[first] - times[start])
        outcomes.append(EventOutcome(start, end, first, delay))
        for i in range(start, end + 1):
            inside[i] = True
    alarms = runs(flagged)
    seconds = float(times[-1] - times[0]) if times is not None and len(times) > 1 else 0.0
    return EventMetrics(
        tuple(outcomes),
        len(alarms),
        sum(not inside[a] for a, _ in alarms),
        len(flagged),
        seconds,
    )


def changepoint_delays(flags: Sequence[bool], changepoints: Sequence[int]) -> list[int | None]:
    """For each labelled change point, rows to the detector's next change of state.

    A change of state is an alarm starting or ending (a transition of ``flags``). It counts
    for a change point when it happens at or after it and before the next change point;
    otherwise the change point is missed (None).
    """
    transitions = [i for i in range(len(flags)) if bool(flags[i]) != (i > 0 and bool(flags[i - 1]))]
    ordered = sorted(changepoints)
    out: list[int | None] = []
    for k, cp in enumerate(ordered):
        limit = ordered[k + 1] if k + 1 < len(ordered) else len(flags)
        first = next((t for t in transitions if cp <= t < limit), None)
        out.append(None if first is None else first - cp)
    return out
