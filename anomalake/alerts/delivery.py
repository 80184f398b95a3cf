"""Delivering alerts to people without losing any: a durable outbox and channels.

Every notification is first written to an SQLite outbox, once per (alert, event, channel):
queuing the same one again — a micro-batch replayed after a crash — adds nothing.
``drain`` sends what is due through its channel and marks it sent only after the channel
accepted it. A failing channel gets exponential back-off (``base_delay * 2**attempts``,
capped) and never blocks the others or detection, which only appends to the outbox; a
:class:`DeliveryWorker` thread drains it in the background. After ``max_attempts``
failures a notification is dead-lettered (kept with its last error, never retried, listed
by :meth:`Outbox.dead`), and :meth:`Outbox.prune` deletes delivered and dead rows older
than the retention, so the outbox stays bounded.

The speed layer wires it as::

    outbox = Outbox.from_settings(settings)
    channels = channels_from_settings(settings)
    worker = DeliveryWorker(outbox, channels, settings.alerts.deliver_every_seconds)
    worker.start()
    # in foreachBatch: apply_detections(..., before_commit=lambda alerts:
    #     queue_notifications(outbox, channels, alerts))
    worker.stop()
"""

from __future__ import annotations

import json
import logging
import smtplib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from anomalake.alerts.payload import jsonable

if TYPE_CHECKING:
    from anomalake.settings import Settings
    from anomalake.usecases.spec import AlertPolicy, Contact

log = logging.getLogger(__name__)

Channel = Callable[[Mapping[str, Any]], None]
#: The event of a notification sent again because nobody acknowledged the alert.
ESCALATED = "escalated:unacknowledged"


def webhook(url: str, timeout: float = 5.0) -> Channel:
    """POST the alert as JSON; any non-2xx answer or network error is a failure."""

    def send(alert: Mapping[str, Any]) -> None:
        response = requests.post(url, json=jsonable(alert), timeout=timeout)
        response.raise_for_status()

    return send


def email(host: str, port: int, sender: str, to: list[str], timeout: float = 10.0) -> Channel:
    """Send the alert as a plain-text e-mail over SMTP."""

    def send(alert: Mapping[str, Any]) -> None:
        message = EmailMessage()
        message["From"], message["To"] = sender, ", ".join(to)
        subject = f"[{alert.get('severity', '?')}] {alert.get('rule')} on {alert.get('entity')}"
        if alert.get("event") == ESCALATED:
            subject = f"ESCALATED, unacknowledged: {subject}"
        message["Subject"] = subject
        message.set_content(json.dumps(jsonable(alert), indent=2, default=str))
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            smtp.send_message(message)

    return send


def contact_channels(settings: Settings, contact: Contact) -> dict[str, Channel]:
    """One channel per address of ``contact``: ``email:<address>``, ``webhook:<url>``.

    E-mail needs the configured SMTP server (``ANOMALAKE_ALERTS__SMTP_HOST``).
    """
    a = settings.alerts
    out: dict[str, Channel] = {}
    if a.smtp_host:
        for address in contact.email:
            out[f"email:{address}"] = email(a.smtp_host, a.smtp_port, a.email_from, [address])
    if contact.webhook:
        out[f"webhook:{contact.webhook}"] = webhook(contact.webhook, a.webhook_timeout_seconds)
    return out


class People:
    """The people channels of one use case and who each of its alerts goes to.

    An alert whose entity has a contact (the spec's ``alerting.contacts``) goes to that
    contact's addresses only; any other to the configured channels. Only the channels
    the spec lists (``alerting.channels``: ``email``, ``webhook``) are used.
    """

    def __init__(self, settings: Settings, policy: AlertPolicy | None = None) -> None:
        allowed = set(policy.channels) if policy is not None else {"email", "webhook"}
        configured = channels_from_settings(settings)
        self.default = sorted(n for n in configured if n in allowed)
        self.channels: dict[str, Channel] = {n: configured[n] for n in self.default}
        self.routes: dict[str, list[str]] = {}

        def own(contact: Contact) -> list[str]:
            channels = {
                name: channel
                for name, channel in contact_channels(settings, contact).items()
                if name.split(":", 1)[0] in allowed
            }
            self.channels |= channels
            return sorted(channels)

        for entity, contact in (policy.contacts if policy is not None else {}).items():
            self.routes[entity] = own(contact)
        escalation = policy.escalation if policy is not None else None
        #: The channels escalations go to: the escalation contact's, else the configured.
        self.escalation_route = (
            own(escalation.contact)
            if escalation is not None and escalation.contact is not None
            else self.default
        )

    def route(self, alert: Mapping[str, Any]) -> list[str]:
        """The channel names ``alert`` goes to."""
        return self.routes.get(str(alert.get("entity")), self.default)


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """The configured channels: ``webhook`` if a URL is set, ``email`` if SMTP and recipients."""
    a = settings.alerts
    channels: dict[str, Channel] = {}
    if a.webhook_url:
        channels["webhook"] = webhook(a.webhook_url, a.webhook_timeout_seconds)
    if a.smtp_host and a.email_to:
        channels["email"] = email(a.smtp_host, a.smtp_port, a.email_from, list(a.email_to))
    return channels


