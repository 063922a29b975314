"""Searching the audit trail for the admin views: :meth:`AuditLog.list` plus an account filter.

An event's ``account`` is a user id or the regulator's HMAC key of an attempted name; it is
only inside the hashed body, which is canonical JSON (sorted keys, no spaces), so an account
is matched as the exact text ``"account":"<value>"`` in the body. Values are restricted to
digits and lowercase hex, so the match can neither be widened by a wildcard nor cross into
another field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select

from sekisho.errors import StoreError
from sekisho.store.audit_log import StoredAuditEvent
from sekisho.store.db import Database
from sekisho.store.tables import audit_events as _T

__all__ = ["MAX_SEARCH", "search_audit"]

MAX_SEARCH = 1000
_ACCOUNT = re.compile(r"[0-9a-f]{1,64}")


async def search_audit(
    db: Database, *, event: str | None = None, accounts: Sequence[str] = (),
    since: datetime | None = None, until: datetime | None = None, limit: int = 100,
    offset: int = 0,
) -> list[StoredAuditEvent]:
    """Newest first. ``event`` matches the name and its ``name:detail`` forms; ``accounts``
    (user ids or account keys) match any of them; an empty ``accounts`` matches all."""
    if not 1 <= limit <= MAX_SEARCH or offset < 0:
        raise StoreError(f"limit must be 1-{MAX_SEARCH} and offset >= 0")
    if any(not _ACCOUNT.fullmatch(a) for a in accounts):
        raise StoreError("accounts must be user ids or account keys (digits, lowercase hex)")
    stmt = select(_T)
    if event:
        stmt = stmt.where(or_(_T.c.event == event,
                              _T.c.event.startswith(event + ":", autoescape=True)))
    if accounts:
        stmt = stmt.where(or_(*(_T.c.body.contains(f'"account":"{a}"') for a in accounts)))
    if since is not None:
        stmt = stmt.where(_T.c.ts >= since)
    if until is not None:
        stmt = stmt.where(_T.c.ts < until)
    stmt = stmt.order_by(_T.c.id.desc()).limit(limit).offset(offset)
    async with db.guarded(what="audit store") as conn:
        return [
            StoredAuditEvent(seq=row.id, ts=row.ts, event=row.event, body=row.body,
                             prev_hash=row.prev_hash, hash=row.hash)
            for row in await conn.execute(stmt)
        ]
