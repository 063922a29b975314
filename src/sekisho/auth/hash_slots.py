"""Admission to the Argon2 threads, with a lane that an attack cannot fill.

At most ``workers`` hashes run at once (each holds its Argon2 memory while it runs). Callers
beyond that wait in one of two lanes, each bounded by ``queue``:

``priority``  attempts from a browser known for that account (a valid device cookie), and
              password changes by a signed-in user;
``normal``    everything else, which includes all of an attacker's unknown-device traffic.

A freed thread always goes to the oldest priority waiter first, and the normal lane may hold
at most ``workers - reserved`` threads (at least one): with the default ``reserved = 1`` one
thread is always free for a priority hash or about to be. So while a credential-stuffing run
keeps the normal lane full, a known-device login starts its hash at once, not after the
attackers' hashes already running nor after their queue (issue 3: the real user keeps a way
in; RL-07). A full lane fails at once with :class:`HasherBusy` instead of queueing without
bound.

Single event loop per instance at a time (one per gateway process); the completion callback
comes from the worker thread and is handed back to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sekisho.errors import HasherBusy

T = TypeVar("T")

PRIORITY, NORMAL = 0, 1


class HashSlots:
    def __init__(
        self, *, workers: int, queue: int, retry_after: Callable[[int], int], reserved: int = 1,
    ) -> None:
        self.workers = workers
        self.queue = queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="argon2")
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._caps = (workers, max(1, workers - reserved))  # threads each lane may hold
        self._running = [0, 0]  # by lane
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @property
    def pending(self) -> int:
        """Hashes running or waiting now."""
        with self._lock:
            return sum(self._running) + sum(len(lane) for lane in self._waiting)

    async def run(self, fn: Callable[..., T], *args: object, priority: bool) -> T:
        lane = PRIORITY if priority else NORMAL
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._waiting[PRIORITY] and not self._waiting[lane] and self._free(lane):
                self._running[lane] += 1
                ticket = None
            elif len(self._waiting[lane]) >= self.queue:
                raise HasherBusy(retry_after=self._retry_after(
                    sum(self._running) + sum(len(q) for q in self._waiting)))
            else:
                ticket = loop.create_future()
                self._waiting[lane].append(ticket)
        if ticket is not None:
            try:
                await ticket
            except asyncio.CancelledError:
                self._abandon(ticket, lane, loop)
                raise
        try:
            future: Future[T] = self._executor.submit(fn, *args)
        except BaseException:
            self._finished(lane)
            raise
        # The slot is handed on when the thread finishes, not when the caller stops waiting:
        # a cancelled request must not free a slot while its hash is still running.
        future.add_done_callback(lambda _f: self._from_thread(loop, lane))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _free(self, lane: int) -> bool:
        """Whether a hash of ``lane`` may start now (call with the lock held)."""
        return sum(self._running) < self.workers and self._running[lane] < self._caps[lane]

    def _from_thread(self, loop: asyncio.AbstractEventLoop, lane: int) -> None:
        try:
            loop.call_soon_threadsafe(self._finished, lane)
        except RuntimeError:  # the loop is closed (shutdown): nobody is left waiting on it
            with self._lock:
                self._running[lane] -= 1

    def _finished(self, lane: int) -> None:
        with self._lock:
            self._running[lane] -= 1
            self._dispatch()

    def _dispatch(self) -> None:
        """Start waiters while threads are free: priority first (call with the lock held)."""
        for lane in (PRIORITY, NORMAL):
            waiting = self._waiting[lane]
            while waiting and self._free(lane):
                ticket = waiting.popleft()
                if not ticket.done():
                    ticket.set_result(None)
                    self._running[lane] += 1

    def _abandon(
        self, ticket: asyncio.Future[None], lane: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        with self._lock:
            try:
                self._waiting[lane].remove(ticket)
                return  # still queued: no slot was given to it
            except ValueError:
                pass
        # Cancelled after the slot was handed over: pass it on.
        self._finished(lane)