class Outbox:
    """A durable queue of (channel, alert) notifications in SQLite, safe across threads.

    A row is unique by (alert_id, event, channel) and is kept, marked sent, after delivery,
    so a notification queued again later is still recognised and not sent twice.
    """

    def __init__(
        self,
        path: Path,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        max_attempts: int = 12,
        retention: float = 7 * 86_400.0,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self.lock = threading.Lock()
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, "
            "alert_id TEXT NOT NULL, event TEXT NOT NULL, alert TEXT, attempts INTEGER DEFAULT 0, "
            "due REAL, last_error TEXT, queued_at REAL, sent_at REAL, "
            "UNIQUE (alert_id, event, channel))"
        )
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(outbox)")}
        if "dead_at" not in columns:  # an outbox made before dead-lettering
            self.db.execute("ALTER TABLE outbox ADD COLUMN dead_at REAL")
        self.db.execute("CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent_at, due)")
        self.db.commit()
        self.base_delay, self.max_delay = base_delay, max_delay
        self.max_attempts, self.retention = max_attempts, retention

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbox:
        """The outbox at ``settings.alerts_outbox`` with the configured back-off."""
        a = settings.alerts
        return cls(
            settings.alerts_outbox,
            a.retry_base_seconds,
            a.retry_max_seconds,
            a.max_delivery_attempts,
            a.outbox_retention_seconds,
        )

    def put(
        self,
        channel: str,
        alert: Mapping[str, Any],
        now: float | None = None,
        event: str | None = None,
    ) -> bool:
        """Queue a notification durably; False if this (alert, event, channel) already was.

        ``event`` defaults to the alert's ``event`` key (``opened``, ``escalated:high``).
        """
        event = event or str(alert.get("event") or "notify")
        return self.put_many(channel, [(event, alert)], now) == 1

    def put_many(
        self,
        channel: str,
        alerts: Iterable[tuple[str, Mapping[str, Any]]],
        now: float | None = None,
    ) -> int:
        """Queue ``(event, alert)`` pairs for one channel in one transaction; how many new."""
        now = time.time() if now is None else now
        rows = [
            (channel, str(a["alert_id"]), event, json.dumps(jsonable(a), default=str), now, now)
            for event, a in alerts
        ]
        with self.lock:
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO outbox (channel, alert_id, event, alert, due, queued_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.db.commit()
            return self.db.total_changes - before

    def drain_batch(
        self,
        channel: str,
        send: Callable[[list[dict[str, Any]]], None],
        now: float | None = None,
    ) -> int:
        """Send every due notification of ``channel`` in one call of ``send``; how many.

        For a channel that takes many at once (the alerts topic): all are deleted when
        ``send`` returns (nothing queues them again), or all back off when it raises (which
        is re-raised).
        """
        now = time.time() if now is None else now
        with self.lock:
            rows = self.db.execute(
                "SELECT id, alert, attempts FROM outbox WHERE channel = ? AND sent_at IS NULL "
                "AND dead_at IS NULL AND due <= ? ORDER BY id",
                (channel, now),
            ).fetchall()
        if not rows:
            return 0
        ids = [(row_id,) for row_id, _, _ in rows]
        try:
            send([json.loads(alert) for _, alert, _ in rows])
        except Exception as exc:
            delay = self._delay(max(a for _, _, a in rows))
            with self.lock:
                self.db.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, due = ?, last_error = ? "
                    "WHERE id = ?",
                    [(now + delay, str(exc)[:500], i) for (i,) in ids],
                )
                self.db.commit()
            raise
        with self.lock:
            self.db.executemany("DELETE FROM outbox WHERE id = ?", ids)
            self.db.commit()
        return len(rows)

    def _delay(self, attempts: int) -> float:
        """The back-off after ``attempts`` failed sends: doubling, at most ``max_delay``."""
        return float(min(self.base_delay * 2**attempts, self.max_delay))

    def pending(self, channel: str | None = None) -> int:
        """Notifications still to be sent (by one channel if given): not sent, not dead."""
        sql, args = "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL", ()
        if channel is not None:
            sql, args = sql + " AND channel = ?", (channel,)  # type: ignore[assignment]
        with self.lock:
            return int(self.db.execute(sql, args).fetchone()[0])

    def sent(self) -> list[tuple[str, str, str]]:
        """(alert_id, event, channel) of every notification a channel accepted."""
        with self.lock:
            rows = self.db.execute(
                "SELECT alert_id, event, channel FROM outbox WHERE sent_at IS NOT NULL ORDER BY id"
            ).fetchall()
        return [(str(a), str(e), str(c)) for a, e, c in rows]

    def drain(self, channels: Mapping[str, Channel], now: float | None = None) -> dict[str, int]:
        """Send every due notification of ``channels`` once; counts of sent, failed, dead.

        Rows of other channels wait for whoever drains those (the alerts topic is drained
        by the stream's sink). Sending happens outside the lock, so queuing never waits
        for a slow channel.
        """
        now = time.time() if now is None else now
        names = sorted(channels)
        marks = ", ".join("?" * len(names))
        with self.lock:
            rows = self.db.execute(
                "SELECT id, channel, alert_id, alert, attempts FROM outbox "
                f"WHERE sent_at IS NULL AND dead_at IS NULL AND due <= ? AND channel IN ({marks}) "
                "ORDER BY id",
                (now, *names),
            ).fetchall()
        result = {"sent": 0, "failed": 0, "dead": 0}
        for row_id, channel, alert_id, alert, attempts in rows:
            try:
                channels[channel](json.loads(alert))
            except Exception as exc:  # noqa: BLE001 - any failure is retried later
                delay = self._delay(attempts)
                log.warning(
                    "alert %s via %s failed (attempt %d), retry in %.0f s: %s",
                    alert_id,
                    channel,
                    attempts + 1,
                    delay,
                    exc,
                )
                dead = attempts + 1 >= self.max_attempts
                with self.lock:
                    self.db.execute(
                        "UPDATE outbox SET attempts = ?, due = ?, last_error = ?, dead_at = ? "
                        "WHERE id = ?",
                        (attempts + 1, now + delay, str(exc)[:500], now if dead else None, row_id),
                    )
                    self.db.commit()
                if dead:
                    log.error(
                        "alert %s via %s dead-lettered after %d attempts: %s",
                        alert_id,
                        channel,
                        attempts + 1,
                        exc,
                    )
                result["dead" if dead else "failed"] += 1
            else:
                with self.lock:
                    self.db.execute(
                        "UPDATE outbox SET sent_at = ?, last_error = NULL WHERE id = ?",
                        (now, row_id),
                    )
                    self.db.commit()
                result["sent"] += 1
        return result

    def dead(self) -> list[tuple[str, str, str, str]]:
        """(alert_id, event, channel, last error) of every dead-lettered notification."""
        with self.lock:
            rows = self.db.execute(
                "SELECT alert_id, event, channel, last_error FROM outbox "
                "WHERE dead_at IS NOT NULL ORDER BY id"
            ).fetchall()
        return [(str(a), str(e), str(c), str(x)) for a, e, c, x in rows]

    def prune(self, now: float | None = None) -> int:
        """Delete delivered and dead-lettered rows older than the retention; how many.

        A notification queued again after its row was pruned would be sent again: the
        retention must outlast any replay of the stream (days, where a replay is minutes).
        """
        now = time.time() if now is None else now
        cutoff = now - self.retention
        with self.lock:
            cursor = self.db.execute(
                "DELETE FROM outbox WHERE (sent_at IS NOT NULL AND sent_at < ?) "
                "OR (dead_at IS NOT NULL AND dead_at < ?)",
                (cutoff, cutoff),
            )
            self.db.commit()
        return cursor.rowcount

    def close(self) -> None:
        """Close the database connection."""
        with self.lock:
            self.db.close()


