"""A local stand-in for the HIBP range API: an aiohttp server in a thread of its own.

It answers like the real service (https://haveibeenpwned.com/API/v3#PwnedPasswords):
``GET /range/{5 hex}`` -> ``SUFFIX:COUNT`` lines joined by CRLF, upper-case suffixes, and
with ``Add-Padding: true`` extra lines with count 0 (the real one pads to 800-1,000 lines);
a prefix that is not 5 hex digits gets 400 with the real message. The same routes are served
under ``/mirror`` for the mirror tests. Every request is recorded (path and headers), so a
test can count them and check what left the gateway.

Knobs, set from the test: ``delay`` (seconds before answering), ``status`` (answer this
status instead), ``body`` (answer these bytes instead), ``lowercase`` (lower-case suffixes).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

PADDING_LINES = 300


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode()).hexdigest().upper()


@dataclass
class FakeRange:
    listed: dict[str, int] = field(default_factory=dict)  # full SHA-1 hex -> count
    padded: set[str] = field(default_factory=set)  # full SHA-1 hex answered with count 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    status: int | None = None
    body: bytes | None = None
    lowercase: bool = False
    base: str = ""

    def add(self, password: str, count: int) -> None:
        self.listed[sha1(password)] = count

    def pad(self, password: str) -> None:
        """Answer this password's suffix as a padding line (count 0)."""
        self.padded.add(sha1(password))

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is not None:
            return web.Response(status=self.status, text="unavailable")
        if self.body is not None:
            return web.Response(body=self.body, content_type="text/plain")
        prefix = request.match_info["prefix"]
        if len(prefix) != 5 or any(c not in "0123456789ABCDEFabcdef" for c in prefix):
            return web.Response(status=400, text="The hash prefix was not in a valid format")
        prefix = prefix.upper()
        lines = [f"{h[5:]}:{c}" for h, c in self.listed.items() if h.startswith(prefix)]
        if request.headers.get("Add-Padding", "").lower() == "true":
            lines += [f"{h[5:]}:0" for h in self.padded if h.startswith(prefix)]
            rng = random.Random(prefix)
            lines += [f"{rng.randbytes(18).hex().upper()[:35]}:0" for _ in range(PADDING_LINES)]
        lines.sort()
        text = "\r\n".join(lines)
        return web.Response(text=text.lower() if self.lowercase else text,
                            content_type="text/plain")


@contextmanager
def running_fake_range() -> Iterator[FakeRange]:
    """Serve a FakeRange on 127.0.0.1 (free port) from a thread; ``fake.base`` is its URL."""
    fake = FakeRange()
    app = web.Application()
    app.router.add_get("/range/{prefix}", fake.handle)
    app.router.add_get("/mirror/range/{prefix}", fake.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        host, port = runner.addresses[0][:2]
        fake.base = f"http://{host}:{port}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("fake range server did not start")
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
