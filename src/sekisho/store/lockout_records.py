"""Lockout records as values: the row types, the unlock rule, and the pure helpers that fold
a new sighting into a record's tallies. The SQL lives in :mod:`sekisho.store.lockouts`."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Row, Text, cast, or_

from sekisho.errors import Conflict, SekishoError
from sekisho.store.tables import (
    ACTOR_LENGTH,
    LOCKOUT_STATES,
    UNLOCK_REASON_LENGTH,
    lockout_events,
)

LockoutReason = Literal["maxretries", "suspicious", "admin"]
LockoutState = Literal["active", "expired", "unlocked"]

TOP = 20  # entries kept in each top list
DISTINCT_CAP = 1000  # fingerprints kept per record and kind
MAX_LIST = 10_000
MAX_BUCKETS = 10_000
HOUR = 3600
_T = lockout_events

# Columns an export may show, in order. Fingerprints are internal; nothing secret exists.
EXPORT_FIELDS = (
    "id", "account_key", "user_id", "username", "factor", "reason", "state",
    "failure_count", "distinct_ips", "distinct_subnets", "top_ips", "top_subnets",
    "user_agents", "first_seen", "last_seen", "expires_at", "unlocked_by", "unlocked_at",
    "unlock_reason",
)


class LockoutRequestError(SekishoError, ValueError):
    """The lockout store was asked something it cannot do: a bad filter, actor or interval."""


class UnlockReasonRequired(LockoutRequestError):
    """An unlock without a reason (AD-02)."""


class LockoutNotActive(Conflict):
    """The record is not active (already unlocked, or expired): nothing to unlock."""


@dataclass(frozen=True, slots=True)
class Tally:
    value: str
    count: int


@dataclass(frozen=True, slots=True)
class Sighting:
    """Failures to fold into a record: how many, when, and from where (values -> counts)."""

    failures: int
    first_seen: datetime
    last_seen: datetime
    ips: Mapping[str, int] = field(default_factory=dict)
    subnets: Mapping[str, int] = field(default_factory=dict)
    user_agents: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LockoutRecord:
    id: int
    account_key: str
    user_id: int | None
    username: str | None
    factor: str
    reason: LockoutReason
    failure_count: int
    distinct_ips: int
    distinct_subnets: int
    top_ips: tuple[Tally, ...]
    top_subnets: tuple[Tally, ...]
    user_agents: tuple[Tally, ...]
    first_seen: datetime
    last_seen: datetime
    expires_at: datetime | None
    state: LockoutState
    unlocked_by: str | None
    unlocked_at: datetime | None
    unlock_reason: str | None

    def export(self) -> dict[str, Any]:
        """The record as JSON-ready values, :data:`EXPORT_FIELDS` in order."""
        out: dict[str, Any] = {}
        for name in EXPORT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [{"value": t.value, "count": t.count} for t in value]
            out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class LockoutUpdate:
    record: LockoutRecord
    opened: bool  # a new record, rather than more failures on an open one


@dataclass(frozen=True, slots=True)
class IntervalCount:
    start: datetime
    failures: int
    refused: int
    lockouts: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def validate_unlock(*, actor: str, reason: str) -> tuple[str, str]:
    """The stripped actor and reason, or the error an unlock would raise (AD-02)."""
    reason, actor = reason.strip(), actor.strip()
    if not reason:
        raise UnlockReasonRequired("an unlock needs a reason")
    if len(reason) > UNLOCK_REASON_LENGTH or not reason.isprintable():
        raise LockoutRequestError(
            f"the reason must be printable text of at most {UNLOCK_REASON_LENGTH} characters")
    if not actor or len(actor) > ACTOR_LENGTH or not actor.isprintable():
        raise LockoutRequestError(f"the actor must be 1-{ACTOR_LENGTH} printable characters")
    return actor, reason


def _tallies(raw: Sequence[Mapping[str, Any]]) -> tuple[Tally, ...]:
    return tuple(Tally(str(e["value"]), int(e["count"])) for e in raw)


def _record(row: Row[Any]) -> LockoutRecord:
    return LockoutRecord(
        id=row.id, account_key=row.account_key, user_id=row.user_id, username=row.username,
        factor=row.factor, reason=row.reason, failure_count=row.failure_count,
        distinct_ips=row.distinct_ips, distinct_subnets=row.distinct_subnets,
        top_ips=_tallies(row.top_ips), top_subnets=_tallies(row.top_subnets),
        user_agents=_tallies(row.user_agents), first_seen=row.first_seen,
        last_seen=row.last_seen, expires_at=row.expires_at, state=row.state,
        unlocked_by=row.unlocked_by, unlocked_at=row.unlocked_at,
        unlock_reason=row.unlock_reason,
    )


def _top(current: Sequence[Mapping[str, Any]], add: Mapping[str, int]) -> list[dict[str, Any]]:
    counts = {str(e["value"]): int(e["count"]) for e in current}
    for value, n in add.items():
        counts[value] = counts.get(value, 0) + n
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    return [{"value": v, "count": n} for v, n in ranked]


def _seen(current: Sequence[str], distinct: int, add: Mapping[str, int]) -> tuple[list[str], int]:
    seen = list(current)
    known = set(seen)
    for value in add:
        fp = fingerprint(value)
        if fp in known:
            continue
        distinct += 1  # past the cap an address may be counted again: an upper bound
        if len(seen) < DISTINCT_CAP:
            seen.append(fp)
            known.add(fp)
    return seen, distinct


def _folded(row: Mapping[str, Any] | None, s: Sighting) -> dict[str, Any]:
    """The columns of ``row`` (None: a fresh record) with the sighting added."""
    old: Mapping[str, Any] = row or {
        "failure_count": 0, "distinct_ips": 0, "distinct_subnets": 0, "top_ips": [],
        "top_subnets": [], "user_agents": [], "seen_ips": [], "seen_subnets": [],
        "first_seen": s.first_seen, "last_seen": s.last_seen,
    }
    seen_ips, distinct_ips = _seen(old["seen_ips"], old["distinct_ips"], s.ips)
    seen_subnets, distinct_subnets = _seen(
        old["seen_subnets"], old["distinct_subnets"], s.subnets)
    return {
        "failure_count": old["failure_count"] + s.failures,
        "distinct_ips": distinct_ips, "distinct_subnets": distinct_subnets,
        "top_ips": _top(old["top_ips"], s.ips),
        "top_subnets": _top(old["top_subnets"], s.subnets),
        "user_agents": _top(old["user_agents"], s.user_agents),
        "seen_ips": seen_ips, "seen_subnets": seen_subnets,
        "first_seen": min(old["first_seen"], s.first_seen),
        "last_seen": max(old["last_seen"], s.last_seen),
    }


def _address_filter(ip: str) -> Any:
    """Records that saw this address, or this /24 (/64) subnet as recorded."""
    try:
        if "/" in ip:
            net = ipaddress.ip_network(ip.strip(), strict=False)
            return cast(_T.c.seen_subnets, Text).like(f'%"{fingerprint(str(net))}"%')
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        raise LockoutRequestError("ip must be an address or a subnet like 192.0.2.0/24") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return cast(_T.c.seen_ips, Text).like(f'%"{fingerprint(str(addr))}"%')


def _filters(
    since: datetime | None, until: datetime | None, account: str | None, ip: str | None,
    state: str | None,
) -> list[Any]:
    where: list[Any] = []
    _require_aware(since, until)
    if since is not None:
        where.append(_T.c.last_seen >= since)
    if until is not None:
        where.append(_T.c.first_seen < until)
    if account is not None:
        where.append(or_(_T.c.account_key == account, _T.c.username == account))
    if ip is not None:
        where.append(_address_filter(ip))
    if state is not None:
        if state not in LOCKOUT_STATES:
            raise LockoutRequestError(f"state must be one of {', '.join(LOCKOUT_STATES)}")
        where.append(_T.c.state == state)
    return where


def _require_aware(*values: datetime | None) -> None:
    if any(v is not None and v.tzinfo is None for v in values):
        raise LockoutRequestError("times must carry a timezone (UTC)")
