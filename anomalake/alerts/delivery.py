"""Delivering alerts to people without losing any: a durable outbox and channels.

Every notification is first written to an SQLite outbox; ``drain`` sends what is due
through its channel and deletes it only after the channel accepted it. A failing channel
gets exponential back-off (``base_delay * 2**attempts``, capped) and never blocks the
others or detection, which only appends to the outbox.
"""

from __future__ import annotations

import json
import smtplib
import sqlite3
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests

Channel = Callable[[Mapping[str, Any]], None]


def webhook(url: str, timeout: float = 5.0) -> Channel:
    """POST the alert as JSON; any non-2xx answer or network error is a failure."""

    def send(alert: Mapping[str, Any]) -> None:
        response = requests.post(url, json=dict(alert), timeout=timeout)
        response.raise_for_status()

    return send


def email(host: str, port: int, sender: str, to: list[str]) -> Channel:
    """Send the alert as a plain-text e-mail over SMTP."""

    def send(alert: Mapping[str, Any]) -> None:
        message = EmailMessage()
        message["From"], message["To"] = sender, ", ".join(to)
        message["Subject"] = (
            f"[{alert.get('severity', '?')}] {alert.get('rule')} on {alert.get('entity')}"
        )
        message.set_content(json.dumps(dict(alert), indent=2, default=str))
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.send_message(message)

    return send


class Outbox:
    """A durable queue of (channel, alert) notifications in SQLite."""

    def __init__(self, path: Path, base_delay: float = 1.0, max_delay: float = 300.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, channel TEXT, "
            "alert TEXT, attempts INTEGER DEFAULT 0, due REAL, last_error TEXT)"
        )
        self.db.commit()
        self.base_delay, self.max_delay = base_delay, max_delay

    def put(self, channel: str, alert: Mapping[str, Any], now: float | None = None) -> None:
        """Queue a notification (durably, before anything is sent)."""
        self.db.execute(
            "INSERT INTO outbox (channel, alert, due) VALUES (?, ?, ?)",
            (channel, json.dumps(dict(alert), default=str), time.time() if now is None else now),
        )
        self.db.commit()

    def pending(self) -> int:
        """Notifications not yet accepted by their channel."""
        return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def drain(self, channels: Mapping[str, Channel], now: float | None = None) -> dict[str, int]:
        """Send every due notification once; returns counts of sent and failed."""
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT id, channel, alert, attempts FROM outbox WHERE due <= ? ORDER BY id", (now,)
        ).fetchall()
        result = {"sent": 0, "failed": 0}
        for row_id, channel, alert, attempts in rows:
            try:
                channels[channel](json.loads(alert))
            except Exception as exc:  # noqa: BLE001 - any failure is retried later
                delay = min(self.base_delay * 2**attempts, self.max_delay)
                self.db.execute(
                    "UPDATE outbox SET attempts = ?, due = ?, last_error = ? WHERE id = ?",
                    (attempts + 1, now + delay, str(exc)[:500], row_id),
                )
                result["failed"] += 1
            else:
                self.db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
                result["sent"] += 1
            self.db.commit()
        return result
