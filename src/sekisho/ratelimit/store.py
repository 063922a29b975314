"""The regulator's narrow store: consecutive failures per key, and a disabled flag.

Like Authelia's regulation provider, the regulator asks a store for little: read a record,
add a failure, disable, reset. Each of these is atomic in the backend (security invariant 6),
so replicas sharing a store count every failure exactly once.

A record forgets itself ``ttl`` seconds after its last failure (bounded growth: unknown
usernames are counted too). A *disabled* record never expires: only ``reset(force=True)``
lifts it (RL-01: recovery or an admin, never a timer).

:class:`MemoryFailureStore` lives in the process: one worker, and everything, disabled
flags included, is gone at restart. :class:`~sekisho.ratelimit.store_redis.RedisFailureStore`
is shared by replicas and survives restarts (RL-08).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

__all__ = ["FailureRecord", "FailureStore", "MemoryFailureStore"]


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """``count`` consecutive failures, the latest at ``last_failure`` (0.0: none)."""

    count: int = 0
    last_failure: float = 0.0
    disabled: bool = False


class FailureStore(Protocol):
    async def get(self, key: str) -> FailureRecord:
        """The record, or an empty one."""
        ...

    async def add_failure(
        self, key: str, now: float, *, ttl: int, disable_at: int
    ) -> FailureRecord:
        """Count one failure at ``now`` and return the record after it, in one atomic step.
        At ``count >= disable_at`` the record is disabled (and stops expiring)."""
        ...

    async def disable(self, key: str, now: float) -> None:
        """Disable the record whatever its count (it stops expiring)."""
        ...

    async def reset(self, key: str, *, force: bool = False) -> None:
        """Forget the failures. A disabled record is kept unless ``force`` (unlock)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Entry:
    record: FailureRecord
    expires: float  # ignored once disabled


class MemoryFailureStore:
    """In-process store. Asyncio runs each method without yielding, so each is atomic.

    Live records are kept in order of their last failure, which is also the order they
    expire in (one ``ttl`` for all keys in practice): expired ones are dropped from the
    front as new failures arrive, and beyond ``max_entries`` the oldest is dropped early.
    An attacker would need ``max_entries`` failures inside the global failure budget to
    push a victim's counter out. Disabled records are kept apart and never dropped.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.time, max_entries: int = 200_000
    ) -> None:
        self._clock = clock
        self._max = max_entries
        self._live: OrderedDict[str, _Entry] = OrderedDict()
        self._disabled: dict[str, FailureRecord] = {}

    async def get(self, key: str) -> FailureRecord:
        if key in self._disabled:
            return self._disabled[key]
        entry = self._live.get(key)
        if entry is None or entry.expires <= self._clock():
            return FailureRecord()
        return entry.record

    async def add_failure(
        self, key: str, now: float, *, ttl: int, disable_at: int
    ) -> FailureRecord:
        old = await self.get(key)
        record = FailureRecord(
            count=old.count + 1,
            last_failure=max(old.last_failure, now),
            disabled=old.disabled or old.count + 1 >= disable_at,
        )
        if record.disabled:
            self._live.pop(key, None)
            self._disabled[key] = record
        else:
            self._live[key] = _Entry(record, now + ttl)
            self._live.move_to_end(key)
            self._prune(now)
        return record

    async def disable(self, key: str, now: float) -> None:
        old = await self.get(key)
        self._live.pop(key, None)
        self._disabled[key] = replace(old, disabled=True, last_failure=old.last_failure or now)

    async def reset(self, key: str, *, force: bool = False) -> None:
        self._live.pop(key, None)
        if force:
            self._disabled.pop(key, None)

    async def close(self) -> None:
        self._live.clear()
        self._disabled.clear()

    def _prune(self, now: float) -> None:
        while self._live:
            key, entry = next(iter(self._live.items()))
            if entry.expires > now and len(self._live) <= self._max:
                return
            del self._live[key]
