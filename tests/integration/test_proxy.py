"""The proxy over the real network: a real uvicorn gateway harness in front of real capture
upstreams (PX-01, PX-02, PX-04, PX-06, PX-07, PX-08)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from tests.integration.servers import (
    Harness,
    Upstream,
    free_port,
    gateway_settings,
    raw_exchange,
    run_reset_server,
    run_uvicorn,
    self_signed_cert,
    status_of,
)

pytestmark = pytest.mark.integration

UP_A = Upstream("a")
UP_B = Upstream("b")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str]]:
    with run_uvicorn(UP_A) as a, run_uvicorn(UP_B) as b:
        yield a, b


@pytest.fixture(scope="module")
def gateway(upstreams: tuple[str, str]) -> Iterator[str]:
    a, b = upstreams
    with run_reset_server() as reset:
        settings = gateway_settings([
            {"name": "a", "target": a},
            {"name": "b", "target": b, "hosts": ["b.test"]},
            {"name": "api", "target": b, "hosts": ["api.test"], "path_prefix": "/api"},
            {"name": "slow", "target": a, "path_prefix": "/slow", "read_timeout": 0.3},
            {"name": "down", "target": f"http://127.0.0.1:{free_port()}", "path_prefix": "/down"},
            {"name": "reset", "target": reset, "path_prefix": "/reset"},
            {"name": "stripped", "target": a + "/base", "path_prefix": "/strip",
             "strip_prefix": True},
        ])
        with run_uvicorn(Harness(settings)) as url:
            yield url


@pytest.fixture(scope="module")
def trusting_gateway(upstreams: tuple[str, str]) -> Iterator[str]:
    """A gateway behind a trusted proxy (the test client plays the TLS-terminating proxy)."""
    settings = gateway_settings([{"name": "a", "target": upstreams[0]}],
                                trusted_proxies=["127.0.0.1/32"])
    with run_uvicorn(Harness(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def h11_gateway(upstreams: tuple[str, str]) -> Iterator[str]:
    with run_uvicorn(Harness(gateway_settings([{"name": "a", "target": upstreams[0]}])),
                     http="h11") as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_capture() -> None:
    UP_A.reset()
    UP_B.reset()


@pytest.fixture
def client(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, headers={"host": "gw.test"}, timeout=10) as c:
        yield c


def raw(gateway: str, head: str, body: bytes = b"") -> bytes:
    return raw_exchange(gateway, head.replace("\n", "\r\n").encode() + body, timeout=1.0)


def test_spoofed_identity_headers_never_reach_upstream(gateway: str) -> None:
    """PX-01: X-Remote-User, x-remote-user, X_Remote_User and duplicates all go; the upstream
    sees exactly one Remote-User, the gateway's."""
    response = raw(gateway, "GET /who HTTP/1.1\nHost: gw.test\nX-Remote-User: admin\n"
                            "x-remote-user: admin\nX_Remote_User: admin\nRemote-User: admin\n"
                            "Remote-User: root\nRemote_User: admin\nREMOTE-GROUPS: admins\n"
                            "X-Forwarded-User: admin\nConnection: close\n\n")
    assert status_of(response) == 200
    (seen,) = UP_A.seen
    assert seen.values("remote-user") == ["alice"]
    assert seen.values("remote-groups") == ["staff,dev"]
    assert not [k for k, v in seen.headers if v in ("admin", "root", "admins")]
    assert not [k for k in seen.names() if "_" in k]


def test_raw_utf8_header_values_reach_upstream_unchanged(gateway: str) -> None:
    value = "日本語 ファイル.txt".encode()
    response = raw_exchange(gateway, b"GET /u HTTP/1.1\r\nHost: gw.test\r\nX-File-Name: " + value
                            + b"\r\nConnection: close\r\n\r\n")
    assert status_of(response) == 200
    (seen,) = UP_A.seen
    assert seen.values("x-file-name")[0].encode("latin-1") == value


