"""Header hygiene between client and upstream (PX-01, PX-02, PX-04, PX-07).

Upstream request, in this order (docs/proxy.md has the tables):

1. drop hop-by-hop fields and every field named in ``Connection`` (RFC 9110 §7.6.1), before
   anything is added, so ``Connection: Remote-User`` cannot remove what the gateway sets;
2. drop every client-sent identity field (the four configured names and the
   ``identity.strip_headers`` globs), every forwarding field (``X-Forwarded-*``,
   ``Forwarded``, ``X-Real-IP`` and other client-IP/URL override fields), the gateway's
   cookies from ``Cookie`` and, when configured, ``Authorization``. Names are compared
   lowercase with ``_`` read as ``-``, so ``X_Remote_User`` goes too;
3. add ``Host`` (the allowlisted one, preserved), ``X-Forwarded-For/-Proto/-Host``,
   ``Forwarded`` and the identity fields, each exactly once.

Identity values are sent as printable ASCII: a value that is printable ASCII without ``%``
and without leading or trailing spaces goes as is; otherwise ``%``, control characters and
non-ASCII characters are percent-encoded as UTF-8 (so ``%`` followed by two hex digits always
means an escape, and an upstream may percent-decode every value). Group names also have
``,`` encoded, then are joined with ``,``.

Upstream response: hop-by-hop fields, fields named in its ``Connection``, ``Server`` and
``Date`` (uvicorn sends its own, as nginx does), fields whose value holds a control character
and any ``Set-Cookie`` for a gateway cookie name are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TypeVar
from urllib.parse import quote

from sekisho.config import IdentitySettings
from sekisho.gateway.identity import Identity

KEEP, DROP, COOKIE, HOST, LENGTH, CHUNKED, PROTO = range(7)

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"trailers",
    b"transfer-encoding", b"upgrade", b"proxy-authorization", b"proxy-authenticate",
})
# Fields by which a client could claim another address, scheme, host or URL.
FORWARDING = frozenset({
    b"forwarded", b"x-real-ip", b"true-client-ip", b"x-client-ip", b"client-ip",
    b"x-cluster-client-ip", b"cf-connecting-ip", b"fastly-client-ip", b"x-original-url",
    b"x-rewrite-url", b"x-original-uri", b"x-original-forwarded-for",
})
# The gateway speaks for itself here: aiohttp writes the WebSocket handshake fields, and
# ``Expect`` is answered by uvicorn, not forwarded (an upstream that ignores it would stall).
GATEWAY_OWNED = frozenset({
    b"expect", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
    b"sec-websocket-protocol", b"sec-websocket-accept",
})
RESPONSE_DROP = HOP_BY_HOP | {b"server", b"date"}
_UNNAMEABLE = frozenset({b"host", b"content-length"})  # Connection cannot remove framing
_MEMO_LIMIT = 1024
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
_SAFE_GROUP = _SAFE.replace(",", "")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_K = TypeVar("_K")
_V = TypeVar("_V")

Headers = list[tuple[str, str]]


class HeaderPolicy:
    """Built once from settings; :meth:`request` and :meth:`response` are one pass each."""

    __slots__ = (
        "_cookie_names", "_cookies", "_host_cache", "_identity_cache", "_identity_names",
        "_memo", "_strip", "_strip_authorization",
    )

    def __init__(
        self,
        identity: IdentitySettings,
        *,
        gateway_cookies: Iterable[str] = (),
        strip_authorization: bool = False,
    ) -> None:
        self._identity_names = (
            identity.user_header, identity.groups_header, identity.email_header,
            identity.name_header,
        )
        exact = "|".join(re.escape(_norm_text(n)) for n in self._identity_names)
        globs = "|".join(
            ".*".join(re.escape(part) for part in _norm_text(p).split("*"))
            for p in identity.strip_headers
        )
        self._strip = re.compile(f"(?:{exact}{'|' + globs if globs else ''})".encode())
        self._cookies = frozenset(c.lower().encode("latin-1") for c in gateway_cookies)
        # One substitution removes every gateway cookie from a Cookie value, wherever it sits.
        self._cookie_names = (
            re.compile(
                rb"(?i)(?:^|;)[ \t]*(?:"
                + b"|".join(re.escape(c) for c in sorted(self._cookies, key=len, reverse=True))
                + rb")[ \t]*=[^;]*"
            )
            if self._cookies else None
        )
        self._strip_authorization = strip_authorization
        # Caches of pure functions (of the settings, a Host, an Identity), bounded because their
        # keys come from clients and sessions: name -> verdict, host -> fields, identity -> fields.
        self._memo: dict[bytes, int] = {}
        self._host_cache: dict[str, tuple[Headers, str]] = {}
        self._identity_cache: dict[Identity, Headers] = {}

    def verdict(self, name: bytes) -> int:
        verdict = self._memo.get(name)
        if verdict is None:
            verdict = self._classify(name)
            if len(self._memo) < _MEMO_LIMIT:
                self._memo[name] = verdict
        return verdict

    def _classify(self, name: bytes) -> int:
        norm = _norm(name)
        special = {b"cookie": COOKIE, b"host": HOST, b"content-length": LENGTH,
                   b"transfer-encoding": CHUNKED, b"x-forwarded-proto": PROTO}
        if norm in special and b"_" not in name:
            return special[norm]
        if (
            norm in HOP_BY_HOP or norm in FORWARDING or norm in GATEWAY_OWNED
            or norm.startswith(b"x-forwarded-") or norm in special
            or self._strip.fullmatch(norm) is not None
            or (self._strip_authorization and norm == b"authorization")
        ):
            return DROP
        return KEEP

    def request(
        self,
        headers: Sequence[tuple[bytes, bytes]],
        *,
        identity: Identity | None,
        client_ip: str,
        scheme: str,
        trusted_peer: bool = False,
        host: str | None = None,
    ) -> tuple[Headers, bool]:
        """The upstream headers and whether a body follows. ``scheme`` is the client's
        (``http``/``https``); with ``trusted_peer`` a proxy's ``X-Forwarded-Proto`` wins."""
        memo = self._memo
        out: Headers = []
        has_body = chunked = False
        connection: list[bytes] | None = None
        for name, value in headers:
            verdict = memo.get(name)
            if verdict is None:
                verdict = self.verdict(name)
            if verdict == KEEP:
                # aiohttp writes header text as UTF-8: decoding UTF-8 keeps raw UTF-8 values
                # byte for byte; only invalid UTF-8 (rare obs-text) is mapped via Latin-1.
                try:
                    out.append((name.decode("latin-1"), value.decode("utf-8")))
                except UnicodeDecodeError:
                    out.append((name.decode("latin-1"), value.decode("latin-1")))
            elif verdict == DROP:
                if name == b"connection":
                    connection = [*(connection or ()), value]
            elif verdict == COOKIE:
                if value := self._without_gateway_cookies(value):
                    out.append(("cookie", _text(value)))
            elif verdict == HOST:
                host = host or value.decode("latin-1")
            elif verdict == LENGTH:
                # After Transfer-Encoding it can only be a chunked trailer that uvicorn appended
                # to the list after the guard ran: it must not frame the upstream request.
                if chunked:
                    continue
                out.append(("content-length", value.decode("latin-1")))
                has_body = has_body or value.lstrip(b"0") != b""
            elif verdict == CHUNKED:
                has_body = chunked = True
            elif verdict == PROTO and trusted_peer:
                scheme = _trusted_proto(value, scheme)
        if connection is not None:
            out = _drop_named(out, connection)
        self._add_gateway_headers(out, identity, client_ip, scheme, host)
        return out, has_body

    def _without_gateway_cookies(self, value: bytes) -> bytes:
        if self._cookie_names is None:
            return value
        return self._cookie_names.sub(b"", value).lstrip(b"; \t")

    def _add_gateway_headers(
        self, out: Headers, identity: Identity | None, client_ip: str, scheme: str,
        host: str | None,
    ) -> None:
        forwarded_host = ""
        if host:
            parts = self._host_cache.get(host) or self._host_parts(host)
            out += parts[0]
            forwarded_host = parts[1]
        out.append(("x-forwarded-for", client_ip))
        out.append(("x-forwarded-proto", scheme))
        forwarded = f"for={_forwarded_node(client_ip)};proto={scheme}{forwarded_host}"
        out.append(("forwarded", forwarded))
        if identity is not None:
            out += self._identity_cache.get(identity) or self._identity_headers(identity)

    def _host_parts(self, host: str) -> tuple[Headers, str]:
        parts = ([("host", host), ("x-forwarded-host", host)], f";host={_forwarded_value(host)}")
        _remember(self._host_cache, host, parts)
        return parts

    def _identity_headers(self, identity: Identity) -> Headers:
        user, groups, email, name = self._identity_names
        headers = [
            (user, encode_value(identity.username)),
            (groups, ",".join(encode_value(g, group=True) for g in identity.groups)),
            (email, encode_value(identity.email)),
            (name, encode_value(identity.display_name)),
        ]
        _remember(self._identity_cache, identity, headers)
        return headers

    def response(self, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The upstream response headers for the client, lowercased for ASGI."""
        out: list[tuple[bytes, bytes]] = []
        connection: list[bytes] | None = None
        for name, value in headers:
            lname = name.lower()
            if lname in RESPONSE_DROP:
                if lname == b"connection":
                    connection = [*(connection or ()), value]
                continue
            if _CTL.search(value) is not None:
                continue  # aiohttp lets it through, uvicorn would refuse the whole response
            if lname == b"set-cookie" and self._cookies and (
                value.partition(b"=")[0].strip().lower() in self._cookies
            ):
                continue
            out.append((lname, value))
        if connection:
            named = _connection_tokens(connection)
            if named:
                out = [(n, v) for n, v in out if _norm(n) not in named]
        return out


def encode_value(text: str, *, group: bool = False) -> str:
    """``text`` as a header value that cannot break the message (see the module docstring)."""
    if (
        text.isascii() and text.isprintable() and "%" not in text
        and not (group and "," in text) and text[:1] != " " and text[-1:] != " "
    ):
        return text
    out = quote(text, safe=_SAFE_GROUP if group else _SAFE)
    core = out.strip(" ")
    if core == out:
        return out
    lead = len(out) - len(out.lstrip(" "))
    trail = len(out) - len(out.rstrip(" "))
    return "%20" * lead + core + "%20" * trail


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _trusted_proto(value: bytes, default: str) -> str:
    # The right-most value is the one the nearest (trusted) proxy wrote.
    proto = value.rpartition(b",")[2].strip()
    return proto.decode("ascii") if proto in (b"http", b"https") else default


def _connection_tokens(values: Iterable[bytes]) -> frozenset[bytes]:
    """The field names listed in ``Connection`` values, normalised like identity names."""
    tokens = {_norm(t.strip()) for value in values for t in value.split(b",")}
    # close/keep-alive are options, not field names worth a second look; framing stays.
    return frozenset(tokens - _UNNAMEABLE - {b"", b"close", b"keep-alive"})


def _drop_named(out: Headers, connection: list[bytes]) -> Headers:
    named = _connection_tokens(connection)
    if not named:
        return out
    return [(n, v) for n, v in out if _norm(n.encode("latin-1")) not in named]


def _norm(name: bytes) -> bytes:
    name = name.lower()
    return name.replace(b"_", b"-") if b"_" in name else name


def _norm_text(name: str) -> str:
    return name.lower().replace("_", "-")


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    if len(cache) >= _MEMO_LIMIT:
        cache.clear()
    cache[key] = value


def _forwarded_node(ip: str) -> str:
    # RFC 7239 §6: an IPv6 node is bracketed and, having ":", quoted.
    return f'"[{ip}]"' if ":" in ip else ip


def _forwarded_value(value: str) -> str:
    if _TOKEN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
