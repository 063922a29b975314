"""Driving the MFA portal over HTTP in tests: a controllable clock, a stack fixture factory,
form helpers, TOTP codes from the real ``oathtool`` binary, and passkey ceremonies through
the backend's software authenticator (real keys and signatures, real py_webauthn on the
server)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.auth.mfa.soft_authenticator import SoftAuthenticator
from tests.integration.stack import PASSWORD, Stack, running_stack

P = "/_sekisho"
HTML = {"accept": "text/html,application/xhtml+xml"}
BACKENDS = ["memory+sqlite", "redis+postgresql"]


class Clock:
    """The gateway's clock, frozen at the real time of creation and moved by hand."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def mfa_stack(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock,
              **overrides: Any) -> Iterator[Stack]:
    """A running gateway (``request.param`` picks the backends) with user ``alice``
    (staff: MFA optional) and ``sam`` (secure: MFA required)."""
    if request.param == "memory+sqlite":
        db_url, state_url = f"sqlite:///{tmp_path / 'gw.sqlite3'}", "memory://"
    else:
        db_url = request.getfixturevalue("pg_url")
        state_url = request.getfixturevalue("redis_url")
    mfa = {"required_groups": ["secure"], **overrides.pop("mfa", {})}
    with running_stack(db_url=db_url, state_url=state_url, clock=clock, mfa=mfa,
                       session={"touch_interval": 1}, **overrides) as stack:
        stack.add_user("alice", PASSWORD, groups=["staff"], display_name="Alice Liddell")
        stack.add_user("sam", PASSWORD, groups=["staff", "secure"])
        yield stack


def client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.base, follow_redirects=False, timeout=15)


def field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no field {name} on the page"
    return match.group(1)


def session_cookie(response: httpx.Response) -> str | None:
    for value in response.headers.get_list("set-cookie"):
        if value.startswith("sekisho_session="):
            return value.split(";")[0].split("=", 1)[1] or None
    return None


def password_step(c: httpx.Client, username: str, password: str = PASSWORD, *,
                  next_url: str = "/") -> httpx.Response:
    page = c.get(f"{P}/login", params={"next": next_url, "prompt": "login"}, headers=HTML)
    return c.post(f"{P}/login", data={"csrf_token": field(page.text, "csrf_token"),
                                      "username": username, "password": password,
                                      "next": next_url})


def oathtool(secret: str, at: float) -> str:
    """The TOTP code of ``secret`` at ``at`` (Unix time), from the oathtool binary."""
    binary = shutil.which("oathtool")
    assert binary, "oathtool is not installed"
    out = subprocess.run([binary, "--totp", "-b", secret, "-N", f"@{int(at)}"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def code_step(c: httpx.Client, code: str, *, kind: str = "totp",
              next_url: str = "/") -> httpx.Response:
    """Submit a TOTP or recovery code on the MFA page of a pending login."""
    page = c.get(f"{P}/mfa", params={"next": next_url}, headers=HTML)
    assert page.status_code == 200, page.status_code
    return c.post(f"{P}/mfa/{kind}", data={"csrf_token": field(page.text, "csrf_token"),
                                          "code": code, "next": next_url})


def enrol_totp(c: httpx.Client, clock: Clock, *, next_url: str = f"{P}/security") -> tuple[
        str, httpx.Response]:
    """Enrol an authenticator app; returns the secret (read from the page) and the answer."""
    page = c.get(f"{P}/mfa/totp/setup", params={"next": next_url}, headers=HTML)
    assert page.status_code == 200, page.status_code
    shown = re.search(r"data-totp-key>([A-Z2-7 ]+)<", page.text)
    assert shown, "the key is not shown in text"
    secret = shown.group(1).replace(" ", "")
    assert secret == field(page.text, "secret")
    done = c.post(f"{P}/mfa/totp/setup", data={
        "csrf_token": field(page.text, "csrf_token"), "next": next_url, "secret": secret,
        "tag": field(page.text, "tag"), "code": oathtool(secret, clock.now)})
    return secret, done


def create_codes(c: httpx.Client) -> list[str]:
    page = c.get(f"{P}/mfa/codes", headers=HTML)
    assert page.status_code == 200, page.status_code
    shown = c.post(f"{P}/mfa/codes", data={"csrf_token": field(page.text, "csrf_token"),
                                          "next": f"{P}/security"})
    assert shown.status_code == 200, shown.status_code
    assert shown.headers["cache-control"] == "no-store"
    return re.findall(r"<li><code>([0-9A-Z-]+)</code></li>", shown.text)


def api(c: httpx.Client, path: str, token: str | None, body: dict[str, Any] | None = None
        ) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["x-csrf-token"] = token
    return c.post(f"{P}{path}", content=json.dumps(body or {}), headers=headers)


def authenticator(stack: Stack, **knobs: Any) -> SoftAuthenticator:
    return SoftAuthenticator(origin=f"http://localhost:{stack.port}", **knobs)


def register_passkey(c: httpx.Client, auth: SoftAuthenticator, *, name: str = "",
                     next_url: str = f"{P}/security") -> httpx.Response:
    page = c.get(f"{P}/mfa/passkey/setup", params={"next": next_url}, headers=HTML)
    assert page.status_code == 200, page.status_code
    token = re.search(r'data-csrf="([^"]+)"', page.text)
    assert token
    options = api(c, "/webauthn/register/options", token.group(1))
    assert options.status_code == 200, options.text
    return api(c, "/webauthn/register/verify", token.group(1), {
        "credential": auth.register(options.text), "name": name, "next": next_url})


def login_token(c: httpx.Client) -> str:
    """The login page's CSRF token (it also sets the pre-login cookie)."""
    page = c.get(f"{P}/login", params={"prompt": "login"}, headers=HTML)
    return field(page.text, "csrf_token")


def passwordless(c: httpx.Client, auth: SoftAuthenticator, *, next_url: str = "/",
                 **assertion: Any) -> httpx.Response:
    token = login_token(c)
    options = api(c, "/webauthn/login/options", token)
    assert options.status_code == 200, options.text
    return api(c, "/webauthn/login/verify", token, {
        "credential": auth.assertion(options.text, **assertion), "next": next_url})
