"""Rate limiting and lockout through the real login page (issue 3), on memory and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.stack import PASSWORD, Stack, running_stack
from tests.integration.test_login_flow import HTML, client, csrf_from, login

WRONG = "definitely not the password"


def failures(c: httpx.Client, username: str, n: int) -> list[tuple[int, str | None]]:
    return [(r.status_code, r.headers.get("retry-after"))
            for r in (login(c, username, WRONG) for _ in range(n))]


def test_wait_window_refuses_even_the_right_password(stack: Stack) -> None:
    """RL-02: after the free failures, an attempt inside the wait window gets 429 with
    Retry-After and is not evaluated: the correct password does not get in."""
    with client(stack) as c:
        assert failures(c, "alice", 5) == [(401, None)] * 5
        refused = login(c, "alice", PASSWORD)
        assert refused.status_code == 429
        assert 25 <= int(refused.headers["retry-after"]) <= 30
        assert "sekisho_session=" not in refused.headers.get("set-cookie", "")
        assert "Too many sign-in attempts" in refused.text
    assert stack.upstream.requests == []


def test_unknown_user_gets_the_same_schedule(stack: Stack) -> None:
    """RL-06: the status and Retry-After sequence for a ghost equals that of a real user."""
    with client(stack) as c:
        real = failures(c, "alice", 7)
    with client(stack) as c:
        ghost = failures(c, "ghost", 7)
    assert [s for s, _ in real] == [s for s, _ in ghost] == [401] * 5 + [429] * 2
    assert [r is None for _, r in real] == [r is None for _, r in ghost]


def test_known_device_keeps_the_user_in(stack: Stack) -> None:
    """Issue 3 item 3: a lock triggered from elsewhere does not stop the user's own browser."""
    with client(stack) as user:
        assert login(user, "alice", PASSWORD).status_code == 303
        assert user.cookies.get("sekisho_session_device")
        user.post("/_sekisho/logout", data={"csrf_token": _account_token(user)})
        with client(stack) as attacker:
            failures(attacker, "alice", 6)
            assert login(attacker, "alice", PASSWORD).status_code == 429
        back = login(user, "alice", PASSWORD)
        assert back.status_code == 303
        assert user.get("/inside").status_code == 200


def _account_token(c: httpx.Client) -> str:
    from tests.integration.test_login_flow import csrf_from

    return csrf_from(c.get("/_sekisho/", headers=HTML).text)


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Stack]:
    ratelimit = {"free_failures": 2, "first_delay": 1, "max_delay": 1, "disable_after": 4}
    with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", state_url="memory://",
                       ratelimit=ratelimit) as running:
        running.add_user("alice", PASSWORD)
        yield running


def test_disabled_authenticator_looks_like_any_failure(strict: Stack) -> None:
    """RL-01 and invariant 1: at the hard limit the password is disabled; the correct password
    is refused with the same response as a wrong one, until an unlock."""
    import time

    with client(strict) as c:
        statuses = []
        for _ in range(4):
            response = login(c, "alice", WRONG)
            statuses.append(response.status_code)
            time.sleep(1.1)  # honour the (1 s) waits so every attempt is evaluated
        assert statuses == [401, 401, 401, 401]
        locked = login(c, "alice", PASSWORD)
        wrong = login(c, "alice", WRONG)
        assert locked.status_code == wrong.status_code == 401
        assert "Login failed; invalid user ID or password." in locked.text
        assert "sekisho_session=" not in locked.headers.get("set-cookie", "")


def test_hard_lock_leaves_a_record_an_audit_entry_and_an_alert(strict: Stack) -> None:
    """AD-01, AU-02: the failure that disables the password opens one durable lockout record
    (account, reason, count, addresses; no secret) and chains an authn_login_lock event."""
    import asyncio
    import json
    import time

    from sekisho.audit.log import audit_log
    from sekisho.store import Database
    from sekisho.store.lockouts import LockoutRepository

    with client(strict) as c:
        for _ in range(4):
            login(c, "alice", WRONG)
            time.sleep(1.1)

    async def read() -> tuple[list, list]:  # type: ignore[type-arg]
        db = Database.from_url(strict.settings.database.url)
        try:
            records = await LockoutRepository(db).list()
            events = await audit_log(db).list(event="authn_login_lock:maxretries")
            return records, events
        finally:
            await db.close()

    records, events = asyncio.run(read())
    assert len(records) == 1
    record = records[0]
    assert (record.username, record.factor, record.reason, record.state) == (
        "alice", "password", "maxretries", "active")
    assert record.failure_count == 4 and record.distinct_ips == 1
    assert WRONG not in json.dumps(record.export(), default=str)
    assert len(events) == 1


def test_spoofed_forwarded_for_never_changes_the_key(stack: Stack) -> None:
    """RL-10, RL-05: failures on 20 names, each with a random spoofed X-Forwarded-For from one
    untrusted peer, all count against that peer's address: the 11th name trips attack mode's
    distinct-usernames detector for the peer (docs/attack-mode.md), whose tighter budget then
    refuses every attempt from it. (Without attack mode the ip budget refuses the 21st.)"""
    import random

    with client(stack) as c:
        for i in range(20):
            spoof = {"x-forwarded-for": f"198.51.100.{random.randrange(1, 255)}"}
            page = c.get("/_sekisho/login", params={"prompt": "login"}, headers=spoof)
            response = c.post("/_sekisho/login", headers=spoof, data={
                "csrf_token": csrf_from(page.text), "username": f"victim{i}",
                "password": WRONG, "next": "/"})
            assert response.status_code == (401 if i < 11 else 429), i
        blocked = login(c, "someone-else", WRONG)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
