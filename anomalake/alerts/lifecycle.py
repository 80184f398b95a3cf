"""The alert lifecycle: one open alert per entity and rule, suppression, severity.

A detection either opens an alert, or — while an alert for the same entity and rule is
open, or within ``suppress_seconds`` after the last one was resolved — is folded into it
(its count and last-seen time grow, its severity rises to the highest seen). People then
acknowledge and resolve alerts. Detections from replays and backfills are recorded but
never delivered to people.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal

Status = Literal["open", "acknowledged", "resolved"]
SEVERITIES = ("low", "medium", "high", "critical")


def severity_from_score(score: float, cuts: tuple[float, float, float] = (0.9, 0.99, 0.999)) -> str:
    """Map an anomaly score in [0, 1] to low / medium / high / critical."""
    level = sum(score >= c for c in cuts)
    return SEVERITIES[level]


@dataclass(frozen=True)
class Alert:
    """One alert of an entity and rule."""

    alert_id: str
    entity: str
    rule: str
    severity: str
    first_seen: float
    last_seen: float
    count: int = 1
    status: Status = "open"
    resolved_at: float | None = None
    replay: bool = False


@dataclass
class AlertBook:
    """The alerts of one stream, keyed by (entity, rule)."""

    suppress_seconds: float = 300.0
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)

    def detect(
        self, entity: str, rule: str, score: float, at: float, replay: bool = False
    ) -> tuple[Alert, bool]:
        """Record a detection; returns the alert and whether people must be notified."""
        key = (entity, rule)
        severity = severity_from_score(score)
        current = self.alerts.get(key)
        suppressed = current is not None and (
            current.status != "resolved"
            or (
                current.resolved_at is not None and at - current.resolved_at < self.suppress_seconds
            )
        )
        if current is not None and suppressed:
            higher = max(current.severity, severity, key=SEVERITIES.index)
            escalated = higher != current.severity and current.status != "resolved"
            updated = replace(
                current,
                last_seen=max(current.last_seen, at),
                count=current.count + 1,
                severity=higher,
            )
            self.alerts[key] = updated
            return updated, escalated and not replay
        alert_id = hashlib.sha256(f"{entity}|{rule}|{at}".encode()).hexdigest()[:20]
        alert = Alert(alert_id, entity, rule, severity, at, at, replay=replay)
        self.alerts[key] = alert
        return alert, not replay

    def acknowledge(self, alert_id: str) -> Alert:
        """Mark an open alert as acknowledged."""
        return self._set(alert_id, status="acknowledged")

    def resolve(self, alert_id: str, at: float) -> Alert:
        """Close an alert; detections within the suppression window stay folded into it."""
        return self._set(alert_id, status="resolved", resolved_at=at)

    def _set(self, alert_id: str, **changes: object) -> Alert:
        for key, alert in self.alerts.items():
            if alert.alert_id == alert_id:
                self.alerts[key] = replace(alert, **changes)  # type: ignore[arg-type]
                return self.alerts[key]
        raise KeyError(alert_id)
