"""The front-door guard: smuggling shapes and the Host allowlist (PX-06, PX-08)."""

from __future__ import annotations

from typing import Any

import pytest

from sekisho.config import validate_settings
from sekisho.errors import BadRequest, UnknownHost
from sekisho.gateway.guard import Guard, split_host

SETTINGS = validate_settings({
    "server": {"public_origins": ["https://gw.example.com", "http://gw.example.com:8080"]},
    "upstreams": [
        {"name": "app", "target": "http://127.0.0.1:9000", "hosts": ["App.Example.com"]},
        {"name": "wiki", "target": "http://127.0.0.1:9001", "hosts": ["wiki.example.com:8443"]},
        {"name": "v6", "target": "http://127.0.0.1:9002", "hosts": ["[fd00::1]"]},
    ],
})
GUARD = Guard(SETTINGS)


def scope(headers: list[tuple[bytes, bytes]], *, version: str = "1.1", host: bool = True,
          kind: str = "http") -> dict[str, Any]:
    if host:
        headers = [(b"host", b"gw.example.com"), *headers]
    return {"type": kind, "http_version": version, "headers": headers}


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"gw.example.com", "gw.example.com"),
        (b"GW.Example.COM", "gw.example.com"),
        (b"gw.example.com:443", "gw.example.com:443"),
        (b"gw.example.com:8080", "gw.example.com:8080"),
        (b"app.example.com", "app.example.com"),
        (b"app.example.com:8443", "app.example.com:8443"),
        (b"wiki.example.com", "wiki.example.com"),
        (b"[fd00::1]", "[fd00::1]"),
        (b"[fd00::1]:443", "[fd00::1]:443"),
    ],
)
def test_allowed_hosts(host: bytes, expected: str) -> None:
    """PX-08: configured names, with no port or a configured port, are accepted."""
    assert GUARD.check(scope([(b"host", host)], host=False)) == expected


@pytest.mark.parametrize(
    "host",
    [
        b"evil.example",
        b"gw.example.com.evil.example",
        b"gw.example.com.",
        b"gw.example.com:8081",
        b"gw.example.com:0443",
        b"app.example.com:22",
        b"user@gw.example.com",
        b"gw.example.com/x",
        b"",
        b"[fd00::2]",
        b"127.0.0.1",
    ],
)
def test_unknown_hosts_get_421(host: bytes) -> None:
    """PX-08: `Host: evil.example` (and every other unlisted form) gets 421."""
    with pytest.raises(UnknownHost):
        GUARD.check(scope([(b"host", host)], host=False))


def test_host_rules() -> None:
    """PX-08: Host is required on HTTP/1.1 and must be single; HTTP/1.0 gets the default."""
    with pytest.raises(BadRequest, match="missing Host"):
        GUARD.check(scope([], host=False))
    with pytest.raises(BadRequest, match="more than one Host"):
        GUARD.check(scope([(b"host", b"gw.example.com")]))
    with pytest.raises(BadRequest, match="more than one Host"):
        GUARD.check(scope([(b"host", b"evil.example")]))
    assert GUARD.check(scope([], host=False, version="1.0")) == "gw.example.com"


