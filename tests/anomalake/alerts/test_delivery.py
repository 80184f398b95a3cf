"""Channels against local servers only: an HTTP receiver and an SMTP server on loopback."""

from __future__ import annotations

import email as email_parser
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from anomalake.alerts.delivery import (
    DeliveryWorker,
    Outbox,
    channels_from_settings,
    email,
    queue_notifications,
    webhook,
)
from anomalake.settings import Settings
from tests.servers import Mailbox, Receiver, local_mail

ALERT = {"alert_id": "a1", "entity": "pump-1", "rule": "overheating", "severity": "high"}


def test_webhook_outage_is_retried_with_back_off_and_nothing_is_lost(
    receiver: str, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.db", base_delay=10, max_delay=40)
    channels = {"hook": webhook(receiver)}
    Receiver.fail_next = 3  # the receiver is down for three attempts
    outbox.put("hook", ALERT, now=0)
    outbox.put("hook", {**ALERT, "alert_id": "a2"}, now=0)
    assert outbox.drain(channels, now=0) == {"sent": 0, "failed": 2, "dead": 0}
    assert outbox.drain(channels, now=5) == {"sent": 0, "failed": 0, "dead": 0}  # backing off
    assert outbox.drain(channels, now=10) == {"sent": 1, "failed": 1, "dead": 0}
    # A restart of the process: the outbox is durable.
    outbox = Outbox(tmp_path / "outbox.db", base_delay=10, max_delay=40)
    assert outbox.pending() == 1
    assert outbox.drain(channels, now=30) == {"sent": 1, "failed": 0, "dead": 0}
    assert sorted(a["alert_id"] for a in Receiver.received) == ["a1", "a2"]
    assert outbox.pending() == 0


def test_a_dead_channel_does_not_block_the_others(receiver: str, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    channels = {"hook": webhook(receiver), "dead": webhook("http://127.0.0.1:9/nothing", 1)}
    outbox.put("dead", ALERT, now=0)
    outbox.put("hook", ALERT, now=0)
    assert outbox.drain(channels, now=0) == {"sent": 1, "failed": 1, "dead": 0}
    assert outbox.pending() == 1 and len(Receiver.received) == 1


def test_email_reaches_a_local_smtp_server(smtp: tuple[int, Mailbox], tmp_path: Path) -> None:
    port, mailbox = smtp
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put("mail", ALERT, now=0)
    result = outbox.drain(
        {"mail": email("127.0.0.1", port, "anomalake@localhost", ["oncall@localhost"])}, now=0
    )
    assert result == {"sent": 1, "failed": 0, "dead": 0}
    assert mailbox.messages[0][0] == ["oncall@localhost"]
    assert mailbox.subjects() == ["[high] overheating on pump-1"]


def test_the_same_notification_is_queued_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    assert outbox.put("hook", {**ALERT, "event": "opened"}, now=0)
    assert not outbox.put("hook", {**ALERT, "event": "opened"}, now=1)
    assert outbox.put("mail", {**ALERT, "event": "opened"}, now=1)  # another channel
    assert outbox.put("hook", {**ALERT, "event": "escalated:critical"}, now=1)  # another event
    assert outbox.pending() == 3
    outbox.drain({"hook": lambda a: None, "mail": lambda a: None}, now=2)
    # Sent notifications are remembered: queuing one again (a replayed batch) sends nothing.
    assert not outbox.put("hook", {**ALERT, "event": "opened"}, now=3)
    assert outbox.pending() == 0 and len(outbox.sent()) == 3


def test_a_notification_that_keeps_failing_is_dead_lettered_not_retried(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", base_delay=1, max_delay=1, max_attempts=3)

    def down(alert: Any) -> None:
        raise ConnectionError("refused")

    outbox.put("hook", ALERT, now=0)
    assert outbox.drain({"hook": down}, now=0) == {"sent": 0, "failed": 1, "dead": 0}
    assert outbox.drain({"hook": down}, now=1) == {"sent": 0, "failed": 1, "dead": 0}
    assert outbox.drain({"hook": down}, now=2) == {"sent": 0, "failed": 0, "dead": 1}
    assert outbox.pending() == 0
    assert outbox.dead() == [("a1", "notify", "hook", "refused")]
    # never retried, even once the channel is back
    assert outbox.drain({"hook": lambda a: None}, now=100) == {"sent": 0, "failed": 0, "dead": 0}


def test_prune_drops_delivered_and_dead_rows_past_the_retention_only(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", max_attempts=1, retention=100)
    outbox.put("hook", ALERT, now=0)
    outbox.put("hook", {**ALERT, "alert_id": "a2"}, now=0)
    outbox.put("hook", {**ALERT, "alert_id": "a3"}, now=0)
    calls: list[str] = []

    def flaky(alert: Any) -> None:
        calls.append(alert["alert_id"])
        if alert["alert_id"] == "a2":
            raise ConnectionError("refused")

    outbox.drain({"hook": flaky}, now=10)  # a1, a3 sent; a2 dead at once (max_attempts=1)
    outbox.put("hook", {**ALERT, "alert_id": "a4"}, now=50)  # pending: never pruned
    assert outbox.prune(now=109) == 0
    assert outbox.prune(now=111) == 3
    assert outbox.pending() == 1 and outbox.sent() == [] and outbox.dead() == []


def test_an_outbox_made_before_dead_lettering_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "outbox.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, "
        "alert_id TEXT NOT NULL, event TEXT NOT NULL, alert TEXT, attempts INTEGER DEFAULT 0, "
        "due REAL, last_error TEXT, queued_at REAL, sent_at REAL, "
        "UNIQUE (alert_id, event, channel))"
    )
    db.execute(
        "INSERT INTO outbox (channel, alert_id, event, alert, due) "
        "VALUES ('hook', 'a1', 'opened', '{}', 0)"
    )
    db.commit()
    db.close()
    outbox = Outbox(path)
    assert outbox.pending() == 1
    assert outbox.drain({"hook": lambda a: None}, now=1)["sent"] == 1


def _alert(alert_id: str, entity: str, notify: bool, event: str | None) -> dict[str, Any]:
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    return {
        "alert_id": alert_id,
        "use_case": "infra",
        "entity": entity,
        "rule": "t2",
        "severity": "high",
        "status": "open",
        "detections": 3,
        "first_event_time": at,
        "last_event_time": at,
        "notify": notify,
        "event": event,
    }


def test_outage_end_to_end_each_alert_reaches_each_channel_exactly_once(
    receiver: str, smtp: tuple[int, Mailbox], tmp_path: Path, settings: Settings
) -> None:
    port, mailbox = smtp
    s = settings.model_copy(
        update={
            "home": tmp_path,
            "alerts": settings.alerts.model_copy(
                update={
                    "webhook_url": receiver,
                    "smtp_host": "127.0.0.1",
                    "smtp_port": port,
                    "email_to": ("oncall@localhost",),
                    "retry_base_seconds": 10.0,
                    "retry_max_seconds": 40.0,
                }
            ),
        }
    )
    channels = channels_from_settings(s)
    assert sorted(channels) == ["email", "webhook"]
    outbox = Outbox.from_settings(s)
    batch = [
        _alert("a1", "pump-1", True, "opened"),
        _alert("a2", "pump-2", True, "opened"),
        _alert("a3", "pump-3", False, None),  # a replay or a folded detection
    ]
    Receiver.fail_next, Receiver.status_when_down = 10**6, 500  # the webhook is down
    assert queue_notifications(outbox, channels, batch, now=0) == 4
    assert queue_notifications(outbox, channels, batch, now=0) == 0  # the batch replayed

    assert outbox.drain(channels, now=0) == {
        "sent": 2,
        "failed": 2,
        "dead": 0,
    }  # e-mail is not blocked
    assert len(mailbox.messages) == 2 and Receiver.received == []
    assert outbox.drain(channels, now=9.9) == {"sent": 0, "failed": 0, "dead": 0}  # back-off: 10 s
    assert outbox.drain(channels, now=10) == {"sent": 0, "failed": 2, "dead": 0}  # still down
    assert outbox.drain(channels, now=29.9) == {"sent": 0, "failed": 0, "dead": 0}  # back-off: 20 s
    Receiver.fail_next = 0  # the webhook is back
    # A restart in between: the outbox is durable.
    outbox = Outbox.from_settings(s)
    assert outbox.pending("webhook") == 2 and outbox.pending("email") == 0
    assert outbox.drain(channels, now=30) == {"sent": 2, "failed": 0, "dead": 0}
    assert outbox.drain(channels, now=1000) == {"sent": 0, "failed": 0, "dead": 0}
    assert queue_notifications(outbox, channels, batch, now=1000) == 0  # replayed again

    escalated = [{**batch[0], "severity": "critical", "event": "escalated:critical"}]
    assert queue_notifications(outbox, channels, escalated, now=1001) == 2
    assert outbox.drain(channels, now=1001) == {"sent": 2, "failed": 0, "dead": 0}

    hooks = [(a["alert_id"], a["event"]) for a in Receiver.received]
    assert sorted(hooks) == [("a1", "escalated:critical"), ("a1", "opened"), ("a2", "opened")]
    assert Receiver.received[0]["first_event_time"] == "2026-01-05T09:30:00+00:00"
    assert sorted(mailbox.subjects()) == [
        "[critical] t2 on pump-1",
        "[high] t2 on pump-1",
        "[high] t2 on pump-2",
    ]
    assert outbox.pending() == 0


def test_channels_from_settings_only_configured_ones(settings: Settings) -> None:
    assert channels_from_settings(settings) == {}
    only_hook = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"webhook_url": "http://x/"})}
    )
    assert list(channels_from_settings(only_hook)) == ["webhook"]
    no_recipient = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"smtp_host": "127.0.0.1"})}
    )
    assert channels_from_settings(no_recipient) == {}


