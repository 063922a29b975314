"""The TOTP replay guard: the last accepted time step per authenticator (TO-05, invariant 6).

``advance(key, step)`` records ``step`` and returns True only if it is greater than the last
step recorded under ``key``; the check and the write are one atomic operation (a Lua script on
Redis, a single synchronous section in memory). So a code is accepted once per step, and an
*older* step is refused after a newer one, even when two replicas see the same code at the same
moment. A record outlives the window it guards (``ttl``, a few steps) and then expires: by then
every step it could have blocked is outside the ±1 window anyway.

Implementations: :class:`MemoryStepStore` (one process) and :class:`RedisStepStore`
(replicas), chosen by ``state.url`` like the session store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sekisho.errors import StateError

__all__ = ["MemoryStepStore", "RedisStepStore", "StepStore", "step_store"]


class StepStore(Protocol):
    async def advance(self, key: str, step: int, *, ttl: int) -> bool:
        """Record ``step`` if it is newer than the last one under ``key``; True if it was."""
        ...

    async def close(self) -> None: ...


class MemoryStepStore:
    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[str, tuple[int, float]] = {}

    async def advance(self, key: str, step: int, *, ttl: int) -> bool:
        # No await between the read and the write: atomic on the event loop.
        now = self._clock()
        self._sweep(now)
        last = self._last.get(key)
        if last is not None and last[1] > now and last[0] >= step:
            return False
        self._last[key] = (step, now + ttl)
        return True

    def _sweep(self, now: float) -> None:
        if len(self._last) > 10_000:
            self._last = {k: v for k, v in self._last.items() if v[1] > now}

    async def close(self) -> None:
        self._last.clear()


# KEYS[1] the record; ARGV: step, ttl. 1 if the step was newer and is now recorded.
_ADVANCE = """
local last = redis.call('GET', KEYS[1])
if last and tonumber(last) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


class RedisStepStore:
    def __init__(self, url: str, *, prefix: str = "sekisho:") -> None:
        from redis import asyncio as aioredis

        self._redis: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._prefix = f"{prefix}mfa:step:"
        self._advance = self._redis.register_script(_ADVANCE)

    async def advance(self, key: str, step: int, *, ttl: int) -> bool:
        from redis.exceptions import RedisError

        try:
            result = await self._advance(keys=[self._prefix + key], args=[step, ttl])
        except RedisError as exc:
            raise StateError("TOTP replay store unavailable") from exc
        return bool(result)

    async def close(self) -> None:
        await self._redis.aclose()


def step_store(url: str, *, clock: Callable[[], float], prefix: str = "sekisho:") -> StepStore:
    """The store for ``state.url``: memory:// or a Redis URL."""
    if url.startswith("memory://"):
        return MemoryStepStore(clock=clock)
    return RedisStepStore(url, prefix=prefix)
