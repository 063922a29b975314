"""Header hygiene: identity, hop-by-hop, forwarding fields and cookies (PX-01, PX-02, PX-04,
PX-07)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from sekisho.config import IdentitySettings
from sekisho.gateway.headers import HeaderPolicy, encode_value
from sekisho.gateway.identity import Identity

ALICE = Identity("alice", ("staff", "dev"), "alice@example.com", "Alice Liddell")
COOKIES = {"sekisho_session", "__Host-sekisho_session", "sekisho_csrf"}
POLICY = HeaderPolicy(IdentitySettings(), gateway_cookies=COOKIES)
IDENTITY_NAMES = {"remote-user", "remote-groups", "remote-email", "remote-name"}


def upstream_headers(
    headers: list[tuple[bytes, bytes]],
    *,
    policy: HeaderPolicy = POLICY,
    identity: Identity | None = ALICE,
    scheme: str = "https",
    trusted_peer: bool = False,
) -> list[tuple[str, str]]:
    out, _ = policy.request(
        [(b"host", b"gw.example.com"), *headers], identity=identity, client_ip="203.0.113.9",
        scheme=scheme, trusted_peer=trusted_peer,
    )
    return out


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


SPOOFS = {
    "exact": [(b"remote-user", b"admin")],
    "x- variant": [(b"x-remote-user", b"admin")],
    "underscore": [(b"remote_user", b"admin")],
    "x underscore": [(b"x_remote_user", b"admin")],
    "mixed": [(b"x-remote_user", b"admin")],
    "duplicates": [(b"remote-user", b"admin"), (b"remote-user", b"root")],
    "all at once": [(b"x-remote-user", b"admin"), (b"x-remote-user", b"admin"),
                    (b"x_remote_user", b"admin"), (b"remote-user", b"admin"),
                    (b"remote_user", b"admin")],
    "uppercase (non-ASGI server)": [(b"REMOTE-USER", b"admin"), (b"Remote_User", b"admin")],
    "groups": [(b"remote-groups", b"admins"), (b"remote_groups", b"admins")],
    "email": [(b"remote-email", b"admin@example.com")],
    "name": [(b"remote-name", b"Admin")],
    "x-forwarded-user": [(b"x-forwarded-user", b"admin"), (b"x_forwarded_email", b"a@b")],
    "x-auth-request": [(b"x-auth-request-user", b"admin"), (b"x-auth-request-groups", b"x")],
    "x-user": [(b"x-user", b"admin"), (b"x-user-id", b"0"), (b"x-email", b"a@b")],
    "x-gateway": [(b"x-gateway-user", b"admin"), (b"x-sekisho-user", b"admin")],
}


@pytest.mark.parametrize("spoof", SPOOFS.values(), ids=SPOOFS.keys())
def test_spoofed_identity_headers_are_replaced(spoof: list[tuple[bytes, bytes]]) -> None:
    """PX-01: every case/underscore/duplicate variant goes; exactly one Remote-User remains."""
    out = upstream_headers(spoof)
    assert values(out, "remote-user") == ["alice"]
    assert values(out, "remote-groups") == ["staff,dev"]
    assert values(out, "remote-email") == ["alice@example.com"]
    assert values(out, "remote-name") == ["Alice Liddell"]
    sent = {v for _, v in spoof}
    assert not sent & {v for _, v in out}


def test_unauthenticated_request_carries_no_identity() -> None:
    """PX-01: with no identity the client's identity headers still go, none are added."""
    out = upstream_headers(list(SPOOFS["all at once"]), identity=None)
    names = {k.lower().replace("_", "-") for k, _ in out}
    assert not names & (IDENTITY_NAMES | {"x-remote-user"})


def test_custom_identity_header_names() -> None:
    """PX-01: the configured names are stripped and set, whatever the strip patterns."""
    policy = HeaderPolicy(
        IdentitySettings(user_header="X-Auth-User", groups_header="X-Auth-Groups",
                         email_header="X-Auth-Email", name_header="X-Auth-Name",
                         strip_headers=[]),
    )
    out = upstream_headers([(b"x_auth_user", b"admin"), (b"X-AUTH-USER", b"root")], policy=policy)
    assert values(out, "x-auth-user") == ["alice"]


def test_connection_cannot_strip_gateway_headers() -> None:
    """PX-02: `Connection: close, Remote-User, X-Forwarded-For` drops client fields only."""
    out = upstream_headers([
        (b"connection", b"close, Remote-User, X-Forwarded-For, x-custom, Host, Content-Length"),
        (b"x-custom", b"1"),
        (b"x-kept", b"1"),
        (b"content-length", b"3"),
    ])
    assert values(out, "remote-user") == ["alice"]
    assert values(out, "x-forwarded-for") == ["203.0.113.9"]
    assert values(out, "x-custom") == []
    assert values(out, "x-kept") == ["1"]
    assert values(out, "connection") == []
    assert values(out, "host") == ["gw.example.com"]
    assert values(out, "content-length") == ["3"]


