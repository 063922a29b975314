"""The memory storage's clean-up: throttled, in the loop, and still dropping what expired."""

from __future__ import annotations

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from tests.ratelimit.helpers import FakeClock

from sekisho.ratelimit.memory_storage import SWEEP_SECONDS, SweptMemoryStorage


async def test_expired_windows_are_swept_without_the_librarys_task(clock: FakeClock) -> None:
    """Keys whose windows expired are dropped at the next sweep, at most once per
    SWEEP_SECONDS; the library's own clean-up task (a thread hop per key) never starts. If
    a ``limits`` release renames the private hook this overrides, this test fails."""
    storage = SweptMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(2, 60)
    for n in range(50):
        assert await limiter.hit(item, "budget", f"key{n}")
    assert await limiter.hit(item, "budget", "key0")
    assert not await limiter.hit(item, "budget", "key0")  # the window holds two
    assert len(storage.events) == 50
    clock.advance(61)  # every window expired; the last sweep was at the first hit
    assert len(storage.events) == 50  # kept until a hit gives the sweep a turn
    assert await limiter.hit(item, "budget", "key0")  # room again, and a sweep ran first
    assert list(storage.events) == ["LIMITER/budget/key0/2/60/second"]
    assert storage.timer is None  # the library's task was never created
    short = RateLimitItemPerSecond(2, 2)
    for n in range(1, 50):
        assert await limiter.hit(short, "budget", f"key{n}")
    clock.advance(3)  # those windows expired, but the last sweep was only 3 s ago
    assert await limiter.hit(short, "budget", "other")
    assert len(storage.events) == 51  # key0, 49 expired ones, other: nothing dropped yet
    clock.advance(SWEEP_SECONDS)
    assert storage.sweep(clock()) == 50
    assert list(storage.events) == ["LIMITER/budget/key0/2/60/second"]
