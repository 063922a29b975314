"""The HIBP Pwned Passwords range API (or a mirror of it), with k-anonymity (PW-10, PW-11).

Only the first five hex digits of the upper-case SHA-1 leave the gateway: ``GET
{api_url}/range/{PREFIX}`` with ``Add-Padding: true``, so the answer's size says nothing about
the prefix either. The answer is ``SUFFIX:COUNT`` lines (35 hex digits, CRLF); padding lines
have count 0 and are ignored; suffixes compare case-insensitively. The suffix is matched here,
never sent; neither the password nor its hash is logged or put in an error.

One ``aiohttp.ClientSession`` serves every lookup between :meth:`RangeClient.start` and
:meth:`RangeClient.close` (the app's lifespan). Used without ``start`` (the CLI), each lookup
opens and closes its own. Every request is bounded by ``timeout`` (connect to last byte) and
by the size of the answer. Answers are cached per prefix (bounded LRU with a TTL), and
concurrent lookups of one prefix share one request.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import aiohttp

from sekisho.auth.breach.errors import BreachError

__all__ = ["RangeClient", "RangeUnavailable", "parse_range", "sha1_hex"]

# A real answer with padding is 800-1,000 lines of ~40 bytes; a mirror's may be longer.
MAX_ANSWER_BYTES = 1 << 20
_PREFIX = re.compile(r"[0-9A-F]{5}")
_LINE = re.compile(r"([0-9A-Fa-f]{35}):([0-9]{1,12})")
USER_AGENT = "sekisho-breach-check"

Range = dict[str, int]


class RangeUnavailable(BreachError):
    """The range API could not answer: timeout, connection, status or a malformed answer.
    The message says why and never carries the prefix, the hash or the password."""


def sha1_hex(password: str) -> str:
    """The upper-case SHA-1 hex of the UTF-8 password (normalise it to NFC first)."""
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()


def parse_range(text: str) -> Range:
    """``{SUFFIX: count}`` from an answer body; count-0 padding lines dropped (PW-10).

    Raises RangeUnavailable on a line that is not ``SUFFIX:COUNT``: a captive portal or a
    misconfigured mirror must not be taken for "no breach".
    """
    found: Range = {}
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise RangeUnavailable(f"malformed range answer (line {number})")
        count = int(match[2])
        if count:
            suffix = match[1].upper()
            found[suffix] = max(count, found.get(suffix, 0))
    return found


class _Cache:
    """Prefix -> range, least recently used first out, each entry valid for ``ttl`` seconds."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self._size, self._ttl, self._clock = size, ttl, clock
        self._items: OrderedDict[str, tuple[float, Range]] = OrderedDict()

    def get(self, prefix: str) -> Range | None:
        item = self._items.get(prefix)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._items[prefix]
            return None
        self._items.move_to_end(prefix)
        return item[1]

    def put(self, prefix: str, value: Range) -> None:
        if self._size <= 0 or self._ttl <= 0:
            return
        self._items[prefix] = (self._clock() + self._ttl, value)
        self._items.move_to_end(prefix)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class RangeClient:
    """Lookups against ``{api_url}/range/{prefix}``. Raises RangeUnavailable when the service
    cannot answer; what to do then (fail open or closed) is the caller's decision."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 2.0,
        cache_size: int = 10_000,
        cache_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._cache = _Cache(cache_size, cache_ttl, clock)
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[str, asyncio.Task[Range]] = {}
        self.requests = 0  # answers fetched from the service, for stats and tests

    async def start(self) -> None:
        if self._session is None:
            self._session = self._new_session()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT, "Add-Padding": "true"},
            # No cookies from the service, and no proxy settings from the environment: the
            # prefix goes only where breach.api_url says.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def lookup_password(self, password: str) -> int | None:
        """How often the (NFC) password was seen, or None when it is not listed."""
        return await self.lookup_hex(sha1_hex(password))

    async def lookup_hex(self, digest: str) -> int | None:
        """The count for a 40-digit SHA-1 hex digest, or None."""
        digest = digest.upper()
        prefix, suffix = digest[:5], digest[5:]
        if len(digest) != 40 or _PREFIX.fullmatch(prefix) is None:
            raise ValueError("expected a 40-digit SHA-1 hex digest")
        return (await self.range(prefix)).get(suffix)

    async def range(self, prefix: str) -> Range:
        """The listed suffixes of one prefix, from the cache or the service."""
        cached = self._cache.get(prefix)
        if cached is not None:
            return cached
        task = self._inflight.get(prefix)
        if task is None:
            # One request per prefix however many lookups wait for it; a waiter that is
            # cancelled (a client went away) does not cancel it for the others.
            task = asyncio.create_task(self._fetch(prefix))
            self._inflight[prefix] = task
            task.add_done_callback(partial(self._settled, prefix))
        return await asyncio.shield(task)

    def _settled(self, prefix: str, task: asyncio.Task[Range]) -> None:
        self._inflight.pop(prefix, None)
        if not task.cancelled() and task.exception() is None:
            self._cache.put(prefix, task.result())

    async def _fetch(self, prefix: str) -> Range:
        if self._session is not None:
            return await self._get(self._session, prefix)
        async with self._new_session() as session:
            return await self._get(session, prefix)

    async def _get(self, session: aiohttp.ClientSession, prefix: str) -> Range:
        url = f"{self.api_url}/range/{prefix}"
        try:
            async with session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise RangeUnavailable(f"range API answered HTTP {response.status}")
                body = await response.content.read(MAX_ANSWER_BYTES + 1)
        except TimeoutError:
            raise RangeUnavailable(
                f"range API did not answer within {self._timeout.total:g} s") from None
        except aiohttp.ClientError as exc:
            raise RangeUnavailable(f"range API unreachable ({type(exc).__name__})") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise RangeUnavailable("range answer too large")
        self.requests += 1
        try:
            return parse_range(body.decode("ascii"))
        except UnicodeDecodeError:
            raise RangeUnavailable("malformed range answer (not ASCII)") from None

    @property
    def cached(self) -> int:
        return len(self._cache)
