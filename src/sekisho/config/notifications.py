"""The ``[notifications]`` settings: security notices e-mailed to users (AU-06).

Sekisho tells a user, at every notification address on their account, when their password,
sign-in methods or recovery codes change, when a recovery code is used, and when their
account is unlocked (docs/notifications.md). This section says how:

- ``smtp``: the mail server, as in ``[alerts.smtp]`` but without ``to`` (each notice goes to
  the user's own addresses). Default: the server of ``[alerts.smtp]``.
- ``from``: the sender. Default: ``from`` of the server used.
- ``contact``: who to contact to repudiate an event ("IT helpdesk, ext. 1234,
  helpdesk@example.com"). Required whenever notices are on: every notice names it.
- ``portal_url``: the portal's address for the Security page link
  (``{portal_url}/security``). Default: the first ``server.public_origins`` + prefix.
- ``enabled``: default on exactly when an SMTP server is configured (here or in alerts).

The cross-section rules (a server to send with, a sender, a contact) are checked by
:meth:`NotificationSettings.resolve`, which the top-level Settings calls; its messages name
the key, e.g. ``notifications.contact: required when notifications are enabled ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator

from sekisho.config.alerts import SmtpSettings
from sekisho.config.base import _Strict

__all__ = ["NotificationPlan", "NotificationSettings", "NotifySmtpSettings", "is_mailbox"]

# As [alerts.smtp] takes them: a plain mailbox, no display name, no spaces, nothing that
# could end a header line.
_MAILBOX = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9.-]+$")
MAILBOX_LENGTH = 320
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def is_mailbox(value: str) -> bool:
    """Whether ``value`` is a plain address Sekisho will send to (also for users' addresses)."""
    return len(value) <= MAILBOX_LENGTH and bool(_MAILBOX.match(value))


class NotifySmtpSettings(SmtpSettings):
    """``[alerts.smtp]``'s model with ``from`` optional and no ``to``."""

    sender: str = Field(default="", alias="from")
    to: list[str] = Field(default_factory=list)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if value and not is_mailbox(value):
            raise ValueError("must be a plain address like sekisho@example.com")
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError("not used here: each notice goes to the user's own addresses")
        return value


@dataclass(frozen=True, slots=True)
class NotificationPlan:
    """The resolved settings the notifier runs with."""

    smtp: SmtpSettings
    smtp_key: str  # "notifications.smtp" or "alerts.smtp", for messages about its files
    sender: str
    contact: str
    portal_url: str
    subject_prefix: str
    max_pending: int
    retries: int
    retry_backoff: float


class NotificationSettings(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool | None = None  # None: on when an SMTP server is configured
    smtp: NotifySmtpSettings | None = None
    sender: str | None = Field(default=None, alias="from")
    contact: str | None = Field(default=None, max_length=300)
    portal_url: str | None = None
    subject_prefix: str = Field(default="[Sekisho]", max_length=64)
    max_pending: int = Field(default=1000, ge=10, le=100_000)
    retries: int = Field(default=4, ge=0, le=10)
    retry_backoff: float = Field(default=30.0, ge=0.1, le=3600)

    @field_validator("sender")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        if value is not None and not is_mailbox(value):
            raise ValueError("must be a plain address like sekisho@example.com")
        return value

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ValueError("must say whom to contact, e.g. IT helpdesk, ext. 1234")
        if _CONTROL.search(value):
            raise ValueError("must be one line of text")
        return value

    @field_validator("portal_url")
    @classmethod
    def _portal(cls, value: str | None) -> str | None:
        return None if value is None else _portal_url(value)

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("must be one line")
        return value

    def resolve(self, *, alerts_smtp: SmtpSettings | None,
                default_portal_url: str) -> NotificationPlan | None:
        """The plan, or None when notices are off. Raises ValueError naming the key."""
        server, key = ((self.smtp, "notifications.smtp") if self.smtp is not None
                       else (alerts_smtp, "alerts.smtp"))
        enabled = server is not None if self.enabled is None else self.enabled
        if not enabled:
            return None
        if server is None:
            raise ValueError("notifications.enabled: needs [notifications.smtp] or "
                             "[alerts.smtp] (a mail server to send with)")
        sender = self.sender or server.sender
        if not sender:
            raise ValueError("notifications.from: required (or from in [notifications.smtp])")
        if self.contact is None:
            raise ValueError(
                "notifications.contact: required when notifications are enabled: whom users "
                'contact if they did not make a change, e.g. "IT helpdesk, ext. 1234" '
                "(or set notifications.enabled = false)")
        return NotificationPlan(
            smtp=server, smtp_key=key, sender=sender, contact=self.contact,
            portal_url=self.portal_url or _portal_url(default_portal_url),
            subject_prefix=self.subject_prefix, max_pending=self.max_pending,
            retries=self.retries, retry_backoff=self.retry_backoff)


def _portal_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL like https://gw.example.com/_sekisho")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry a query, fragment or user name")
    return value.strip().rstrip("/")
