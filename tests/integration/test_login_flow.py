"""The whole first path on a real uvicorn: anonymous → login → proxied with identity → logout.

Parametrized over the embedded backends (memory + SQLite) and the replica backends
(Redis + PostgreSQL).
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from tests.integration.stack import PASSWORD, Stack

HTML = {"accept": "text/html,application/xhtml+xml"}


def client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.base, follow_redirects=False, timeout=10)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(c: httpx.Client, username: str, password: str, *, next_url: str = "/") -> httpx.Response:
    page = c.get("/_sekisho/login", params={"next": next_url, "prompt": "login"}, headers=HTML)
    return c.post("/_sekisho/login", data={
        "csrf_token": csrf_from(page.text), "username": username, "password": password,
        "next": next_url})


def test_anonymous_is_sent_to_login_and_nothing_reaches_upstream(stack: Stack) -> None:
    """Invariant 2: no session, no upstream request; HTML GETs go to the login page."""
    with client(stack) as c:
        page = c.get("/wiki/page?x=1", headers=HTML)
        assert page.status_code == 302
        assert page.headers["location"] == "/_sekisho/login?next=%2Fwiki%2Fpage%3Fx%3D1"
        assert c.get("/api/items", headers={"accept": "application/json"}).status_code == 401
        assert c.post("/api/items", content=b"{}").status_code == 401
    assert stack.upstream.requests == []


def test_login_proxies_with_identity_then_logout_ends_it(stack: Stack) -> None:
    """PX-01, PX-07, SE-02, SE-06: the whole first path."""
    with client(stack) as c:
        done = login(c, "Alice", PASSWORD, next_url="/wiki/page")
        assert done.status_code == 303
        assert done.headers["location"] == "/wiki/page"
        cookie = next(v for v in done.headers.get_list("set-cookie")
                      if v.startswith("sekisho_session="))
        attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert attrs == {"path", "httponly", "samesite"}  # SE-02 (no Secure over plain http)
        assert "SameSite=Lax" in cookie and "Domain" not in cookie and "Max-Age" not in cookie
        assert done.headers["cache-control"] == "no-store"  # SE-09

        proxied = c.get("/wiki/page", headers={"Remote-User": "mallory", "Cookie2": "x"})
        assert proxied.status_code == 200
        assert stack.upstream.header(0, "remote-user") == ["alice"]
        assert stack.upstream.header(0, "remote-groups") == ["staff"]
        assert stack.upstream.header(0, "remote-email") == ["alice@example.com"]
        assert "sekisho_session" not in " ".join(stack.upstream.header(0, "cookie"))

        account = c.get("/_sekisho/", headers=HTML)
        assert account.status_code == 200 and "Alice Liddell" in account.text
        token = csrf_from(account.text)
        bye = c.post("/_sekisho/logout", data={"csrf_token": token})
        assert bye.status_code == 303
        assert bye.headers["clear-site-data"] == '"cache", "cookies", "storage"'
        assert any(v.startswith("sekisho_session=;") for v in bye.headers.get_list("set-cookie"))
    # The old cookie, sent again, is dead on the server (SE-06).
    stale = httpx.get(f"{stack.base}/wiki/page", cookies={"sekisho_session": _value(cookie)},
                      headers=HTML)
    assert stale.status_code == 302
    assert len(stack.upstream.requests) == 1


def _value(set_cookie: str) -> str:
    return set_cookie.split(";")[0].split("=", 1)[1]


def _mask(text: str) -> str:
    text = re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', text)
    return re.sub(r'nonce="[^"]+"', 'nonce=""', text)


def test_one_response_for_every_login_failure(stack: Stack) -> None:
    """LF-01: unknown user, wrong password, disabled account: same status, body, headers."""
    stack.add_user("bob", PASSWORD, disabled=True)
    stack.add_user("carol", PASSWORD)
    seen = []
    for username, password in [("nobody", PASSWORD), ("carol", PASSWORD + "x"),
                               ("bob", PASSWORD)]:
        with client(stack) as c:
            failed = login(c, username, password)
            names = sorted(k for k in failed.headers if k != "date")
            cookies = [v.split("=")[0] for v in failed.headers.get_list("set-cookie")]
            body = _mask(failed.text).replace(f'value="{username}"', 'value=""')
            seen.append((failed.status_code, names, cookies, body))
    assert seen[0][0] == 401
    assert "Login failed; invalid user ID or password." in seen[0][3]
    assert seen[0] == seen[1] == seen[2]
    assert stack.upstream.requests == []


def test_session_id_rotates_at_login(stack: Stack) -> None:
    """SE-03: each login issues a new ID and the one the browser came with dies."""
    with client(stack) as c:
        first = _value(login(c, "alice", PASSWORD).headers["set-cookie"])
        second_resp = login(c, "alice", PASSWORD)
        second = _value(next(v for v in second_resp.headers.get_list("set-cookie")
                             if v.startswith("sekisho_session=")))
    assert first != second
    old = httpx.get(f"{stack.base}/x", cookies={"sekisho_session": first}, headers=HTML)
    assert old.status_code == 302
    new = httpx.get(f"{stack.base}/x", cookies={"sekisho_session": second})
    assert new.status_code == 200


def test_token_not_accepted_from_query_or_body(stack: Stack) -> None:
    """SE-09: the session ID works only as a cookie."""
    with client(stack) as c:
        token = _value(login(c, "alice", PASSWORD).headers["set-cookie"])
    assert httpx.get(f"{stack.base}/x", params={"sekisho_session": token},
                     headers=HTML).status_code == 302
    assert httpx.post(f"{stack.base}/x", data={"sekisho_session": token}).status_code == 401


def test_csrf_required_on_login_and_logout(stack: Stack) -> None:
    """CR-01: no token or another binding's token gets 403 and changes nothing."""
    with client(stack) as c:
        c.get("/_sekisho/login", headers=HTML)
        assert c.post("/_sekisho/login", data={"username": "alice", "password": PASSWORD}
                      ).status_code == 403
        with client(stack) as other:
            foreign = csrf_from(other.get("/_sekisho/login").text)
        assert c.post("/_sekisho/login", data={"csrf_token": foreign, "username": "alice",
                                               "password": PASSWORD}).status_code == 403
        assert login(c, "alice", PASSWORD).status_code == 303
        assert c.post("/_sekisho/logout", data={}).status_code == 403
        assert c.get("/still-in").status_code == 200
        assert c.get("/_sekisho/logout").status_code == 405


