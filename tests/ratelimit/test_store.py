"""The regulator's failure store, on memory and Redis (RL-01, RL-08, invariant 6)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis import asyncio as aioredis
from tests.ratelimit.helpers import FakeClock

from sekisho.ratelimit import FailureRecord, FailureStore, MemoryFailureStore
from sekisho.ratelimit.store_redis import RedisFailureStore

TTL = 3600
MakeStore = Callable[[], FailureStore]


@pytest.fixture
async def make_store(
    state_url: str, clock: FakeClock, prefix: str
) -> AsyncIterator[MakeStore]:
    made: list[FailureStore] = []
    shared = MemoryFailureStore(clock=clock)

    def make() -> FailureStore:
        # Memory: one store per process, so "another client" is the same object.
        store: FailureStore = (
            shared if state_url == "memory://" else RedisFailureStore(state_url, prefix=prefix))
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_add_failure_counts_and_keeps_latest_time(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = make_store()
    assert await store.get("k") == FailureRecord()
    now = clock()
    assert await store.add_failure("k", now, ttl=TTL, disable_at=5) == FailureRecord(1, now)
    assert await store.add_failure("k", now + 2.5, ttl=TTL, disable_at=5) == FailureRecord(
        2, now + 2.5)
    # A replica with a lagging clock does not move the last failure back.
    assert await store.add_failure("k", now + 1, ttl=TTL, disable_at=5) == FailureRecord(
        3, now + 2.5)
    assert await store.get("k") == FailureRecord(3, now + 2.5)
    assert await store.get("other") == FailureRecord()


async def test_disable_at_limit_and_reset_rules_rl01(
    make_store: MakeStore, clock: FakeClock
) -> None:
    """RL-01: the count that reaches the limit disables; only a forced reset lifts it."""
    store = make_store()
    for _ in range(2):
        record = await store.add_failure("k", clock(), ttl=TTL, disable_at=3)
    assert not record.disabled
    record = await store.add_failure("k", clock(), ttl=TTL, disable_at=3)
    assert record == FailureRecord(3, clock(), disabled=True)
    await store.reset("k")  # a success does not lift a disable
    assert (await store.get("k")).disabled
    clock.advance(10 * TTL)  # neither does time
    assert await store.get("k") == FailureRecord(3, clock() - 10 * TTL, disabled=True)
    await store.reset("k", force=True)
    assert await store.get("k") == FailureRecord()


async def test_reset_forgets_live_record(make_store: MakeStore, clock: FakeClock) -> None:
    """RL-03: a success resets the consecutive count."""
    store = make_store()
    await store.add_failure("k", clock(), ttl=TTL, disable_at=9)
    await store.reset("k")
    assert await store.get("k") == FailureRecord()


async def test_disable_without_failures(make_store: MakeStore, clock: FakeClock) -> None:
    store = make_store()
    await store.disable("k", clock())
    assert await store.get("k") == FailureRecord(0, clock(), disabled=True)
    await store.add_failure("k", clock() + 1, ttl=TTL, disable_at=9)
    assert await store.get("k") == FailureRecord(1, clock() + 1, disabled=True)


async def test_concurrent_failures_each_counted_once(
    make_store: MakeStore, clock: FakeClock
) -> None:
    """Invariant 6 / RL-08: 20 concurrent increments from two clients give exactly 20, and
    every caller reads back a different count (increment-and-read is one step)."""
    stores = [make_store(), make_store()]
    records = await asyncio.gather(*(
        stores[i % 2].add_failure("k", clock(), ttl=TTL, disable_at=100) for i in range(20)))
    assert sorted(r.count for r in records) == list(range(1, 21))
    assert (await stores[0].get("k")).count == 20


async def test_memory_expiry_and_bound(clock: FakeClock) -> None:
    store = MemoryFailureStore(clock=clock, max_entries=3)
    await store.add_failure("old", clock(), ttl=TTL, disable_at=9)
    await store.add_failure("locked", clock(), ttl=TTL, disable_at=1)
    clock.advance(TTL)
    assert await store.get("old") == FailureRecord()  # forgotten ttl after the last failure
    for name in ("a", "b", "c", "d"):
        await store.add_failure(name, clock(), ttl=TTL, disable_at=9)
    assert (await store.get("a")).count == 0  # pushed out beyond max_entries
    assert (await store.get("d")).count == 1
    assert (await store.get("locked")).disabled  # disabled records are never dropped


async def test_redis_records_expire_unless_disabled(
    redis_url: str, clock: FakeClock, prefix: str
) -> None:
    """Live records carry a TTL (bounded growth); disabled ones persist (RL-01, RL-08)."""
    store = RedisFailureStore(redis_url, prefix=prefix)
    client = aioredis.from_url(redis_url)
    try:
        await store.add_failure("live", clock(), ttl=TTL, disable_at=9)
        await store.add_failure("dead", clock(), ttl=TTL, disable_at=1)
        assert 0 < await client.ttl(f"{prefix}f:live") <= TTL
        assert await client.ttl(f"{prefix}f:dead") == -1
    finally:
        await client.aclose()
        await store.close()
