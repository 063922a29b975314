"""A minimal HTTP/1.1 client over asyncio streams, bound to a chosen source address.

The stuffing benchmark needs thousands of real TCP peers (127.x.y.z loopback addresses, so
the gateway's client IP is the peer address, no forged header) and a client cheap enough that
one core can keep the gateway's core busy. aiohttp would do, at several times the CPU per
request; this speaks just what the login page needs: keep-alive requests with a
Content-Length body, responses with a Content-Length body.
"""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

_CSRF_INPUT = re.compile(rb'<input[^>]*name="csrf_token"[^>]*>')
_VALUE = re.compile(rb'value="([^"]*)"')


class HttpError(RuntimeError):
    pass


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def cookies(self) -> dict[str, str]:
        """Set-Cookie name -> value (an empty value: the cookie is cleared)."""
        out: dict[str, str] = {}
        for key, value in self.headers:
            if key == "set-cookie":
                name, _, rest = value.partition("=")
                out[name.strip()] = rest.split(";", 1)[0]
        return out

    def csrf_token(self) -> str | None:
        found = _CSRF_INPUT.search(self.body)
        value = _VALUE.search(found.group(0)) if found else None
        return html.unescape(value.group(1).decode()) if value else None


@dataclass
class Connection:
    """One keep-alive connection from ``source`` to ``host:port``; reopened when the server
    has closed it while idle (a request that got no byte back was never processed)."""

    host: str
    port: int
    source: str
    reader: asyncio.StreamReader | None = field(default=None, repr=False)
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)
    opened: int = 0

    async def open(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, local_addr=(self.source, 0))
        self.opened += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> Response:
        for attempt in range(2):
            if self.writer is None:
                await self.open()
            assert self.reader is not None
            assert self.writer is not None
            try:
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                self.close()
                if attempt == 0 and (not isinstance(exc, asyncio.IncompleteReadError)
                                     or not exc.partial):
                    continue  # closed while idle: nothing was processed, send it again
                raise HttpError(f"connection from {self.source} lost mid-response") from exc
            return await self._rest(head)
        raise HttpError("unreachable")

    async def _rest(self, head: bytes) -> Response:
        assert self.reader is not None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        for line in lines[1:]:
            if line:
                key, _, value = line.partition(":")
                headers.append((key.strip().lower(), value.strip()))
        response = Response(status, headers, b"")
        length = response.header("content-length")
        if length is None:
            raise HttpError(f"response {status} without Content-Length")
        response.body = await self.reader.readexactly(int(length))
        if (response.header("connection") or "").lower() == "close":
            self.close()
        return response


def get(path: str, *, host: str, cookie: str = "") -> bytes:
    extra = f"Cookie: {cookie}\r\n" if cookie else ""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n"
            f"User-Agent: sekisho-bench\r\n{extra}\r\n").encode("latin-1")


def post_form(path: str, form: dict[str, str], *, host: str, cookie: str) -> bytes:
    body = urlencode(form).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nAccept: text/html\r\n"
            f"User-Agent: sekisho-bench\r\nCookie: {cookie}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items() if v)