@pytest.mark.parametrize("headers", [
    {"sec-fetch-site": "cross-site"},
    {"origin": "https://evil.example"},
    {"referer": "https://evil.example/form"},
])
def test_cross_site_posts_refused(stack: Stack, headers: dict[str, str]) -> None:
    """CR-02: a cross-site POST is refused even with a valid token."""
    with client(stack) as c:
        token = csrf_from(c.get("/_sekisho/login").text)
        refused = c.post("/_sekisho/login", headers=headers, data={
            "csrf_token": token, "username": "alice", "password": PASSWORD})
        assert refused.status_code == 403
        assert "sekisho_session" not in refused.headers.get("set-cookie", "")


@pytest.mark.parametrize("payload", ["//evil.example", "https://evil.example/",
                                     "/\\evil.example", "https://127.0.0.1@evil.example/"])
def test_return_to_only_same_origin(stack: Stack, payload: str) -> None:
    """CR-03: the Location after login never leaves the allowed origins."""
    with client(stack) as c:
        assert login(c, "alice", PASSWORD, next_url=payload).headers["location"] == "/"


@pytest.mark.parametrize("path", ["/_sekisho/login", "/_sekisho/", "/_sekisho/nope",
                                  "/_sekisho/static/sekisho.css"])
def test_security_headers_on_portal_pages(stack: Stack, path: str) -> None:
    """CR-04, SE-09: every portal response carries the security headers and no-store."""
    response = httpx.get(stack.base + path)
    csp = response.headers["content-security-policy"]
    for directive in ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"):
        assert directive in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_login_form_markup(stack: Stack) -> None:
    """PW-13, WA-09: autocomplete tokens (``webauthn`` for passkey autofill) and password
    type; the page works without JavaScript."""
    page = httpx.get(f"{stack.base}/_sekisho/login").text
    assert 'autocomplete="username webauthn"' in page
    assert 'type="password" autocomplete="current-password"' in page
    assert 'method="post"' in page


