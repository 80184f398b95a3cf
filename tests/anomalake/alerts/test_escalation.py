"""Escalation of unacknowledged alerts: the pure reading of the table, then real channels."""

from __future__ import annotations

import email as email_parser
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from anomalake.alerts.delivery import ESCALATED, Outbox, People, queue_notifications
from anomalake.alerts.escalation import Escalator, overdue
from anomalake.alerts.store import AlertStore, apply_detections, to_micros
from anomalake.settings import Settings
from anomalake.usecases.spec import AlertPolicy, Contact, Escalation
from tests.servers import Mailbox, Receiver, local_mail

MINUTE = 60_000_000
NOW = 100 * MINUTE


def _row(alert_id: str, opened_minutes_ago: float, **changes: Any) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "status": "open",
        "origin": "live",
        "severity": "critical",
        "opened_at": NOW - int(opened_minutes_ago * MINUTE),
    } | changes


@pytest.mark.parametrize(
    ("row", "due"),
    [
        (_row("old", 20), True),
        (_row("exactly", 15), True),
        (_row("young", 14.9), False),
        (_row("acked", 20, status="acknowledged"), False),
        (_row("resolved", 20, status="resolved"), False),
        (_row("high", 20, severity="high"), False),
        (_row("replayed", 20, origin="replay"), False),
        (_row("backfilled", 20, origin="backfill"), False),
    ],
    ids=lambda v: v["alert_id"] if isinstance(v, dict) else str(v),
)
def test_only_open_live_alerts_at_the_severity_past_the_time_are_overdue(
    row: dict[str, Any], due: bool
) -> None:
    found = overdue([row], now_us=NOW, after_seconds=15 * 60, severity="critical")
    assert (found == [row]) is due


def test_a_lower_floor_takes_higher_severities_too_oldest_first() -> None:
    rows = [_row("b", 30, severity="high"), _row("a", 40, severity="critical"), _row("c", 30)]
    rows.append(_row("d", 50, severity="medium"))
    found = overdue(rows, now_us=NOW, after_seconds=600, severity="high")
    assert [r["alert_id"] for r in found] == ["a", "b", "c"]


def test_an_unacknowledged_critical_episode_reaches_the_one_on_call_once(
    receiver: str, smtp: tuple[int, Mailbox], tmp_path: Path, settings: Settings
) -> None:
    """Two critical episodes: the acknowledged one never escalates, the other once, late."""
    port, mailbox = smtp
    s = local_mail(settings, port)
    ana = Contact(name="Ana (daughter)", email=("ana@example.org",))
    on_call = Contact(name="clinician on call", email=("oncall@example.org",), webhook=receiver)
    policy = AlertPolicy(
        channels=("topic", "webhook", "email"),
        contacts={"W1": ana, "W2": ana},
        escalation=Escalation(after_seconds=600, contact=on_call),
    )
    people = People(s, policy)
    assert people.escalation_route == ["email:oncall@example.org", f"webhook:{receiver}"]
    outbox = Outbox(tmp_path / "outbox.db")
    store = AlertStore(str(tmp_path / "alerts"))
    t0 = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    groups = [
        {"entity": e, "rule": r, "origin": "live", "count": 1, "score": score, "details": "{}"}
        | dict.fromkeys(("first_us", "last_us"), to_micros(t0))
        for e, r, score in [
            ("W1", "tachycardia_at_rest", 0.99),
            ("W2", "fall", 0.99),
            ("W3", "acute_stress", 0.7),  # high, not critical: never escalates
        ]
    ]
    opened = apply_detections(
        store,
        use_case="wearables",
        groups=groups,
        tag="wearables:q:1",
        suppress_seconds=300,
        cuts=(0.5, 0.6, 0.95),
        now=t0,
        before_commit=lambda alerts: queue_notifications(
            outbox, people.channels, alerts, route=people.route
        ),
    )
    assert {a["entity"]: a["severity"] for a in opened} == {
        "W1": "critical",
        "W2": "critical",
        "W3": "high",
    }
    fall = next(a["alert_id"] for a in opened if a["entity"] == "W2")
    store.acknowledge(fall, by="ana", name="alerts_wearables", now=t0 + timedelta(minutes=3))
    escalator = Escalator(store, outbox, policy.escalation, people.escalation_route)  # type: ignore[arg-type]

    assert escalator.check(now=t0 + timedelta(minutes=9)) == 0
    assert escalator.check(now=t0 + timedelta(minutes=11)) == 2  # e-mail and webhook
    assert escalator.check(now=t0 + timedelta(minutes=12)) == 0  # already queued
    outbox.drain(people.channels)

    def subjects(to: str) -> list[str]:
        return sorted(
            str(email_parser.message_from_bytes(data)["Subject"])
            for rcpt, data in mailbox.messages
            if rcpt == [to]
        )

    assert subjects("oncall@example.org") == [
        "ESCALATED, unacknowledged: [critical] tachycardia_at_rest on W1"
    ]
    assert [(a["entity"], a["event"]) for a in Receiver.received] == [("W1", ESCALATED)]
    # the caregiver heard of each episode once, when it opened, and not of the escalation
    assert subjects("ana@example.org") == [
        "[critical] fall on W2",
        "[critical] tachycardia_at_rest on W1",
    ]
    assert subjects("ops@example.org") == ["[high] acute_stress on W3"]

    # a new escalator (a restarted stream) finds the same alert overdue, sends nothing again
    again = Escalator(store, outbox, policy.escalation, people.escalation_route)  # type: ignore[arg-type]
    assert again.check(now=t0 + timedelta(minutes=30)) == 0
    assert outbox.drain(people.channels)["sent"] == 0