def test_connection_named_with_underscores_and_in_several_copies() -> None:
    """PX-02: every Connection copy counts; names compare like identity names."""
    out = upstream_headers([
        (b"connection", b"x_custom"),
        (b"connection", b" X-Other ,"),
        (b"x-custom", b"1"),
        (b"x-other", b"1"),
    ])
    assert values(out, "x-custom") == values(out, "x-other") == []


HOP_BY_HOP = [
    (b"connection", b"keep-alive"), (b"keep-alive", b"timeout=5"),
    (b"proxy-connection", b"keep-alive"), (b"te", b"trailers"), (b"trailer", b"x-a"),
    (b"transfer-encoding", b"chunked"), (b"upgrade", b"h2c"),
    (b"proxy-authorization", b"Basic eDp5"), (b"proxy-authenticate", b"Basic"),
    (b"expect", b"100-continue"), (b"sec-websocket-key", b"x"),
    (b"http2-settings", b"AAA"),
]


def test_hop_by_hop_headers_are_dropped() -> None:
    """PX-02: hop-by-hop fields never reach the upstream."""
    out = upstream_headers([*HOP_BY_HOP, (b"connection", b"upgrade, http2-settings")])
    names = {k for k, _ in out}
    assert not names & {n.decode() for n, _ in HOP_BY_HOP}


def test_forwarding_headers_are_overwritten() -> None:
    """PX-04: client X-Forwarded-* / Forwarded / X-Real-IP are replaced, not appended to."""
    out = upstream_headers([
        (b"x-forwarded-host", b"evil.example"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x_forwarded_for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"http"),
        (b"x-forwarded-port", b"1"),
        (b"x-forwarded-prefix", b"/admin"),
        (b"forwarded", b"for=1.2.3.4;host=evil.example"),
        (b"x-real-ip", b"1.2.3.4"),
        (b"true-client-ip", b"1.2.3.4"),
        (b"x-original-url", b"/admin"),
    ])
    assert values(out, "x-forwarded-host") == ["gw.example.com"]
    assert values(out, "x-forwarded-for") == ["203.0.113.9"]
    assert values(out, "x-forwarded-proto") == ["https"]
    assert values(out, "forwarded") == ["for=203.0.113.9;proto=https;host=gw.example.com"]
    for name in ("x-forwarded-port", "x-forwarded-prefix", "x-real-ip", "true-client-ip",
                 "x-original-url", "x_forwarded_for"):
        assert values(out, name) == []
    assert "evil.example" not in repr(out)
    assert "1.2.3.4" not in repr(out)


def test_forwarded_proto_from_a_trusted_proxy() -> None:
    """PX-04: X-Forwarded-Proto is taken (right-most value) only from a trusted peer."""
    spoof = [(b"x-forwarded-proto", b"https")]
    assert values(upstream_headers(spoof, scheme="http"), "x-forwarded-proto") == ["http"]
    trusted = upstream_headers(spoof, scheme="http", trusted_peer=True)
    assert values(trusted, "x-forwarded-proto") == ["https"]
    chained = upstream_headers([(b"x-forwarded-proto", b"https, http")], trusted_peer=True)
    assert values(chained, "x-forwarded-proto") == ["http"]
    junk = upstream_headers([(b"x-forwarded-proto", b"gopher")], scheme="http", trusted_peer=True)
    assert values(junk, "x-forwarded-proto") == ["http"]


def test_forwarded_quotes_ipv6_and_ports() -> None:
    """PX-04: RFC 7239 §6 quoting for IPv6 nodes and host:port."""
    out, _ = POLICY.request([(b"host", b"gw.example.com:8443")], identity=None,
                            client_ip="2001:db8::1", scheme="http")
    assert values(out, "forwarded") == ['for="[2001:db8::1]";proto=http;host="gw.example.com:8443"']
    assert values(out, "x-forwarded-for") == ["2001:db8::1"]


def test_explicit_host_wins_and_missing_host_is_omitted() -> None:
    out, _ = POLICY.request([], identity=None, client_ip="1.2.3.4", scheme="http", host="gw.x")
    assert values(out, "host") == values(out, "x-forwarded-host") == ["gw.x"]
    out, _ = POLICY.request([], identity=None, client_ip="1.2.3.4", scheme="http")
    assert values(out, "host") == values(out, "x-forwarded-host") == []
    assert values(out, "forwarded") == ["for=1.2.3.4;proto=http"]


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        (b"sekisho_session=abc", None),
        (b"sekisho_session=abc; app=1", b"app=1"),
        (b"app=1; __Host-sekisho_session=abc; sekisho_csrf=t; other=2", b"app=1; other=2"),
        (b"SEKISHO_SESSION=abc;app=1", b"app=1"),
        (b"app=sekisho_session", b"app=sekisho_session"),
        (b"sekisho_session_x=1", b"sekisho_session_x=1"),
        (b"app=1", b"app=1"),
    ],
)
def test_gateway_cookies_are_stripped(cookie: bytes, expected: bytes | None) -> None:
    """PX-07: the gateway's cookies never reach the upstream; an emptied Cookie goes."""
    out = upstream_headers([(b"cookie", cookie)])
    assert values(out, "cookie") == ([] if expected is None else [expected.decode()])


