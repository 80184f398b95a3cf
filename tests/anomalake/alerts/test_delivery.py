"""Channels against local servers only: an HTTP receiver and an SMTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from anomalake.alerts.delivery import Outbox, email, webhook

ALERT = {"alert_id": "a1", "entity": "pump-1", "rule": "overheating", "severity": "high"}


class Receiver(BaseHTTPRequestHandler):
    fail_next = 0
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.fail_next > 0:
            Receiver.fail_next -= 1
            self.send_response(503)
        else:
            Receiver.received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received, Receiver.fail_next = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_webhook_outage_is_retried_with_back_off_and_nothing_is_lost(
    receiver: str, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.db", base_delay=10, max_delay=40)
    channels = {"hook": webhook(receiver)}
    Receiver.fail_next = 3  # the receiver is down for three attempts
    outbox.put("hook", ALERT, now=0)
    outbox.put("hook", {**ALERT, "alert_id": "a2"}, now=0)
    assert outbox.drain(channels, now=0) == {"sent": 0, "failed": 2}
    assert outbox.drain(channels, now=5) == {"sent": 0, "failed": 0}  # backing off
    assert outbox.drain(channels, now=10) == {"sent": 1, "failed": 1}
    # A restart of the process: the outbox is durable.
    outbox = Outbox(tmp_path / "outbox.db", base_delay=10, max_delay=40)
    assert outbox.pending() == 1
    assert outbox.drain(channels, now=30) == {"sent": 1, "failed": 0}
    assert sorted(a["alert_id"] for a in Receiver.received) == ["a1", "a2"]
    assert outbox.pending() == 0


def test_a_dead_channel_does_not_block_the_others(receiver: str, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    channels = {"hook": webhook(receiver), "dead": webhook("http://127.0.0.1:9/nothing", 1)}
    outbox.put("dead", ALERT, now=0)
    outbox.put("hook", ALERT, now=0)
    assert outbox.drain(channels, now=0) == {"sent": 1, "failed": 1}
    assert outbox.pending() == 1 and len(Receiver.received) == 1


def test_email_reaches_a_local_smtp_server(tmp_path: Path) -> None:
    import asyncore  # noqa: F401 - smtpd needs it (Python 3.11)
    import smtpd

    received: list[tuple[str, list[str], bytes]] = []

    class Server(smtpd.SMTPServer):
        def process_message(
            self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes, **kwargs: Any
        ) -> None:
            received.append((mailfrom, rcpttos, data))

    server = Server(("127.0.0.1", 0), None)
    port = server.socket.getsockname()[1]
    import asyncore as loop

    thread = threading.Thread(target=loop.loop, kwargs={"timeout": 0.1, "count": 200}, daemon=True)
    thread.start()
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put("mail", ALERT, now=0)
    result = outbox.drain(
        {"mail": email("127.0.0.1", port, "anomalake@localhost", ["oncall@localhost"])}, now=0
    )
    server.close()
    assert result == {"sent": 1, "failed": 0}
    assert received[0][1] == ["oncall@localhost"]
    assert b"overheating on pump-1" in received[0][2]
