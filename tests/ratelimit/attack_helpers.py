"""Monitors on memory and Redis with a controllable clock, and an independent ALTCHA solver."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import altcha
import limits.aio.storage.memory
import limits.aio.storage.redis.redispy
import pytest
from tests.ratelimit.helpers import SECRET, FakeClock

from sekisho.config.attack import AttackSettings
from sekisho.ratelimit.attack import AttackMonitor
from sekisho.ratelimit.attack_store import AttackStore, MemoryAttackStore
from sekisho.ratelimit.attack_types import AttackEvent
from sekisho.ratelimit.keys import RateLimitKeys

MakeMonitor = Callable[..., AttackMonitor]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Like the package's clock, but starting now: ``altcha`` checks a challenge's expiry
    against the real time too, so the fake one must not lag behind it."""
    fake = FakeClock(start=float(int(time.time())))
    monkeypatch.setattr(limits.aio.storage.memory, "time", fake)
    monkeypatch.setattr(limits.aio.storage.redis.redispy, "time", fake)
    return fake


@pytest.fixture
async def make_monitor(
    state_url: str, clock: FakeClock, prefix: str
) -> AsyncIterator[MakeMonitor]:
    """``make(settings=None, events=None, store=None, **overrides)``: a monitor on this test's
    backend. On Redis every monitor of a test shares the state (replicas); in memory each has
    its own store unless one is passed."""
    made: list[AttackMonitor] = []

    def make(settings: AttackSettings | None = None, *, events: list[AttackEvent] | None = None,
             store: AttackStore | None = None, **overrides: Any) -> AttackMonitor:
        if settings is None:
            settings = AttackSettings.model_validate(overrides)
        if store is None:
            if state_url.startswith("memory://"):
                store = MemoryAttackStore()
            else:
                from sekisho.ratelimit.attack_store_redis import RedisAttackStore

                store = RedisAttackStore(state_url, prefix=prefix)

        async def record(event: AttackEvent) -> None:
            if events is not None:
                events.append(event)

        monitor = AttackMonitor(settings, store=store, keys=RateLimitKeys(SECRET), secret=SECRET,
                                clock=clock, on_event=record)
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        await monitor.close()


def solve(challenge: dict[str, Any], *, counter_delta: int = 0) -> str:
    """The form value a browser would send, found by the ``altcha`` package's own solver
    (an implementation independent of static/altcha-solver.js). ``counter_delta`` spoils it."""
    parsed = altcha.Challenge.from_dict(challenge)
    found = altcha.solve_challenge(parsed, timeout=30)
    assert found is not None, "no solution within max_number"
    found.counter += counter_delta
    return altcha.Payload(parsed, found).to_base64()


def kinds(events: list[AttackEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.reason) for e in events]
