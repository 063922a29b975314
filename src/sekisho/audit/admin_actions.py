"""Admin actions on lockouts, done the same way from the CLI, the admin pages and the API.

Each function does the whole action and files its ``authz_admin`` event (AD-06), so no
surface can do the one without the other:

- :func:`unlock_lockout`: lift the regulator's disable and counters for the record's account
  and factor, mark the record ``unlocked`` with actor and the mandatory reason (AD-02), then
  audit ``lockout.unlock`` with the state before and after. A refusal (no reason, no such
  record, not active) changes nothing and files nothing.
- :func:`record_export`: audit ``lockout.export`` — records leaving the system — with the
  format, the filters and how many records went out.

This module sits in ``audit`` because it needs both the regulator (``ratelimit``) and the
audit log; the import direction (config → store → auth, ratelimit, audit → gateway, cli)
allows ``audit`` to use ``ratelimit``, not the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sekisho.audit.events import ADMIN_EVENT, AuditEvent, lockout_unlocked
from sekisho.audit.log import Auditor
from sekisho.ratelimit.lockout_recorder import LockoutRecorder, Unlocked
from sekisho.ratelimit.regulator import Regulator

__all__ = ["Origin", "lockouts_exported", "record_export", "unlock_lockout"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an admin request came from, for the audit event (AD-06: source IP)."""

    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


async def unlock_lockout(
    *, record_id: int, actor: str, reason: str, recorder: LockoutRecorder,
    regulator: Regulator, auditor: Auditor, origin: Origin | None = None,
) -> Unlocked:
    """Unlock one lockout record (AD-02) and audit it (AD-06).

    Raises UnlockReasonRequired / LockoutRequestError (bad reason or actor), NotFound,
    LockoutNotActive before anything changes; StateError when the regulator's state cannot
    be reached (the record then stays active, to retry); StoreError when the record or the
    audit event cannot be written (the audit line still reaches the log)."""
    origin = origin or Origin()
    done = await recorder.unlock(
        record_id=record_id, actor=actor, reason=reason, regulator=regulator)
    await auditor.record(lockout_unlocked(
        done.before, done.after, client_ip=origin.client_ip, user_agent=origin.user_agent,
        request_id=origin.request_id))
    return done


def _plain_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            continue
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def lockouts_exported(
    *, actor: str, fmt: str, count: int, filters: Mapping[str, Any],
    origin: Origin | None = None, target: str = "lockouts", action: str = "lockout.export",
) -> AuditEvent:
    """The ``authz_admin`` event of an export (AD-06). ``filters`` are the query that was
    run (account as its key, times as ISO-8601); no record content goes into the event.
    ``target``/``action`` name what left: lockouts, or breaches (``breach.export``)."""
    origin = origin or Origin()
    return AuditEvent(
        event=ADMIN_EVENT, actor=actor, target=target, action=action,
        client_ip=origin.client_ip, user_agent=origin.user_agent,
        request_id=origin.request_id,
        details={"format": fmt, "count": count, "filters": _plain_filters(filters)},
    )


async def record_export(
    *, auditor: Auditor, actor: str, fmt: str, count: int, filters: Mapping[str, Any],
    origin: Origin | None = None, target: str = "lockouts", action: str = "lockout.export",
) -> None:
    """Audit an export (call it before the data is handed out: no audit, no export)."""
    await auditor.record(lockouts_exported(
        actor=actor, fmt=fmt, count=count, filters=filters, origin=origin, target=target,
        action=action))
