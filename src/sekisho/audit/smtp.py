"""One SMTP server as alerts (``audit.alert_sinks``) and user notices (``audit.notify_mail``)
reach it: connection security, credentials, and one blocking transaction per message (callers
run it in a worker thread). Callers translate smtplib's errors into their own."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

Security = Literal["starttls", "ssl", "none"]


class SmtpServer:
    def __init__(
        self, *, host: str, port: int, security: Security = "starttls",
        username: str | None = None, password: str | None = None, timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.host, self.port, self.security = host, port, security
        self._username, self._password = username, password
        self._timeout = timeout
        self._ssl = ssl_context or ssl.create_default_context()

    @property
    def name(self) -> str:
        """For logs and errors: host and port only."""
        return f"smtp {self.host}:{self.port}"

    def transact(self, message: EmailMessage, *, sender: str,
                 recipients: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """Send ``message``; the recipients the server refused (smtplib raises when it
        refused them all). Blocking."""
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self._timeout,
                                    context=self._ssl)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=self._ssl)
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
            return smtp.send_message(message, from_addr=sender, to_addrs=list(recipients))


def read_secret_file(path: str, key: str, problems: list[str]) -> str | None:
    """The file's text without its trailing newline. Messages never quote the contents."""
    try:
        text = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{key}: cannot read ({type(exc).__name__})")
        return None
    if not text.strip():
        problems.append(f"{key}: the file is empty")
        return None
    if any(c in text for c in "\r\n\0"):
        problems.append(f"{key}: must hold one line")
        return None
    return text


def load_ssl_context(ca_file: str | None, key: str, problems: list[str]) -> ssl.SSLContext | None:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"{key}: cannot load ({type(exc).__name__})")
        return None
