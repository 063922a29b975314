"""Routing by Host and path prefix; the upstream path; traversal (PX-06, PX-08)."""

from __future__ import annotations

from typing import Any

import pytest

from sekisho.config import UpstreamSettings
from sekisho.errors import BadRequest
from sekisho.gateway.routing import Router, check_raw_path, raw_path


def upstream(name: str, **kw: Any) -> UpstreamSettings:
    kw.setdefault("target", f"http://{name}.internal:9000")
    return UpstreamSettings(name=name, **kw)


ROUTER = Router([
    upstream("root"),
    upstream("app", path_prefix="/app"),
    upstream("admin", path_prefix="/app/admin/"),
    upstream("wiki", hosts=["Wiki.Example.com"]),
    upstream("wikiapi", hosts=["wiki.example.com"], path_prefix="/api", strip_prefix=True,
             target="http://wiki.internal:9000/v2/"),
    upstream("onlyapi", hosts=["api.example.com"], path_prefix="/v1"),
])


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("gw.example.com", "/", "root"),
        ("gw.example.com", "/app", "app"),
        ("gw.example.com", "/app/", "app"),
        ("gw.example.com", "/app/x/y", "app"),
        ("gw.example.com", "/apple", "root"),
        ("gw.example.com", "/app-x", "root"),
        ("gw.example.com", "/app/admin", "admin"),
        ("gw.example.com", "/app/admin/users", "admin"),
        ("gw.example.com", "/app/administrator", "app"),
        ("gw.example.com:8443", "/app", "app"),
        ("wiki.example.com", "/app", "wiki"),
        ("WIKI.example.com:443", "/", "wiki"),
        ("wiki.example.com", "/api", "wikiapi"),
        ("wiki.example.com", "/api/pages", "wikiapi"),
        ("wiki.example.com", "/apis", "wiki"),
        ("api.example.com", "/v1/x", "onlyapi"),
        ("[fd00::1]:8080", "/app/x", "app"),
    ],
)
def test_match(host: str, path: str, expected: str) -> None:
    """Longest prefix on a segment boundary; a host named by upstreams belongs to them."""
    route = ROUTER.match(host, path)
    assert route is not None
    assert route.name == expected


def test_named_host_does_not_fall_back_to_generic_upstreams() -> None:
    assert ROUTER.match("api.example.com", "/other") is None
    assert Router([upstream("app", path_prefix="/app")]).match("gw.example.com", "/") is None


@pytest.mark.parametrize(
    ("path", "raw", "query", "expected"),
    [
        ("/app/x", b"/app/x", b"", "http://app.internal:9000/app/x"),
        ("/app/a b", b"/app/a%20b", b"q=%41&r", "http://app.internal:9000/app/a%20b?q=%41&r"),
        ("/app/g/p", b"/app/g%2Fp", b"", "http://app.internal:9000/app/g%2Fp"),
        ("/app", b"/app", b"", "http://app.internal:9000/app"),
        ("/App", b"/App", b"", "http://root.internal:9000/App"),
    ],
)
def test_target_keeps_the_raw_path(path: str, raw: bytes, query: bytes, expected: str) -> None:
    """The upstream gets the raw path and query exactly as sent (no re-encoding)."""
    route = ROUTER.match("gw.example.com", path)
    assert route is not None
    assert route.target(raw, query) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/api", "http://wiki.internal:9000/v2/"),
        (b"/api/", "http://wiki.internal:9000/v2/"),
        (b"/api/pages/1", "http://wiki.internal:9000/v2/pages/1"),
    ],
)
def test_strip_prefix_and_target_path(raw: bytes, expected: str) -> None:
    route = ROUTER.match("wiki.example.com", raw.decode())
    assert route is not None
    assert route.target(raw) == expected


TRAVERSAL = [
    b"/app/../admin",
    b"/app/..",
    b"/app/.",
    b"/app/./x",
    b"/app/%2e%2e/admin",
    b"/app/%2E%2e/admin",
    b"/app/.%2e/admin",
    b"/app/%2e./admin",
    b"/app/..%2fadmin",
    b"/app/..%2Fadmin",
    b"/app/%2e%2e%2fadmin",
    b"/app/%252e%252e/admin",
    b"/app/%25252e%25252e/admin",
    b"/app/%2525252e%2525252e/admin",
    b"/app/..;/admin",
    b"/app/..;jsessionid=1/admin",
    b"/app/..\\admin",
    b"/app/%5c..%5cadmin",
    b"/app/..%5cadmin",
    b"/app/%00",
    b"/app/x%00.html",
    b"app/x",
    b"http://evil.example/app",
    b"*",
    b"/app/\xff",
    b"/app/a b",
]


@pytest.mark.parametrize("raw", TRAVERSAL)
def test_traversal_and_malformed_raw_paths_are_rejected(raw: bytes) -> None:
    """PX-06: dot segments in any decoding (and NUL, backslash, non-ASCII) get 400."""
    with pytest.raises(BadRequest):
        check_raw_path(raw)


@pytest.mark.parametrize(
    "raw",
    [b"/", b"/app/.well-known/x", b"/app/file.tar.gz", b"/app/...", b"/app/..x", b"/app/x..",
     b"/app/a%2Fb", b"/app/%E6%97%A5", b"/app/;x=1", b"/app/100%25"],
)
def test_ordinary_raw_paths_pass(raw: bytes) -> None:
    check_raw_path(raw)


@pytest.mark.parametrize(
    "path", ["/app/../admin", "/app/./x", "/app/..\\x", "/app/..;/x", "http://evil/x", "*"]
)
def test_match_rejects_decoded_traversal(path: str) -> None:
    """PX-06: uvicorn decodes %2e into the path; match() refuses what decodes to a dot segment."""
    with pytest.raises(BadRequest):
        ROUTER.match("gw.example.com", path)


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/app/x", b"/ap%70/x"),
        ("/app/x", b"/app%2Fx"),
        ("/app/admin/x", b"/app/%61dmin/x"),
    ],
)
def test_encoded_prefix_cannot_disagree_with_the_match(path: str, raw: bytes) -> None:
    """The raw path must carry the matched prefix literally, on a segment boundary."""
    route = ROUTER.match("gw.example.com", path)
    assert route is not None
    with pytest.raises(BadRequest):
        route.target(raw)


@pytest.mark.parametrize("query", [b"a=\xff", b"a=b c", b"a=\r\n", b"a=\x00"])
def test_malformed_query_is_rejected(query: bytes) -> None:
    route = ROUTER.match("gw.example.com", "/app")
    assert route is not None
    with pytest.raises(BadRequest):
        route.target(b"/app", query)


def test_non_ascii_prefix_is_matched_encoded() -> None:
    router = Router([upstream("jp", path_prefix="/日本")])
    route = router.match("gw", "/日本/x")
    assert route is not None
    assert route.target(b"/%E6%97%A5%E6%9C%AC/x").endswith("/%E6%97%A5%E6%9C%AC/x")
    assert route.target(b"/%e6%97%a5%e6%9c%ac/x").endswith("/%e6%97%a5%e6%9c%ac/x")


def test_raw_path_falls_back_to_the_decoded_path() -> None:
    assert raw_path({"raw_path": b"/a%20b", "path": "/a b"}) == b"/a%20b"
    assert raw_path({"path": "/a b/日"}) == b"/a%20b/%E6%97%A5"
