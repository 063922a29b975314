"""Audit events: one frozen record per security-relevant thing that happened (AU-01, AU-02).

Names follow the OWASP logging vocabulary (``authn_login_fail``, ``authz_admin`` ...), with an
optional ``:detail`` suffix as the vocabulary writes it (``authn_login_lock:maxretries``).
A name outside :data:`EVENTS` is refused, so a typo cannot file an event where no one looks.

Every event carries: UTC timestamp, event, level, account (a user id, or the regulator's HMAC
of an attempted name — never the typed text), factor, trusted client IP, user agent, request
id and gateway node. Admin actions (``authz_admin``, AD-06) add actor, target, action, reason
and the before and after state. Anything else goes in ``details``.

Secrets never reach an event (AU-03): a key in ``details``, ``before`` or ``after`` that
looks like one (``password``, ``code``, ``token``, ``secret``, ``otp``, ``session_id`` ...,
also as a part of a longer name such as ``totp_secret``) is refused at construction with
:class:`SecretFieldRefused`. Values cannot be judged; callers pass ids, counts and states.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from sekisho.errors import SekishoError
from sekisho.store.lockouts import LockoutRecord

__all__ = [
    "ADMIN_EVENT", "EVENTS", "SECRET_NAMES", "SECRET_PARTS", "AuditError", "AuditEvent", "Level",
    "SecretFieldRefused", "lockout_opened", "lockout_unlocked",
]

Level = Literal["INFO", "WARN", "CRITICAL"]
ADMIN_EVENT = "authz_admin"

#: OWASP vocabulary names in use, and Sekisho's own where the vocabulary has none (AU-02).
EVENTS = frozenset({
    "authn_login_success", "authn_login_successafterfail", "authn_login_fail",
    "authn_login_fail_max", "authn_login_lock", "authn_password_change",
    "authn_password_change_fail", "authn_password_reset", "authn_token_created",
    "authn_token_revoked", "authn_token_reuse", "authn_token_delete",
    "authn_factor_bound", "authn_factor_removed", "authn_recovery_code_used",
    "authn_recovery_codes_regenerated", "authn_totp_replay",
    "authn_webauthn_counter_regression", "authn_breach_check_unavailable",
    "authn_password_breached",  # :login or :set, PW-08a/PW-12 (docs/breach.md)
    "authz_fail", "authz_change", ADMIN_EVENT,
    "excess_rate_limit_exceeded", "malicious_csrf", "malicious_excess_404",
    "malicious_attack_mode",
    "session_created", "session_renewed", "session_expired", "session_use_after_expire",
    "session_logout", "session_revoked",
    "user_created", "user_updated", "user_archived", "user_deleted",
    "privilege_permissions_changed",
    "sys_startup", "sys_shutdown", "sys_crash",
})
_NAME = re.compile(r"(?P<base>[a-z][a-z0-9_]*)(?::[A-Za-z0-9_.,-]{1,64}){0,3}")
_WARN = frozenset({"authn_login_fail_max", "authn_login_lock", ADMIN_EVENT, "authz_fail",
                   "excess_rate_limit_exceeded", "authn_totp_replay", "malicious_attack_mode",
                   "authn_breach_check_unavailable", "session_use_after_expire",
                   "authn_password_breached"})
_CRITICAL = frozenset({"malicious_csrf", "authn_webauthn_counter_regression",
                       "authn_token_reuse"})

#: Marks of a secret in a field name: anywhere in it (case and ``_-.`` ignored) for the long
#: ones, as a whole ``_``/``-``/``.``-separated part for the short ones.
SECRET_NAMES = frozenset({
    "password", "passwd", "passphrase", "secret", "token", "pepper", "sessionid",
    "sessionkey", "apikey", "privatekey", "authorization", "cookie",
})
SECRET_PARTS = frozenset({"pwd", "code", "codes", "otp", "seed", "pin"})
# Metadata about a secret, not the secret.
_HARMLESS = frozenset({"password_changed_at", "has_password", "token_expires_at",
                       "session_id_hash", "status_code"})
_UA_LIMIT = 512
_TEXT_LIMIT = 1024


class AuditError(SekishoError, ValueError):
    """An audit event that cannot be recorded as given."""


class SecretFieldRefused(AuditError):
    """A field name that looks like a secret (AU-03). The message names the field."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