def test_every_cookie_header_copy_is_filtered() -> None:
    """PX-07: HTTP/2 splits cookies over several fields; each is filtered."""
    out = upstream_headers([(b"cookie", b"a=1"), (b"cookie", b"sekisho_session=x"),
                            (b"cookie", b"b=2; sekisho_csrf=y")])
    assert values(out, "cookie") == ["a=1", "b=2"]


def test_authorization_is_kept_unless_configured() -> None:
    """PX-07: an Authorization header used only for the gateway can be removed."""
    auth = [(b"authorization", b"Bearer t"), (b"Authorization", b"Basic x")]
    assert values(upstream_headers(auth), "authorization") == ["Bearer t", "Basic x"]
    stripping = HeaderPolicy(IdentitySettings(), strip_authorization=True)
    assert values(upstream_headers(auth, policy=stripping), "authorization") == []


def test_has_body() -> None:
    def has_body(headers: list[tuple[bytes, bytes]]) -> bool:
        return POLICY.request(headers, identity=None, client_ip="1.2.3.4", scheme="http")[1]

    assert not has_body([])
    assert not has_body([(b"content-length", b"0")])
    assert not has_body([(b"content-length", b"000")])
    assert has_body([(b"content-length", b"10")])
    assert has_body([(b"transfer-encoding", b"chunked")])


def test_raw_utf8_values_pass_byte_for_byte() -> None:
    """aiohttp writes header text as UTF-8: a raw UTF-8 value must come out unchanged."""
    raw = "日本語.txt".encode()
    out = upstream_headers([(b"x-file-name", raw), (b"cookie", b"n=" + raw)])
    assert values(out, "x-file-name")[0].encode() == raw
    assert values(out, "cookie")[0].encode() == b"n=" + raw


def test_trailer_content_length_cannot_frame_the_upstream_request() -> None:
    """PX-06: uvicorn appends chunked trailer fields to the scope's header list, possibly after
    the guard ran; a Content-Length among them is not forwarded."""
    out, has_body = POLICY.request(
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"999")],
        identity=None, client_ip="1.2.3.4", scheme="http",
    )
    assert has_body
    assert values(out, "content-length") == []


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("alice", "alice"),
        ("Alice Liddell", "Alice Liddell"),
        ("山田 太郎", "%E5%B1%B1%E7%94%B0 %E5%A4%AA%E9%83%8E"),
        ("x\r\nX-Admin: 1", "x%0D%0AX-Admin: 1"),
        ("nul\x00", "nul%00"),
        ("100%", "100%25"),
        (" padded ", "%20padded%20"),
        ("tab\t", "tab%09"),
    ],
)
def test_identity_values_are_sanitised(value: str, encoded: str) -> None:
    """PX-01: identity values cannot inject fields; percent-decoding gives them back."""
    assert encode_value(value) == encoded
    assert unquote(encoded) == value


def test_groups_are_comma_joined_with_commas_encoded() -> None:
    identity = Identity("bob", ("a,b", "日本", "c"), "b@example.com", "Bob")
    out = upstream_headers([], identity=identity)
    assert values(out, "remote-groups") == ["a%2Cb,%E6%97%A5%E6%9C%AC,c"]
    assert [unquote(g) for g in values(out, "remote-groups")[0].split(",")] == list(identity.groups)


def test_response_headers() -> None:
    """PX-07: hop-by-hop and gateway Set-Cookies are dropped; other Set-Cookies all kept."""
    out = POLICY.response([
        (b"Connection", b"keep-alive, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Server", b"upstream/1.0"),
        (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
        (b"Content-Type", b"text/html"),
        (b"Set-Cookie", b"app=1; Path=/"),
        (b"Set-Cookie", b"sekisho_session=evil; Path=/"),
        (b"set-cookie", b" __Host-sekisho_session=evil"),
        (b"Set-Cookie", b"SEKISHO_CSRF=evil"),
        (b"Set-Cookie", b"other=2"),
        (b"Location", b"http://upstream.internal/x"),
        (b"X-Bad", b"a\x01b"),
        (b"X-Obs-Text", b"\xffok"),
    ])
    assert out == [
        (b"content-type", b"text/html"),
        (b"set-cookie", b"app=1; Path=/"),
        (b"set-cookie", b"other=2"),
        (b"location", b"http://upstream.internal/x"),
        (b"x-obs-text", b"\xffok"),
    ]


def test_verdict_memo_is_bounded() -> None:
    policy = HeaderPolicy(IdentitySettings())
    for i in range(3000):
        policy.verdict(f"x-random-{i}".encode())
    assert len(policy._memo) <= 1024
