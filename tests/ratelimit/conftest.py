"""Fixtures for the rate-limit tests: a controllable clock, and regulators on memory and Redis.

Time. The regulator and its failure store take an injected clock. ``limits`` does not: its
moving-window storages read ``time.time()`` themselves (the memory storage for every entry,
the redis-py bridge for the timestamps it passes to its Lua scripts). The ``clock`` fixture
therefore also replaces the ``time`` module seen by those two ``limits`` modules, and by
nothing else, with the same fake clock. Redis still expires the keys on its own clock, which
only garbage-collects: the window arithmetic uses the timestamps stored in the lists.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import limits.aio.storage.memory
import limits.aio.storage.redis.redispy
import pytest
from tests.ratelimit.helpers import SECRET, FakeClock, MakeRegulator

from sekisho.ratelimit import RateLimitSettings, Regulator, create_regulator


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(limits.aio.storage.memory, "time", fake)
    monkeypatch.setattr(limits.aio.storage.redis.redispy, "time", fake)
    return fake


@pytest.fixture
def prefix() -> str:
    return f"sekisho-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture(params=["memory", "redis"])
def state_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def make_regulator(
    state_url: str, clock: FakeClock, prefix: str
) -> AsyncIterator[MakeRegulator]:
    """``make(settings=None, **overrides)``: a regulator on this test's backend and clock.
    Every regulator made in one test shares the backend (on Redis) and the key prefix."""
    made: list[Regulator] = []

    def make(settings: RateLimitSettings | None = None, **overrides: object) -> Regulator:
        if settings is None:
            settings = RateLimitSettings.model_validate(overrides)
        regulator = create_regulator(
            settings, url=state_url, secret=SECRET, prefix=prefix, clock=clock)
        made.append(regulator)
        return regulator

    yield make
    for regulator in made:
        await regulator.close()
