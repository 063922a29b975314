"""A whole gateway on a real uvicorn in front of a real upstream, for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.integration.servers import bound_socket, run_uvicorn

from sekisho.app import create_app
from sekisho.auth.passwords import Passwords
from sekisho.config import Settings, generate_key, validate_settings
from sekisho.store.db import Database
from sekisho.store.users import UserRepository

PASSWORD = "correct horse battery staple"


@dataclass
class Capture:
    """An upstream app that records every request it receives and echoes its headers."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        self.requests.append({"method": scope["method"], "path": scope["path"],
                              "query": scope["query_string"].decode(), "headers": headers})
        payload = json.dumps({"path": scope["path"], "headers": headers}).encode()
        extra: list[tuple[bytes, bytes]] = []
        if scope["path"] == "/set-gateway-cookie":
            extra = [(b"set-cookie", b"sekisho_session=evil; Path=/"),
                     (b"set-cookie", b"app=1; Path=/")]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), *extra]})
        await send({"type": "http.response.body", "body": payload})

    def header(self, index: int, name: str) -> list[str]:
        return [v for k, v in self.requests[index]["headers"] if k.lower() == name.lower()]


@dataclass
class Stack:
    base: str
    settings: Settings
    upstream: Capture
    port: int

    def add_user(self, username: str, password: str, *, groups: list[str] | None = None,
                 disabled: bool = False, email: str = "", display_name: str = "") -> int:
        async def go() -> int:
            db = Database.from_url(self.settings.database.url)
            passwords = Passwords(profile="owasp-minimum", workers=1)
            try:
                repo = UserRepository(db)
                user = await repo.add(
                    username=username, email=email or f"{username}@example.com",
                    display_name=display_name or username.title(),
                    groups=groups if groups is not None else ["staff"],
                    password_hash=await passwords.hash(password))
                if disabled:
                    await repo.set_disabled(user.id, True)
                return user.id
            finally:
                passwords.close()
                await db.close()

        return asyncio.run(go())


    def set_disabled(self, username: str, disabled: bool) -> int:
        return self._update_user(username, lambda repo, uid: repo.set_disabled(uid, disabled))

    def set_compromised(self, username: str, compromised: bool) -> int:
        return self._update_user(
            username, lambda repo, uid: repo.set_compromised(uid, compromised))

    def _update_user(
        self, username: str, change: Callable[[UserRepository, int], Awaitable[Any]]
    ) -> int:
        async def go() -> int:
            db = Database.from_url(self.settings.database.url)
            try:
                repo = UserRepository(db)
                user = await repo.get_by_username(username)
                assert user is not None
                await change(repo, user.id)
                return user.id
            finally:
                await db.close()

        return asyncio.run(go())


def stack_settings(*, port: int, upstream_port: int, db_url: str, state_url: str,
                   **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "server": {"listen": f"127.0.0.1:{port}",
                   "public_origins": [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]},
        "upstreams": [
            {"name": "app", "target": f"http://127.0.0.1:{upstream_port}"},
            {"name": "admins", "target": f"http://127.0.0.1:{upstream_port}",
             "path_prefix": "/admin", "allow_groups": ["admins"]},
            {"name": "public", "target": f"http://127.0.0.1:{upstream_port}",
             "path_prefix": "/pub", "public_paths": ["/pub"]},
        ],
        "database": {"url": db_url},
        "state": {"url": state_url},
        "passwords": {"argon2_profile": "owasp-minimum"},
        "secrets": {"session_key": generate_key(), "data_key": generate_key()},
    }
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return validate_settings(data)


@contextmanager
def running_stack(*, db_url: str, state_url: str, clock: Callable[[], float] | None = None,
                  **overrides: Any) -> Iterator[Stack]:
    """``clock``: a controllable gateway clock (sessions, limits, MFA), for expiry tests."""
    upstream = Capture()
    upstream_sock, gateway_sock = bound_socket(), bound_socket()
    upstream_port, port = upstream_sock.getsockname()[1], gateway_sock.getsockname()[1]
    settings = stack_settings(port=port, upstream_port=upstream_port, db_url=db_url,
                              state_url=state_url, **overrides)
    with run_uvicorn(upstream, sock=upstream_sock, lifespan="on"), \
            run_uvicorn(_gateway(settings, clock), sock=gateway_sock, lifespan="on") as base:
        yield Stack(base=base, settings=settings, upstream=upstream, port=port)


def _gateway(settings: Settings, clock: Callable[[], float] | None) -> Any:
    return create_app(settings) if clock is None else create_app(settings, clock=clock)