SMUGGLING = {
    "CL.TE": [(b"content-length", b"6"), (b"transfer-encoding", b"chunked")],
    "TE.CL": [(b"transfer-encoding", b"chunked"), (b"content-length", b"3")],
    "double CL": [(b"content-length", b"3"), (b"content-length", b"3")],
    "differing CL": [(b"content-length", b"3"), (b"content-length", b"4")],
    "CL list": [(b"content-length", b"3, 3")],
    "CL sign": [(b"content-length", b"+3")],
    "CL negative": [(b"content-length", b"-1")],
    "CL space": [(b"content-length", b"3 ")],
    "CL hex": [(b"content-length", b"0x3")],
    "CL unicode digit": [(b"content-length", "３".encode())],
    "CL huge": [(b"content-length", b"9" * 40)],
    "TE xchunked": [(b"transfer-encoding", b"xchunked")],
    "TE Chunked": [(b"transfer-encoding", b"Chunked")],
    "TE chunked+space": [(b"transfer-encoding", b"chunked ")],
    "TE list": [(b"transfer-encoding", b"gzip, chunked")],
    "TE chunked twice": [(b"transfer-encoding", b"chunked, chunked")],
    "TE identity": [(b"transfer-encoding", b"identity")],
    "TE double": [(b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"identity")],
    "CR in value": [(b"x-a", b"b\rc")],
    "LF in value": [(b"x-a", b"b\nX-Remote-User: admin")],
    "NUL in value": [(b"x-a", b"b\x00c")],
    "VT in value": [(b"transfer-encoding", b"chunked\x0b")],
    "DEL in value": [(b"x-a", b"b\x7f")],
    "CR in name": [(b"x-a\r", b"b")],
    "NUL in name": [(b"x-\x00a", b"b")],
    "space in name": [(b"transfer-encoding ", b"chunked")],
    "colon in name": [(b"x:a", b"b")],
    "empty name": [(b"", b"b")],
    "obs-fold remnant": [(b"x-a", b"b\r\n c")],
}


@pytest.mark.parametrize("headers", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggling_shapes_are_rejected(headers: list[tuple[bytes, bytes]]) -> None:
    """PX-06: CL.TE, TE.CL, TE.TE obfuscations, duplicate CL and CR/LF/NUL all get 400."""
    with pytest.raises(BadRequest):
        GUARD.check(scope(headers))


def test_transfer_encoding_on_http10_is_rejected() -> None:
    """PX-06: RFC 9112 §6.1 — Transfer-Encoding in HTTP/1.0 is faulty framing."""
    with pytest.raises(BadRequest):
        GUARD.check(scope([(b"transfer-encoding", b"chunked")], version="1.0"))


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"0")],
        [(b"content-length", b"1234567")],
        [(b"transfer-encoding", b"chunked")],
        [(b"x-a", b"tab\tinside and obs-text \xff")],
        [(b"x_remote_user", b"allowed here, stripped later")],
        [(b"connection", b"Upgrade"), (b"upgrade", b"websocket")],
    ],
)
def test_ordinary_requests_pass(headers: list[tuple[bytes, bytes]]) -> None:
    assert GUARD.check(scope(headers)) == "gw.example.com"


@pytest.mark.parametrize(
    "header",
    [
        (b"connection", b"keep-alive"),
        (b"keep-alive", b"timeout=5"),
        (b"proxy-connection", b"keep-alive"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"h2c"),
        (b"te", b"gzip"),
    ],
)
def test_http2_connection_specific_headers_are_rejected(header: tuple[bytes, bytes]) -> None:
    """PX-06: HTTP/2 connection-specific headers are not accepted (RFC 9113 §8.2.2)."""
    with pytest.raises(BadRequest):
        GUARD.check(scope([header], version="2"))
    GUARD.check(scope([header] if header[0] != b"transfer-encoding" else [], version="1.1"))


def test_http2_te_trailers_is_fine() -> None:
    assert GUARD.check(scope([(b"te", b"trailers")], version="2")) == "gw.example.com"


def test_websocket_scope_is_checked_too() -> None:
    """PX-08: a WebSocket handshake goes through the same Host check."""
    with pytest.raises(UnknownHost):
        GUARD.check(scope([(b"host", b"evil.example")], host=False, kind="websocket"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.example", ("a.example", None)),
        ("a.example:8080", ("a.example", 8080)),
        ("[::1]", ("[::1]", None)),
        ("[::1]:8443", ("[::1]", 8443)),
    ],
)
def test_split_host(value: str, expected: tuple[str, int | None]) -> None:
    assert split_host(value) == expected


@pytest.mark.parametrize("value", ["a.example:", "a.example:x", "a.example:0", "a:70000", "[::1]x"])
def test_split_host_rejects_bad_ports(value: str) -> None:
    with pytest.raises(BadRequest):
        split_host(value)
