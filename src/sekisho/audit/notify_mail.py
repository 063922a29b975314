"""How user notices leave: one SMTP transaction per message (audit.notifier queues them).

The same server settings as the alert mails (``[alerts.smtp]``'s model, see
``config.notifications``), but each message has its own recipients: the user's addresses.
Errors are translated to :class:`NotifyDeliveryError` with a message that names the server
and the SMTP code only, never an address (addresses are personal data) or the password.
A 5xx answer is *permanent* (sending again will not help); everything else may be retried.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Literal, Protocol

from sekisho.audit.smtp import SmtpServer, load_ssl_context, read_secret_file
from sekisho.config.notifications import NotificationPlan
from sekisho.errors import ConfigError, SekishoError

__all__ = ["MailTransport", "NotifyDeliveryError", "SmtpTransport", "smtp_transport"]


class NotifyDeliveryError(SekishoError):
    """A notice could not be handed to the mail server. The message is safe to log."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailTransport(Protocol):
    @property
    def name(self) -> str:
        """For logs: scheme/host/port only."""
        ...

    async def send(self, message: EmailMessage, *, sender: str,
                   recipients: Sequence[str]) -> int:
        """Hand over ``message``; return how many recipients the server refused (some, not
        all). Raise NotifyDeliveryError when nothing was accepted."""
        ...


class SmtpTransport:
    def __init__(
        self, *, host: str, port: int, security: Literal["starttls", "ssl", "none"] = "starttls",
        username: str | None = None, password: str | None = None, timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._server = SmtpServer(host=host, port=port, security=security, username=username,
                                  password=password, timeout=timeout, ssl_context=ssl_context)

    @property
    def name(self) -> str:
        return self._server.name

    async def send(self, message: EmailMessage, *, sender: str,
                   recipients: Sequence[str]) -> int:
        return await asyncio.to_thread(self._deliver, message, sender, list(recipients))

    def _deliver(self, message: EmailMessage, sender: str, recipients: list[str]) -> int:
        try:
            refused = self._server.transact(message, sender=sender, recipients=recipients)
        except smtplib.SMTPRecipientsRefused:
            raise NotifyDeliveryError(f"{self.name}: every recipient refused",
                                      permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyDeliveryError(
                f"{self.name}: {type(exc).__name__} (SMTP {exc.smtp_code})",
                permanent=500 <= exc.smtp_code < 600) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyDeliveryError(f"{self.name}: {type(exc).__name__}") from None
        return len(refused)


def smtp_transport(plan: NotificationPlan) -> SmtpTransport:
    """The transport for ``plan``, its password file read now. Raises ConfigError naming
    the key (``notifications.smtp.password_file`` or ``alerts.smtp.password_file``)."""
    cfg, key = plan.smtp, plan.smtp_key
    problems: list[str] = []
    password = cfg.password.get_secret_value() if cfg.password is not None else None
    if cfg.password_file is not None:
        password = read_secret_file(cfg.password_file, f"{key}.password_file", problems)
    context = load_ssl_context(cfg.ca_file, f"{key}.ca_file", problems)
    if problems or context is None:
        raise ConfigError(problems)
    return SmtpTransport(host=cfg.host, port=cfg.effective_port, security=cfg.security,
                         username=cfg.username, password=password, timeout=cfg.timeout,
                         ssl_context=context)