def test_escalation_goes_to_the_configured_channels_without_a_contact(
    settings: Settings,
) -> None:
    s = settings.model_copy(
        update={
            "alerts": settings.alerts.model_copy(
                update={"webhook_url": "http://127.0.0.1:9/ops", "smtp_host": None}
            )
        }
    )
    policy = AlertPolicy(channels=("webhook",), escalation=Escalation(after_seconds=60))
    assert People(s, policy).escalation_route == ["webhook"]
    assert People(s, AlertPolicy(channels=("webhook",))).escalation_route == ["webhook"]


def test_wearables_escalates_critical_episodes_after_a_quarter_hour(settings: Settings) -> None:
    escalation = settings.use_case("wearables").alerting.escalation
    assert escalation is not None
    assert (escalation.after_seconds, escalation.severity) == (900, "critical")


def test_the_delivery_worker_escalates_in_the_background(tmp_path: Path) -> None:
    import time

    from anomalake.alerts.delivery import DeliveryWorker

    store = AlertStore(str(tmp_path / "alerts"))
    opened_at = datetime.now(UTC) - timedelta(hours=1)
    apply_detections(
        store,
        use_case="wearables",
        groups=[
            {"entity": "W9", "rule": "bradycardia", "origin": "live", "count": 1, "score": 1.0}
            | {"details": "{}"}
            | dict.fromkeys(("first_us", "last_us"), to_micros(opened_at))
        ],
        tag="wearables:q:1",
        suppress_seconds=300,
        cuts=(0.5, 0.6, 0.95),
        now=opened_at,
    )
    paged: list[dict[str, Any]] = []
    outbox = Outbox(tmp_path / "outbox.db")
    escalator = Escalator(store, outbox, Escalation(after_seconds=1800), ["pager"], every_seconds=0)
    worker = DeliveryWorker(outbox, {"pager": paged.append}, 0.05, before_drain=escalator)
    worker.start()
    deadline = time.monotonic() + 10
    while not paged and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # more cycles: still one page
    worker.stop()
    assert [(a["entity"], a["event"], a["status"]) for a in paged] == [("W9", ESCALATED, "open")]
