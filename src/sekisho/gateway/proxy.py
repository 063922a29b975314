"""The reverse proxy: one long-lived upstream client per upstream, bodies streamed both ways.

Plain-http upstreams are served by the lean HTTP/1.1 client (``upstream_http``: asyncio
Protocol, httptools, a keep-alive pool); https upstreams, targets with user info and every
WebSocket go through one long-lived aiohttp session per upstream. Both hand back a response
with the same interface (:class:`~sekisho.gateway.upstream_http.UpstreamResponse`), and both
get their request headers from, and give their response headers to, the same
:class:`~sekisho.gateway.headers.HeaderPolicy`.

Nothing is buffered: the request body goes from ``receive`` to the client as an async iterator
(each piece is written once the upstream socket took the previous one, and uvicorn stops
reading the client while its buffer is full), and the response goes back chunk by chunk as it
is read (``send`` waits for the client socket to drain; reading from the upstream pauses while
it does). Memory per request is a few socket buffers whatever the size of the bodies.

What is not done on purpose: redirects are not followed and ``Location`` is passed as the
upstream wrote it (the upstream sees the public ``Host``, so its absolute URLs are already
right); bodies are not decompressed (``Content-Encoding`` and ``Content-Length`` pass as they
are); no cookie jar is kept.

Failures before the response starts get a gateway page: 504 when the upstream does not
connect within ``connect_timeout`` or goes quiet for ``read_timeout``, 502 when it refuses,
resets or answers garbage. After the response has started there is no honest status left to
send, so the client connection is dropped and the client sees a truncated response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

import aiohttp
from httptools import HttpParserError, HttpParserUpgrade
from starlette.types import Receive, Scope, Send
from yarl import URL

from sekisho.config import IdentitySettings, UpstreamSettings
from sekisho.errors import BadRequest, ProxyError, UpstreamTimeout, UpstreamUnavailable
from sekisho.gateway.clientip import ClientIP
from sekisho.gateway.errorpages import send_error
from sekisho.gateway.headers import HeaderPolicy, Headers
from sekisho.gateway.identity import Identity
from sekisho.gateway.routing import Route, raw_path
from sekisho.gateway.upstream_http import HttpUpstream, UpstreamResponse, is_lean_target
from sekisho.gateway.websocket import relay_websocket

log = logging.getLogger("sekisho.gateway.proxy")

# aiohttp adds these when absent; the upstream must see the client's, or none.
_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_NO_BODY_STATUS = frozenset({204, 304})
# What an upstream failure looks like from either client.
_UPSTREAM_ERRORS = (aiohttp.ClientError, OSError, ValueError, HttpParserError, HttpParserUpgrade)


class RequestBody:
    """The client's request body as an async iterator for aiohttp, one ASGI message at a time.

    ``client_gone`` tells a failed upload caused by the client leaving from an upstream fault.
    """

    __slots__ = ("_receive", "client_gone", "done")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.done = False
        self.client_gone = False

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        while not self.done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ConnectionAbortedError("client disconnected during the upload")
            self.done = not message.get("more_body", False)
            chunk: bytes = message.get("body", b"")
            if chunk:
                return chunk
        raise StopAsyncIteration


class UpstreamProxy:
    """Forwards a routed, authorised request. Holds no per-request state."""

    def __init__(
        self,
        upstreams: Sequence[UpstreamSettings] = (),
        *,
        identity: IdentitySettings,
        gateway_cookies: Iterable[str] = (),
        trusted_proxies: Sequence[str] = (),
        strip_authorization: bool = False,
        keepalive_timeout: float = 4.0,
    ) -> None:
        self._upstreams = list(upstreams)
        self.policy = HeaderPolicy(
            identity, gateway_cookies=gateway_cookies, strip_authorization=strip_authorization
        )
        self._client_ip = ClientIP(trusted_proxies)
        # Below the idle timeout of common upstream servers (uvicorn and Node 5 s), so the pool
        # does not hand out a connection the upstream is about to close.
        self._keepalive_timeout = keepalive_timeout
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._clients: dict[str, HttpUpstream | None] = {}

    async def start(self) -> None:
        """Create the clients now (in the running loop) rather than on first use."""
        for upstream in self._upstreams:
            self.session(upstream)
            self.client(upstream)

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            if client is not None:
                client.close()
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    def client(self, upstream: UpstreamSettings) -> HttpUpstream | None:
        """The lean client for a plain-http upstream; ``None`` where aiohttp serves."""
        try:
            return self._clients[upstream.name]
        except KeyError:
            client = None
            if is_lean_target(upstream.target):
                client = HttpUpstream(upstream, keepalive=self._keepalive_timeout)
            self._clients[upstream.name] = client
            return client

    def session(self, upstream: UpstreamSettings) -> aiohttp.ClientSession:
        session = self._sessions.get(upstream.name)
        if session is None or session.closed:
            session = self._sessions[upstream.name] = self._new_session(upstream)
        return session

    def _new_session(self, upstream: UpstreamSettings) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=upstream.pool_size, limit_per_host=0, keepalive_timeout=self._keepalive_timeout
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=upstream.connect_timeout, sock_read=upstream.read_timeout
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            requote_redirect_url=False,
            trust_env=False,
        )

    def request_headers(
        self, scope: Scope, *, identity: Identity | None, client_ip: str, host: str | None
    ) -> tuple[Headers, bool]:
        """The upstream request headers for ``scope`` and whether a body follows."""
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        trusted = False
        if self._client_ip.has_trusted:
            client = scope.get("client")
            trusted = self._client_ip.is_trusted(client[0] if client else None)
        return self.policy.request(
            scope["headers"], identity=identity, client_ip=client_ip, scheme=scheme,
            trusted_peer=trusted, host=host,
        )

    async def http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        route: Route,
        identity: Identity | None,
        client_ip: str,
        host: str | None = None,
    ) -> None:
        """Proxy one HTTP request. ``host`` defaults to the request's (guarded) ``Host``."""
        try:
            url = route.target(raw_path(scope), scope.get("query_string", b""))
        except BadRequest:
            await send_error(send, 400)
            return
        headers, has_body = self.request_headers(
            scope, identity=identity, client_ip=client_ip, host=host
        )
        body = RequestBody(receive) if has_body else None
        try:
            response = await self._open(route, scope["method"], url, headers, body)
        except ProxyError as exc:
            if body is None or not body.client_gone:
                log.warning("upstream %s: %s", route.name, exc.__cause__.__class__.__name__)
                await send_error(send, exc.status)
            return
        try:
            await self._relay(scope, receive, send, response, body, route)
        finally:
            response.release()

    websocket = relay_websocket

    async def _open(
        self, route: Route, method: str, url: str, headers: Headers, body: RequestBody | None
    ) -> UpstreamResponse:
        client = self.client(route.upstream)
        try:
            if client is not None:
                return await client.request(method, url[len(route.origin):], headers, body)
            return await self.session(route.upstream).request(
                method, URL(url, encoded=True), headers=headers, data=body,
                allow_redirects=False,
            )
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one
            raise UpstreamTimeout(route.name) from exc
        except _UPSTREAM_ERRORS as exc:
            raise UpstreamUnavailable(route.name) from exc

    async def _relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        response: UpstreamResponse,
        body: RequestBody | None,
        route: Route,
    ) -> None:
        await send({
            "type": "http.response.start",
            "status": response.status,
            "headers": self.policy.response(response.raw_headers),
        })
        if scope["method"] == "HEAD" or response.status in _NO_BODY_STATUS:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        stream = response.content
        watcher: asyncio.Task[None] | None = None
        try:
            while True:
                chunk = await stream.readany()
                last = not chunk or stream.at_eof()
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                if last:
                    return
                if watcher is None and (body is None or body.done):
                    # Only streaming responses pay for this: uvicorn's send() is silent after
                    # a disconnect, so without it a gone client would keep the upstream busy.
                    watcher = asyncio.ensure_future(_close_on_disconnect(receive, response))
        except _UPSTREAM_ERRORS as exc:
            if watcher is None or not watcher.done():
                log.warning("upstream %s failed mid-response: %s", route.name, type(exc).__name__)
            # Returning without the final message makes uvicorn drop the connection.
        finally:
            if watcher is not None:
                watcher.cancel()


async def _close_on_disconnect(receive: Receive, response: UpstreamResponse) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    response.close()

