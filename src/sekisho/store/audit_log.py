"""The SQL side of the audit trail: an append-only, hash-chained table (AU-04, AD-06).

Appends are serialised so that the chain stays one line with many workers and replicas: on
PostgreSQL each append holds a transaction-scoped advisory lock; on SQLite the write
transaction is ``BEGIN IMMEDIATE`` (one writer at a time, see db.py). Under it the append
reads the head, numbers the record head + 1 and hashes it onto the head's hash.

**Group commit.** In one process, appends go through a queue drained by one writer task:
each transaction chains every event waiting at that moment (up to ``GROUP``), in call order,
and each caller gets its record once the transaction commits (or its error if it fails). On
a busy event loop every await inside a transaction costs a whole loop iteration, so one
transaction per event made the chain, and every successful login waiting on it, slower than
the rate of logins; measured under a credential-stuffing flood, known-device logins queued
here for up to 43 s (docs/performance.md). The primary
key and the unique ``prev_hash`` would refuse a fork even if the lock were bypassed, and
triggers (migration 0002) refuse UPDATE and DELETE from any connection.

The hashing and checking rules belong to ``sekisho.audit.chain`` and are handed in, because
the store sits below the audit package (``audit.log.audit_log(db)`` builds one).
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Row, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sekisho.errors import StoreError
from sekisho.store.db import Database
from sekisho.store.tables import AUDIT_EVENT_LENGTH, audit_events

__all__ = ["AuditLog", "ChainVerifier", "LinkHash", "StoredAuditEvent"]

#: (prev_hash, body) -> hash
LinkHash = Callable[[str, str], str]
_T = audit_events
_APPEND_LOCK_ID = 0x5E5A0D17  # pg_advisory_xact_lock key for appends
_MAX_LIST = 10_000
_BATCH = 500
GROUP = 256  # events chained in one transaction at most
_Pending = tuple[datetime, str, str, "asyncio.Future[StoredAuditEvent]"]


class ChainVerifier(Protocol):
    def feed(self, seq: int, *, prev_hash: str, hash: str, body: str) -> bool: ...

    def fail(self, seq: int, problem: str) -> bool: ...


V = TypeVar("V", bound=ChainVerifier)


@dataclass(frozen=True, slots=True)
class StoredAuditEvent:
    seq: int
    ts: datetime
    event: str
    body: str
    prev_hash: str
    hash: str

    def data(self) -> dict[str, Any]:
        value = json.loads(self.body)
        return value if isinstance(value, dict) else {"body": value}


def _fail(group: list[_Pending], exc: Exception) -> None:
    for *_, done in group:
        if not done.done():
            done.set_exception(exc)


def _stored(row: Row[Any]) -> StoredAuditEvent:
    return StoredAuditEvent(seq=row.id, ts=row.ts, event=row.event, body=row.body,
                            prev_hash=row.prev_hash, hash=row.hash)


def _column_problem(record: StoredAuditEvent) -> str | None:
    """The ``ts`` and ``event`` columns (what filters see) must say what the hashed body says."""
    try:
        data = json.loads(record.body)
        stamped = datetime.fromisoformat(data["timestamp"])
    except (ValueError, TypeError, KeyError):
        return "body is not an audit event"
    if data.get("event") != record.event:
        return "event column differs from the hashed body"
    if stamped != record.ts:
        return "ts column differs from the hashed body"
    return None


class AuditLog:
    def __init__(self, db: Database, *, link_hash: LinkHash, genesis: str) -> None:
        self._db = db
        self._link_hash = link_hash
        self._genesis = genesis
        # One writer per process: appends queue here, cheaply, instead of on the database's
        # write lock, where a busy event loop could hold SQLite's lock across many iterations
        # and make other writers time out (a verified login answered 500). Across processes,
        # PostgreSQL's advisory lock below and SQLite's own lock still apply.
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    def _tx(self, *, write: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._db.guarded(
            what="audit store", write=write,
            on_conflict=StoreError("audit append conflicted with another writer"),
        )

    async def append(self, *, ts: datetime, event: str, body: str) -> StoredAuditEvent:
        """Chain one event onto the head. ``body`` is the canonical JSON that gets hashed;
        ``ts`` and ``event`` repeat what it says, for filtering."""
        if not event or len(event) > AUDIT_EVENT_LENGTH:
            raise StoreError(f"audit event name must be 1-{AUDIT_EVENT_LENGTH} characters")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[StoredAuditEvent] = loop.create_future()
        self._pending.append((ts, event, body, done))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            # Its own task: a caller that is cancelled never strands the others' events.
            self._writer = loop.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:GROUP], self._pending[GROUP:]
            try:
                records = await self._chain(group)
            except asyncio.CancelledError:  # shutdown: nobody is left waiting forever
                group, self._pending = group + self._pending, []
                _fail(group, StoreError("audit writer stopped"))
                raise
            except Exception as exc:
                _fail(group, exc)
                continue
            for record, (*_, done) in zip(records, group, strict=True):
                if not done.done():
                    done.set_result(record)

    async def _chain(self, group: list[_Pending]) -> list[StoredAuditEvent]:
        async with self._tx(write=True) as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": _APPEND_LOCK_ID})
            head = (await conn.execute(
                select(_T.c.id, _T.c.hash).order_by(_T.c.id.desc()).limit(1))).first()
            seq, prev = (1, self._genesis) if head is None else (head.id + 1, head.hash)
            records = []
            for ts, event, body, _ in group:
                record = StoredAuditEvent(seq=seq, ts=ts, event=event, body=body,
                                          prev_hash=prev, hash=self._link_hash(prev, body))
                records.append(record)
                seq, prev = seq + 1, record.hash
            await conn.execute(insert(_T), [
                {"id": r.seq, "ts": r.ts, "event": r.event, "body": r.body,
                 "prev_hash": r.prev_hash, "hash": r.hash} for r in records])
        return records

    async def head(self) -> StoredAuditEvent | None:
        async with self._tx() as conn:
            row = (await conn.execute(select(_T).order_by(_T.c.id.desc()).limit(1))).first()
        return None if row is None else _stored(row)

    async def list(
        self, *, event: str | None = None, since: datetime | None = None,
        until: datetime | None = None, limit: int = 100, offset: int = 0,
        newest_first: bool = True,
    ) -> builtins.list[StoredAuditEvent]:
        """``event`` matches the name and its ``name:detail`` forms (``authn_login_lock``
        finds ``authn_login_lock:maxretries``)."""
        if not 1 <= limit <= _MAX_LIST or offset < 0:
            raise StoreError(f"limit must be 1-{_MAX_LIST} and offset >= 0")
        stmt = select(_T)
        if event is not None:
            stmt = stmt.where(or_(_T.c.event == event,
                                  _T.c.event.startswith(event + ":", autoescape=True)))
        if since is not None:
            stmt = stmt.where(_T.c.ts >= since)
        if until is not None:
            stmt = stmt.where(_T.c.ts < until)
        order = _T.c.id.desc() if newest_first else _T.c.id
        async with self._tx() as conn:
            rows = await conn.execute(stmt.order_by(order).limit(limit).offset(offset))
            return [_stored(row) for row in rows]

    async def verify(self, verifier: V, *, batch: int = _BATCH) -> V:
        """Feed the whole table, in order, through ``verifier`` (``audit.chain.Verifier``)
        until it breaks; also checks each record's columns against its body. Reads in
        batches, so a long trail is never held in memory."""
        after = 0
        while True:
            async with self._tx() as conn:
                rows = (await conn.execute(
                    select(_T).where(_T.c.id > after).order_by(_T.c.id).limit(batch))).all()
            for row in rows:
                record = _stored(row)
                if not verifier.feed(record.seq, prev_hash=record.prev_hash,
                                     hash=record.hash, body=record.body):
                    return verifier
                problem = _column_problem(record)
                if problem is not None:
                    verifier.fail(record.seq, problem)
                    return verifier
            if len(rows) < batch:
                return verifier
            after = rows[-1].id
