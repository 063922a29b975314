"""The lean HTTP/1.1 client the proxy uses for plain-http upstreams.

aiohttp's client costs 170–200 µs of CPU per proxied GET; this one, an ``asyncio.Protocol``
with httptools' parser (``upstream_conn``) over a pool of keep-alive connections
(``upstream_pool``), costs 30–40 µs. aiohttp stays for https upstreams (and targets with
user info) and for WebSocket.

One exchange: the request head is written from the header list the proxy's
:class:`~sekisho.gateway.headers.HeaderPolicy` built (names and values as they are, text
encoded as UTF-8 like aiohttp does; a ``Host`` from the target when the list has none); a body
follows as it arrives from the client, with its ``Content-Length`` when the client gave one,
chunked otherwise, each piece written only once the upstream took the one before. The read
timeout starts when the body is sent, so a slow upload is not cut short.

Retry rule: a request that fails on a *reused* connection before any byte of the response
arrived (the upstream closed the idle connection as the request went out) is sent once more on
a new connection, when it has no body and its method is idempotent (RFC 9110 §9.2.2). Anything
else fails: the proxy answers 502 (504 for timeouts).

Errors reach the caller as they happened: ``ConnectionError`` / ``OSError`` (refused, reset,
closed early), ``TimeoutError`` (connect or pool wait past ``connect_timeout``, silence past
``read_timeout``), ``httptools.HttpParserError`` (not HTTP, head too large), ``ValueError``
(CR or LF in a header). The proxy translates them to ``UpstreamUnavailable`` /
``UpstreamTimeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Sequence
from typing import Protocol
from urllib.parse import urlsplit

from sekisho.config import UpstreamSettings
from sekisho.gateway.headers import Headers
from sekisho.gateway.upstream_conn import UpstreamConnection
from sekisho.gateway.upstream_pool import ConnectionPool

#: Methods a request may be repeated with (RFC 9110 §9.2.2); only without a body here.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class BodyStream(Protocol):
    async def readany(self) -> bytes: ...

    def at_eof(self) -> bool: ...


class UpstreamResponse(Protocol):
    """What the proxy relays from: aiohttp's ``ClientResponse`` and :class:`LeanResponse`."""

    @property
    def status(self) -> int: ...

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]: ...

    @property
    def content(self) -> BodyStream: ...

    def close(self) -> None: ...

    def release(self) -> object: ...


def is_lean_target(target: str) -> bool:
    """Whether the lean client serves ``target``: plain http, no user info."""
    parts = urlsplit(target)
    return parts.scheme == "http" and parts.username is None


def request_head(
    method: str, path: str, headers: Headers, *, default_host: str, has_body: bool
) -> tuple[bytes, bool]:
    """The request line and header block, and whether the body goes chunked.

    Raises ``ValueError`` when a name or value would break the message (CR or LF)."""
    lines = [f"{method} {path} HTTP/1.1\r\n"]
    has_host = sized = False
    for name, value in headers:
        if name == "host":
            has_host = True
        elif name == "content-length":
            sized = True
        lines.append(f"{name}: {value}\r\n")
    if not has_host:
        lines.append(f"host: {default_host}\r\n")
    chunked = has_body and not sized
    if chunked:
        lines.append("transfer-encoding: chunked\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise ValueError("CR or LF in a request header")
    return text.encode("utf-8"), chunked


class LeanResponse:
    """A response whose head is in; the body is read with ``content.readany()``."""

    __slots__ = ("_conn", "_pool", "_sender", "raw_headers", "status")

    def __init__(
        self, pool: ConnectionPool, conn: UpstreamConnection, sender: asyncio.Task[None] | None
    ) -> None:
        self._pool = pool
        self._conn = conn
        self._sender = sender
        self.status = conn.status
        self.raw_headers = conn.headers

    @property
    def content(self) -> LeanResponse:
        return self

    async def readany(self) -> bytes:
        return await self._conn.readany()

    def at_eof(self) -> bool:
        return self._conn.at_eof()

    def close(self) -> None:
        """Drop the upstream connection (the client left): it is never reused."""
        self._conn.close()

    def release(self) -> None:
        """Hand the connection back: pooled when the exchange completed cleanly."""
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()  # the upstream answered without taking the whole body
            self._conn.close()
        self._pool.release(self._conn)


class HttpUpstream:
    """Requests to one plain-http upstream over its pool of keep-alive connections."""

    __slots__ = ("_default_host", "pool")

    def __init__(
        self,
        upstream: UpstreamSettings,
        *,
        keepalive: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        parts = urlsplit(upstream.target)
        if parts.hostname is None:
            raise ValueError("upstream target has no host")
        self._default_host = parts.netloc.rpartition("@")[2]
        self.pool = ConnectionPool(
            parts.hostname, parts.port or 80, size=upstream.pool_size,
            connect_timeout=upstream.connect_timeout, read_timeout=upstream.read_timeout,
            keepalive=keepalive, clock=clock,
        )

    async def request(
        self, method: str, path: str, headers: Headers, body: AsyncIterable[bytes] | None
    ) -> LeanResponse:
        """Send one request (``path`` in origin form) and wait for the response head."""
        head, chunked = request_head(
            method, path, headers, default_host=self._default_host, has_body=body is not None
        )
        retry = body is None and method in IDEMPOTENT
        pool = self.pool
        conn, reused = await pool.acquire()
        while True:
            sender = _send(conn, method == "HEAD", head, body, chunked)
            try:
                await conn.response_head()
            except BaseException as exc:
                if sender is not None:
                    sender.cancel()
                pool.release(conn)  # not complete, so closed and dropped
                if retry and reused and not conn.received and isinstance(exc, ConnectionError):
                    retry = False
                    conn, reused = await pool.acquire(fresh=True)
                    continue
                raise
            return LeanResponse(pool, conn, sender)

    def close(self) -> None:
        self.pool.close()


def _send(
    conn: UpstreamConnection,
    head_request: bool,
    head: bytes,
    body: AsyncIterable[bytes] | None,
    chunked: bool,
) -> asyncio.Task[None] | None:
    conn.begin(head_request=head_request)
    conn.write(head)
    if body is None:
        conn.arm()
        return None
    # The body goes on in its own task: an upstream may answer (and stream) before taking it all.
    return asyncio.ensure_future(_send_body(conn, body, chunked))


async def _send_body(conn: UpstreamConnection, body: AsyncIterable[bytes], chunked: bool) -> None:
    try:
        async for chunk in body:
            if chunked:
                conn.write(b"%x\r\n" % len(chunk), chunk, b"\r\n")
            else:
                conn.write(chunk)
            await conn.drain()
        if chunked:
            conn.write(b"0\r\n\r\n")
        conn.arm()
    except asyncio.CancelledError:
        conn.close()
        raise
    except Exception as exc:  # the client left, or the upstream did; the exchange ends here
        conn.fail(exc)
