"""Server-side sessions on memory and Redis (SE-01, SE-03, SE-04, SE-05)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from sekisho.auth.session_manager import Principal, SessionManager
from sekisho.auth.session_redis import RedisSessionStore
from sekisho.auth.sessions import MemorySessionStore, SessionStore, new_token, token_key
from sekisho.config import SessionSettings

ALICE = Principal(user_id=7, username="alice", groups=("staff",), email="alice@example.com",
                  display_name="Alice")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """Wraps a real store and counts the calls that would be network round trips."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.gets = 0
        self.touches = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def get(self, key: str):  # type: ignore[no-untyped-def]
        self.gets += 1
        return await self.inner.get(key)

    async def touch(self, key: str, last_seen: float, *, ttl: int) -> None:
        self.touches += 1
        await self.inner.touch(key, last_seen, ttl=ttl)


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    created: list[SessionStore] = []

    def factory(clock: Clock) -> SessionStore:
        if request.param == "memory":
            store: SessionStore = MemorySessionStore(clock=clock)
        else:
            store = RedisSessionStore(request.getfixturevalue("redis_url"))
        created.append(store)
        return store

    yield factory
    for store in created:
        await store.close()


def test_token_entropy_and_opacity() -> None:
    """SE-01: 128-bit CSPRNG tokens, no collisions in 10k, no personal data."""
    tokens = {new_token() for _ in range(10_000)}
    assert len(tokens) == 10_000
    sample = next(iter(tokens))
    assert len(base64.urlsafe_b64decode(sample + "==")) >= 16
    assert token_key(sample) != sample and len(token_key(sample)) == 64


async def test_idle_timeout(make_store) -> None:  # type: ignore[no-untyped-def]
    """SE-04: idle 29:59 is alive, 30:01 is dead, and stays dead."""
    clock = Clock()
    manager = SessionManager(make_store(clock), SessionSettings(), clock=clock)
    await manager.start()
    token, session = await manager.create(ALICE, client_ip="10.0.0.1", user_agent="ua")
    assert session.username == "alice"
    clock.now += 29 * 60 + 59
    assert await manager.resolve(token) is not None
    clock.now += 30 * 60 + 1
    assert await manager.resolve(token) is None
    clock.now -= 30 * 60  # even if the clock went back, the session was deleted server-side
    assert await manager.resolve(token) is None


async def test_absolute_timeout_despite_activity(make_store) -> None:  # type: ignore[no-untyped-def]
    """SE-04: with continuous activity the session still ends at 12 h + 1 s."""
    clock = Clock()
    manager = SessionManager(make_store(clock), SessionSettings(), clock=clock)
    await manager.start()
    token, _ = await manager.create(ALICE, client_ip="", user_agent="")
    for _ in range(12 * 4):
        clock.now += 15 * 60
        if clock.now - 1_700_000_000.0 < 12 * 3600:
            assert await manager.resolve(token) is not None
    clock.now = 1_700_000_000.0 + 12 * 3600 + 1
    assert await manager.resolve(token) is None


async def test_cached_resolve_makes_no_round_trip(make_store) -> None:  # type: ignore[no-untyped-def]
    """The proxied fast path: a cached session costs no store call until a touch is due."""
    clock = Clock()
    store = CountingStore(make_store(clock))
    manager = SessionManager(store, SessionSettings(touch_interval=30), clock=clock)
    await manager.start()
    token, _ = await manager.create(ALICE, client_ip="", user_agent="")
    assert await manager.resolve(token) is not None
    gets = store.gets
    for _ in range(100):
        clock.now += 0.1
        assert await manager.resolve(token) is not None
    assert store.gets == gets
    assert store.touches == 0
    clock.now += 30
    assert await manager.resolve(token) is not None
    assert store.touches == 1


async def test_end_and_end_user(make_store) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    manager = SessionManager(make_store(clock), SessionSettings(), clock=clock)
    await manager.start()
    t1, _ = await manager.create(ALICE, client_ip="", user_agent="")
    t2, _ = await manager.create(ALICE, client_ip="", user_agent="")
    assert t1 != t2
    assert len(await manager.list_user(ALICE.user_id)) == 2
    await manager.end(t1)
    assert await manager.resolve(t1) is None
    assert await manager.resolve(t2) is not None
    assert await manager.end_user(ALICE.user_id) == 1
    assert await manager.resolve(t2) is None


async def test_pending_state_has_short_lifetime(make_store) -> None:  # type: ignore[no-untyped-def]
    """LF-06 groundwork: a pending session lives pending_timeout at most."""
    clock = Clock()
    manager = SessionManager(make_store(clock), SessionSettings(), clock=clock)
    await manager.start()
    token, session = await manager.create(ALICE, client_ip="", user_agent="", state="pending")
    assert session.state == "pending"
    clock.now += 301
    assert await manager.resolve(token) is None


async def test_logout_reaches_other_replica_within_a_second(redis_url: str) -> None:
    """Revocation on one replica reaches another replica's cache through Redis pub/sub."""
    one = SessionManager(RedisSessionStore(redis_url), SessionSettings())
    two = SessionManager(RedisSessionStore(redis_url), SessionSettings())
    await one.start()
    await two.start()
    try:
        token, _ = await one.create(ALICE, client_ip="", user_agent="")
        assert await two.resolve(token) is not None  # now cached on replica two
        await one.end(token)
        for _ in range(100):
            if await two.resolve(token) is None:
                break
            await asyncio.sleep(0.01)
        assert await two.resolve(token) is None
    finally:
        await one.close()
        await two.close()


async def test_idle_check_asks_the_shared_store(redis_url: str) -> None:
    """SE-05: activity seen by another replica keeps the session alive on this one."""
    clock = Clock()
    settings = SessionSettings(touch_interval=10)
    one = SessionManager(RedisSessionStore(redis_url), settings, clock=clock)
    two = SessionManager(RedisSessionStore(redis_url), settings, clock=clock)
    await one.start()
    await two.start()
    try:
        token, _ = await one.create(ALICE, client_ip="", user_agent="")
        assert await one.resolve(token) is not None
        clock.now += 20 * 60
        assert await two.resolve(token) is not None  # activity on replica two, written back
        clock.now += 20 * 60  # 40 min since replica one saw it, 20 since replica two
        assert await one.resolve(token) is not None
    finally:
        await one.close()
        await two.close()


async def test_disabled_user_loses_session_at_next_touch(make_store) -> None:  # type: ignore[no-untyped-def]
    """SE-07 groundwork: a user disabled in the database is signed out within touch_interval,
    even where no revocation message reaches this process."""
    clock = Clock()
    disabled: set[int] = set()

    async def may_continue(session) -> bool:  # type: ignore[no-untyped-def]
        return session.user_id not in disabled

    manager = SessionManager(make_store(clock), SessionSettings(touch_interval=30), clock=clock,
                             user_check=may_continue)
    await manager.start()
    token, _ = await manager.create(ALICE, client_ip="", user_agent="")
    disabled.add(ALICE.user_id)
    clock.now += 10
    assert await manager.resolve(token) is not None  # cached, not yet due
    clock.now += 25
    assert await manager.resolve(token) is None
    assert await manager.list_user(ALICE.user_id) == []
