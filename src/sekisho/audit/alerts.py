"""Alerts and digests: what the gateway tells its operators, and the seam to the sinks.

An :class:`Alert` is one event worth a human's attention (a lockout, attack mode, a passkey
counter going backwards). Alerts are folded into a :class:`Digest` per interval by the
:class:`~sekisho.audit.alerter.Alerter`, and each digest goes to every :class:`AlertSink`.

**No secrets, ever (AU-03).** An alert carries only what its caller gives it, so callers pass
account keys or usernames, client addresses, subnets, counts, reasons and times, and never a
password (not even a failed one), OTP, recovery code, session id, token, seed or key. As a
guard, :class:`Alert` refuses field names that look like they hold a secret (``password``,
``code``, ``token``, ``secret``, ``otp``, ``session``...) and its errors never quote values.

Values may come from an attacker (an attempted username): they are truncated and their
control characters escaped here, and each output format escapes its own markup.

Errors::

    SekishoError
    └── AlertError                  base of the alert errors
        ├── InvalidAlert            an Alert built wrongly (also a ValueError): a caller bug
        └── AlertDeliveryError      a sink could not deliver; the message names the sink by
                                    scheme and host only (a webhook URL may hold a token)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, Protocol, get_args

from sekisho.config.alerts import ALERT_KINDS
from sekisho.errors import SekishoError

__all__ = ["ALERT_KINDS", "Alert", "AlertDeliveryError", "AlertError", "AlertSink", "Digest",
           "InvalidAlert", "Severity", "check_field_name"]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

MAX_FIELDS = 20
MAX_TITLE = 200
MAX_SUMMARY = 2000
MAX_VALUE = 500

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# A name containing one of these anywhere is refused...
_SECRET_PARTS = ("password", "passwd", "passphrase", "passcode", "secret", "token", "cookie",
                 "session", "apikey", "api_key", "privkey", "private_key", "seed", "pepper")
# ...and so is one with one of these as a whole `_`-separated word (so `ip_count` passes).
_SECRET_WORDS = frozenset({"pw", "pwd", "pass", "code", "codes", "otp", "otps", "totp", "hotp",
                           "pin", "sid", "nonce", "jwt", "bearer", "authorization"})


class AlertError(SekishoError):
    """Base of the alert errors."""


class InvalidAlert(AlertError, ValueError):
    """An alert was built wrongly. The message names the rule and never quotes a value."""


class AlertDeliveryError(AlertError):
    """A sink could not deliver a digest. Safe to log: names the sink by scheme and host."""


def check_field_name(name: str) -> None:
    """Raise :class:`InvalidAlert` unless ``name`` is a snake_case name that does not look
    like it holds a secret."""
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise InvalidAlert("alert field names must be snake_case, e.g. client_ip")
    part = next((p for p in _SECRET_PARTS if p in name), None)
    word = next((w for w in name.split("_") if w in _SECRET_WORDS), None)
    if part or word:
        raise InvalidAlert(
            f"alert field {name!r} looks like it holds a secret ({part or word!r}): alerts "
            "carry account keys, usernames, addresses and counts, never secrets (AU-03)")


def clean_text(value: str, *, limit: int, newlines: bool = False) -> str:
    """``value`` cut to ``limit`` characters with control characters escaped, so that an
    attacker-chosen username cannot forge lines in a mail or a log."""
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    if value.isprintable():
        return value
    return "".join(
        c if c.isprintable() or (newlines and c == "\n") else f"\\u{ord(c):04x}" for c in value)


@dataclass(frozen=True, slots=True)
class Alert:
    """One event for the operators. ``kind`` is one of :data:`ALERT_KINDS`; ``fields`` maps
    snake_case names to short values (account key, username, client_ip, failures, ...)."""

    kind: str
    severity: Severity
    title: str
    summary: str
    fields: Mapping[str, str | int] = field(default_factory=dict, hash=False)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise InvalidAlert(f"unknown alert kind; known: {', '.join(ALERT_KINDS)}")
        if self.severity not in SEVERITIES:
            raise InvalidAlert(f"severity must be one of {', '.join(SEVERITIES)}")
        if not isinstance(self.title, str) or not self.title.strip():
            raise InvalidAlert("an alert needs a title")
        if not isinstance(self.summary, str):
            raise InvalidAlert("summary must be text")
        if len(self.fields) > MAX_FIELDS:
            raise InvalidAlert(f"an alert carries at most {MAX_FIELDS} fields")
        clean: dict[str, str | int] = {}
        for name, value in self.fields.items():
            check_field_name(name)
            if isinstance(value, str):
                clean[name] = clean_text(value, limit=MAX_VALUE)
            elif isinstance(value, int):
                clean[name] = int(value)
            else:
                raise InvalidAlert(f"alert field {name!r} must be text or an integer")
        if self.occurred_at.tzinfo is None:
            raise InvalidAlert("occurred_at must be timezone-aware")
        object.__setattr__(self, "title", clean_text(self.title.strip(), limit=MAX_TITLE))
        object.__setattr__(self, "summary",
                           clean_text(self.summary, limit=MAX_SUMMARY, newlines=True))
        object.__setattr__(self, "fields", MappingProxyType(clean))
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (the ``json`` webhook format)."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "fields": dict(self.fields),
            "occurred_at": iso(self.occurred_at),
        }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Digest:
    """What one interval folded together. ``total`` counts every alert that arrived, also
    those not shown in full and those ``dropped`` from a full queue; ``counts`` has them per
    kind. ``alerts`` is the first few in full."""

    alerts: tuple[Alert, ...]
    counts: Mapping[str, int]
    total: int
    first_at: datetime
    last_at: datetime
    dropped: int = 0

    @property
    def more(self) -> int:
        """How many arrived but are not shown in full ("and M more")."""
        return self.total - len(self.alerts)

    @property
    def severity(self) -> Severity:
        """The highest severity among the alerts shown."""
        ranks = [SEVERITIES.index(a.severity) for a in self.alerts]
        return SEVERITIES[max(ranks, default=0)]

    def ranked_counts(self) -> list[tuple[str, int]]:
        """Counts per kind, the largest first."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def merge(self, newer: Digest, *, limit: int) -> Digest:
        """This digest (older, e.g. one whose delivery failed) followed by ``newer``."""
        counts = dict(self.counts)
        for kind, n in newer.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        return Digest(
            alerts=(self.alerts + newer.alerts)[:limit],
            counts=MappingProxyType(counts),
            total=self.total + newer.total,
            first_at=min(self.first_at, newer.first_at),
            last_at=max(self.last_at, newer.last_at),
            dropped=self.dropped + newer.dropped,
        )


class AlertSink(Protocol):
    """Somewhere digests go. ``send`` raises :class:`AlertDeliveryError` (or anything: the
    alerter logs it without a traceback and retries once); ``name`` is safe to log."""

    @property
    def name(self) -> str: ...

    async def send(self, digest: Digest) -> None: ...

    async def close(self) -> None: ...
