"""The first check on every request, before routing, sessions or the portal (PX-06, PX-08).

uvicorn's parsers already refuse much of this (httptools rejects CL+TE, bare CR/LF, NUL and
obs-fold itself), but h11 lets several shapes through and other ASGI servers differ, so the
rules are enforced again here on what actually reached the app:

* framing: ``Content-Length`` and ``Transfer-Encoding`` together; more than one
  ``Content-Length`` (even equal ones); a ``Content-Length`` that is not plain digits;
  ``Transfer-Encoding`` other than exactly ``chunked``, more than one of it, or any of it on
  HTTP/1.0 (RFC 9112 §6.1: such framing is faulty);
* bytes: a header name that is not an RFC 9110 token, a value with a control character
  (CR, LF, NUL and the rest of C0 except HTAB, and DEL);
* HTTP/2: the connection-specific fields (``connection``, ``keep-alive``,
  ``proxy-connection``, ``transfer-encoding``, ``upgrade``) and ``te`` other than ``trailers``
  (RFC 9113 §8.2.2);
* ``Host``: exactly one (none on HTTP/1.1 is a 400; HTTP/1.0 without one is taken as the first
  public origin), and it must be on the allowlist, else 421.

The allowlist is the host names of ``server.public_origins`` and of every upstream's ``hosts``.
A ``Host`` without a port is accepted for any listed name. With a port, the port must be one of
the configured ports: those of the public origins (the scheme's default when none is written)
and any port written in an upstream ``hosts`` entry. The check is one dict lookup.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.types import Scope

from sekisho.config import Settings
from sekisho.errors import BadRequest, UnknownHost

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_H2_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAMES_LIMIT = 1024


class Guard:
    """``check(scope)`` returns the accepted ``Host`` (lowercase, port kept) or raises
    :class:`BadRequest` (400) / :class:`UnknownHost` (421)."""

    __slots__ = ("_default_host", "_hosts", "_names")

    def __init__(self, settings: Settings) -> None:
        self._hosts, self._default_host = _allowlist(settings)
        self._names: set[bytes] = set()

    def check(self, scope: Scope) -> str:
        http2 = scope.get("http_version") == "2"
        host: bytes | None = None
        hosts = lengths = encodings = 0
        length = encoding = b""
        known = self._names
        for name, value in scope["headers"]:
            if name not in known:
                self._learn(name)
            if _BAD_VALUE.search(value) is not None:
                raise BadRequest("control character in a header value")
            if name == b"host":
                hosts += 1
                host = value
            elif name == b"content-length":
                lengths += 1
                length = value
            elif name == b"transfer-encoding":
                encodings += 1
                encoding = value
            if http2 and (
                name in _H2_CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers")
            ):
                raise BadRequest("connection-specific header on HTTP/2")
        if lengths or encodings:
            _check_framing(scope, lengths, length, encodings, encoding)
        if hosts > 1:
            raise BadRequest("more than one Host")
        return self._allowed(host, scope.get("http_version"))

    def _learn(self, name: bytes) -> None:
        if _TOKEN.fullmatch(name) is None:
            raise BadRequest("malformed header name")
        # A cache of good names, bounded because names come from clients.
        if len(self._names) < _NAMES_LIMIT:
            self._names.add(name)

    def _allowed(self, host: bytes | None, version: str | None) -> str:
        if host is None:
            if version == "1.0":
                return self._default_host
            raise BadRequest("missing Host")
        found = self._hosts.get(host)
        if found is None:
            found = self._hosts.get(host.lower())
            if found is None:
                raise UnknownHost("Host is not served here")
        return found


def _allowlist(settings: Settings) -> tuple[dict[bytes, str], str]:
    """Every accepted Host value (as bytes on the wire) mapped to its text, and the default."""
    names: set[str] = set()
    ports: set[int] = set()
    default = ""
    for origin in settings.server.public_origins:
        parts = urlsplit(origin)
        name, port = split_host(parts.netloc.lower())
        names.add(name)
        ports.add(port or _DEFAULT_PORTS[parts.scheme])
        default = default or parts.netloc.lower()
    for upstream in settings.upstreams:
        for entry in upstream.hosts:
            name, port = split_host(entry.lower())
            names.add(name)
            if port is not None:
                ports.add(port)
    hosts: dict[bytes, str] = {}
    for name in names:
        wire = name if name.isascii() else name.encode("idna").decode("ascii")
        hosts[wire.encode("ascii")] = wire
        for port in ports:
            hosts[f"{wire}:{port}".encode("ascii")] = f"{wire}:{port}"
    return hosts, default


def _check_framing(
    scope: Scope, lengths: int, length: bytes, encodings: int, encoding: bytes
) -> None:
    if lengths and encodings:
        raise BadRequest("both Content-Length and Transfer-Encoding")
    if lengths > 1:
        raise BadRequest("more than one Content-Length")
    if lengths and not (length.isdigit() and len(length) <= 18):
        raise BadRequest("malformed Content-Length")
    if encodings > 1 or (encodings and encoding != b"chunked"):
        raise BadRequest("Transfer-Encoding other than chunked")
    if encodings and scope.get("http_version") == "1.0":
        raise BadRequest("Transfer-Encoding on HTTP/1.0")


def split_host(value: str) -> tuple[str, int | None]:
    """``("name", port)`` from a Host value or netloc; IPv6 literals keep their brackets.

    Raises :class:`BadRequest` for a malformed port."""
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :] if end > 0 else ""
        name = value[: end + 1] if end > 0 else value
        if not rest:
            return name, None
        if not rest.startswith(":"):
            raise BadRequest("malformed host")
        port_text = rest[1:]
    else:
        name, sep, port_text = value.partition(":")
        if not sep:
            return name, None
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise BadRequest("malformed port")
    return name, int(port_text)
