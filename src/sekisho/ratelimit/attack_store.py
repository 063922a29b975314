"""Attack mode's narrow store: what the detectors count, the mode itself, flagged sources,
and spent proof-of-work solutions.

Every method is one atomic step in its backend (security invariant 6): on Redis one Lua
script or one command (attack_store_redis.py), in memory one method that never yields. All
window arithmetic uses the ``now`` the caller passes (the injected clock), never the
backend's own clock; Redis key expiry only collects garbage.

Bounded by construction: the failure ratio is kept in ``RATIO_BUCKETS`` counters per window;
a source (address or subnet) keeps at most ``cap`` usernames, the most recent; the memory
store keeps at most ``max_sources`` sources and ``max_used`` spent solutions; flagged
sources are capped at ``max_flagged`` by the caller.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "RATIO_BUCKETS", "Activation", "AttackStore", "Episode", "Flag", "MemoryAttackStore", "Tally",
    "bucket_seconds",
]

#: The failure-ratio window is kept as this many consecutive counters (a sliding window
#: accurate to one counter's span).
RATIO_BUCKETS = 10


def bucket_seconds(window: int) -> int:
    return max(1, window // RATIO_BUCKETS)


@dataclass(frozen=True, slots=True)
class Tally:
    """Password outcomes in the ratio window, and distinct usernames per source asked."""

    failures: int
    attempts: int
    names: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Episode:
    """One spell of attack mode: active while ``now < until``."""

    since: float
    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class Activation:
    """What ``activate`` did. ``ended``: the previous episode, over but not yet announced
    by any replica (the caller announces its end before this start)."""

    started: bool
    episode: Episode
    ended: Episode | None = None


@dataclass(frozen=True, slots=True)
class Flag:
    """A flagged address (``ip:…``) or subnet (``net:…``), since when, until when."""

    source: str
    since: float
    until: float


class AttackStore(Protocol):
    async def tally(
        self, *, now: float, failed: bool, window: int, sources: Sequence[str],
        account_key: str, name_window: int, cap: int,
    ) -> Tally:
        """Count one outcome; add ``account_key`` to each source's usernames (none when
        ``sources`` is empty); return the window's totals and each source's distinct count."""
        ...

    async def activate(self, *, now: float, until: float, reason: str) -> Activation:
        """Start attack mode, or extend the running episode to at least ``until``."""
        ...

    async def episode(self) -> Episode | None:
        """The latest episode, running or over (None if none is known)."""
        ...

    async def claim_end(self, *, now: float) -> Episode | None:
        """The latest episode if it is over and no one has announced its end; from then on
        it counts as announced. Exactly one caller gets it."""
        ...

    async def flag(self, source: str, *, now: float, until: float, max_flagged: int) -> bool:
        """Flag ``source`` until at least ``until``; True if it was not flagged already."""
        ...

    async def flagged_until(self, sources: Sequence[str]) -> tuple[float, ...]:
        """Until when each source is flagged (0.0: never or long ago)."""
        ...

    async def flags(self, *, now: float, limit: int) -> list[Flag]:
        """Sources flagged at ``now``, those ending soonest first."""
        ...

    async def use_once(self, key: str, *, now: float, until: float) -> bool:
        """True the first time ``key`` is used before ``until``; False after that."""
        ...

    async def close(self) -> None: ...


class MemoryAttackStore:
    """In-process store: one worker. Asyncio runs each method without yielding."""

    def __init__(self, *, max_sources: int = 100_000, max_used: int = 200_000) -> None:
        self._buckets: dict[int, list[int]] = {}
        self._names: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        self._max_sources = max_sources
        self._episode: Episode | None = None
        self._announced = True
        self._flags: dict[str, Flag] = {}
        self._used: dict[str, float] = {}
        self._max_used = max_used

    async def tally(
        self, *, now: float, failed: bool, window: int, sources: Sequence[str],
        account_key: str, name_window: int, cap: int,
    ) -> Tally:
        span = bucket_seconds(window)
        current = int(now // span)
        first = current - RATIO_BUCKETS + 1
        for old in [b for b in self._buckets if b < first]:
            del self._buckets[old]
        counts = self._buckets.setdefault(current, [0, 0])
        counts[0] += int(failed)
        counts[1] += 1
        failures = sum(c[0] for b, c in self._buckets.items() if b <= current)
        attempts = sum(c[1] for b, c in self._buckets.items() if b <= current)
        names = tuple(self._add_name(s, account_key, now, now - name_window, cap) for s in sources)
        return Tally(failures, attempts, names)

    def _add_name(self, source: str, account_key: str, now: float, cutoff: float, cap: int) -> int:
        seen = self._names.get(source)
        if seen is None:
            seen = self._names[source] = OrderedDict()
            if len(self._names) > self._max_sources:
                self._names.popitem(last=False)  # the source seen least recently
        self._names.move_to_end(source)
        seen[account_key] = now
        seen.move_to_end(account_key)
        while seen and (next(iter(seen.values())) <= cutoff or len(seen) > cap):
            seen.popitem(last=False)
        return len(seen)

    async def activate(self, *, now: float, until: float, reason: str) -> Activation:
        current = self._episode
        if current is not None and current.until > now:
            if until > current.until:
                current = self._episode = Episode(current.since, until, current.reason)
            return Activation(False, current)
        ended = current if current is not None and not self._announced else None
        self._episode = Episode(now, until, reason)
        self._announced = False
        return Activation(True, self._episode, ended)

    async def episode(self) -> Episode | None:
        return self._episode

    async def claim_end(self, *, now: float) -> Episode | None:
        current = self._episode
        if current is None or self._announced or current.until > now:
            return None
        self._announced = True
        return current

    async def flag(self, source: str, *, now: float, until: float, max_flagged: int) -> bool:
        old = self._flags.get(source)
        fresh = old is None or old.until <= now
        if old is None or fresh:
            self._flags[source] = Flag(source, now, until)
        else:
            self._flags[source] = Flag(source, old.since, max(until, old.until))
        self._flags = {s: f for s, f in self._flags.items() if f.until > now}
        if len(self._flags) > max_flagged:
            keep = sorted(self._flags.values(), key=lambda f: f.until)[-max_flagged:]
            self._flags = {f.source: f for f in keep}
        return fresh

    async def flagged_until(self, sources: Sequence[str]) -> tuple[float, ...]:
        return tuple(f.until if (f := self._flags.get(s)) else 0.0 for s in sources)

    async def flags(self, *, now: float, limit: int) -> list[Flag]:
        live = sorted((f for f in self._flags.values() if f.until > now), key=lambda f: f.until)
        return live[:limit]

    async def use_once(self, key: str, *, now: float, until: float) -> bool:
        if (spent := self._used.get(key)) is not None and spent > now:
            return False
        if len(self._used) >= self._max_used:
            self._used = {k: t for k, t in self._used.items() if t > now}
            if len(self._used) >= self._max_used:
                # Full of live entries: refuse rather than forget one (a replay window).
                return False
        self._used[key] = max(until, now + 1)
        return True

    async def close(self) -> None:
        self._buckets.clear()
        self._names.clear()
        self._flags.clear()
        self._used.clear()


def ttl(seconds: float) -> int:
    """Whole seconds, at least 1, for a Redis expiry."""
    return max(1, math.ceil(seconds))
