"""The upstream capture app for integration tests: it records what reached it and can echo,
stream, sleep, set cookies, redirect, abort and echo WebSockets."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

CHUNK = b"\xa5" * 65536

Scope = dict[str, Any]


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[str, str]]
    body_size: int
    client: tuple[str, int]

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def names(self) -> list[str]:
        return [k for k, _ in self.headers]


@dataclass
class Upstream:
    """A capture app. Paths: ``/sleep?s=``, ``/stream?size=&length=1``, ``/cookies``,
    ``/redirect``, ``/status?code=``, ``/abort``, ``/headers``; anything else echoes."""

    name: str = "upstream"
    seen: list[Seen] = field(default_factory=list)
    aborted_streams: int = 0
    ws_closes: list[tuple[int, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.seen.clear()
        self.ws_closes.clear()
        self.aborted_streams = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.seen.append(Seen(scope["method"], scope["raw_path"], scope["query_string"],
                              headers, size, tuple(scope["client"])))
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        handler = _ROUTES.get(scope["path"].rsplit("/", 1)[-1])
        if handler is not None:
            await handler(self, query, receive, send)
            return
        body = json.dumps({"upstream": self.name, "path": scope["raw_path"].decode(),
                           "query": scope["query_string"].decode(), "body_size": size,
                           "headers": headers}).encode()
        await _respond(send, 200, body, [(b"content-type", b"application/json")])

    async def _websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        offered = scope.get("subprotocols") or []
        await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        await send({"type": "websocket.send", "text": json.dumps({"headers": headers})})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.ws_closes.append((message.get("code", 1000), message.get("reason") or ""))
                return
            text, data = message.get("text"), message.get("bytes")
            if text and text.startswith("close:"):
                await send({"type": "websocket.close", "code": int(text[6:]), "reason": "bye"})
                return
            await send({"type": "websocket.send", "text": text} if text is not None
                       else {"type": "websocket.send", "bytes": data})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def _respond(send: Any, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _sleep(up: Upstream, query: dict[str, str], receive: Any, send: Any) -> None:
    await asyncio.sleep(float(query.get("s", "1")))
    await _respond(send, 200, b"slept")


async def _stream(up: Upstream, query: dict[str, str], receive: Any, send: Any) -> None:
    """``size`` bytes of 0xA5 in 64 KiB chunks; with ``length=1`` a Content-Length is sent."""
    size = int(query.get("size", "0"))
    headers = [(b"content-type", b"application/octet-stream")]
    if query.get("length"):
        headers.append((b"content-length", str(size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    # uvicorn's send() is silent once the peer is gone; receive() is what reports it.
    gone = asyncio.ensure_future(receive())
    sent = 0
    try:
        while sent < size:
            if gone.done() and gone.result()["type"] == "http.disconnect":
                up.aborted_streams += 1
                return
            piece = CHUNK[: min(len(CHUNK), size - sent)]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent += len(piece)
            if query.get("slow"):
                await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
    finally:
        gone.cancel()


async def _cookies(up: Upstream, query: dict[str, str], receive: Any, send: Any) -> None:
    await _respond(send, 200, b"cookies", [
        (b"set-cookie", b"app_a=1; Path=/"),
        (b"set-cookie", b"sekisho_session=evil; Path=/; HttpOnly"),
        (b"set-cookie", b"app_b=2; Path=/"),
        (b"set-cookie", b"__Host-sekisho_session=evil; Path=/; Secure"),
        (b"set-cookie", b"SEKISHO_CSRF=evil"),
        (b"set-cookie", b"app_c=3"),
    ])


async def _redirect(up: Upstream, query: dict[str, str], receive: Any, send: Any) -> None:
    await _respond(send, 302, b"", [(b"location", b"http://upstream.internal:9/next?x=1")])


async def _status(up: Upstream, query: dict[str, str], receive: Any, send: Any) -> None:
    await _respond(send, int(query.get("code", "200")), b"")


async def _abort(up: Upstream, query: dict[str, str], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"1000000")]})
    await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
    raise RuntimeError("upstream dies mid-response (expected in tests)")


async def _headers(up: Upstream, query: dict[str, str], receive: Any, send: Any) -> None:
    await _respond(send, 200, b"h", [
        (b"connection", b"x-secret-hop"),
        (b"x-secret-hop", b"1"),
        (b"keep-alive", b"timeout=5"),
        (b"x-app", b"one"),
        (b"x-app", b"two"),
        (b"content-type", b"text/plain"),
    ])


_ROUTES = {"sleep": _sleep, "stream": _stream, "cookies": _cookies, "redirect": _redirect,
           "status": _status, "abort": _abort, "headers": _headers}
