"""Shared steps for the breach integration tests: log in, read the page, query the store."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from tests.integration.stack import Stack

from sekisho.audit.log import audit_log
from sekisho.config import Settings
from sekisho.store.db import Database
from sekisho.store.users import User, UserRepository

HTML = {"accept": "text/html,application/xhtml+xml"}
NEW_PASSWORD = "vermilion otter juggles seventeen kettles"


def client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.base, follow_redirects=False, timeout=10)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def reason_of(html: str) -> str | None:
    match = re.search(r'data-reason="([a-z_]+)"', html)
    return match.group(1) if match else None


def login(c: httpx.Client, username: str, password: str, *, next_url: str = "/") -> httpx.Response:
    page = c.get("/_sekisho/login", params={"next": next_url, "prompt": "login"}, headers=HTML)
    return c.post("/_sekisho/login", data={
        "csrf_token": csrf_from(page.text), "username": username, "password": password,
        "next": next_url})


def change_password(
    c: httpx.Client, *, current: str, new: str, confirm: str | None = None, **extra: str
) -> httpx.Response:
    page = c.get("/_sekisho/password", headers=HTML)
    assert page.status_code == 200, page.status_code
    data = {"csrf_token": csrf_from(page.text), "current_password": current,
            "new_password": new, "confirm_password": new if confirm is None else confirm,
            **extra}
    return c.post("/_sekisho/password", data=data)


def session_cookie(response: httpx.Response) -> str | None:
    for value in response.headers.get_list("set-cookie"):
        if value.startswith("sekisho_session="):
            return value.split(";")[0].split("=", 1)[1]
    return None


def _run(settings: Settings, action: Any) -> Any:
    async def go() -> Any:
        db = Database.from_url(settings.database.url)
        try:
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(go())


def audit_events(settings: Settings, name: str) -> list[dict[str, Any]]:
    async def action(db: Database) -> list[dict[str, Any]]:
        return [r.data() for r in await audit_log(db).list(event=name, newest_first=False)]

    result: list[dict[str, Any]] = _run(settings, action)
    return result


def user_record(settings: Settings, username: str) -> User:
    async def action(db: Database) -> User | None:
        return await UserRepository(db).get_by_username(username)

    user: User | None = _run(settings, action)
    assert user is not None
    return user
