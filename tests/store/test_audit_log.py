"""The SQL audit chain on SQLite and PostgreSQL: append, list, verify, tamper evidence,
append-only triggers, and a linear chain under concurrent appends (AU-04, AD-06)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from sekisho.audit import GENESIS, AuditEvent, Auditor, audit_log
from sekisho.audit.chain import link_hash
from sekisho.store import Database

T0 = datetime(2025, 11, 29, 9, 0, tzinfo=UTC)


def admin(n: int, *, at: datetime | None = None) -> AuditEvent:
    return AuditEvent(event="authz_admin", timestamp=at or T0 + timedelta(minutes=n),
                      actor="cli:root", target=f"user:{n}", action="user.disable",
                      reason=f"ticket {n}", before={"disabled": False},
                      after={"disabled": True})


async def seed(database: Database, n: int) -> Auditor:
    auditor = Auditor.for_database(database)
    for i in range(1, n + 1):
        await auditor.record(admin(i))
    return auditor


async def raw(database: Database, sql: str, **params: object) -> None:
    """What someone with the database owner's rights could do: lift the append-only
    trigger, then change a row."""
    async with database.transaction(write=True) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            await conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            await conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
        await conn.execute(text(sql), params)


async def test_append_links_each_record_to_the_one_before(database: Database) -> None:
    """AU-04: records are numbered 1..n; each prev_hash is the previous hash; verify holds."""
    await seed(database, 5)
    records = await audit_log(database).list(newest_first=False)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash
        assert after.hash == link_hash(after.prev_hash, after.body)
    result = await Auditor.for_database(database).verify()
    assert result.ok and result.checked == 5 and result.head == records[-1].hash


async def test_an_empty_trail_verifies(database: Database) -> None:
    result = await Auditor.for_database(database).verify()
    assert result.ok and result.checked == 0 and result.head == GENESIS


async def test_list_filters_by_event_and_time(database: Database) -> None:
    """AD-06: the trail can be filtered by event (with its name:detail forms) and time."""
    auditor = await seed(database, 3)
    await auditor.record(AuditEvent(event="authn_login_lock:maxretries", account="b" * 32,
                                    timestamp=T0 + timedelta(hours=1)))
    log = audit_log(database)
    locks = await log.list(event="authn_login_lock")
    assert [r.event for r in locks] == ["authn_login_lock:maxretries"]
    assert await log.list(event="authn_login") == []
    late = await log.list(since=T0 + timedelta(minutes=2, seconds=30))
    assert [r.seq for r in late] == [4, 3]
    assert [r.seq for r in await log.list(until=T0 + timedelta(minutes=2))] == [1]
    assert locks[0].data()["account"] == "b" * 32


async def test_a_changed_body_is_named(database: Database) -> None:
    """AU-04: tamper with one row's body in SQL -> verify names that record."""
    await seed(database, 5)
    record = (await audit_log(database).list(newest_first=False))[2]
    forged = record.body.replace("ticket 3", "ticket 9")
    assert forged != record.body
    await raw(database, "UPDATE audit_events SET body = :b WHERE id = 3", b=forged)
    result = await Auditor.for_database(database).verify()
    assert not result.ok and result.broken_at == 3 and result.checked == 2


async def test_a_changed_column_is_named(database: Database) -> None:
    """AU-04: the ts and event columns used for filtering must match the hashed body."""
    await seed(database, 4)
    await raw(database, "UPDATE audit_events SET event = 'authn_login_success' WHERE id = 2")
    result = await Auditor.for_database(database).verify()
    assert not result.ok and result.broken_at == 2 and "event column" in (result.problem or "")


async def test_a_deleted_record_is_named(database: Database) -> None:
    """AU-04: deleting a record in the middle breaks the chain at the record after it."""
    await seed(database, 4)
    await raw(database, "DELETE FROM audit_events WHERE id = 2")
    result = await Auditor.for_database(database).verify()
    assert not result.ok and result.broken_at == 3


async def test_the_gateway_cannot_change_or_delete_records(database: Database) -> None:
    """AU-04: UPDATE and DELETE on audit_events are refused on the gateway's connection."""
    await seed(database, 2)
    for sql in ("UPDATE audit_events SET body = '{}' WHERE id = 1",
                "DELETE FROM audit_events WHERE id = 2", "DELETE FROM audit_events"):
        with pytest.raises(SQLAlchemyError, match="append-only"):
            async with database.transaction(write=True) as conn:
                await conn.execute(text(sql))
    assert (await Auditor.for_database(database).verify()).checked == 2


async def test_concurrent_appends_make_one_line(database: Database, db_url: str) -> None:
    """AU-04: 20 concurrent appends, from two engines as two replicas would, give one
    linear chain 1..20 that verifies."""
    other = Database.from_url(db_url)
    try:
        auditors = [Auditor.for_database(database), Auditor.for_database(other)]
        stored = await asyncio.gather(*(
            auditors[i % 2].record(admin(i, at=T0)) for i in range(1, 21)))
    finally:
        await other.close()
    assert sorted(s.seq for s in stored if s is not None) == list(range(1, 21))
    records = await audit_log(database).list(newest_first=False)
    assert [r.seq for r in records] == list(range(1, 21))
    assert len({r.prev_hash for r in records}) == 20
    result = await Auditor.for_database(database).verify()
    assert result.ok and result.checked == 20


async def test_appends_waiting_together_share_one_transaction(database: Database) -> None:
    """Group commit: 100 appends made at once are chained in call order, each caller gets
    its own record, and far fewer write transactions than events are opened."""
    log = audit_log(database)
    writes = 0
    real = database.guarded

    def counting(**kwargs: object):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += bool(kwargs.get("write"))
        return real(**kwargs)  # type: ignore[arg-type]

    database.guarded = counting  # type: ignore[method-assign]
    stored = await asyncio.gather(*(
        log.append(ts=T0, event="authz_admin", body=f'{{"n":{n}}}') for n in range(100)))
    assert [s.seq for s in stored] == list(range(1, 101))
    assert [s.body for s in stored] == [f'{{"n":{n}}}' for n in range(100)]
    assert 1 <= writes <= 5
    records = await log.list(newest_first=False, limit=200)
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash


async def test_a_failed_group_fails_its_callers_and_the_next_one_goes_on(
    database: Database,
) -> None:
    """A transaction that fails raises StoreError in every caller of its group; appends
    after it are chained normally."""
    from sekisho.errors import StoreError

    log = audit_log(database)
    real = database.guarded
    calls = 0

    def failing_once(**kwargs: object):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreError("audit store failed")
        return real(**kwargs)  # type: ignore[arg-type]

    database.guarded = failing_once  # type: ignore[method-assign]
    first = await asyncio.gather(
        *(log.append(ts=T0, event="authz_admin", body="{}") for _ in range(3)),
        return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in first)
    after = await log.append(ts=T0, event="authz_admin", body='{"ok":1}')
    assert after.seq == 1


async def test_verify_reads_in_batches(database: Database) -> None:
    """A long trail is streamed: batches smaller than the trail still cover it all."""
    await seed(database, 7)
    from sekisho.audit.chain import Verifier

    verifier = await audit_log(database).verify(Verifier(), batch=3)
    assert verifier.result().ok and verifier.result().checked == 7
