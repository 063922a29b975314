"""WebSocket proxying: one aiohttp client connection upstream per accepted client.

The handshake goes upstream first, with the same header rules as HTTP (hop-by-hop fields
and client identity fields removed, the gateway's identity and forwarding fields added); the
client's ``Sec-WebSocket-Protocol`` offers are passed on and the client is accepted with the
subprotocol the upstream chose. Then two pumps copy text and binary messages each way until
one side closes; its close code and reason are passed to the other side (1005, 1006 and 1015
cannot be sent on the wire and become 1000). Extensions are not forwarded: each hop
negotiates its own compression. Response headers of the upstream handshake are not passed on.

An upstream with ``websocket = false`` is refused with ``websocket.close`` (uvicorn answers
403). An upstream that refuses the handshake gets the client a 403 as well; an upstream that
cannot be reached gets a 502/504 page when the server supports the ASGI
``websocket.http.response`` extension, a 403 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from sekisho.errors import BadRequest
from sekisho.gateway.errorpages import error_body
from sekisho.gateway.identity import Identity
from sekisho.gateway.routing import Route, raw_path

if TYPE_CHECKING:
    from sekisho.gateway.proxy import UpstreamProxy

log = logging.getLogger("sekisho.gateway.websocket")

#: uvicorn's default ``ws_max_size``: the same bound in both directions.
MAX_MESSAGE = 16 * 1024 * 1024
_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0)
_UNSENDABLE_CODES = frozenset({1005, 1006, 1015})


async def relay_websocket(
    self: UpstreamProxy,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    route: Route,
    identity: Identity | None,
    client_ip: str,
    host: str | None = None,
) -> None:
    """``UpstreamProxy.websocket``: proxy one WebSocket session (see the module docstring)."""
    if (await receive())["type"] != "websocket.connect":
        return
    if not route.upstream.websocket:
        await send({"type": "websocket.close", "code": 1008})
        return
    try:
        url = route.target(raw_path(scope), scope.get("query_string", b""))
    except BadRequest:
        await refuse_websocket(scope, send, 400)
        return
    headers, _ = self.request_headers(scope, identity=identity, client_ip=client_ip, host=host)
    try:
        upstream = await self.session(route.upstream).ws_connect(
            URL(url, encoded=True), headers=headers, protocols=scope.get("subprotocols") or (),
            autoclose=False, autoping=True, max_msg_size=MAX_MESSAGE, timeout=_TIMEOUT,
        )
    except aiohttp.WSServerHandshakeError as exc:
        log.info("upstream %s refused a WebSocket: %s", route.name, exc.status)
        await send({"type": "websocket.close", "code": 1008})
        return
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("upstream %s WebSocket: %s", route.name, type(exc).__name__)
        await refuse_websocket(scope, send, 504 if isinstance(exc, TimeoutError) else 502)
        return
    try:
        await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
        await _pump(upstream, receive, send)
    finally:
        await upstream.close()


async def refuse_websocket(scope: Scope, send: Send, status: int) -> None:
    """Refuse a WebSocket before accepting it, with ``status`` when the server can say so."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    body = error_body(status)
    await send({
        "type": "websocket.http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode("ascii")),
        ],
    })
    await send({"type": "websocket.http.response.body", "body": body})


async def _pump(upstream: aiohttp.ClientWebSocketResponse, receive: Receive, send: Send) -> None:
    tasks = (
        asyncio.ensure_future(_to_client(upstream, send)),
        asyncio.ensure_future(_to_upstream(upstream, receive, send)),
    )
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _to_client(upstream: aiohttp.ClientWebSocketResponse, send: Send) -> None:
    while True:
        msg = await upstream.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            await send({"type": "websocket.send", "text": msg.data})
        elif msg.type is aiohttp.WSMsgType.BINARY:
            await send({"type": "websocket.send", "bytes": msg.data})
        elif msg.type is aiohttp.WSMsgType.CLOSE:
            code = _sendable(msg.data)
            await upstream.close(code=code)
            await _close_client(send, code, msg.extra or "")
            return
        elif msg.type is aiohttp.WSMsgType.CLOSING:
            return  # we are closing it because the client left
        else:  # CLOSED without a close frame, or ERROR
            await _close_client(send, 1011, "")
            return


async def _to_upstream(
    upstream: aiohttp.ClientWebSocketResponse, receive: Receive, send: Send
) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            try:
                if text is not None:
                    await upstream.send_str(text)
                else:
                    await upstream.send_bytes(message.get("bytes") or b"")
            except (aiohttp.ClientError, OSError):
                await _close_client(send, 1011, "")  # the upstream went away mid-send
                return
        elif kind == "websocket.disconnect":
            reason = (message.get("reason") or "").encode()[:123]
            await upstream.close(code=_sendable(message.get("code")), message=reason)
            return


async def _close_client(send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(OSError, RuntimeError):  # the client may be gone already
        await send({"type": "websocket.close", "code": code, "reason": reason})


def _sendable(code: object) -> int:
    if not isinstance(code, int) or code in _UNSENDABLE_CODES or not 1000 <= code < 5000:
        return 1000
    return code