def test_worker_drains_in_the_background_survives_failures_and_stops(
    receiver: str, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.db", base_delay=0.05, max_delay=0.1)
    calls = {"boom": 0}

    def boom(alert: Any) -> None:
        calls["boom"] += 1
        raise RuntimeError("channel exploded")

    worker = DeliveryWorker(outbox, {"hook": webhook(receiver), "boom": boom}, every_seconds=0.05)
    real_drain = outbox.drain
    failures = iter([OSError("disk full")])

    def flaky_drain(*args: Any, **kwargs: Any) -> dict[str, int]:
        for exc in failures:  # the first drain fails as a whole
            raise exc
        return real_drain(*args, **kwargs)

    outbox.drain = flaky_drain  # type: ignore[method-assign]
    Receiver.fail_next = 2
    worker.start()
    queue_notifications(outbox, worker.channels, [{**ALERT, "notify": True, "event": "opened"}])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (outbox.pending("hook") or calls["boom"] < 3):
        time.sleep(0.05)
    worker.stop()
    assert not worker.is_alive() and worker.drains >= 3
    assert [a["alert_id"] for a in Receiver.received] == ["a1"]
    assert outbox.pending("hook") == 0 and outbox.pending("boom") == 1 and calls["boom"] >= 3


def test_a_batch_channel_is_drained_in_one_call_and_backs_off_as_one(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", base_delay=10, max_delay=40)
    alerts = [{**ALERT, "alert_id": f"a{i}"} for i in range(3)]
    assert outbox.put_many("topic", [(f"change:q:{i}", a) for i, a in enumerate(alerts)], 0) == 3
    assert outbox.put_many("topic", [("change:q:0", alerts[0])], 0) == 0  # queued once
    outbox.put("hook", ALERT, now=0)  # another channel's row is not the topic's
    batches: list[list[str]] = []

    def down(batch: list[dict[str, Any]]) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        outbox.drain_batch("topic", down, now=0)
    assert outbox.drain_batch("topic", lambda b: batches.append(b), now=5) == 0  # backing off
    sent = outbox.drain_batch("topic", lambda b: batches.append([a["alert_id"] for a in b]), now=10)
    assert sent == 3 and batches == [["a0", "a1", "a2"]]
    assert outbox.pending("topic") == 0 and outbox.pending("hook") == 1
    # the hook's drain does not touch the topic's rows, nor the topic's the hook's
    assert outbox.drain({"hook": lambda a: None}, now=10) == {"sent": 1, "failed": 0, "dead": 0}


def test_a_wearers_caregiver_gets_one_notification_per_episode_others_the_ops_inbox(
    receiver: str, smtp: tuple[int, Mailbox], tmp_path: Path, settings: Settings
) -> None:
    """A contact's entity reaches its contact only; an episode over batches, one message."""
    from datetime import timedelta

    from anomalake.alerts.delivery import People
    from anomalake.alerts.store import AlertStore, apply_detections, to_micros
    from anomalake.usecases.spec import AlertPolicy, Contact

    port, mailbox = smtp
    s = local_mail(settings, port)
    ana = Contact(name="Ana (daughter)", email=("ana@example.org",), webhook=receiver)
    people = People(s, AlertPolicy(channels=("topic", "webhook", "email"), contacts={"W1": ana}))
    assert people.route({"entity": "W1"}) == ["email:ana@example.org", f"webhook:{receiver}"]
    assert people.route({"entity": "W2"}) == ["email"]
    outbox = Outbox(tmp_path / "outbox.db")
    store = AlertStore(str(tmp_path / "alerts"))
    t0 = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)

    def batch(n: int, rows: list[tuple[str, str, float, int]]) -> None:
        groups = [
            {"entity": e, "rule": r, "origin": "live", "count": 1, "score": score, "details": "{}"}
            | dict.fromkeys(("first_us", "last_us"), to_micros(t0 + timedelta(seconds=at)))
            for e, r, score, at in rows
        ]
        apply_detections(
            store,
            use_case="wearables",
            groups=groups,
            tag=f"wearables:q:{n}",
            suppress_seconds=300,
            cuts=(0.5, 0.8, 0.95),
            now=t0 + timedelta(seconds=at_most(rows)),
            before_commit=lambda alerts: queue_notifications(
                outbox, people.channels, alerts, route=people.route
            ),
        )

    def at_most(rows: list[tuple[str, str, float, int]]) -> int:
        return max(r[3] for r in rows) + 1

    # tachycardia over three micro-batches (a window every 10 s), the device taken off,
    # and another wearer's fall
    batch(1, [("W1", "tachycardia_at_rest", 0.97, 0)])
    batch(2, [("W1", "tachycardia_at_rest", 0.99, 10), ("W1", "device_off_wrist", 0.0, 20)])
    batch(3, [("W1", "tachycardia_at_rest", 0.98, 30), ("W2", "fall", 0.97, 30)])
    batch(3, [("W2", "fall", 0.97, 30)])  # the last batch replayed after a crash
    assert outbox.drain(people.channels) == {"sent": 5, "failed": 0, "dead": 0}
    to_ana = sorted(
        str(email_parser.message_from_bytes(data)["Subject"])
        for to, data in mailbox.messages
        if to == ["ana@example.org"]
    )
    assert to_ana == ["[critical] tachycardia_at_rest on W1", "[low] device_off_wrist on W1"]
    assert sorted((a["rule"], a["entity"]) for a in Receiver.received) == [
        ("device_off_wrist", "W1"),
        ("tachycardia_at_rest", "W1"),
    ]
    to_ops = [data for to, data in mailbox.messages if to == ["ops@example.org"]]
    assert len(to_ops) == 1 and b"fall on W2" in to_ops[0]
