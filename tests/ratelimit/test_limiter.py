"""The limiter: moving-window budgets over limits, on memory and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.ratelimit.helpers import FakeClock

from sekisho.config.ratelimit import Window
from sekisho.errors import StateError
from sekisho.ratelimit import Limiter, RateLimitError

BUDGETS = {
    "tiny": (Window(count=3, seconds=60), Window(count=5, seconds=3600)),
    "other": (Window(count=1, seconds=10),),
}


@pytest.fixture
async def limiter(state_url: str, clock: FakeClock, prefix: str) -> AsyncIterator[Limiter]:
    lim = Limiter(state_url, BUDGETS, prefix=prefix, clock=clock)
    yield lim
    await lim.close()


async def test_short_window(limiter: Limiter, clock: FakeClock) -> None:
    for _ in range(3):
        assert await limiter.test("tiny", "k")
        assert await limiter.retry_after("tiny", "k") == 0
        assert await limiter.hit("tiny", "k")
        clock.advance(10)
    assert not await limiter.test("tiny", "k")
    assert not await limiter.hit("tiny", "k")
    # The oldest hit (30 s ago) leaves the window 60 s after it was made.
    assert await limiter.retry_after("tiny", "k") == 31
    clock.advance(31)
    assert await limiter.test("tiny", "k")
    assert await limiter.test("tiny", "other-key")
    assert await limiter.test("other", "k")  # budgets are apart


async def test_moving_window_is_exact(limiter: Limiter, clock: FakeClock) -> None:
    """Three hits in any 60 s, not three per calendar minute: no burst at a window edge."""
    clock.now = 1_700_000_040.0  # 20 s before a minute boundary
    for _ in range(3):
        assert await limiter.hit("tiny", "k")
    clock.advance(25)  # past the boundary
    assert not await limiter.hit("tiny", "k")


async def test_long_window(limiter: Limiter, clock: FakeClock) -> None:
    for _ in range(5):
        assert await limiter.hit("tiny", "k")
        clock.advance(61)
    assert not await limiter.test("tiny", "k")
    # The first of the five was made 305 s ago; the hour window frees it at 3600 s.
    assert await limiter.retry_after("tiny", "k") == 3600 - 305 + 1


async def test_clear(limiter: Limiter) -> None:
    for _ in range(3):
        await limiter.hit("tiny", "k")
    await limiter.clear("tiny", "k")
    assert await limiter.test("tiny", "k")


async def test_unknown_budget(limiter: Limiter) -> None:
    with pytest.raises(RateLimitError, match="unknown budget"):
        await limiter.hit("nope", "k")


def test_bad_url() -> None:
    with pytest.raises(RateLimitError):
        Limiter("postgres://x", BUDGETS)


async def test_unreachable_redis_is_a_state_error() -> None:
    lim = Limiter("redis://127.0.0.1:9/0", BUDGETS)
    try:
        with pytest.raises(StateError):
            await lim.hit("tiny", "k")
    finally:
        await lim.close()


async def test_spent_key_is_remembered_until_its_reset(
    limiter: Limiter, clock: FakeClock
) -> None:
    """A key found spent is refused from memory until it has room (no round trip)."""
    assert limiter.known_retry_after("tiny", "k") == 0
    for _ in range(3):
        await limiter.hit("tiny", "k")
    assert limiter.known_retry_after("tiny", "k") == 0  # not yet asked
    assert await limiter.retry_after("tiny", "k") == 61
    clock.advance(30)
    assert limiter.known_retry_after("tiny", "k") == 31
    assert not await limiter.test("tiny", "k")
    clock.advance(31)
    assert limiter.known_retry_after("tiny", "k") == 0
    assert await limiter.test("tiny", "k")
    for _ in range(3):
        await limiter.hit("tiny", "j")
    await limiter.retry_after("tiny", "j")
    await limiter.clear("tiny", "j")
    assert limiter.known_retry_after("tiny", "j") == 0
    assert await limiter.test("tiny", "j")


async def test_hits_still_land_in_windows_with_room(limiter: Limiter, clock: FakeClock) -> None:
    """A full short window refuses a hit; the long window still counts it."""
    for _ in range(3):
        await limiter.hit("tiny", "k")
    assert await limiter.retry_after("tiny", "k") == 61  # short window now known full
    assert not await limiter.hit("tiny", "k")
    assert not await limiter.hit("tiny", "k")
    clock.advance(61)
    assert not await limiter.test("tiny", "k")  # the hour window holds all five
    assert await limiter.retry_after("tiny", "k") == 3600 - 61 + 1
