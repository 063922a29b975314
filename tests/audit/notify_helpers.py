"""Shared by the notifier tests: a real aiosmtpd server that records (or refuses) mail."""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller

CONTACT = "IT helpdesk, ext. 1234, helpdesk@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mailbox:
    """An SMTP handler: records each accepted message; ``refuse`` holds answers to give to
    the next DATA commands instead of accepting (e.g. ``451 4.3.0 try later``)."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse: deque[str] = deque()
        self.attempts = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.attempts += 1
            if self.refuse:
                return self.refuse.popleft()
            msg = BytesParser(_class=EmailMessage, policy=default_policy).parsebytes(
                envelope.original_content)
            self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"

    def body(self, index: int = -1) -> str:
        part = self.mails[index][2].get_body(("plain",))
        assert part is not None
        text: str = part.get_content()
        return text


@contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """A plain SMTP server on 127.0.0.1 (a local relay: security = "none")."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, box
    finally:
        controller.stop()
