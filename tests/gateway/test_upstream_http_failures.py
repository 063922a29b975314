"""The lean upstream client when things go wrong: error pages, timeouts, the retry rule,
disconnects, uploads and the pool's limits, against raw asyncio servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest
from tests.gateway.test_upstream_http import OK, Handler, RawServer, answer, gateway, serve

from sekisho.gateway.upstream_conn import MAX_HEAD
from sekisho.gateway.upstream_http import HttpUpstream


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``condition()`` holds (bounded; not a timing assertion)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def _hold(srv: RawServer, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    """Read the request, then answer nothing until the gateway leaves."""
    await srv.read_request(reader)
    await reader.read()
    srv.event.set()


# --- error pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("response", [
    b"garbage\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
], ids=["not-http", "bad-status", "two-lengths", "101"])
async def test_malformed_response_is_502_and_connection_dropped(response: bytes) -> None:
    async with serve(answer(response)) as srv, gateway(srv.port) as gw:
        reply = await gw.request()
        assert reply.status == 502
        assert b"Bad Gateway" in reply.body
        await _until(lambda: srv.event.is_set(), "the gateway closed the connection")
        assert gw.client.pool.open_connections == 0


async def test_huge_response_head_is_502() -> None:
    response = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\nContent-Length: 2\r\n\r\nok"
    async with serve(answer(response)) as srv, gateway(srv.port) as gw:
        assert (await gw.request()).status == 502
        await _until(lambda: srv.event.is_set(), "the gateway closed the connection")


async def test_many_headers_under_the_limit_pass() -> None:
    fields = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(300))
    response = b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok"
    async with serve(answer(response)) as srv, gateway(srv.port) as gw:
        reply = await gw.request()
    assert (reply.status, len(reply.headers)) == (200, 301)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_port_is_502() -> None:
    async with gateway(_free_port()) as gw:
        reply = await gw.request()
    assert reply.status == 502
    assert b"127.0.0.1" not in reply.body


async def test_silent_upstream_is_504() -> None:
    async with serve(_hold) as srv, gateway(srv.port, read_timeout=0.3) as gw:
        reply = await gw.request()
        assert reply.status == 504
        assert b"Gateway Timeout" in reply.body
        await _until(lambda: srv.event.is_set(), "the gateway closed the connection")


async def test_silence_mid_body_truncates_the_response() -> None:
    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await reader.read()

    async with serve(handler) as srv, gateway(srv.port, read_timeout=0.3) as gw:
        reply = await gw.request()
    assert (reply.status, reply.body, reply.complete) == (200, b"abc", False)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops new SYNs, so connect hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


async def test_connect_timeout_is_504(full_backlog: int) -> None:
    async with gateway(full_backlog, connect_timeout=0.3) as gw:
        assert (await gw.request()).status == 504


async def test_waiting_for_a_free_connection_counts_as_connecting() -> None:
    """pool_size busy connections: the next request waits up to connect_timeout, then 504."""
    async with serve(_hold) as srv, gateway(srv.port, pool_size=1, connect_timeout=0.3,
                                             read_timeout=30) as gw:
        first = asyncio.ensure_future(gw.request())
        await _until(lambda: len(srv.requests) == 1, "the first request arrived")
        assert (await gw.request()).status == 504
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
    assert srv.accepted == 1


async def test_pool_size_bounds_connections() -> None:
    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while await srv.read_request(reader) is not None:
            await asyncio.sleep(0.02)
            writer.write(OK)

    async with serve(handler) as srv, gateway(srv.port, pool_size=2) as gw:
        replies = await asyncio.gather(*(gw.request() for _ in range(8)))
    assert [r.body for r in replies] == [b"ok"] * 8
    assert srv.accepted == 2


# --- the retry rule --------------------------------------------------------------------------


def _closes_on_second_request() -> Handler:
    """Answers the first request on a connection, then closes the connection when the next
    one arrives on it (what an upstream's idle timeout looks like in a race)."""

    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if await srv.read_request(reader) is None:
            return
        writer.write(OK)
        await srv.read_request(reader)
        writer.transport.abort()

    return handler


async def test_request_failing_on_a_reused_connection_is_retried_once() -> None:
    async with serve(_closes_on_second_request()) as srv, gateway(srv.port) as gw:
        assert (await gw.request()).body == b"ok"
        reply = await gw.request("GET")
        assert (reply.status, reply.body) == (200, b"ok")
    assert srv.accepted == 2
    assert len(srv.requests) == 3  # the lost one, then the retry


@pytest.mark.parametrize(("method", "body"), [("POST", None), ("PUT", [b"data"])])
async def test_no_retry_for_non_idempotent_or_body(method: str, body: list[bytes] | None) -> None:
    async with serve(_closes_on_second_request()) as srv, gateway(srv.port) as gw:
        assert (await gw.request()).body == b"ok"
        reply = await gw.request(method, body=body)
        assert reply.status == 502
    assert srv.accepted == 1


async def test_idle_connection_closed_by_upstream_is_not_reused() -> None:
    """The upstream closes its idle connection: the pool notices before handing it out."""
    async with serve(answer(OK, then_close=True)) as srv, gateway(srv.port) as gw:
        assert (await gw.request()).body == b"ok"
        pool = gw.client.pool
        await _until(lambda: pool.open_connections == 1 and not any(
            c.usable(0.0, 1e9) for c in pool._idle), "the pool saw the close")
        assert (await gw.request()).body == b"ok"
    assert srv.accepted == 2
    assert len(srv.requests) == 2  # no request was lost on the closed connection


async def test_stray_bytes_make_the_connection_unusable() -> None:
    async with serve(answer(OK + b"HTTP/1.1 200 OK\r\n")) as srv, gateway(srv.port) as gw:
        for _ in range(2):
            assert (await gw.request()).body == b"ok"
    assert srv.accepted == 2


# --- idle expiry (a controllable clock) ------------------------------------------------------


async def test_idle_connections_expire() -> None:
    now = [1000.0]
    async with serve(answer(OK)) as srv, gateway(srv.port) as gw:
        client = HttpUpstream(gw.route("/").upstream, keepalive=4.0, clock=lambda: now[0])
        try:
            for advance in (0.0, 3.9, 4.1):
                now[0] += advance
                response = await client.request("GET", "/", [("host", "gw.test")], None)
                assert await response.content.readany() == b"ok"
                response.release()
        finally:
            client.close()
    assert srv.accepted == 2


async def test_idle_connections_are_closed_without_traffic() -> None:
    async with serve(answer(OK)) as srv, gateway(srv.port) as gw:
        client = HttpUpstream(gw.route("/").upstream, keepalive=0.05)
        try:
            response = await client.request("GET", "/", [("host", "gw.test")], None)
            await response.content.readany()
            response.release()
            await _until(lambda: srv.closed_by_peer == 1, "the idle connection was closed")
            assert client.pool.open_connections == 0
        finally:
            client.close()


# --- disconnects and uploads -----------------------------------------------------------------


async def test_client_disconnect_mid_response_closes_the_upstream_connection() -> None:
    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while await srv.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"5\r\nfirst\r\n")
            await writer.drain()
            if srv.accepted == 1:
                await reader.read()  # the rest never comes: the client left
                srv.event.set()
                return
            writer.write(b"0\r\n\r\n")

    async with serve(handler) as srv, gateway(srv.port) as gw:
        reply = await gw.request(leave_after_first_chunk=True)
        assert (reply.status, reply.body, reply.complete) == (200, b"first", False)
        await _until(lambda: srv.event.is_set(), "the upstream connection was closed")
        assert gw.client.pool.open_connections == 0
        assert (await gw.request()).complete
    assert srv.accepted == 2


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "chunked"])
async def test_uploads_stream_through_the_lean_client(sized: bool) -> None:
    pieces = [b"a" * 70_000, b"b" * 5, b"c" * 200_000]
    size = sum(map(len, pieces))
    headers = [(b"content-length", str(size).encode())] if sized else []
    async with serve(answer(OK)) as srv, gateway(srv.port) as gw:
        for _ in range(2):
            reply = await gw.request("POST", body=pieces, headers=headers)
            assert (reply.status, reply.body) == (200, b"ok")
    assert [r.body for r in srv.requests] == [b"".join(pieces)] * 2
    assert srv.requests[0].header(b"transfer-encoding") == ([] if sized else [b"chunked"])
    assert srv.accepted == 1


async def test_client_leaving_mid_upload_gets_no_page_and_drops_the_connection() -> None:
    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()
        srv.event.set()

    headers = [(b"content-length", b"1000000")]
    async with serve(handler) as srv, gateway(srv.port) as gw:
        reply = await gw.request("POST", body=[b"x" * 1000, b"y"], headers=headers,
                                 leave_during_upload=True)
        assert reply.status is None
        await _until(lambda: srv.event.is_set(), "the upstream connection was closed")
        assert gw.client.pool.open_connections == 0


async def test_early_response_before_the_upload_ends() -> None:
    """An upstream that answers before reading the body: the answer is relayed."""
    async def handler(srv: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\nConnection: close\r\n"
                     b"\r\nbig")
        await writer.drain()
        await reader.read()

    async with serve(handler) as srv, gateway(srv.port) as gw:
        reply = await gw.request("POST", body=[b"x" * 100_000] * 20)
    assert (reply.status, reply.body, reply.complete) == (413, b"big", True)
