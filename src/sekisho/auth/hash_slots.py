"""Admission to the Argon2 threads, with a lane that an attack cannot fill.

At most ``workers`` hashes run at once (each holds its Argon2 memory while it runs). Callers
beyond that wait in one of two lanes, each bounded by ``queue``:

``priority``  attempts from a browser known for that account (a valid device cookie), and
              password changes by a signed-in user;
``normal``    everything else, which includes all of an attacker's unknown-device traffic.

A freed thread always goes to the oldest priority waiter first. So while a credential-stuffing
run keeps the normal lane full, a known-device login waits for at most the hashes already
running, not for the attackers' queue (issue 3: the real user keeps a way in; RL-07). A full
lane fails at once with :class:`HasherBusy` instead of queueing without bound.

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
        self, *, workers: int, queue: int, retry_after: Callable[[int], int]
    ) -> None:
        self.workers = workers
        self.queue = queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="argon2")
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._running = 0
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @property
    def pending(self) -> int:
        """Hashes running or waiting now."""
        with self._lock:
            return self._running + sum(len(lane) for lane in self._waiting)

    async def run(self, fn: Callable[..., T], *args: object, priority: bool) -> T:
        lane = PRIORITY if priority else NORMAL
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._running < self.workers and not any(self._waiting):
                self._running += 1
                ticket = None
            elif len(self._waiting[lane]) >= self.queue:
                raise HasherBusy(retry_after=self._retry_after(
                    self._running + sum(len(q) for q in self._waiting)))
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
            self._finished(loop)
            raise
        # The slot is handed on when the thread finishes, not when the caller stops waiting:
        # a cancelled request must not free a slot while its hash is still running.
        future.add_done_callback(lambda _f: self._from_thread(loop))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._finished, loop)
        except RuntimeError:  # the loop is closed (shutdown): nobody is left waiting on it
            with self._lock:
                self._running -= 1

    def _finished(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            for lane in self._waiting:
                while lane:
                    ticket = lane.popleft()
                    if not ticket.done():
                        ticket.set_result(None)  # the slot passes on: _running unchanged
                        return
            self._running -= 1

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
        self._finished(loop)
