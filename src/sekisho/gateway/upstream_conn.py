"""One HTTP/1.1 connection to a plain-http upstream: an ``asyncio.Protocol`` around httptools'
response parser (llhttp), one exchange at a time: :meth:`begin`, write the request,
:meth:`response_head`, then :meth:`readany` until ``b""``. What llhttp cannot decide alone:

- a response to ``HEAD`` ends at its headers whatever ``Content-Length`` says (each exchange
  gets a fresh parser; a byte after such a head makes the connection unusable);
- interim responses (``100``, ``103``, other 1xx) are skipped; ``101`` is an error here;
- the status line and headers may hold at most :data:`MAX_HEAD` bytes;
- a body without ``Content-Length`` or chunked framing ends when the upstream closes;
- a byte nobody asked for (after a complete response, or while idle) makes the connection
  unusable: its framing can no longer be trusted.

Flow control both ways: reading pauses while more than :data:`HIGH_WATER` bytes of body wait
for the consumer; :meth:`drain` waits while the write buffer is full. The read timeout counts
silence only from :meth:`arm` (the request is sent) and while reading is not paused. Failures
are raised to the consumer as the exception that caused them (``ConnectionError``,
``TimeoutError``, ``httptools.HttpParserError``); the proxy translates them.
"""

from __future__ import annotations

import asyncio
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

#: Largest status line plus headers (interim responses included) accepted from an upstream.
MAX_HEAD = 64 * 1024
#: Response body bytes buffered for a slow consumer before reading from the upstream pauses.
HIGH_WATER = 256 * 1024


class HeadTooLarge(HttpParserError):
    """The upstream's status line and headers exceed :data:`MAX_HEAD`."""


