"""The ``[alerts]`` settings: where alert digests go (a webhook, SMTP) and how often.

Secret values (a webhook URL that embeds a token, an auth header, the SMTP password) are
``SecretStr`` or come from a ``*_file``; they are read when the sinks are built
(``sekisho.audit.alert_sinks.create_sinks``), never printed. docs/alerts.md has examples.

Every message names its key, e.g. ``alerts.smtp.to: must list at least one address``.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from sekisho.config.base import _Strict

__all__ = ["ALERT_KINDS", "DEFAULT_ALERT_KINDS", "AlertSettings", "SmtpSettings",
           "WebhookSettings"]

#: Every kind of alert Sekisho raises, with what it means (AU-05). docs/alerts.md lists them.
ALERT_KINDS: dict[str, str] = {
    "lockout": "an account (or an attempted name) entered a wait window",
    "account_disabled": "a factor reached disable_after; only recovery or an admin lifts it",
    "attack_mode": "attack mode switched on",
    "attack_mode_ended": "attack mode ended by itself",
    "failure_rate": "the global failure rate rose over its baseline",
    "distinct_usernames": "one address or subnet tried more than N distinct usernames",
    "spraying": "many accounts failed with the same password (keyed hash prefix)",
    "success_after_failure": "a high ratio of logins succeeding after failures",
    "lockout_spike": "a spike in lockouts",
    "challenge_solve_rate": "an abnormal proof-of-work challenge solve rate",
    "webauthn_counter_regression": "a passkey signature counter went backwards (a clone?)",
    "admin_unlock_burst": "many admin unlocks in a short span",
}
DEFAULT_ALERT_KINDS: tuple[str, ...] = tuple(ALERT_KINDS)

# RFC 9110 token characters: a header name that cannot smuggle anything.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
_RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding",
                               "connection"})
# Deliberately plain: a mailbox as the SMTP envelope takes it, no display name, no spaces.
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9.-]+$")


class WebhookSettings(_Strict):
    """POST one JSON document per digest. ``url`` or ``url_file`` (a Slack or Teams URL is
    itself the credential); ``headers`` and ``header_files`` add e.g. an Authorization."""

    url: SecretStr | None = None
    url_file: str | None = None
    format: Literal["json", "slack", "teams"] = "json"
    timeout: float = Field(default=10.0, gt=0, le=120)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    header_files: dict[str, str] = Field(default_factory=dict)
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_webhook_url(value.get_secret_value())
        return value

    @field_validator("headers", "header_files")
    @classmethod
    def _header_names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not _HEADER_NAME.match(name):
                raise ValueError("header names must be HTTP tokens, e.g. Authorization")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{name} is set by Sekisho and cannot be configured")
        return value

    @field_validator("headers")
    @classmethod
    def _header_values(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if any(c in secret.get_secret_value() for c in "\r\n\0"):
                raise ValueError(f"the value of {name} must not contain CR, LF or NUL")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> WebhookSettings:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("set exactly one of url or url_file")
        both = {n.lower() for n in self.headers} & {n.lower() for n in self.header_files}
        if both:
            raise ValueError(f"header {sorted(both)[0]} is set in both headers and header_files")
        return self


def check_webhook_url(url: str) -> str:
    """Raise ValueError (never quoting the URL: it may hold a token) unless ``url`` is an
    absolute http(s) URL. Also used for the contents of ``url_file``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL, e.g. https://hooks.example.com/...")
    if parts.fragment:
        raise ValueError("must not carry a #fragment")
    return url.strip()


class SmtpSettings(_Strict):
    """Send each digest as one mail. ``security`` is "starttls" (port 587), "ssl" (implicit
    TLS, port 465) or "none" (port 25; a local relay only: no login over plain text)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1, max_length=256)
    password: SecretStr | None = None
    password_file: str | None = None
    sender: str = Field(alias="from")
    to: list[str]
    timeout: float = Field(default=30.0, gt=0, le=300)
    ca_file: str | None = None
    subject_prefix: str = Field(default="[Sekisho]", max_length=64)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not _ADDRESS.match(value):
            raise ValueError("must be a plain address like sekisho@example.com")
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least one address")
        for item in value:
            if not _ADDRESS.match(item):
                raise ValueError("each must be a plain address like security@example.com")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise ValueError("must be one line")
        return value

    @model_validator(mode="after")
    def _login(self) -> SmtpSettings:
        has_password = self.password is not None or self.password_file is not None
        if self.password is not None and self.password_file is not None:
            raise ValueError("set either password or password_file, not both")
        if has_password and self.username is None:
            raise ValueError("a password needs a username")
        if self.username is not None and not has_password:
            raise ValueError("username needs password or password_file")
        if self.username is not None and self.security == "none":
            raise ValueError('login needs security = "starttls" or "ssl" (no password in clear)')
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "ssl": 465, "none": 25}[self.security]


class AlertSettings(_Strict):
    """``enabled = false`` silences alerts while keeping the configuration. With no sink
    configured, digests are only logged."""

    enabled: bool = True
    webhook: WebhookSettings | None = None
    smtp: SmtpSettings | None = None
    digest_interval: float = Field(default=300.0, ge=1, le=86400)
    send_first_immediately: bool = True
    max_per_digest: int = Field(default=20, ge=1, le=40)
    max_pending: int = Field(default=10_000, ge=100, le=1_000_000)
    kinds: list[str] = Field(default_factory=lambda: list(DEFAULT_ALERT_KINDS))

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        for kind in value:
            if kind not in ALERT_KINDS:
                raise ValueError(
                    f"unknown kind {kind[:40]!r}; known: {', '.join(ALERT_KINDS)}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _some_sink(self) -> AlertSettings:
        # An explicit `enabled = true` with nowhere to send is a mistake worth a message.
        if "enabled" in self.model_fields_set and self.enabled and not self.has_sinks:
            raise ValueError("enabled needs [alerts.webhook] or [alerts.smtp]")
        return self

    @property
    def has_sinks(self) -> bool:
        return self.webhook is not None or self.smtp is not None
