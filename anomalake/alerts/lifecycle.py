"""The alert lifecycle: one open alert per entity and rule, suppression, severity.

A detection either opens an alert, or — while an alert for the same entity and rule is
open or acknowledged, or within the suppression window after it was resolved — is folded
into it (its count and last-seen time grow, its severity rises to the highest seen). People
then acknowledge and resolve alerts. Detections from replays and backfills are recorded but
never delivered to people.

:func:`fold` is the one implementation: :class:`AlertBook` keeps alerts in memory with
it, and :class:`spark.alerts.Lifecycle` applies it to the rows of a Delta table.
Times are plain numbers in one unit (seconds here, microseconds in the Delta table); the
suppression window is given in the same unit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal

Status = Literal["open", "acknowledged", "resolved"]
STATUSES: tuple[Status, ...] = ("open", "acknowledged", "resolved")
SEVERITIES = ("low", "medium", "high", "critical")
#: Score cut-offs of medium, high and critical (``AlertsSettings.severity_cuts``).
DEFAULT_CUTS = (0.9, 0.99, 0.999)
SILENT_ORIGINS = frozenset({"replay", "backfill"})
# action -> (statuses it applies to, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[Status, ...], Status]] = {
    "acknowledge": (("open",), "acknowledged"),
    "resolve": (("open", "acknowledged"), "resolved"),
}


def severity_from_score(score: float, cuts: tuple[float, float, float] = DEFAULT_CUTS) -> str:
    """Map an anomaly score in [0, 1] to low / medium / high / critical."""
    level = sum(score >= c for c in cuts)
    return SEVERITIES[level]


def score_of_severity(severity: str, cuts: tuple[float, float, float] = DEFAULT_CUTS) -> float:
    """The lowest score that :func:`severity_from_score` maps to ``severity`` (low: 0)."""
    level = SEVERITIES.index(severity)
    return 0.0 if level == 0 else cuts[level - 1]


def make_alert_id(use_case: str, entity: str, rule: str, opened: object) -> str:
    """Deterministic id: 32 hex digits of sha256 of ``use_case|entity|rule|opened``."""
    return hashlib.sha256(f"{use_case}|{entity}|{rule}|{opened}".encode()).hexdigest()[:32]


def next_status(status: str, action: str) -> Status:
    """The status ``action`` (acknowledge, resolve) leads to; ValueError if not allowed."""
    allowed, target = TRANSITIONS[action]
    if status not in allowed:
        raise ValueError(f"cannot {action} an alert that is {status}; only {' or '.join(allowed)}")
    return target


@dataclass(frozen=True)
class Detection:
    """One detection, or several of one entity, rule and origin aggregated (a micro-batch)."""

    entity: str
    rule: str
    score: float
    first_seen: float
    last_seen: float | None = None
    count: int = 1
    origin: str = "live"

    @property
    def silent(self) -> bool:
        """True for replays and backfills: recorded, never sent to people."""
        return self.origin in SILENT_ORIGINS


@dataclass(frozen=True)
class Alert:
    """One alert of an entity and rule.

    ``origin`` is the origin of the detection that opened it; it becomes ``live`` when a
    live detection is folded into an alert opened by a replay or a backfill.
    """

    alert_id: str
    entity: str
    rule: str
    severity: str
    first_seen: float
    last_seen: float
    count: int = 1
    status: Status = "open"
    resolved_at: float | None = None
    origin: str = "live"
    max_score: float = 0.0

    @property
    def replay(self) -> bool:
        """True while only replays or backfills have seen it (people were never told)."""
        return self.origin in SILENT_ORIGINS

    def suppresses(self, now: float, suppress: float) -> bool:
        """Whether a detection at ``now`` folds into this alert instead of opening one."""
        if self.status != "resolved":
            return True
        return self.resolved_at is not None and now - self.resolved_at < suppress


def fold(
    current: Alert | None,
    detection: Detection,
    *,
    suppress: float,
    cuts: tuple[float, float, float] = DEFAULT_CUTS,
    use_case: str = "",
    now: float | None = None,
) -> tuple[Alert, str | None]:
    """Apply one detection to the current alert of its entity and rule.

    Returns the alert afterwards and the event people must be told about: ``"opened"`` for
    a new alert (or a live detection folded into an alert only replays had seen, unless it
    is resolved), ``"escalated:<severity>"`` when an unresolved alert's severity rises, and
    None otherwise and always for replays and backfills. ``now`` (the detection's first
    time when None) is compared with ``resolved_at`` for the suppression window.
    """
    d = detection
    now = d.first_seen if now is None else now
    last_seen = d.first_seen if d.last_seen is None else d.last_seen
    severity = severity_from_score(d.score, cuts)
    if current is not None and current.suppresses(now, suppress):
        higher = max(current.severity, severity, key=SEVERITIES.index)
        unresolved = current.status != "resolved"
        news = current.replay and not d.silent
        updated = replace(
            current,
            first_seen=min(current.first_seen, d.first_seen),
            last_seen=max(current.last_seen, last_seen),
            count=current.count + d.count,
            severity=higher,
            max_score=max(current.max_score, d.score),
            origin="live" if news else current.origin,
        )
        event: str | None = None
        if unresolved and not d.silent:
            if news:
                event = "opened"
            elif higher != current.severity:
                event = f"escalated:{higher}"
        return updated, event
    alert_id = make_alert_id(use_case, d.entity, d.rule, d.first_seen)
    if current is not None and current.alert_id == alert_id:  # the same data again, later
        alert_id = make_alert_id(use_case, d.entity, d.rule, f"{d.first_seen}|{current.alert_id}")
    alert = Alert(
        alert_id,
        d.entity,
        d.rule,
        severity,
        d.first_seen,
        last_seen,
        count=d.count,
        origin=d.origin,
        max_score=d.score,
    )
    return alert, None if d.silent else "opened"


@dataclass
class AlertBook:
    """The alerts of one stream in memory, keyed by (entity, rule); times in seconds."""

    suppress_seconds: float = 300.0
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    cuts: tuple[float, float, float] = DEFAULT_CUTS

    def detect(
        self, entity: str, rule: str, score: float, at: float, replay: bool = False
    ) -> tuple[Alert, bool]:
        """Record a detection; returns the alert and whether people must be notified."""
        detection = Detection(entity, rule, score, at, origin="replay" if replay else "live")
        key = (entity, rule)
        alert, event = fold(
            self.alerts.get(key), detection, suppress=self.suppress_seconds, cuts=self.cuts
        )
        self.alerts[key] = alert
        return alert, event is not None

    def acknowledge(self, alert_id: str) -> Alert:
        """Mark an open alert as acknowledged."""
        return self._act(alert_id, "acknowledge")

    def resolve(self, alert_id: str, at: float) -> Alert:
        """Close an alert; detections within the suppression window stay folded into it."""
        return self._act(alert_id, "resolve", resolved_at=at)

    def _act(self, alert_id: str, action: str, **changes: object) -> Alert:
        for key, alert in self.alerts.items():
            if alert.alert_id == alert_id:
                status = next_status(alert.status, action)
                self.alerts[key] = replace(alert, status=status, **changes)  # type: ignore[arg-type]
                return self.alerts[key]
        raise KeyError(alert_id)