class UnexpectedData(HttpParserError):
    """The upstream sent a message nobody asked for."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection; holds the state of the exchange under way."""

    transport: asyncio.Transport  # set by connection_made, before the pool hands it out

    __slots__ = (
        "_armed", "_buffered", "_chunks", "_done", "_drain_waiter", "_error", "_fields_size",
        "_head_done", "_head_request", "_head_size", "_keep_alive", "_last_read", "_loop",
        "_lost", "_parser", "_read_timeout", "_reading_paused", "_reusable", "_timer",
        "_waiter", "_writing_paused", "headers", "idle_since", "received", "status", "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._parser: HttpResponseParser | None = None
        self._lost = False
        self._reusable = True
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0
        self._reset(head_request=False)

    def _reset(self, *, head_request: bool) -> None:
        self._head_request = head_request
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._head_done = False
        self._done = False
        self._keep_alive = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._head_size = 0
        self._fields_size = 0
        self._error: BaseException | None = None
        self._reading_paused = False
        self._armed = False
        self._last_read = 0.0
        #: Whether any byte of the current response arrived (a retry is safe only without).
        self.received = False

    # --- what the proxy calls ----------------------------------------------------------------

    def begin(self, *, head_request: bool) -> None:
        """Start an exchange; ``head_request`` for a ``HEAD`` (its response has no body)."""
        self._reset(head_request=head_request)
        self._parser = HttpResponseParser(self)

    def write(self, *data: bytes) -> None:
        if len(data) == 1:
            self.transport.write(data[0])
        else:
            self.transport.writelines(data)

    async def drain(self) -> None:
        """Wait while the upstream does not take what was written."""
        if self._writing_paused and not self._lost:
            waiter = self._drain_waiter = self._loop.create_future()
            await waiter
        if self._lost:
            raise ConnectionResetError("upstream closed the connection")

    def arm(self) -> None:
        """The request is sent: from now on ``read_timeout`` of silence fails the exchange."""
        self._armed = True
        self._last_read = now = self._loop.time()
        if self._timer is None and not self._done:
            self._timer = self._loop.call_at(now + self._read_timeout, self._check_silence)

    async def response_head(self) -> None:
        """Wait for the final status and headers (``status``, ``headers``)."""
        while not self._head_done:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def readany(self) -> bytes:
        """The body bytes received so far, waiting for some; ``b""`` at the end."""
        while True:
            chunks = self._chunks
            if chunks:
                self._chunks = []
                self._buffered = 0
                if self._reading_paused and not self._lost:
                    self._reading_paused = False
                    self._last_read = self._loop.time()
                    self.transport.resume_reading()
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if self._done:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()

    def at_eof(self) -> bool:
        return self._done and not self._chunks

    def fail(self, exc: BaseException) -> None:
        """End the exchange with ``exc`` (unless the response is complete) and drop the
        connection: used when sending the request body fails or is cancelled."""
        if not self._done:
            self._set_error(exc)
        self.close()

    def close(self) -> None:
        """Drop the connection now; it is never reused."""
        self._reusable = False
        self.transport.abort()

    def finish(self) -> bool:
        """End the exchange; whether the connection can carry another one."""
        self._parser = None
        self._chunks = []
        self._armed = False
        clean = (
            self._done and self._keep_alive and self._reusable and not self._lost
            and self._error is None
        )
        if not clean:
            self.close()
        return clean

    def usable(self, now: float, keepalive: float) -> bool:
        """Whether an idle connection may be handed out at ``now``."""
        return (
            self._reusable and not self._lost and now - self.idle_since < keepalive
            and not self.transport.is_closing()
        )

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._reusable = False
        if self._parser is not None and not self._done:
            if self._head_done and self._ends_at_close():
                self._done = True
            else:
                self._set_error(exc or ConnectionResetError("upstream closed the connection"))
        self._wake()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def eof_received(self) -> bool | None:
        return None  # no half-open connections: the transport closes, connection_lost follows

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self._done:
            self.close()  # nothing was asked for: the framing cannot be trusted any more
            return
        self.received = True
        self._last_read = self._loop.time()
        try:
            parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade) as exc:
            self.fail(exc)
            return
        if not self._head_done:
            self._head_size += len(data)
            if self._head_size > MAX_HEAD:
                self.fail(HeadTooLarge(f"response head over {MAX_HEAD} bytes"))

    # --- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done:
            raise UnexpectedData("a second response")

    def on_header(self, name: bytes, value: bytes) -> None:
        # data_received counts heads spread over several reads; this, one read's worth.
        self._fields_size += len(name) + len(value) + 4
        if self._fields_size > MAX_HEAD:
            raise HeadTooLarge(f"response head over {MAX_HEAD} bytes")
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = cast(HttpResponseParser, self._parser)
        status = parser.get_status_code()
        if status < 200:
            return  # interim: llhttp completes it without a body, the final one follows
        self.status = status
        self._keep_alive = parser.should_keep_alive()
        self._head_done = True
        if self._head_request:
            self._done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._done:  # bytes after a HEAD response's headers
            self._reusable = False
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self._head_done:
            self.headers = []  # an interim response's
            return
        self._done = True
        self._wake()

    # --- internals ---------------------------------------------------------------------------

    def _ends_at_close(self) -> bool:
        """Whether the body is delimited by the connection closing (RFC 9112 §6.3 item 8)."""
        names = {name.lower(): value for name, value in self.headers}
        coding = names.get(b"transfer-encoding", b"").rpartition(b",")[2].strip().lower()
        return b"content-length" not in names and coding != b"chunked"

    def _set_error(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._reusable = False
        self._wake()

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        await waiter  # a cancelled waiter left behind is harmless: _wake skips done ones

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_silence(self) -> None:
        self._timer = None
        if not self._armed or self._done or self._error is not None or self._lost:
            return
        now = self._loop.time()
        deadline = (now if self._reading_paused else self._last_read) + self._read_timeout
        if deadline > now:
            self._timer = self._loop.call_at(deadline, self._check_silence)
            return
        self.fail(TimeoutError(f"no data from the upstream for {self._read_timeout} s"))