def test_japanese_portal(stack: Stack) -> None:
    page = httpx.get(f"{stack.base}/_sekisho/login", headers={"accept-language": "ja,en;q=0.5"})
    assert 'lang="ja"' in page.text and "ログイン" in page.text


def test_oversized_password_refused_before_hashing(stack: Stack) -> None:
    """ST-05: a 1 MB password field gets 413 and creates no session."""
    with client(stack) as c:
        token = csrf_from(c.get("/_sekisho/login").text)
        big = c.post("/_sekisho/login", data={"csrf_token": token, "username": "alice",
                                              "password": "a" * 1_000_000})
        assert big.status_code == 413
        assert "sekisho_session" not in big.headers.get("set-cookie", "")


def test_access_rules(stack: Stack) -> None:
    """Invariant 2: group rules and public paths decide what reaches the upstream."""
    with client(stack) as c:
        assert c.get("/pub/info").status_code == 200  # public path: no session needed
        assert stack.upstream.header(0, "remote-user") == []
        login(c, "alice", PASSWORD)
        assert c.get("/admin/panel").status_code == 403  # alice is not in "admins"
        assert len(stack.upstream.requests) == 1
    stack.add_user("root", PASSWORD, groups=["admins"])
    with client(stack) as c:
        login(c, "root", PASSWORD)
        assert c.get("/admin/panel").status_code == 200
        assert stack.upstream.header(1, "remote-groups") == ["admins"]


def test_upstream_cannot_set_gateway_cookie(stack: Stack) -> None:
    """PX-07: an upstream Set-Cookie for the gateway's cookie never reaches the browser."""
    with client(stack) as c:
        login(c, "alice", PASSWORD)
        response = c.get("/set-gateway-cookie")
        set_cookies = response.headers.get_list("set-cookie")
        assert set_cookies == ["app=1; Path=/"]


def test_unknown_host_refused(stack: Stack) -> None:
    """PX-08: a Host outside the configuration is refused and never proxied."""
    response = httpx.get(f"{stack.base}/", headers={"host": "evil.example"})
    assert response.status_code in (400, 421)
    assert stack.upstream.requests == []


def test_disabling_a_user_ends_their_sessions(stack: Stack) -> None:
    """SE-07: `user disable` ends every session of the user on the next request."""
    from sekisho.app import end_user_sessions

    with client(stack) as c:
        login(c, "alice", PASSWORD)
        assert c.get("/before").status_code == 200
        user_id = stack.set_disabled("alice", True)
        ended = asyncio.run(end_user_sessions(stack.settings, user_id))
        if stack.settings.state.url.startswith("redis://"):
            assert ended == 1
            for _ in range(100):  # the revocation reaches the gateway's cache by pub/sub
                if c.get("/after", headers=HTML).status_code == 302:
                    break
                time.sleep(0.01)
        else:  # memory state: the gateway re-checks the user at its next write-back
            time.sleep(stack.settings.session.touch_interval + 0.2)
        assert c.get("/after", headers=HTML).status_code == 302
    assert [r["path"] for r in stack.upstream.requests] == ["/before"]


@pytest.mark.parametrize("path", ["/a/%2e%2e/_sekisho/x", "/a/%2e%2e/b", "/%2E%2E/etc/passwd"])
def test_dot_segments_refused_before_any_lookup(stack: Stack, path: str) -> None:
    """Invariant 7: a traversal shape gets 400, never a 500 or an upstream request."""
    with httpx.Client(base_url=stack.base) as c:
        response = c.send(c.build_request("GET", stack.base + path))
    assert response.status_code == 400
    assert stack.upstream.requests == []
