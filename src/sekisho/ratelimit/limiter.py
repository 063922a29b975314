"""Budgets over ``limits``: storage apart from strategy, as ``limits`` draws it.

A *budget* is a name (``ip``, ``account.password`` …) with one or more windows; a hit lands
in every window of the budget, and a key has room when every window has room. The storage
is ``memory://`` (one process) or the ``redis://`` URL of ``state.url`` (shared by replicas;
``implementation="redispy"``, since the async default wants coredis).

Strategy: **moving window**. It is exact — a budget of 20 per 10 minutes never lets a 21st
hit through in any 10-minute span — and its reset time is exact too (the oldest hit in the
window plus the window), which is the honest ``Retry-After``. Its cost is one list of at most
``count`` timestamps per key and window in Redis, one Lua call per test or hit, O(log count)
server work. The sliding-window counter keeps two integers instead, but it estimates (it
weights the previous window as if its hits were spread evenly, so a burst at a window edge
is over- or under-counted) and on Redis it reads time from key TTLs on the server. Our
budgets are small (tens to a few thousand) and only login traffic touches them, so exactness
wins. The moving window also takes its time from the client (``time.time()`` inside
``limits``), which tests can control; see tests/ratelimit/conftest.py.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from sekisho.config.ratelimit import Window
from sekisho.errors import RateLimitError, StateError
from sekisho.ratelimit.memory_storage import SweptMemoryStorage

__all__ = ["Limiter"]

_MAX_REMEMBERED = 100_000  # full windows remembered, per process


class Limiter:
    """``hit``, ``test``, ``retry_after`` and ``clear`` over named budgets."""

    def __init__(
        self,
        url: str,
        budgets: Mapping[str, Sequence[Window]],
        *,
        prefix: str = "sekisho:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._items: dict[str, tuple[RateLimitItem, ...]] = {
            name: tuple(RateLimitItemPerSecond(w.count, w.seconds) for w in windows)
            for name, windows in budgets.items()
        }
        self._clock = clock
        # (budget, key, window) -> when a window found full has room again. A moving window
        # only fills up until then (hits add; only clear() removes), so this holds on every
        # replica without asking the store: a flood from a blocked address costs no round
        # trip, and a full window is not asked again to refuse a hit.
        self._full: dict[tuple[str, str, int], float] = {}
        self._storage, self._pool = _open_storage(url, f"{prefix}rl")
        self._strategy = MovingWindowRateLimiter(self._storage)

    @property
    def budgets(self) -> tuple[str, ...]:
        return tuple(self._items)

    async def hit(self, budget: str, key: str) -> bool:
        """Count one hit in each window that has room; True if every window had room."""
        ok = True
        async with _translated():
            for n, item in enumerate(self._windows(budget)):
                if self._full_until(budget, key, n):
                    ok = False  # limits would refuse it too, counting nothing
                    continue
                ok = await self._strategy.hit(item, budget, key) and ok
        return ok

    async def test(self, budget: str, key: str) -> bool:
        """Whether one more hit would fit in every window. Counts nothing."""
        if self.known_retry_after(budget, key):
            return False
        async with _translated():
            for item in self._windows(budget):
                if not await self._strategy.test(item, budget, key):
                    return False
        return True

    async def retry_after(self, budget: str, key: str) -> int:
        """Whole seconds after which one more hit fits in every window; 0 if it fits now.

        A hit exactly one window after the oldest still counts against it (the Redis
        scripts compare with ``>=``), so the answer is the first whole second past that."""
        wait = 0
        async with _translated():
            for n, item in enumerate(self._windows(budget)):
                now = self._clock()
                if until := self._full_until(budget, key, n):
                    wait = max(wait, math.ceil(until - now))
                    continue
                stats = await self._strategy.get_window_stats(item, budget, key)
                if stats.remaining < 1:
                    left = math.floor(max(stats.reset_time - now, 0.0)) + 1
                    self._remember_full(budget, key, n, now + left)
                    wait = max(wait, left)
        return wait

    def known_retry_after(self, budget: str, key: str) -> int:
        """From this process's memory alone: a wait if a window of the key is known to be
        full, else 0 (unknown: ask :meth:`retry_after`)."""
        now = self._clock()
        waits = [
            math.ceil(until - now)
            for n in range(len(self._windows(budget)))
            if (until := self._full_until(budget, key, n))
        ]
        return max(waits, default=0)

    async def clear(self, budget: str, key: str) -> None:
        """Forget the key's hits, here and in the store. (Another replica may refuse it
        until the reset time it had already seen.)"""
        async with _translated():
            for n, item in enumerate(self._windows(budget)):
                self._full.pop((budget, key, n), None)
                await self._strategy.clear(item, budget, key)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    def _full_until(self, budget: str, key: str, window: int) -> float:
        """When a window known to be full has room again; 0.0 if not known full."""
        until = self._full.get((budget, key, window), 0.0)
        if until and until <= self._clock():
            del self._full[(budget, key, window)]
            return 0.0
        return until

    def _remember_full(self, budget: str, key: str, window: int, until: float) -> None:
        if len(self._full) >= _MAX_REMEMBERED:
            now = self._clock()
            self._full = {k: t for k, t in self._full.items() if t > now}
            if len(self._full) >= _MAX_REMEMBERED:
                self._full.clear()  # forgetting only costs round trips
        self._full[(budget, key, window)] = until

    def _windows(self, budget: str) -> tuple[RateLimitItem, ...]:
        try:
            return self._items[budget]
        except KeyError:
            raise RateLimitError(f"unknown budget {budget!r}") from None


def _open_storage(url: str, prefix: str) -> tuple[Storage, Any]:
    """A ``limits`` storage for ``url`` and, for Redis, the pool to close."""
    if url.startswith("memory://"):
        return SweptMemoryStorage(), None
    from redis import asyncio as aioredis

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis", "rediss", "unix"):
        raise RateLimitError("storage URL must be memory:// or redis://, rediss://, unix://")
    pool = aioredis.ConnectionPool.from_url(url)
    limits_scheme = "redis+unix" if scheme == "unix" else scheme
    # limits types its options as scalars; redis-py's bridge takes a pool among them.
    options: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(
        f"async+{limits_scheme}://{rest}", implementation="redispy", key_prefix=prefix,
        wrap_exceptions=True, **options,
    )
    return storage, pool


@contextlib.asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    try:
        yield
    except StorageError as exc:
        raise StateError("rate-limit storage unavailable") from exc
