"""A gateway stack for attack-mode tests that keeps hold of its app (services, hasher)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from argon2 import PasswordHasher
from tests.integration.servers import bound_socket, run_uvicorn
from tests.integration.stack import Capture, Stack, stack_settings
from tests.integration.test_login_flow import HTML, csrf_from

from sekisho.app import create_app
from sekisho.config import Settings
from sekisho.gateway.dispatch import Gateway

#: Distinct usernames trip at 3 names from one address (or one /24), and start attack mode;
#: the ratio detector is off so that only what a test does switches the mode on; the challenge
#: is easy (about 500 hashes).
ATTACK = {"failure_ratio": {"enabled": False},
          "distinct_usernames": {"max_per_ip": 2, "max_per_subnet": 2},
          "challenge": {"max_number": 1000}}
WRONG = "definitely not the password"


class CountingHasher:
    """Counts password hash computations (verify and hash) of the real hasher it wraps."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.calls = 0
        self._lock = threading.Lock()

    def hash(self, secret: bytes) -> str:
        with self._lock:
            self.calls += 1
        return self.inner.hash(secret)

    def verify(self, stored: str, secret: bytes) -> bool:
        with self._lock:
            self.calls += 1
        return self.inner.verify(stored, secret)

    def check_needs_rehash(self, stored: str) -> bool:
        return self.inner.check_needs_rehash(stored)


@dataclass
class Gateways:
    """One or more gateway replicas sharing the database and state."""

    stacks: list[Stack]
    apps: list[Gateway]
    hashers: list[CountingHasher]

    @property
    def hashes(self) -> int:
        return sum(h.calls for h in self.hashers)


@contextmanager
def attack_gateways(*, db_url: str, state_url: str, replicas: int = 1,
                    ratelimit: dict[str, Any] | None = None, **attack: Any) -> Iterator[Gateways]:
    """``replicas`` real uvicorn gateways (threads, each with its own app and caches) over
    one database and one state store, with attack mode as in ATTACK plus ``attack``, and
    the other ``ratelimit`` settings given."""
    upstream = Capture()
    socks = [bound_socket() for _ in range(replicas + 1)]
    ports = [s.getsockname()[1] for s in socks]
    section = {**(ratelimit or {}), "attack": {**ATTACK, **attack}}
    first = _settings(ports[1], ports[0], db_url, state_url, section, None)
    with ExitStack() as stack:
        stack.enter_context(run_uvicorn(upstream, sock=socks[0], lifespan="on"))
        stacks, apps, hashers = [], [], []
        for n in range(replicas):
            settings = _settings(ports[n + 1], ports[0], db_url, state_url, section, first)
            app = create_app(settings)
            hasher = CountingHasher(app.services.passwords.hasher)
            app.services.passwords.hasher = hasher  # type: ignore[assignment]
            base = stack.enter_context(run_uvicorn(app, sock=socks[n + 1], lifespan="on"))
            stacks.append(Stack(base=base, settings=settings, upstream=upstream,
                                port=ports[n + 1]))
            apps.append(app)
            hashers.append(hasher)
        yield Gateways(stacks, apps, hashers)


def _settings(port: int, upstream_port: int, db_url: str, state_url: str,
              ratelimit: dict[str, Any], first: Settings | None) -> Settings:
    """Replicas share the secrets of the first (one session key, one challenge key)."""
    # The test client is a trusted proxy: X-Forwarded-For picks each request's address.
    overrides: dict[str, Any] = {"ratelimit": ratelimit,
                                 "server": {"trusted_proxies": ["127.0.0.1/32"]}}
    if first is not None:
        keys = first.secrets
        assert keys.session_key is not None and keys.data_key is not None
        overrides["secrets"] = {"session_key": keys.session_key.get_secret_value(),
                                "data_key": keys.data_key.get_secret_value()}
    return stack_settings(port=port, upstream_port=upstream_port, db_url=db_url,
                          state_url=state_url, **overrides)


def client(stack: Stack, address: str = "192.0.2.7") -> httpx.Client:
    """A browser at ``address`` (seen through the trusted proxy hop)."""
    return httpx.Client(base_url=stack.base, follow_redirects=False, timeout=15,
                        headers={"x-forwarded-for": address})


def login_page(c: httpx.Client) -> httpx.Response:
    return c.get("/_sekisho/login", params={"next": "/", "prompt": "login"}, headers=HTML)


def challenge_of(page: str) -> dict[str, Any] | None:
    """The challenge the page hands to the solver, or None when it carries none."""
    import html
    import json

    match = re.search(r'data-altcha="([^"]+)"', page)
    return json.loads(html.unescape(match.group(1))) if match else None


def post_login(c: httpx.Client, page: httpx.Response, username: str, password: str,
               altcha: str | None = None) -> httpx.Response:
    data = {"csrf_token": csrf_from(page.text), "username": username, "password": password,
            "next": "/"}
    if altcha is not None:
        data["altcha"] = altcha
    return c.post("/_sekisho/login", data=data)


def trip(stack: Stack, address: str = "203.0.113.9") -> None:
    """Three failed names from one address: the usernames detector flags it and starts
    attack mode."""
    with client(stack, address) as c:
        for n in range(3):
            response = post_login(c, login_page(c), f"sprayed{n}", WRONG)
            assert response.status_code == 401, response.status_code
