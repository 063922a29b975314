"""The ``memory://`` storage: ``limits``' own, with a cheaper clean-up of expired windows.

``limits``' async :class:`MemoryStorage` starts a clean-up task after every hit whenever the
previous one has finished, and that task visits every key, handing each key's list to a
thread (``asyncio.to_thread``) for one ``bisect``. Under a credential-stuffing flood there
are tens of thousands of keys and a hit every millisecond, so the clean-up never stops and
costs a thread round trip per key: measured, it kept a CPU core busy and the event loop
congested (docs/performance.md). Expired entries never change an answer (the moving window
reads timestamps), they only hold memory, so here the clean-up runs at most once per
``sweep_every`` seconds, in the event loop, without the threads.

The override replaces the library's private ``__schedule_expiry`` (name-mangled as
``_MemoryStorage__schedule_expiry``); tests/ratelimit/test_memory_storage.py fails if a new
``limits`` release renames it.
"""

from __future__ import annotations

import bisect

from limits.aio.storage import memory as _library

__all__ = ["SWEEP_SECONDS", "SweptMemoryStorage"]

SWEEP_SECONDS = 10.0


class SweptMemoryStorage(_library.MemoryStorage):
    def __init__(self, *, sweep_every: float = SWEEP_SECONDS) -> None:
        super().__init__()
        self._sweep_every = sweep_every
        self._swept = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # the library's private name
        now: float = _library.time.time()  # type: ignore[attr-defined]  # its clock (tests replace it)
        if now - self._swept >= self._sweep_every:
            self._swept = now
            self.sweep(now)

    def sweep(self, now: float) -> int:
        """Drop expired entries and empty keys now; the number of keys dropped."""
        dropped = 0
        for key in list(self.events):
            lock = self.locks.get(key)
            if lock is not None and lock.locked():
                continue  # a hit is under way on this key; next sweep
            events = self.events[key]
            # Newest first, so the entries still alive are a prefix of the list.
            alive = bisect.bisect_left(events, -now, key=lambda entry: -entry.expiry)
            del events[alive:]
            if not events:
                del self.events[key]
                self.locks.pop(key, None)
                dropped += 1
        for key, until in list(self.expirations.items()):
            if until <= now:
                self.storage.pop(key, None)
                del self.expirations[key]
                self.locks.pop(key, None)
        return dropped
