"""The lean HTTP/1.1 upstream client (gateway/upstream_http.py, upstream_conn.py,
upstream_pool.py) through :class:`UpstreamProxy`, against raw asyncio servers written here for
the odd cases: what reaches the ASGI ``send``, what the upstream saw, and how many connections
it accepted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from sekisho.config import Settings, validate_settings
from sekisho.gateway.proxy import UpstreamProxy
from sekisho.gateway.routing import Route, Router
from sekisho.gateway.upstream_http import HttpUpstream, request_head

Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Request:
    head: bytes
    body: bytes
    connection: int

    @property
    def method(self) -> bytes:
        return self.head.split(b" ", 1)[0]

    def header(self, name: bytes) -> list[bytes]:
        lines = self.head.split(b"\r\n")[1:]
        return [v.strip() for n, _, v in (ln.partition(b":") for ln in lines)
                if n.lower() == name]


@dataclass
class RawServer:
    """An asyncio TCP server running ``handler`` per connection; counts what it accepted."""

    handler: Handler
    accepted: int = 0
    requests: list[Request] = field(default_factory=list)
    closed_by_peer: int = 0
    port: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)

    async def read_request(self, reader: asyncio.StreamReader) -> Request | None:
        """One request (head and body), or None when the gateway closed the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_peer += 1
            return None
        request = Request(head, b"", self.accepted)
        if length := request.header(b"content-length"):
            request.body = await reader.readexactly(int(length[0]))
        elif request.header(b"transfer-encoding") == [b"chunked"]:
            request.body = await _read_chunked(reader)
        self.requests.append(request)
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.tasks[asyncio.current_task()] = writer  # type: ignore[index]
        try:
            await self.handler(self, reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = b""
    while size := int(await reader.readuntil(b"\r\n"), 16):
        out += (await reader.readexactly(size + 2))[:-2]
    await reader.readuntil(b"\r\n")  # no trailers from the gateway
    return out


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in server.tasks.values():
            writer.transport.abort()
        # Let the handlers end on their own: a cancelled one is logged as an error by asyncio.
        if server.tasks:
            await asyncio.wait(server.tasks, timeout=5)


def answer(*responses: bytes, then_close: bool = False) -> Handler:
    """A keep-alive server: the n-th request on a connection gets ``responses[n]`` (the last
    one over and over); ``then_close`` closes the connection after the last one."""

    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        n = 0
        while await srv.read_request(reader) is not None:
            writer.write(responses[min(n, len(responses) - 1)])
            await writer.drain()
            n += 1
            if then_close and n >= len(responses):
                return
        srv.event.set()

    return handler


@dataclass
class Reply:
    status: int | None
    headers: dict[bytes, list[bytes]]
    body: bytes
    complete: bool


def settings(port: int, **upstream: Any) -> Settings:
    upstream = {"name": "a", "target": f"http://127.0.0.1:{port}", "read_timeout": 5,
                "connect_timeout": 5, **upstream}
    return validate_settings({"server": {"public_origins": ["http://gw.test"]},
                              "upstreams": [upstream]})


@contextlib.asynccontextmanager
async def gateway(port: int, **upstream: Any) -> AsyncIterator[Gateway]:
    config = settings(port, **upstream)
    proxy = UpstreamProxy(config.upstreams, identity=config.identity,
                          gateway_cookies=["sekisho_session"])
    await proxy.start()
    try:
        yield Gateway(proxy, Router(config.upstreams))
    finally:
        await proxy.close()


@dataclass
class Gateway:
    """Calls ``UpstreamProxy.http`` as uvicorn would, recording the ASGI messages."""

    proxy: UpstreamProxy
    router: Router

    @property
    def client(self) -> HttpUpstream:
        client = self.proxy.client(self.route("/").upstream)
        assert client is not None
        return client

    def route(self, path: str) -> Route:
        route = self.router.match("gw.test", path)
        assert route is not None
        return route

    async def request(
        self, method: str = "GET", path: str = "/x", *, body: list[bytes] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None, leave_after_first_chunk: bool = False,
        leave_during_upload: bool = False,
    ) -> Reply:
        messages = [{"type": "http.request", "body": b, "more_body": i < len(body) - 1}
                    for i, b in enumerate(body or [])]
        if leave_during_upload:
            messages = messages[:1]
        gone = asyncio.Event()
        if leave_during_upload:
            gone.set()
        head = [(b"host", b"gw.test"), *(headers or [])]
        if body is not None and not any(n == b"content-length" for n, _ in head):
            head.append((b"transfer-encoding", b"chunked"))
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if leave_after_first_chunk and message["type"] == "http.response.body":
                gone.set()

        scope = {"type": "http", "http_version": "1.1", "method": method, "scheme": "http",
                 "path": path, "raw_path": path.encode(), "query_string": b"", "headers": head,
                 "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
        await self.proxy.http(scope, receive, send, route=self.route(path), identity=None,
                              client_ip="127.0.0.1")
        return _reply(sent)


def _reply(sent: list[dict[str, Any]]) -> Reply:
    if not sent:
        return Reply(None, {}, b"", False)
    start, *bodies = sent
    headers: dict[bytes, list[bytes]] = {}
    for name, value in start["headers"]:
        headers.setdefault(name, []).append(value)
    complete = bool(bodies) and not bodies[-1].get("more_body", False)
    return Reply(start["status"], headers, b"".join(m["body"] for m in bodies), complete)


# --- keep-alive and framing ------------------------------------------------------------------


async def test_connections_are_reused() -> None:
    async with serve(answer(OK)) as srv, gateway(srv.port) as gw:
        for _ in range(5):
            reply = await gw.request()
            assert (reply.status, reply.body, reply.complete) == (200, b"ok", True)
    assert len(srv.requests) == 5
    assert srv.accepted == 1


async def test_request_head_carries_the_policy_headers() -> None:
    """PX-01/PX-04 headers from the shared HeaderPolicy reach the upstream as they are."""
    async with serve(answer(OK)) as srv, gateway(srv.port) as gw:
        await gw.request(headers=[(b"x-remote-user", b"admin"), (b"x-app", b"1"),
                                  (b"cookie", b"sekisho_session=s; app=2")])
    (seen,) = srv.requests
    assert seen.head.startswith(b"GET /x HTTP/1.1\r\n")
    assert seen.header(b"host") == [b"gw.test"]
    assert seen.header(b"x-forwarded-for") == [b"127.0.0.1"]
    assert seen.header(b"x-app") == [b"1"]
    assert seen.header(b"cookie") == [b"app=2"]
    assert seen.header(b"x-remote-user") == []


def test_request_head_adds_host_and_refuses_line_breaks() -> None:
    """A Host from the target when the list has none; PX-06: a CR/LF that got this far is
    refused, never written."""
    head, chunked = request_head("GET", "/", [("x-a", "1")], default_host="up:81",
                                 has_body=True)
    assert head == b"GET / HTTP/1.1\r\nx-a: 1\r\nhost: up:81\r\ntransfer-encoding: chunked\r\n\r\n"
    assert chunked
    with pytest.raises(ValueError, match="CR or LF"):
        request_head("GET", "/", [("x-a", "1\r\nRemote-User: admin")], default_host="up",
                     has_body=False)


async def test_head_response_has_no_body_despite_content_length() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    async with serve(answer(head, OK)) as srv, gateway(srv.port) as gw:
        reply = await gw.request("HEAD")
        assert (reply.status, reply.body, reply.complete) == (200, b"", True)
        assert reply.headers[b"content-length"] == [b"5000"]
        assert (await gw.request()).body == b"ok"
    assert srv.accepted == 1


async def test_interim_responses_are_skipped() -> None:
    interim = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
    async with serve(answer(interim + OK)) as srv, gateway(srv.port) as gw:
        for _ in range(2):
            reply = await gw.request()
            assert (reply.status, reply.body) == (200, b"ok")
            assert b"link" not in reply.headers
    assert srv.accepted == 1


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses(status: int) -> None:
    response = f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\nETag: \"e\"\r\n\r\n".encode()
    async with serve(answer(response, OK)) as srv, gateway(srv.port) as gw:
        reply = await gw.request()
        assert (reply.status, reply.body, reply.complete) == (status, b"", True)
        assert (await gw.request()).body == b"ok"
    assert srv.accepted == 1


async def test_chunked_body_with_trailers() -> None:
    response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\n\r\n")
    async with serve(answer(response, OK)) as srv, gateway(srv.port) as gw:
        reply = await gw.request()
        assert (reply.body, reply.complete) == (b"hello world", True)
        assert b"transfer-encoding" not in reply.headers
        assert b"trailer" not in reply.headers
        assert (await gw.request()).body == b"ok"
    assert srv.accepted == 1


async def test_content_length_body_in_pieces() -> None:
    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while await srv.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n")
            for _ in range(3):
                writer.write(b"z" * 100_000)
                await writer.drain()
                await asyncio.sleep(0.01)

    async with serve(handler) as srv, gateway(srv.port) as gw:
        reply = await gw.request()
        assert (len(reply.body), reply.complete) == (300_000, True)
        assert (await gw.request()).complete
    assert srv.accepted == 1


async def test_close_delimited_body() -> None:
    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for piece in (b"first ", b"second"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)

    async with serve(handler) as srv, gateway(srv.port) as gw:
        for _ in range(2):
            reply = await gw.request()
            assert (reply.status, reply.body, reply.complete) == (200, b"first second", True)
    assert srv.accepted == 2


@pytest.mark.parametrize("response", [
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
], ids=["http/1.0", "connection-close"])
async def test_connection_not_reused_when_upstream_says_so(response: bytes) -> None:
    """The server keeps the connection open, but said it would not: a new one each time."""
    async with serve(answer(response)) as srv, gateway(srv.port) as gw:
        for _ in range(3):
            reply = await gw.request()
            assert (reply.status, reply.body, reply.complete) == (200, b"ok", True)
    assert srv.accepted == 3


async def test_http10_close_delimited() -> None:
    async with serve(answer(b"HTTP/1.0 200 OK\r\n\r\nold", then_close=True)) as srv, \
            gateway(srv.port) as gw:
        reply = await gw.request()
    assert (reply.status, reply.body, reply.complete) == (200, b"old", True)


async def test_http10_keep_alive_is_reused() -> None:
    response = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
    async with serve(answer(response)) as srv, gateway(srv.port) as gw:
        for _ in range(3):
            assert (await gw.request()).body == b"ok"
    assert srv.accepted == 1


async def test_response_headers_share_the_policy() -> None:
    """PX-07: hop-by-hop and Connection-named fields, Server, Date and the gateway's
    Set-Cookie are dropped exactly as for aiohttp responses."""
    response = (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
                b"Keep-Alive: timeout=5\r\nServer: up\r\nDate: today\r\nX-App: one\r\n"
                b"X-App: two\r\nSet-Cookie: sekisho_session=evil\r\nSet-Cookie: app=1\r\n"
                b"Content-Length: 2\r\n\r\nok")
    async with serve(answer(response)) as srv, gateway(srv.port) as gw:
        reply = await gw.request()
    assert reply.headers == {b"x-app": [b"one", b"two"], b"set-cookie": [b"app=1"],
                             b"content-length": [b"2"]}