def queue_notifications(
    outbox: Outbox,
    channels: Mapping[str, Channel],
    alerts: Iterable[Mapping[str, Any]],
    now: float | None = None,
    route: Callable[[Mapping[str, Any]], Iterable[str]] | None = None,
) -> int:
    """Queue each alert whose ``notify`` is true once per channel; returns how many were new.

    ``route`` names the channels of one alert (:meth:`People.route`); every channel when
    None. Alerts without ``notify`` (replays, backfills, folded detections) are not queued.
    """
    queued = 0
    for alert in alerts:
        if not alert.get("notify"):
            continue
        for name in route(alert) if route is not None else channels:
            queued += outbox.put(name, alert, now=now)
    return queued


class DeliveryWorker(threading.Thread):
    """A daemon thread draining the outbox every ``every_seconds`` until :meth:`stop`.

    Failures are logged and retried by the outbox's back-off; nothing is raised into the
    thread that started it.
    """

    def __init__(
        self,
        outbox: Outbox,
        channels: Mapping[str, Channel],
        every_seconds: float = 2.0,
        before_drain: Callable[[], object] | None = None,
    ) -> None:
        """``before_drain`` runs before each drain (it may queue more: escalations)."""
        super().__init__(name="anomalake-alert-delivery", daemon=True)
        self.outbox, self.channels, self.every_seconds = outbox, dict(channels), every_seconds
        self.before_drain = before_drain
        self._stopping = threading.Event()
        self.drains = 0

    def run(self) -> None:
        """Drain, then wait ``every_seconds``, until stopped."""
        while not self._stopping.is_set():
            try:
                if self.before_drain is not None:
                    self.before_drain()
                result = self.outbox.drain(self.channels)
                if any(result.values()):
                    log.info("alert delivery: %s", result)
                if self.drains % 1000 == 0:
                    self.outbox.prune()
            except Exception:  # noqa: BLE001 - the worker must outlive any failure
                log.exception("alert delivery failed; retrying in %.1f s", self.every_seconds)
            self.drains += 1
            self._stopping.wait(self.every_seconds)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the thread to finish (a drain under way completes) and wait for it."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)