_NODE = socket.gethostname()[:_TEXT_LIMIT]


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    if lowered in _HARMLESS:
        return False
    squashed = re.sub(r"[_\-.\s]+", "", lowered)
    if any(mark in squashed for mark in SECRET_NAMES):
        return True
    return any(part in SECRET_PARTS for part in re.split(r"[_\-.\s]+", lowered))


def _frozen(value: Mapping[str, Any] | None, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    _check_names(value, where)
    return MappingProxyType(json.loads(json.dumps(value, allow_nan=False)))


def _check_names(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise AuditError(f"{where}: keys must be strings")
            if _is_secret(key):
                raise SecretFieldRefused(f"{where}.{key}: looks like a secret; not recorded")
            _check_names(inner, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for item in value:
            _check_names(item, where)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event: str
    timestamp: datetime = field(default_factory=_utcnow)
    account: str | None = None
    factor: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    node: str = _NODE
    level: Level | None = None  # None: from the event name
    actor: str | None = None
    target: str | None = None
    action: str | None = None
    reason: str | None = None
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    details: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        match = _NAME.fullmatch(self.event)
        if match is None or match["base"] not in EVENTS:
            raise AuditError(f"unknown audit event name {self.event[:80]!r}")
        if self.timestamp.tzinfo is None:
            raise AuditError("timestamp must carry a timezone")
        set_ = object.__setattr__
        set_(self, "timestamp", self.timestamp.astimezone(UTC))
        set_(self, "level", self.level or _level(match["base"]))
        if self.user_agent is not None:
            set_(self, "user_agent", self.user_agent[:_UA_LIMIT])
        for name in ("before", "after", "details"):
            set_(self, name, _frozen(getattr(self, name), name))
        if match["base"] == ADMIN_EVENT and not (self.actor and self.target and self.action):
            raise AuditError("an authz_admin event needs actor, target and action (AD-06)")

    @property
    def base(self) -> str:
        """The vocabulary name without its ``:detail``."""
        return self.event.split(":", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the log line and the chain record carry."""
        out: dict[str, Any] = {
            "timestamp": self.timestamp.isoformat(timespec="microseconds").replace(
                "+00:00", "Z"),
            "event": self.event, "level": self.level, "account": self.account,
            "factor": self.factor, "client_ip": self.client_ip,
            "user_agent": self.user_agent, "request_id": self.request_id, "node": self.node,
        }
        if self.base == ADMIN_EVENT or self.actor is not None:
            out.update(actor=self.actor, target=self.target, action=self.action,
                       reason=self.reason, before=_plain(self.before),
                       after=_plain(self.after))
        if self.details:
            out["details"] = _plain(self.details)
        return out


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _level(base: str) -> Level:
    if base in _CRITICAL:
        return "CRITICAL"
    return "WARN" if base in _WARN else "INFO"


def _account(record: LockoutRecord) -> str:
    return str(record.user_id) if record.user_id is not None else record.account_key


def lockout_opened(
    record: LockoutRecord, *, client_ip: str | None = None, user_agent: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """``authn_login_lock:<reason>`` for a newly opened lockout record (AU-02)."""
    return AuditEvent(
        event=f"authn_login_lock:{record.reason}", timestamp=record.last_seen,
        account=_account(record), factor=record.factor, client_ip=client_ip,
        user_agent=user_agent, request_id=request_id,
        details={"lockout_id": record.id, "failure_count": record.failure_count,
                 "distinct_ips": record.distinct_ips,
                 "distinct_subnets": record.distinct_subnets},
    )


def _lock_state(record: LockoutRecord) -> dict[str, Any]:
    return {
        "state": record.state, "factor": record.factor, "reason": record.reason,
        "failure_count": record.failure_count, "unlocked_by": record.unlocked_by,
        "unlocked_at": None if record.unlocked_at is None else record.unlocked_at.isoformat(),
    }


def lockout_unlocked(
    before: LockoutRecord, after: LockoutRecord, *, client_ip: str | None = None,
    user_agent: str | None = None, request_id: str | None = None,
) -> AuditEvent:
    """The ``authz_admin`` event of an admin unlock (AD-02, AD-06): actor and reason from the
    record, before and after state."""
    return AuditEvent(
        event=ADMIN_EVENT, account=_account(after), factor=after.factor,
        client_ip=client_ip, user_agent=user_agent, request_id=request_id,
        actor=after.unlocked_by, target=f"lockout:{after.id}", action="lockout.unlock",
        reason=after.unlock_reason, before=_lock_state(before), after=_lock_state(after),
        details={"lockout_id": after.id, "username": after.username},
    )
