"""Self-service unlock over HTTP on a real uvicorn (RL-07): a user whose password login was
locked by someone else's guessing gets back in with a recovery code plus the password, or
with a passkey; the lock is lifted and its record closed. Recovery's own failures look the
same whatever failed, and are throttled on their own counter (RC-04)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.mfa_portal import (
    BACKENDS,
    HTML,
    Clock,
    P,
    authenticator,
    client,
    create_codes,
    enrol_totp,
    field,
    mfa_stack,
    password_step,
    passwordless,
    register_passkey,
    session_cookie,
)
from tests.integration.stack import PASSWORD, Stack

from sekisho.store.db import Database
from sekisho.store.lockouts import LockoutRecord, LockoutRepository

pytestmark = pytest.mark.integration
SCHEDULE = {"free_failures": 2, "first_delay": 30, "disable_after": 4}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Stack]:
    with mfa_stack(request, tmp_path, clock, ratelimit=SCHEDULE) as running:
        yield running


def lock_password(stack: Stack, clock: Clock, username: str = "alice") -> None:
    """Wrong passwords until the password factor is disabled (RL-01), waits honoured."""
    for _ in range(SCHEDULE["disable_after"]):
        with client(stack) as c:
            assert password_step(c, username, "wrong " * 4).status_code == 401
        clock.advance(3600)
    with client(stack) as c:
        assert password_step(c, username).status_code == 401  # the right one, refused


def recover(c: httpx.Client, username: str, password: str, code: str) -> httpx.Response:
    page = c.get(f"{P}/recover", headers=HTML)
    assert page.status_code == 200
    return c.post(f"{P}/recover", data={"csrf_token": field(page.text, "csrf_token"),
                                        "username": username, "password": password,
                                        "code": code})


def codes_for(stack: Stack, clock: Clock, username: str = "alice") -> list[str]:
    with client(stack) as c:
        password_step(c, username)
        enrol_totp(c, clock)
        codes = create_codes(c)
    clock.advance(30)
    return codes


def lockouts(stack: Stack, account: str) -> list[LockoutRecord]:
    async def go() -> list[LockoutRecord]:
        db = Database.from_url(stack.settings.database.url)
        try:
            return await LockoutRepository(db).list(account=account)
        finally:
            await db.close()

    return asyncio.run(go())


def test_recovery_code_plus_password_unlocks(stack: Stack, clock: Clock) -> None:
    """RL-07, RC-05, RC-06: locked by attack traffic; recovery restores access, closes the
    lockout record as a self-service unlock, and leads to the Security page."""
    codes = codes_for(stack, clock)
    lock_password(stack, clock)
    with client(stack) as c:
        done = recover(c, "alice", PASSWORD, codes[3])
        assert done.status_code == 303
        assert done.headers["location"] == f"{P}/security?recovered=1"
        assert session_cookie(done)
        assert c.get("/wiki").status_code == 200
    records = lockouts(stack, "alice")
    assert [(r.factor, r.state, r.unlocked_by) for r in records] == [
        ("password", "unlocked", "self:recovery")]
    with client(stack) as c:  # the password works again (with its second factor)
        assert password_step(c, "alice").headers["location"].startswith(f"{P}/mfa")


def test_passkey_login_unlocks(stack: Stack, clock: Clock) -> None:
    """RL-07, issue 3: passkey sign-in is not stopped by the password lockout, and lifts it."""
    auth = authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        assert register_passkey(c, auth).status_code == 200
    lock_password(stack, clock)
    with client(stack) as c:
        done = passwordless(c, auth)
        assert done.status_code == 200 and session_cookie(done)
    assert [r.unlocked_by for r in lockouts(stack, "alice")] == ["self:passkey"]
    with client(stack) as c:
        assert password_step(c, "alice").status_code == 303


def test_recovery_failures_look_alike(stack: Stack, clock: Clock) -> None:
    """LF-01, RC-06: wrong code, wrong password, no code, unknown user: one answer; a code
    without the password never makes a session."""
    codes = codes_for(stack, clock)
    seen = set()
    for username, password, code in [("alice", PASSWORD, "0" * 24), ("alice", "x" * 20, codes[0]),
                                     ("alice", "", codes[0]), ("nobody", PASSWORD, codes[0])]:
        with client(stack) as c:
            failed = recover(c, username, password, code)
            assert failed.status_code == 401 and session_cookie(failed) is None
            body = re.sub(r'value="[^"]*"', 'value=""', failed.text)
            body = re.sub(r'nonce="[^"]+"', 'nonce=""', body)
            seen.add(body)
            clock.advance(3600)
    assert len(seen) == 1
    assert "Recovery failed" in next(iter(seen))
    with client(stack) as c:  # the code tried with a wrong password is still good
        assert recover(c, "alice", PASSWORD, codes[0]).status_code == 303


def test_recovery_is_throttled_on_its_own_counter(stack: Stack, clock: Clock) -> None:
    """RC-04: after the free failures a correct recovery waits; the password counter is not
    what stops it (the password login still works meanwhile)."""
    codes = codes_for(stack, clock)
    with client(stack) as c:
        for _ in range(3):
            assert recover(c, "alice", PASSWORD, "1" * 24).status_code == 401
        refused = recover(c, "alice", PASSWORD, codes[0])
        assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    with client(stack) as c:
        assert password_step(c, "alice").status_code == 303
    clock.advance(31)
    with client(stack) as c:
        assert recover(c, "alice", PASSWORD, codes[0]).status_code == 303


def test_recover_needs_the_csrf_token(stack: Stack) -> None:
    with client(stack) as c:
        c.get(f"{P}/recover", headers=HTML)
        refused = c.post(f"{P}/recover", data={"username": "alice", "password": PASSWORD,
                                               "code": "x"})
        assert refused.status_code == 403
