"""The keep-alive connections to one plain-http upstream.

At most ``size`` connections are open at once (in use and idle together, the upstream's
``pool_size``). A request takes the most recently used idle connection (so the oldest expire)
that is still usable: not closed or half-closed by the upstream, no stray bytes received, idle
for less than ``keepalive`` seconds. Idle connections past ``keepalive`` are closed by a timer,
below the 5 s idle timeout of uvicorn and Node, so the pool rarely hands out one the upstream
is about to close (the proxy retries the rare race; see ``upstream_http``).

When every connection is busy a request waits for one; waiting and connecting together are
bounded by ``connect_timeout`` (``TimeoutError``, which the proxy answers with 504).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from sekisho.gateway.upstream_conn import UpstreamConnection

_SLACK = 0.05


class ConnectionPool:
    __slots__ = (
        "_clock", "_closed", "_connect_timeout", "_host", "_idle", "_keepalive", "_loop", "_open",
        "_port", "_read_timeout", "_size", "_sweeper", "_waiters",
    )

    def __init__(
        self,
        host: str,
        port: int,
        *,
        size: int,
        connect_timeout: float,
        read_timeout: float,
        keepalive: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        #: Measures idle time (the loop's clock unless a test passes its own).
        self._clock = clock or self._loop.time
        self._host = host
        self._port = port
        self._size = size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive = keepalive
        self._idle: deque[UpstreamConnection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def acquire(self, *, fresh: bool = False) -> tuple[UpstreamConnection, bool]:
        """A connection and whether it was reused; ``fresh`` skips the idle ones."""
        deadline: float | None = None
        while True:
            if self._closed:
                raise ConnectionAbortedError("the gateway is shutting down")
            if self._idle and not fresh:
                now = self._clock()
                idle = self._idle
                while idle:
                    conn = idle.pop()
                    if conn.usable(now, self._keepalive):
                        return conn, True
                    self._discard(conn)
            if self._open < self._size:
                break
            if fresh and self._idle:
                self._discard(self._idle.popleft())  # make room for a new connection
                continue
            if deadline is None:
                deadline = self._loop.time() + self._connect_timeout
            await self._wait_for_slot(deadline)
        self._open += 1
        if deadline is None:
            deadline = self._loop.time() + self._connect_timeout
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await self._loop.create_connection(
                    self._new_connection, self._host, self._port
                )
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        return conn, False

    def release(self, conn: UpstreamConnection) -> None:
        """Take back ``conn`` after an exchange: kept idle if it can carry another."""
        if conn.finish() and not self._closed:
            conn.idle_since = self._clock()
            self._idle.append(conn)
            if self._sweeper is None:
                self._schedule_sweep()
            self._wake_one()
        else:
            self._discard(conn)

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._discard(self._idle.pop())
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # wakes to find the pool closed

    def _new_connection(self) -> UpstreamConnection:
        return UpstreamConnection(self._loop, self._read_timeout)

    def _discard(self, conn: UpstreamConnection) -> None:
        conn.close()
        self._open -= 1
        self._wake_one()

    async def _wait_for_slot(self, deadline: float) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._wake_one()  # pass on the turn this request will not use
            raise

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _schedule_sweep(self) -> None:
        if self._idle:
            delay = self._idle[0].idle_since + self._keepalive - self._clock()
            self._sweeper = self._loop.call_later(max(delay, 0.0), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self._clock()
        idle = self._idle
        # Timers may fire a little early: what expires within the slack goes now.
        while idle and (
            idle[0].idle_since + self._keepalive <= now + _SLACK
            or not idle[0].usable(now, self._keepalive)
        ):
            self._discard(idle.popleft())
        # Connections the upstream closed further in are dropped when a request meets them.
        self._schedule_sweep()
