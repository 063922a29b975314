"""Lockout events: the durable, reviewable record of a locked account factor (AD-01, AD-02).

One row per lock. ``account_key`` is the regulator's HMAC of the canonical name (always set;
for a name that is no user it is all there is), ``user_id``/``username`` only for real users.
A row is ``active`` until an admin unlocks it (``unlocked``, with actor and a mandatory
reason) or its ``expires_at`` passes (``expired``; maxretries locks have no expiry, RL-01).

At most one *active* row per (account_key, factor): a partial unique index says so, and
:meth:`LockoutRepository.open_or_update` reads the row under a lock (``FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and inserts with ``ON CONFLICT DO NOTHING``, so
replicas racing to open the same lock end with one row holding every failure.

Where failures came from: the 20 addresses, subnets and user agents with the most failures
(``top_*``), and the distinct counts. Those are exact up to :data:`DISTINCT_CAP` values, kept
as 48-bit fingerprints (``seen_*``, never exported); beyond it they are an upper bound. The
address filter of :meth:`list` searches the fingerprints. Nothing secret is ever stored: no
password, code, or the text of a name that is not a user.

Failures over time (the admin chart) come from ``login_failures_hourly``: the lockout
recorder sums every failed and refused attempt in memory and adds the sums here about once a
minute per process (:meth:`add_hourly`), so the chart costs no write per attempt.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sekisho.errors import NotFound, StoreError
from sekisho.store.db import Database
from sekisho.store.lockout_records import (  # noqa: F401  (re-exported)
    _T,
    DISTINCT_CAP,
    EXPORT_FIELDS,
    HOUR,
    MAX_BUCKETS,
    MAX_LIST,
    TOP,
    IntervalCount,
    LockoutNotActive,
    LockoutReason,
    LockoutRecord,
    LockoutRequestError,
    LockoutState,
    LockoutUpdate,
    Sighting,
    Tally,
    UnlockReasonRequired,
    _address_filter,
    _filters,
    _folded,
    _record,
    _require_aware,
    _seen,
    _tallies,
    _top,
    _utcnow,
    fingerprint,
    validate_unlock,
)
from sekisho.store.tables import (
    LOCKOUT_REASONS,
    login_failures_hourly,
)


class LockoutRepository:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._db = db
        self._clock = clock

    def _tx(self, *, write: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._db.guarded(what="lockout store", write=write)

    async def open_or_update(
        self, *, account_key: str, factor: str, sighting: Sighting,
        reason: LockoutReason = "maxretries", user_id: int | None = None,
        username: str | None = None, expires_at: datetime | None = None, create: bool = True,
    ) -> LockoutUpdate | None:
        """Fold ``sighting`` into the active record of (account_key, factor), opening one if
        there is none (or None when ``create`` is False). Atomic across replicas."""
        if reason not in LOCKOUT_REASONS:
            raise LockoutRequestError(f"reason must be one of {', '.join(LOCKOUT_REASONS)}")
        async with self._tx(write=True) as conn:
            row = await self._active(conn, account_key, factor)
            if row is None:
                if not create:
                    return None
                fresh = {
                    "account_key": account_key, "factor": factor, "reason": reason,
                    "user_id": user_id, "username": username, "expires_at": expires_at,
                    "state": "active", **_folded(None, sighting),
                }
                new_id = await self._insert_unless_active(conn, fresh)
                if new_id is not None:
                    return LockoutUpdate(await self._fetch(conn, new_id), opened=True)
                row = await self._active(conn, account_key, factor)  # another replica won
                if row is None:
                    raise StoreError("lockout store failed: active record vanished")
            values = _folded(dict(row._mapping), sighting)
            if user_id is not None and row.user_id is None:
                values.update(user_id=user_id, username=username)
            await conn.execute(update(_T).where(_T.c.id == row.id).values(**values))
            return LockoutUpdate(await self._fetch(conn, row.id), opened=False)

    async def get(self, record_id: int) -> LockoutRecord | None:
        async with self._tx() as conn:
            row = (await conn.execute(select(_T).where(_T.c.id == record_id))).first()
        return None if row is None else _record(row)

    async def list(
        self, *, since: datetime | None = None, until: datetime | None = None,
        account: str | None = None, ip: str | None = None, state: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> builtins.list[LockoutRecord]:
        """Newest activity first. ``account`` matches the account key or the username;
        ``ip`` an address or a recorded /24 (/64) subnet; since/until the active span."""
        if not 1 <= limit <= MAX_LIST or offset < 0:
            raise LockoutRequestError(f"limit must be 1-{MAX_LIST} and offset >= 0")
        stmt = (
            select(_T).where(*_filters(since, until, account, ip, state))
            .order_by(_T.c.last_seen.desc(), _T.c.id.desc()).limit(limit).offset(offset)
        )
        async with self._tx() as conn:
            return [_record(row) for row in await conn.execute(stmt)]

    async def export(self, **filters: Any) -> builtins.list[dict[str, Any]]:
        """:meth:`list` as rows of :data:`EXPORT_FIELDS` (no fingerprints, nothing secret)."""
        filters.setdefault("limit", MAX_LIST)
        return [record.export() for record in await self.list(**filters)]

    async def unlock(self, record_id: int, *, actor: str, reason: str) -> LockoutRecord:
        """Mark an active record unlocked by ``actor`` for ``reason`` (mandatory, AD-02).
        Clearing the regulator is the caller's part (ratelimit.lockout_recorder)."""
        actor, reason = validate_unlock(actor=actor, reason=reason)
        async with self._tx(write=True) as conn:
            row = (await conn.execute(
                select(_T).where(_T.c.id == record_id).with_for_update())).first()
            if row is None:
                raise NotFound("no such lockout record")
            if row.state != "active":
                raise LockoutNotActive(f"lockout record {record_id} is {row.state}")
            await conn.execute(update(_T).where(_T.c.id == record_id).values(
                state="unlocked", unlocked_by=actor, unlocked_at=self._clock(),
                unlock_reason=reason))
            return await self._fetch(conn, record_id)

    async def expire_due(self) -> int:
        """Mark active records whose expiry has passed as expired; how many were."""
        stmt = update(_T).where(
            _T.c.state == "active", _T.c.expires_at.is_not(None),
            _T.c.expires_at <= self._clock(),
        ).values(state="expired")
        async with self._tx(write=True) as conn:
            return int((await conn.execute(stmt)).rowcount or 0)

    async def add_hourly(self, counts: Mapping[datetime, tuple[int, int]]) -> None:
        """Add (failures, refused) to each hour's totals (hours are UTC, on the hour)."""
        rows = [{"hour": h, "failures": f, "refused": r}
                for h, (f, r) in sorted(counts.items())]  # one lock order for every writer
        if not rows:
            return
        ins = _dialect_insert(self._db.dialect)(login_failures_hourly)
        hourly = login_failures_hourly.c
        stmt = ins.on_conflict_do_update(
            index_elements=[hourly.hour],
            set_={"failures": hourly.failures + ins.excluded.failures,
                  "refused": hourly.refused + ins.excluded.refused},
        )
        async with self._tx(write=True) as conn:
            for row in rows:
                await conn.execute(stmt, row)

    async def counts_by_interval(
        self, *, since: datetime, until: datetime, bucket_seconds: int = HOUR,
    ) -> builtins.list[IntervalCount]:
        """Failures, refusals and lockouts opened, per bucket from ``since`` (rounded down to
        a bucket) to ``until``; every bucket listed, empty ones too. Buckets are whole hours
        (failures are counted hourly), aligned to the Unix epoch in UTC."""
        _require_aware(since, until)
        if bucket_seconds <= 0 or bucket_seconds % HOUR:
            raise LockoutRequestError("bucket_seconds must be a positive multiple of 3600")
        start = _floor(since, bucket_seconds)
        n = -(-int((until - start).total_seconds()) // bucket_seconds)
        if not 0 < n <= MAX_BUCKETS:
            raise LockoutRequestError(f"the interval must span 1-{MAX_BUCKETS} buckets")
        end = start + timedelta(seconds=n * bucket_seconds)
        totals = [[0, 0, 0] for _ in range(n)]
        hourly = login_failures_hourly.c
        async with self._tx() as conn:
            for hour, failures, refused in await conn.execute(
                    select(hourly.hour, hourly.failures, hourly.refused)
                    .where(hourly.hour >= start, hourly.hour < end)):
                slot = totals[_index(hour, start, bucket_seconds)]
                slot[0] += failures
                slot[1] += refused
            for (first_seen,) in await conn.execute(
                    select(_T.c.first_seen).where(_T.c.first_seen >= start,
                                                  _T.c.first_seen < end)):
                totals[_index(first_seen, start, bucket_seconds)][2] += 1
        return [
            IntervalCount(start + timedelta(seconds=i * bucket_seconds), f, r, locks)
            for i, (f, r, locks) in enumerate(totals)
        ]

    async def _active(
        self, conn: AsyncConnection, account_key: str, factor: str
    ) -> Row[Any] | None:
        stmt = select(_T).where(
            _T.c.account_key == account_key, _T.c.factor == factor, _T.c.state == "active"
        ).with_for_update()
        row = (await conn.execute(stmt)).first()
        if row is not None and row.expires_at is not None and row.expires_at <= self._clock():
            await conn.execute(update(_T).where(_T.c.id == row.id).values(state="expired"))
            return None
        return row

    async def _insert_unless_active(
        self, conn: AsyncConnection, values: dict[str, Any]
    ) -> int | None:
        stmt = (
            _dialect_insert(conn.dialect.name)(_T).values(**values)
            .on_conflict_do_nothing(
                index_elements=[_T.c.account_key, _T.c.factor],
                index_where=text("state = 'active'"))
            .returning(_T.c.id)
        )
        new_id = (await conn.execute(stmt)).scalar_one_or_none()
        return None if new_id is None else int(new_id)

    @staticmethod
    async def _fetch(conn: AsyncConnection, record_id: int) -> LockoutRecord:
        return _record((await conn.execute(select(_T).where(_T.c.id == record_id))).one())


def _dialect_insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _floor(when: datetime, seconds: int) -> datetime:
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _index(when: datetime, start: datetime, seconds: int) -> int:
    return int((when - start).total_seconds()) // seconds


__all__ = [
    "DISTINCT_CAP", "EXPORT_FIELDS", "TOP", "IntervalCount", "LockoutNotActive",
    "LockoutReason", "LockoutRecord", "LockoutRepository", "LockoutRequestError",
    "LockoutState", "LockoutUpdate", "Sighting", "Tally", "UnlockReasonRequired",
    "fingerprint", "validate_unlock",
]
