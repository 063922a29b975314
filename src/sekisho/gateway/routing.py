"""Which upstream serves a request, and the exact path it receives.

Matching: the ``Host`` name (lowercase, port stripped) picks the candidate upstreams. A host
named in some upstream's ``hosts`` belongs to those upstreams only; any other (allowlisted)
host is served by the upstreams that list no ``hosts``. Among the candidates the longest
``path_prefix`` that matches on a segment boundary wins: ``/app`` matches ``/app`` and
``/app/x``, never ``/apple``.

Matching uses the decoded path (what access rules see); the upstream receives the raw path
from the scope, never re-encoded. :meth:`Route.target` insists the raw path begins with the
matched prefix literally, so percent-encoding cannot make the two disagree (``/ap%70`` or
``/app%2Fx`` against prefix ``/app`` is a 400), and refuses any path with a dot segment in
any decoding of it (``..``, ``%2e%2e``, ``%252e%252e``, ``..%2f``, ``..;``, backslashes), so
neither the gateway nor an upstream that normalises paths can be walked out of the prefix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes, urlsplit

from starlette.types import Scope

from sekisho.config import UpstreamSettings
from sekisho.errors import BadRequest

_RAW_PATH = re.compile(rb"/[!-\[\]-~]*")  # printable ASCII without backslash
_QUERY = re.compile(rb"[!-~]*")  # printable ASCII
_SEPARATORS = re.compile(rb"[/\\]")
_DOT_SEGMENTS = (b".", b"..")
_MAX_DECODINGS = 3
_PCHAR = "/!$&'()*+,;=:@-._~"  # RFC 3986 pchar and "/", left as they are by quote()


@dataclass(frozen=True, slots=True)
class Route:
    """One matched upstream with its target precomputed."""

    upstream: UpstreamSettings
    prefix: str
    prefix_slash: str
    raw_prefix: bytes
    origin: str
    base_path: bytes

    @property
    def name(self) -> str:
        return self.upstream.name

    def target(self, raw_path: bytes, query_string: bytes = b"") -> str:
        """The upstream URL (origin + path + query) as text, already encoded.

        Raises :class:`BadRequest` for a traversal attempt or a path that does not carry the
        matched prefix literally."""
        check_raw_path(raw_path)
        if self.prefix != "/":
            size = len(self.raw_prefix)
            head = raw_path[:size]
            if head != self.raw_prefix and head.lower() != self.raw_prefix.lower():
                raise BadRequest("path does not match its route literally")
            rest = raw_path[size:]
            if rest and rest[:1] != b"/":
                raise BadRequest("path does not match its route on a segment boundary")
            if self.upstream.strip_prefix:
                raw_path = rest or b"/"
        path = self.base_path + raw_path
        if query_string:
            if _QUERY.fullmatch(query_string) is None:
                raise BadRequest("malformed query")
            path += b"?" + query_string
        return self.origin + path.decode("ascii")


class Router:
    __slots__ = ("_any", "_by_host")

    def __init__(self, upstreams: Sequence[UpstreamSettings]) -> None:
        routes = sorted((_route(u) for u in upstreams), key=lambda r: -len(r.prefix))
        by_host: dict[str, list[Route]] = {}
        for route in routes:
            for host in route.upstream.hosts:
                by_host.setdefault(_host_name(host), []).append(route)
        self._by_host = {h: tuple(rs) for h, rs in by_host.items()}
        self._any = tuple(r for r in routes if not r.upstream.hosts)

    def match(self, host: str, path: str) -> Route | None:
        """The route for ``host`` and the decoded ``path``, or ``None`` (404).

        Raises :class:`BadRequest` for a path that is not absolute or has dot segments."""
        if not path.startswith("/"):
            raise BadRequest("request target is not an absolute path")
        if "/." in path or "\\" in path:
            _check_decoded(path)
        routes = self._by_host.get(_host_name(host), self._any)
        for route in routes:
            prefix = route.prefix
            if prefix == "/" or path == prefix or path.startswith(route.prefix_slash):
                return route
        return None


def raw_path(scope: Scope) -> bytes:
    """The path as the client sent it; rebuilt from ``path`` for servers that omit it."""
    raw: bytes | None = scope.get("raw_path")
    if raw is not None:
        return raw
    return quote(scope["path"], safe=_PCHAR).encode("ascii")


def check_raw_path(raw_path: bytes) -> None:
    """Refuse a raw path that is not printable ASCII from ``/`` or holds a dot segment under
    up to three rounds of percent-decoding (deeper encodings are refused outright)."""
    if _RAW_PATH.fullmatch(raw_path) is None:
        raise BadRequest("malformed path")
    if b"." not in raw_path and b"%" not in raw_path:
        return
    text = raw_path
    for _ in range(_MAX_DECODINGS):
        _refuse_dot_segments(text)
        if b"%" not in text:
            return
        decoded = unquote_to_bytes(text)
        if decoded == text:
            return
        text = decoded
    raise BadRequest("path is percent-encoded too many times")


def _refuse_dot_segments(text: bytes) -> None:
    if b"\x00" in text:
        raise BadRequest("NUL in path")
    for segment in _SEPARATORS.split(text):
        # Servlet containers read "..;x" as "..": the parameter does not hide the dots.
        if segment.partition(b";")[0] in _DOT_SEGMENTS:
            raise BadRequest("dot segment in path")


def _check_decoded(path: str) -> None:
    for segment in re.split(r"[/\\]", path):
        if segment.partition(";")[0] in (".", ".."):
            raise BadRequest("dot segment in path")


def _route(upstream: UpstreamSettings) -> Route:
    target = urlsplit(upstream.target)
    prefix = upstream.path_prefix
    return Route(
        upstream=upstream,
        prefix=prefix,
        prefix_slash=prefix.rstrip("/") + "/",
        raw_prefix=quote(prefix, safe=_PCHAR).encode("ascii"),
        origin=f"{target.scheme}://{target.netloc}",
        # The target is a URL already: an existing %XX in it stays as written.
        base_path=quote(target.path.rstrip("/"), safe=_PCHAR + "%").encode("ascii"),
    )


def _host_name(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]