def test_trailer_fields_cannot_smuggle_identity(gateway: str) -> None:
    """PX-01: uvicorn appends chunked trailer fields to the request headers; they are stripped
    like any other client field."""
    response = raw(gateway, "POST /t HTTP/1.1\nHost: gw.test\nTransfer-Encoding: chunked\n"
                            "Connection: close\n\n", b"3\r\nabc\r\n0\r\nRemote-User: admin\r\n\r\n")
    assert status_of(response) == 200
    (seen,) = UP_A.seen
    assert seen.values("remote-user") == ["alice"]
    assert seen.body_size == 3


def test_connection_header_cannot_remove_gateway_headers(gateway: str) -> None:
    """PX-02: `Connection: close, X-Remote-User, X-Forwarded-For` leaves the gateway's."""
    response = raw(gateway, "GET /c HTTP/1.1\nHost: gw.test\n"
                            "Connection: close, Remote-User, X-Forwarded-For, X-Custom\n"
                            "X-Custom: 1\nKeep-Alive: timeout=99\nTE: trailers\n"
                            "Upgrade: h2c\nProxy-Connection: keep-alive\n\n")
    assert status_of(response) == 200
    (seen,) = UP_A.seen
    assert seen.values("remote-user") == ["alice"]
    assert seen.values("x-forwarded-for") == ["127.0.0.1"]
    for name in ("x-custom", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert seen.values(name) == [], name
    assert seen.values("connection") in ([], ["keep-alive"])


def test_forwarding_headers_are_the_gateways(client: httpx.Client) -> None:
    """PX-04: a client-sent X-Forwarded-Host: evil.example never reaches upstream."""
    response = client.get("/f", headers={
        "x-forwarded-host": "evil.example", "x-forwarded-for": "6.6.6.6",
        "x-forwarded-proto": "https", "forwarded": "for=6.6.6.6;host=evil.example",
        "x-real-ip": "6.6.6.6",
    })
    assert response.status_code == 200
    (seen,) = UP_A.seen
    assert seen.values("x-forwarded-host") == ["gw.test"]
    assert seen.values("x-forwarded-for") == ["127.0.0.1"]
    assert seen.values("x-forwarded-proto") == ["http"]
    assert seen.values("forwarded") == ["for=127.0.0.1;proto=http;host=gw.test"]
    assert seen.values("host") == ["gw.test"]
    assert seen.values("x-real-ip") == []
    assert "evil.example" not in repr(seen.headers)
    assert "6.6.6.6" not in repr(seen.headers)


@pytest.fixture(scope="module")
def tls_gateway(upstreams: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    settings = gateway_settings([{"name": "a", "target": upstreams[0]}],
                                public_origins=["https://gw.test"])
    with run_uvicorn(Harness(settings), ssl_certfile=str(cert), ssl_keyfile=str(key)) as url:
        yield url.replace("http://", "https://")


def test_https_client_gives_forwarded_proto_https(tls_gateway: str) -> None:
    """PX-04: a client on https makes the upstream see X-Forwarded-Proto: https (the scheme
    comes from the connection, not from anything the client wrote)."""
    response = httpx.get(tls_gateway + "/s", verify=False,
                         headers={"host": "gw.test", "x-forwarded-proto": "http"})
    assert response.status_code == 200
    (seen,) = UP_A.seen
    assert seen.values("x-forwarded-proto") == ["https"]
    assert seen.values("forwarded") == ["for=127.0.0.1;proto=https;host=gw.test"]


def test_trusted_proxy_scheme_and_client_ip(trusting_gateway: str) -> None:
    """PX-03/PX-04: behind a trusted proxy the upstream sees X-Forwarded-Proto: https and the
    right-most untrusted X-Forwarded-For hop."""
    response = httpx.get(trusting_gateway + "/p", headers={
        "host": "gw.test", "x-forwarded-proto": "https",
        "x-forwarded-for": "1.2.3.4, 198.51.100.7",
    })
    assert response.status_code == 200
    (seen,) = UP_A.seen
    assert seen.values("x-forwarded-proto") == ["https"]
    assert seen.values("x-forwarded-for") == ["198.51.100.7"]
    assert seen.values("forwarded") == ["for=198.51.100.7;proto=https;host=gw.test"]


def test_gateway_cookies_stripped_both_ways(client: httpx.Client) -> None:
    """PX-07: no gateway cookie in the upstream's Cookie; its Set-Cookie for them is dropped,
    every other Set-Cookie is kept."""
    response = client.get("/cookies", headers={
        "cookie": "sekisho_session=s3cret; app=1; __Host-sekisho_session=s3cret; sekisho_csrf=t",
    })
    (seen,) = UP_A.seen
    assert seen.values("cookie") == ["app=1"]
    assert response.headers.get_list("set-cookie") == ["app_a=1; Path=/", "app_b=2; Path=/",
                                                       "app_c=3"]


def test_expect_100_continue_is_answered_by_the_gateway(gateway: str) -> None:
    """`Expect` is not forwarded (an upstream that ignores it would stall the upload); the
    client gets its 100 Continue when the proxy starts pulling the body."""
    port = int(gateway.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"hello")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert status_of(reply) == 200
    (seen,) = UP_A.seen
    assert seen.body_size == 5
    assert seen.values("expect") == []


def test_only_gateway_cookies_means_no_cookie_header(client: httpx.Client) -> None:
    """PX-07."""
    client.get("/x", headers={"cookie": "sekisho_session=s3cret"})
    (seen,) = UP_A.seen
    assert seen.values("cookie") == []


SMUGGLING = {
    "CL.TE": ("POST / HTTP/1.1\nHost: gw.test\nContent-Length: 6\nTransfer-Encoding: chunked\n\n",
              b"0\r\n\r\nG"),
    "TE.CL": ("POST / HTTP/1.1\nHost: gw.test\nTransfer-Encoding: chunked\nContent-Length: 3\n\n",
              b"8\r\nSMUGGLED\r\n0\r\n\r\n"),
    "TE xchunked": ("POST / HTTP/1.1\nHost: gw.test\nTransfer-Encoding: xchunked\n\n",
                    b"3\r\nabc\r\n0\r\n\r\n"),
    "TE space before colon": ("POST / HTTP/1.1\nHost: gw.test\nTransfer-Encoding : chunked\n\n",
                              b"3\r\nabc\r\n0\r\n\r\n"),
    "TE list": ("POST / HTTP/1.1\nHost: gw.test\nTransfer-Encoding: gzip, chunked\n\n",
                b"3\r\nabc\r\n0\r\n\r\n"),
    "TE twice": ("POST / HTTP/1.1\nHost: gw.test\nTransfer-Encoding: chunked\n"
                 "Transfer-Encoding: identity\n\n", b"3\r\nabc\r\n0\r\n\r\n"),
    "TE Chunked": ("POST / HTTP/1.1\nHost: gw.test\nTransfer-Encoding: Chunked\n\n",
                   b"3\r\nabc\r\n0\r\n\r\n"),
    "TE vertical tab": ("POST / HTTP/1.1\nHost: gw.test\nTransfer-Encoding: chunked\x0b\n\n",
                        b"3\r\nabc\r\n0\r\n\r\n"),
    "TE on HTTP/1.0": ("POST / HTTP/1.0\nHost: gw.test\nTransfer-Encoding: chunked\n\n",
                       b"3\r\nabc\r\n0\r\n\r\n"),
    "double CL": ("POST / HTTP/1.1\nHost: gw.test\nContent-Length: 3\nContent-Length: 3\n\n",
                  b"abc"),
    "differing CL": ("POST / HTTP/1.1\nHost: gw.test\nContent-Length: 3\nContent-Length: 4\n\n",
                     b"abcd"),
    "CL list": ("POST / HTTP/1.1\nHost: gw.test\nContent-Length: 3, 3\n\n", b"abc"),
    "CL sign": ("POST / HTTP/1.1\nHost: gw.test\nContent-Length: +3\n\n", b"abc"),
    "bare LF in header": ("GET / HTTP/1.1\nHost: gw.test\nX-A: b", b"\nRemote-User: x\r\n\r\n"),
    "bare CR in header": ("GET / HTTP/1.1\nHost: gw.test\nX-A: b", b"\rRemote-User: x\r\n\r\n"),
    "NUL in value": ("GET / HTTP/1.1\nHost: gw.test\nX-A: b\x00c\n\n", b""),
    "NUL in name": ("GET / HTTP/1.1\nHost: gw.test\nX-\x00A: b\n\n", b""),
    "control char": ("GET / HTTP/1.1\nHost: gw.test\nX-A: b\x01c\n\n", b""),
    "obs-fold": ("GET / HTTP/1.1\nHost: gw.test\nX-A: b\n c\n\n", b""),
    "two Host": ("GET / HTTP/1.1\nHost: gw.test\nHost: evil.example\n\n", b""),
    "no Host": ("GET / HTTP/1.1\nX-A: b\n\n", b""),
}
# h11 folds identical duplicates (RFC 9112 §6.3 allows it), unfolds obs-fold and accepts bare
# LF line ends, so these reach the app as well-formed requests; the guard catches the rest.
H11_ACCEPTS = {"double CL", "CL list", "bare LF in header", "TE Chunked", "obs-fold"}


@pytest.mark.parametrize("server", ["httptools", "h11"])
@pytest.mark.parametrize("name", SMUGGLING.keys())
def test_smuggling_payloads_never_reach_upstream(
    name: str, server: str, gateway: str, h11_gateway: str
) -> None:
    """PX-06: CL.TE, TE.CL, TE.TE obfuscations, double CL and CR/LF/NUL get a 400 (or uvicorn
    closes the connection) and the upstream sees no request at all."""
    if server == "h11" and name in H11_ACCEPTS:
        pytest.skip("h11 itself normalises this shape into a well-formed request")
    head, body = SMUGGLING[name]
    response = raw(gateway if server == "httptools" else h11_gateway, head, body)
    assert status_of(response) in (400, None), response[:200]
    assert response.count(b"HTTP/1.1 ") <= 1
    assert UP_A.seen == []


def test_unknown_host_gets_421(client: httpx.Client) -> None:
    """PX-08: `Host: evil.example` gets 421 and no upstream request."""
    response = client.get("/x", headers={"host": "evil.example"})
    assert response.status_code == 421
    assert response.headers["cache-control"] == "no-store"
    assert UP_A.seen == []


@pytest.mark.parametrize("path", ["/x/../y", "/x/%2e%2e/y", "/x/..%2fy", "/x/%252e%252e/y",
                                  "/x/..;/y", "/x/..\\y"])
def test_traversal_gets_400(gateway: str, path: str) -> None:
    """PX-06: no dot segment, however encoded, reaches an upstream."""
    response = raw(gateway, f"GET {path} HTTP/1.1\nHost: gw.test\nConnection: close\n\n")
    assert status_of(response) == 400
    assert UP_A.seen == []


def test_no_route_is_404(client: httpx.Client) -> None:
    """A host named by an upstream belongs to it: no fallback to the generic upstream."""
    assert client.get("/api/x", headers={"host": "api.test"}).json()["upstream"] == "b"
    response = client.get("/other", headers={"host": "api.test"})
    assert response.status_code == 404
    assert len(UP_B.seen) == 1
    assert not UP_A.seen


def test_routing_by_host(client: httpx.Client) -> None:
    """Two upstreams chosen by Host on the same path."""
    assert client.get("/r").json()["upstream"] == "a"
    assert client.get("/r", headers={"host": "b.test"}).json()["upstream"] == "b"
    assert client.get("/r", headers={"host": "B.TEST:80"}).json()["upstream"] == "b"


def test_strip_prefix_and_raw_path(client: httpx.Client) -> None:
    """The raw path and query reach the upstream unchanged (prefix stripped when set)."""
    assert client.get("/strip/a%20b/c%2Fd?q=%41&x").json()["path"] == "/base/a%20b/c%2Fd"
    (seen,) = UP_A.seen
    assert seen.raw_path == b"/base/a%20b/c%2Fd"
    assert seen.query == b"q=%41&x"


def test_upstream_down_is_502(client: httpx.Client) -> None:
    response = client.get("/down/x")
    assert response.status_code == 502
    assert "127.0.0.1" not in response.text
    assert response.headers["cache-control"] == "no-store"


def test_upstream_reset_is_502(client: httpx.Client) -> None:
    assert client.get("/reset/x").status_code == 502


def test_slow_upstream_is_504(client: httpx.Client) -> None:
    response = client.get("/slow/sleep?s=2")
    assert response.status_code == 504
    assert "Gateway Timeout" in response.text


def test_upstream_dying_mid_response_truncates(client: httpx.Client) -> None:
    """After the response started there is no status left: the client sees a truncation."""
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/abort")


def test_keepalive_connections_are_reused(client: httpx.Client) -> None:
    """The upstream sees fewer connections than requests."""
    for _ in range(30):
        assert client.get("/k").status_code == 200
    connections = {seen.client for seen in UP_A.seen}
    assert len(UP_A.seen) == 30
    assert len(connections) < 5


def test_response_headers(client: httpx.Client) -> None:
    """Repeated headers kept in order; hop-by-hop and Connection-named ones dropped."""
    response = client.get("/headers")
    assert response.headers.get_list("x-app") == ["one", "two"]
    assert "x-secret-hop" not in response.headers
    assert "keep-alive" not in response.headers


def test_redirects_are_passed_not_followed(client: httpx.Client) -> None:
    response = client.get("/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "http://upstream.internal:9/next?x=1"
    assert len(UP_A.seen) == 1


@pytest.mark.parametrize("code", [204, 304, 404, 500, 503])
def test_statuses_pass_through(client: httpx.Client, code: int) -> None:
    assert client.get(f"/status?code={code}").status_code == code


def test_head(client: httpx.Client) -> None:
    response = client.head("/stream?size=5000&length=1")
    assert response.status_code == 200
    assert response.headers["content-length"] == "5000"
    assert response.content == b""
    assert UP_A.seen[0].method == "HEAD"


@pytest.mark.parametrize("length", ["", "1"])
def test_chunked_and_sized_responses(client: httpx.Client, length: str) -> None:
    response = client.get(f"/stream?size=300000&length={length}")
    assert len(response.content) == 300000
    if length:
        assert response.headers["content-length"] == "300000"
    else:
        assert response.headers["transfer-encoding"] == "chunked"


def test_request_bodies(client: httpx.Client) -> None:
    """Content-Length uploads keep their length; chunked ones stay chunked; empty is empty."""
    assert client.post("/u", content=b"x" * 100_000).json()["body_size"] == 100_000
    assert UP_A.seen[-1].values("content-length") == ["100000"]
    assert client.post("/u", content=iter([b"a" * 1000, b"b" * 5])).json()["body_size"] == 1005
    assert UP_A.seen[-1].values("transfer-encoding") == ["chunked"]
    assert client.get("/u").json()["body_size"] == 0
    assert UP_A.seen[-1].values("content-length") == []
    assert UP_A.seen[-1].values("user-agent") == [f"python-httpx/{httpx.__version__}"]
    assert UP_A.seen[-1].values("accept-encoding") == ["gzip, deflate"]
