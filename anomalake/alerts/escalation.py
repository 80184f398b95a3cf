"""Escalation: an alert nobody acknowledges is sent on, once, to the one on call.

A use case's ``alerting.escalation`` (:class:`anomalake.usecases.spec.Escalation`) says
after how long an open alert of which severity escalates, and to whom. The alerts table
already says everything needed — status, severity, origin and when the alert was opened —
so :func:`overdue` is a pure reading of it, and :class:`Escalator` queues one notification
per overdue alert and channel in the durable outbox with the event
:data:`~anomalake.alerts.delivery.ESCALATED`. The outbox is unique by (alert, event,
channel): checking again, or after a restart, sends nothing twice. An alert acknowledged
or resolved in time never escalates; replays and backfills never do.

The delivery worker runs :meth:`Escalator.check` before its drains (``before_drain``), at
most every ``every_seconds``; the alerts topic hears of an escalation when the stream next
drains its queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from anomalake.alerts.delivery import ESCALATED, Outbox
from anomalake.alerts.lifecycle import SEVERITIES, SILENT_ORIGINS
from anomalake.alerts.store import AlertStore, Row, public, to_micros

if TYPE_CHECKING:
    from anomalake.usecases.spec import Escalation


def overdue(rows: Iterable[Row], *, now_us: int, after_seconds: float, severity: str) -> list[Row]:
    """The alerts of ``rows`` that must escalate at ``now_us`` (epoch microseconds).

    Open (never acknowledged nor resolved), live, of ``severity`` or above, and opened at
    least ``after_seconds`` before now; oldest first.
    """
    floor = SEVERITIES.index(severity)
    latest = now_us - int(after_seconds * 1_000_000)
    due = [
        r
        for r in rows
        if r["status"] == "open"
        and r["origin"] not in SILENT_ORIGINS
        and SEVERITIES.index(r["severity"]) >= floor
        and r["opened_at"] is not None
        and r["opened_at"] <= latest
    ]
    return sorted(due, key=lambda r: (r["opened_at"], r["alert_id"]))


class Escalator:
    """Queues the escalations of one alerts table for ``channels`` (outbox channel names)."""

    def __init__(
        self,
        store: AlertStore,
        outbox: Outbox,
        escalation: Escalation,
        channels: Sequence[str],
        every_seconds: float = 30.0,
    ) -> None:
        self.store, self.outbox, self.escalation = store, outbox, escalation
        self.channels, self.every_seconds = list(channels), every_seconds
        self._last_check = float("-inf")

    def check(self, now: datetime | None = None) -> int:
        """Queue every overdue alert once per channel; how many notifications were new."""
        now = now or datetime.now(UTC)
        rows = self.store.rows("status = 'open'")
        due = overdue(
            rows,
            now_us=to_micros(now),
            after_seconds=self.escalation.after_seconds,
            severity=self.escalation.severity,
        )
        pairs: list[tuple[str, dict[str, Any]]] = [
            (ESCALATED, public(r) | {"event": ESCALATED, "notify": True}) for r in due
        ]
        if not pairs:
            return 0
        at = now.timestamp()
        return sum(self.outbox.put_many(channel, pairs, now=at) for channel in self.channels)

    def __call__(self) -> int:
        """:meth:`check`, at most every ``every_seconds`` (for the delivery worker)."""
        if time.monotonic() - self._last_check < self.every_seconds:
            return 0
        self._last_check = time.monotonic()
        return self.check()
