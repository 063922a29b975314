"""Lockout records on SQLite and PostgreSQL (AD-01, AD-02), and the recorder that fills them
from the regulator's decisions, on memory and Redis state."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import limits.aio.storage.memory
import limits.aio.storage.redis.redispy
import pytest
from tests.ratelimit.helpers import SECRET, FakeClock, fail

from sekisho.errors import NotFound, RateLimitError
from sekisho.ratelimit import RateLimitKeys, RateLimitSettings, Regulator, create_regulator
from sekisho.ratelimit.lockout_recorder import LockoutRecorder
from sekisho.store import (
    Database,
    LockoutNotActive,
    LockoutRecord,
    LockoutRepository,
    LockoutRequestError,
    Sighting,
    UnlockReasonRequired,
    UserRepository,
)
from sekisho.store.lockouts import EXPORT_FIELDS

T0 = datetime(2025, 11, 29, 9, 0, tzinfo=UTC)
KEYS = RateLimitKeys(SECRET)
ALICE, GHOST, BOB = KEYS.account("alice"), KEYS.account("ghost"), KEYS.account("bob")


def seen(n: int, ip: str, *, at: datetime = T0, agent: str = "curl/8.0",
         minutes: int = 0) -> Sighting:
    subnet = ip.rsplit(".", 1)[0] + ".0/24"
    return Sighting(n, at, at + timedelta(minutes=minutes), {ip: n}, {subnet: n}, {agent: n})


@pytest.fixture
async def repo(database: Database) -> LockoutRepository:
    return LockoutRepository(database)


async def seed_three(repo: LockoutRepository, users: UserRepository) -> dict[str, int]:
    """alice (a user) from 203.0.113.5, an unknown name from 198.51.100.7, and bob's older,
    already unlocked lock from 192.0.2.9."""
    alice = await users.add(username="alice")
    a = await repo.open_or_update(account_key=ALICE, factor="password", user_id=alice.id,
                                  username="alice", sighting=seen(50, "203.0.113.5",
                                                                  minutes=30))
    g = await repo.open_or_update(account_key=GHOST, factor="password",
                                  sighting=seen(50, "198.51.100.7", at=T0 + timedelta(hours=1),
                                                agent="python-requests/2.31"))
    b = await repo.open_or_update(account_key=BOB, factor="totp",
                                  sighting=seen(50, "192.0.2.9", at=T0 - timedelta(days=2)))
    assert a is not None and g is not None and b is not None
    await repo.unlock(b.record.id, actor="cli:root", reason="verified by phone")
    return {"alice": a.record.id, "ghost": g.record.id, "bob": b.record.id}


async def test_open_then_update_one_record(repo: LockoutRepository) -> None:
    """AD-01: the first sighting opens a record; later failures fold into it."""
    first = await repo.open_or_update(account_key=GHOST, factor="password",
                                      sighting=seen(50, "198.51.100.7"))
    assert first is not None and first.opened
    again = await repo.open_or_update(
        account_key=GHOST, factor="password",
        sighting=Sighting(3, T0 + timedelta(minutes=5), T0 + timedelta(minutes=9),
                          {"198.51.100.7": 1, "198.51.100.8": 2}, {"198.51.100.0/24": 3},
                          {"curl/8.0": 3}))
    assert again is not None and not again.opened
    record = again.record
    assert record.id == first.record.id
    assert (record.failure_count, record.distinct_ips, record.distinct_subnets) == (53, 2, 1)
    assert [(t.value, t.count) for t in record.top_ips] == [("198.51.100.7", 51),
                                                            ("198.51.100.8", 2)]
    assert record.first_seen == T0 and record.last_seen == T0 + timedelta(minutes=9)
    assert record.state == "active" and record.reason == "maxretries"
    assert record.user_id is None and record.username is None and record.account_key == GHOST


async def test_many_opens_in_a_row_each_write_a_record(repo: LockoutRepository) -> None:
    """AD-01 on PostgreSQL: after five executions asyncpg switches to a generic plan; the
    ON CONFLICT predicate must stay a literal or every later insert fails to match the
    partial unique index and no lockout is recorded any more."""
    ids = set()
    for n in range(8):
        opened = await repo.open_or_update(account_key=KEYS.account(f"user{n}"),
                                           factor="password", sighting=seen(50, "198.51.100.7"))
        assert opened is not None and opened.opened
        ids.add(opened.record.id)
    assert len(ids) == 8


async def test_update_only_never_opens(repo: LockoutRepository) -> None:
    """A failure that follows a lock adds to it, and opens nothing when there is none."""
    assert await repo.open_or_update(account_key=GHOST, factor="password",
                                     sighting=seen(1, "192.0.2.1"), create=False) is None
    assert await repo.list() == []


async def test_top_lists_are_bounded_and_counts_stay_exact(repo: LockoutRepository) -> None:
    """AD-01: 30 addresses in 30 subnets: 20 kept in each top list, distinct counts exact,
    and the address filter finds one that fell out of the top list."""
    ips = {f"10.0.{i}.1": 1 + (i < 5) for i in range(30)}
    subnets = {f"10.0.{i}.0/24": 1 for i in range(30)}
    update = await repo.open_or_update(
        account_key=GHOST, factor="password",
        sighting=Sighting(35, T0, T0, ips, subnets, {"ua": 35}))
    assert update is not None
    record = update.record
    assert len(record.top_ips) == 20 and len(record.top_subnets) == 20
    assert (record.distinct_ips, record.distinct_subnets) == (30, 30)
    assert {t.value for t in record.top_ips[:5]} == {f"10.0.{i}.1" for i in range(5)}
    dropped = next(ip for ip in ips if ip not in {t.value for t in record.top_ips})
    assert [r.id for r in await repo.list(ip=dropped)] == [record.id]
    assert [r.id for r in await repo.list(ip="10.0.29.0/24")] == [record.id]


async def test_filters(repo: LockoutRepository, database: Database) -> None:
    """AD-01: seed 3 lockouts; the filters by time, account, address and state work."""
    ids = await seed_three(repo, UserRepository(database))
    assert [r.id for r in await repo.list()] == [ids["ghost"], ids["alice"], ids["bob"]]
    assert [r.id for r in await repo.list(account=ALICE)] == [ids["alice"]]
    assert [r.id for r in await repo.list(account="alice")] == [ids["alice"]]
    assert [r.id for r in await repo.list(account=GHOST)] == [ids["ghost"]]
    assert [r.id for r in await repo.list(ip="198.51.100.7")] == [ids["ghost"]]
    assert [r.id for r in await repo.list(ip="::ffff:203.0.113.5")] == [ids["alice"]]
    assert [r.id for r in await repo.list(ip="192.0.2.0/24")] == [ids["bob"]]
    assert await repo.list(ip="203.0.113.6") == []
    assert [r.id for r in await repo.list(since=T0 - timedelta(hours=1))] == [
        ids["ghost"], ids["alice"]]
    assert [r.id for r in await repo.list(since=T0 + timedelta(minutes=20),
                                          until=T0 + timedelta(minutes=50))] == [ids["alice"]]
    assert [r.id for r in await repo.list(state="unlocked")] == [ids["bob"]]
    assert [r.id for r in await repo.list(limit=1, offset=1)] == [ids["alice"]]
    for bad in ({"ip": "not-an-ip"}, {"state": "gone"}, {"limit": 0},
                {"since": datetime(2025, 1, 1)}):
        with pytest.raises(LockoutRequestError):
            await repo.list(**bad)  # type: ignore[arg-type]


async def test_unlock_needs_a_reason(repo: LockoutRepository) -> None:
    """AD-02: no reason, no unlock (a specific error, the record unchanged); with one, the
    record keeps who, when and why; a second unlock is refused."""
    opened = await repo.open_or_update(account_key=GHOST, factor="password",
                                       sighting=seen(50, "198.51.100.7"))
    assert opened is not None
    rid = opened.record.id
    for reason in ("", "   "):
        with pytest.raises(UnlockReasonRequired):
            await repo.unlock(rid, actor="cli:root", reason=reason)
    with pytest.raises(LockoutRequestError):
        await repo.unlock(rid, actor="", reason="ok")
    with pytest.raises(LockoutRequestError):
        await repo.unlock(rid, actor="cli:root", reason="line one\nline two")
    assert (await repo.get(rid)).state == "active"  # type: ignore[union-attr]
    after = await repo.unlock(rid, actor="cli:root", reason="  user verified by phone ")
    assert after.state == "unlocked" and after.unlocked_by == "cli:root"
    assert after.unlock_reason == "user verified by phone" and after.unlocked_at is not None
    with pytest.raises(LockoutNotActive):
        await repo.unlock(rid, actor="cli:root", reason="again")
    with pytest.raises(NotFound):
        await repo.unlock(rid + 100, actor="cli:root", reason="x")
    reopened = await repo.open_or_update(account_key=GHOST, factor="password",
                                         sighting=seen(50, "198.51.100.9"))
    assert reopened is not None and reopened.opened and reopened.record.id != rid


async def test_export_has_no_secret_fields(repo: LockoutRepository,
                                           database: Database) -> None:
    """AD-01: the export has the review fields and nothing secret (no fingerprints either)."""
    await seed_three(repo, UserRepository(database))
    rows = await repo.export()
    assert len(rows) == 3
    for row in rows:
        assert tuple(row) == EXPORT_FIELDS
        assert not {"password", "password_hash", "code", "otp", "seen_ips", "seen_subnets"} & set(
            row)
    text = json.dumps(rows)
    assert "$argon2" not in text and "alice" in text and "ghost" not in text
    assert rows[1]["top_ips"] == [{"value": "203.0.113.5", "count": 50}]
    assert [r["state"] for r in await repo.export(state="unlocked")] == ["unlocked"]


async def test_concurrent_open_or_update_gives_one_active_record(
    database: Database, db_url: str
) -> None:
    """AD-01, invariant 6: 20 concurrent sightings from two engines (two replicas) end in
    exactly one active record holding all of them."""
    other = Database.from_url(db_url)
    try:
        repos = [LockoutRepository(database), LockoutRepository(other)]
        await asyncio.gather(*(
            repos[i % 2].open_or_update(account_key=GHOST, factor="password",
                                        sighting=seen(1, f"192.0.2.{i}"))
            for i in range(20)))
    finally:
        await other.close()
    [record] = await LockoutRepository(database).list(state="active")
    assert record.failure_count == 20 and record.distinct_ips == 20


async def test_expiry(database: Database) -> None:
    """A timed lock (reason suspicious) expires; the next sighting opens a new record."""
    clock = {"now": T0}
    repo = LockoutRepository(database, clock=lambda: clock["now"])
    first = await repo.open_or_update(account_key=GHOST, factor="password", reason="suspicious",
                                      expires_at=T0 + timedelta(minutes=15),
                                      sighting=seen(3, "192.0.2.1"))
    assert first is not None
    clock["now"] = T0 + timedelta(minutes=16)
    assert await repo.expire_due() == 1
    assert (await repo.get(first.record.id)).state == "expired"  # type: ignore[union-attr]
    second = await repo.open_or_update(account_key=GHOST, factor="password",
                                       sighting=seen(1, "192.0.2.1"))
    assert second is not None and second.opened


async def test_counts_by_interval(repo: LockoutRepository) -> None:
    """AD-01 chart: failures, refusals and lockouts opened per bucket, empty buckets too."""
    await repo.add_hourly({T0: (10, 4), T0 + timedelta(hours=1): (5, 0)})
    await repo.add_hourly({T0: (1, 1)})
    await repo.open_or_update(account_key=GHOST, factor="password",
                              sighting=seen(1, "192.0.2.1", at=T0 + timedelta(minutes=10)))
    await repo.open_or_update(account_key=ALICE, factor="password",
                              sighting=seen(1, "192.0.2.1", at=T0 + timedelta(hours=2)))
    hourly = await repo.counts_by_interval(since=T0 + timedelta(minutes=30),
                                           until=T0 + timedelta(hours=3))
    assert [(c.start, c.failures, c.refused, c.lockouts) for c in hourly] == [
        (T0, 11, 5, 1), (T0 + timedelta(hours=1), 5, 0, 0), (T0 + timedelta(hours=2), 0, 0, 1)]
    daily = await repo.counts_by_interval(since=T0, until=T0 + timedelta(hours=3),
                                          bucket_seconds=86400)
    assert [(c.failures, c.lockouts) for c in daily] == [(16, 2)]
    with pytest.raises(LockoutRequestError):
        await repo.counts_by_interval(since=T0, until=T0 + timedelta(hours=1),
                                      bucket_seconds=60)


# -- the recorder, with a real regulator on memory and Redis -------------------------------

SETTINGS = RateLimitSettings(free_failures=2, disable_after=6)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(limits.aio.storage.memory, "time", fake)
    monkeypatch.setattr(limits.aio.storage.redis.redispy, "time", fake)
    return fake


@pytest.fixture(params=["memory", "redis"])
async def regulator(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Regulator]:
    url = "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")
    made = create_regulator(SETTINGS, url=url, secret=SECRET,
                            prefix=f"sekisho-test-{uuid.uuid4().hex[:8]}:", clock=clock)
    yield made
    await made.close()


def recorder_for(database: Database, clock: FakeClock, **kwargs: object) -> LockoutRecorder:
    return LockoutRecorder(LockoutRepository(database), KEYS, clock=clock,
                           disable_after=SETTINGS.disable_after,
                           users=UserRepository(database), **kwargs)  # type: ignore[arg-type]


async def lock(regulator: Regulator, recorder: LockoutRecorder, clock: FakeClock,
               account: str) -> None:
    """Drive failures from a new address each until the regulator disables the account,
    telling the recorder what it said, as the login path does."""
    for n in range(SETTINGS.disable_after):
        ip = f"10.{n}.0.1"
        decision = await fail(regulator, clock, account, ip=ip)
        await recorder.after_attempt(decision, account=account, client_ip=ip, success=False,
                                     user_agent=f"agent-{n % 2}")
    assert (await regulator.check(account=account, client_ip="10.99.0.1")).reason == "disabled"


async def test_the_disabling_failure_opens_a_record(
    database: Database, regulator: Regulator, clock: FakeClock
) -> None:
    """AD-01, RL-01: the failure that disables the account opens one maxretries record with
    the failure count, the addresses seen in the delay phase, and the user when it is one;
    an unknown name is kept only as its key."""
    alice = await UserRepository(database).add(username="alice")
    opened: list[LockoutRecord] = []

    async def on_lock(record: LockoutRecord, *, client_ip: str, user_agent: str) -> None:
        opened.append(record)

    recorder = recorder_for(database, clock, on_lock=on_lock)
    await lock(regulator, recorder, clock, "Alice")
    await lock(regulator, recorder, clock, "ghost")
    records = {r.account_key: r for r in await LockoutRepository(database).list()}
    a, g = records[ALICE], records[GHOST]
    assert (a.user_id, a.username) == (alice.id, "alice")
    assert (g.user_id, g.username) == (None, None)
    for record in (a, g):
        assert record.reason == "maxretries" and record.state == "active"
        assert record.failure_count == SETTINGS.disable_after
        # failures 3..6 came in the delay phase (after the 2 free ones), each from a new /24
        assert record.distinct_ips == record.distinct_subnets == 4
        assert {t.value for t in record.user_agents} == {"agent-0", "agent-1"}
    assert [r.account_key for r in opened] == [ALICE, GHOST]
    assert "ghost" not in json.dumps(await LockoutRepository(database).export())


async def test_failures_before_a_lock_write_nothing(
    database: Database, regulator: Regulator, clock: FakeClock
) -> None:
    """Only failures that lead to or follow a lock touch SQL: the rest are counted in
    memory, and the hourly totals are written about once a minute, or at flush."""
    recorder = recorder_for(database, clock)
    repo = LockoutRepository(database)
    now = datetime.fromtimestamp(clock.now, UTC)

    async def failures_counted() -> int:
        return sum(c.failures for c in await repo.counts_by_interval(
            since=now - timedelta(hours=1), until=now + timedelta(hours=2)))

    async def failures(n: int) -> None:
        for _ in range(n):
            decision = await fail(regulator, clock, "carol", ip="192.0.2.1")
            await recorder.after_attempt(decision, account="carol", client_ip="192.0.2.1",
                                         success=False)

    await failures(SETTINGS.free_failures)  # no waits: within the same minute
    assert await failures_counted() == 0
    await recorder.flush()
    assert await failures_counted() == SETTINGS.free_failures
    await failures(SETTINGS.disable_after - SETTINGS.free_failures - 1)  # the delay phase
    await recorder.flush()
    assert await failures_counted() == SETTINGS.disable_after - 1
    assert await repo.list() == []


async def test_attempts_on_a_locked_account_are_batched(
    database: Database, regulator: Regulator, clock: FakeClock
) -> None:
    """AD-01: refused attempts on a locked account add to its record, at most one write per
    flush interval; flush writes the rest."""
    recorder = recorder_for(database, clock, flush_interval=60.0)
    await lock(regulator, recorder, clock, "ghost")
    repo = LockoutRepository(database)
    for n in range(3):
        ip = f"172.16.{n}.1"
        decision = await regulator.check(account="ghost", client_ip=ip)
        assert decision.reason == "disabled"
        await recorder.after_refusal(decision, account="ghost", client_ip=ip, user_agent="bot")
    [record] = await repo.list()
    assert record.failure_count == SETTINGS.disable_after  # batched, not yet written
    clock.advance(61)
    decision = await regulator.check(account="ghost", client_ip="172.16.9.1")
    await recorder.after_refusal(decision, account="ghost", client_ip="172.16.9.1")
    [record] = await repo.list()  # the interval passed: the whole batch, this one too
    assert record.failure_count == SETTINGS.disable_after + 4
    assert record.distinct_ips == 4 + 4
    decision = await regulator.check(account="ghost", client_ip="172.16.10.1")
    await recorder.after_refusal(decision, account="ghost", client_ip="172.16.10.1")
    await recorder.flush()
    [record] = await repo.list()
    assert record.failure_count == SETTINGS.disable_after + 5


async def test_a_lock_this_process_missed_is_recorded_on_first_refusal(
    database: Database, regulator: Regulator, clock: FakeClock
) -> None:
    """AD-01: a replica (or a restarted process) that sees a refusal for a lock it did not
    record opens the record, with at least the threshold of failures."""
    await lock(regulator, recorder_for(database, clock, flush_interval=0.0), clock, "ghost")
    repo = LockoutRepository(database)
    [first] = await repo.list()
    await repo.unlock(first.id, actor="test", reason="simulate a lost record")
    fresh = recorder_for(database, clock)
    decision = await regulator.check(account="ghost", client_ip="192.0.2.50")
    await fresh.after_refusal(decision, account="ghost", client_ip="192.0.2.50")
    [record] = await repo.list(state="active")
    assert record.failure_count == SETTINGS.disable_after + 1 and record.distinct_ips == 1


async def test_unlock_lifts_the_regulator_and_the_record(
    database: Database, regulator: Regulator, clock: FakeClock
) -> None:
    """AD-02, RL-01: unlock needs a reason; it clears the regulator's disable (by key, so an
    unknown name works too) and marks the record; a new failure then opens nothing."""
    recorder = recorder_for(database, clock)
    await lock(regulator, recorder, clock, "ghost")
    [record] = await LockoutRepository(database).list()
    with pytest.raises(UnlockReasonRequired):
        await recorder.unlock(record_id=record.id, actor="cli:root", reason=" ",
                              regulator=regulator)
    assert (await regulator.check(account="ghost", client_ip="10.1.1.1")).reason == "disabled"
    done = await recorder.unlock(record_id=record.id, actor="cli:root",
                                 reason="owner confirmed", regulator=regulator)
    assert done.before.state == "active" and done.after.state == "unlocked"
    assert done.after.unlock_reason == "owner confirmed"
    assert (await regulator.check(account="ghost", client_ip="10.1.1.1")).allowed
    assert (await regulator.state(account="ghost")).factors["password"].failures == 0
    decision = await regulator.record_attempt(account="ghost", client_ip="10.1.1.1",
                                              success=False)
    await recorder.after_attempt(decision, account="ghost", client_ip="10.1.1.1",
                                 success=False)
    await recorder.flush()
    assert await LockoutRepository(database).list(state="active") == []
    with pytest.raises(LockoutNotActive):
        await recorder.unlock(record_id=record.id, actor="cli:root", reason="again",
                              regulator=regulator)
    with pytest.raises(RateLimitError):  # a key, never a name or a key-store pattern
        await regulator.unlock_key(account_key="ghost:password")


async def test_migration_0002_downgrades_and_upgrades(database: Database) -> None:
    """Migration 0002 is reversible on both backends and leaves 0001's tables alone."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    from sekisho.store.db import alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    mine = {"lockout_events", "login_failures_hourly", "audit_events"}

    def tables(conn: object) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with database.engine.begin() as conn:
        assert mine <= await conn.run_sync(tables)
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0001"))
        assert await conn.run_sync(current_revision) == "0001"
        left = await conn.run_sync(tables)
        assert not mine & left and {"users", "user_groups"} <= left
    await database.migrate()
    async with database.engine.connect() as conn:
        assert await conn.run_sync(current_revision) == head
        assert mine <= await conn.run_sync(tables)
