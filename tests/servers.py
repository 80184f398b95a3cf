"""Local servers alert channels are tested against: an HTTP receiver and an SMTP server.

Their fixtures (`receiver`, `smtp`) are registered in `tests/conftest.py`.
"""

from __future__ import annotations

import email as email_parser
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from anomalake.settings import Settings


class Receiver(BaseHTTPRequestHandler):
    fail_next = 0
    status_when_down = 503
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.fail_next > 0:
            Receiver.fail_next -= 1
            self.send_response(Receiver.status_when_down)
        else:
            Receiver.received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received, Receiver.fail_next, Receiver.status_when_down = [], 0, 503
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


class Mailbox:
    """An aiosmtpd handler keeping every message it accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(email_parser.message_from_bytes(data)["Subject"]) for _, data in self.messages]


@pytest.fixture()
def smtp() -> Iterator[tuple[int, Mailbox]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


def local_mail(settings: Settings, smtp_port: int, to: str = "ops@example.org") -> Settings:
    """``settings`` sending e-mail to ``to`` through the local SMTP server, no webhook."""
    update = {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "email_to": (to,)}
    alerts = settings.alerts.model_copy(update=update | {"webhook_url": None})
    return settings.model_copy(update={"alerts": alerts})
