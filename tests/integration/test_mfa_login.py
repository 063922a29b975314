"""The second login step over HTTP on a real uvicorn: pending sessions, TOTP and recovery
codes, throttling, replay, expiry. Parametrized over memory + SQLite and Redis + PostgreSQL;
the gateway runs on a controllable clock, TOTP codes come from the real oathtool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.mfa_portal import (
    BACKENDS,
    HTML,
    Clock,
    P,
    client,
    code_step,
    create_codes,
    enrol_totp,
    field,
    mfa_stack,
    oathtool,
    password_step,
    session_cookie,
)
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Stack]:
    with mfa_stack(request, tmp_path, clock) as running:
        yield running


def alice_with_totp(stack: Stack, clock: Clock, *, codes: list[str] | None = None) -> str:
    """Alice enrols an authenticator app from the Security page (and, given a list, fills it
    with her new recovery codes); returns the TOTP secret."""
    with client(stack) as c:
        assert password_step(c, "alice").status_code == 303
        secret, done = enrol_totp(c, clock)
        assert done.status_code == 303
        assert done.headers["location"] == f"{P}/mfa/codes?next=/_sekisho/security"
        if codes is not None:
            codes.extend(create_codes(c))
    clock.advance(30)  # the enrolment code's step is spent (TO-05)
    return secret


def test_optional_user_without_factor_signs_in_with_password_only(stack: Stack) -> None:
    with client(stack) as c:
        done = password_step(c, "alice", next_url="/wiki")
        assert done.status_code == 303 and done.headers["location"] == "/wiki"
        assert c.get("/wiki").status_code == 200


def test_pending_session_has_no_upstream_access(stack: Stack, clock: Clock) -> None:
    """LF-06: after the password, proxied paths are closed until the second factor."""
    secret = alice_with_totp(stack, clock)
    with client(stack) as c:
        first = password_step(c, "alice", next_url="/wiki/page")
        assert first.status_code == 303
        assert first.headers["location"] == f"{P}/mfa?next=/wiki/page"
        pending = session_cookie(first)
        assert pending
        html = c.get("/wiki/page", headers=HTML)
        assert html.status_code == 302 and html.headers["location"].startswith(f"{P}/login")
        assert c.get("/api/x", headers={"accept": "application/json"}).status_code == 401
        assert c.get(f"{P}/security").headers["location"].startswith(f"{P}/login")
        assert stack.upstream.requests == []
        done = code_step(c, oathtool(secret, clock.now), next_url="/wiki/page")
        assert done.status_code == 303 and done.headers["location"] == "/wiki/page"
        active = session_cookie(done)
        assert active and active != pending  # SE-03: rotated at MFA completion
        assert c.get("/wiki/page").status_code == 200
    assert len(stack.upstream.requests) == 1


def test_pending_session_expires_after_five_minutes(stack: Stack, clock: Clock) -> None:
    """LF-06: the pre-MFA state lives 300 s; a code after that finds no session."""
    secret = alice_with_totp(stack, clock)
    with client(stack) as c:
        assert password_step(c, "alice").status_code == 303
        page = c.get(f"{P}/mfa", headers=HTML)
        assert page.status_code == 200
        clock.advance(301)
        late = c.post(f"{P}/mfa/totp", data={"csrf_token": field(page.text, "csrf_token"),
                                            "code": oathtool(secret, clock.now)})
        assert late.status_code == 303 and late.headers["location"].startswith(f"{P}/login")
        assert c.get(f"{P}/mfa", headers=HTML).headers["location"].startswith(f"{P}/login")


def test_wrong_code_and_missing_csrf(stack: Stack, clock: Clock) -> None:
    secret = alice_with_totp(stack, clock)
    with client(stack) as c:
        password_step(c, "alice")
        wrong = code_step(c, "000000" if oathtool(secret, clock.now) != "000000" else "111111")
        assert wrong.status_code == 401
        assert "That code is not correct" in wrong.text
        no_csrf = c.post(f"{P}/mfa/totp", data={"code": oathtool(secret, clock.now)})
        assert no_csrf.status_code == 403
        foreign = c.post(f"{P}/mfa/totp", data={"code": oathtool(secret, clock.now),
                                               "csrf_token": "x" * 43})
        assert foreign.status_code == 403
        assert session_cookie(foreign) is None


def test_replayed_code_is_refused_and_counts_as_a_failure(stack: Stack, clock: Clock) -> None:
    """TO-05, TO-06: the same code twice in its step: the second is refused with a warning,
    and it counts like a wrong code (4 free failures, then the replay makes the 5th: wait)."""
    secret = alice_with_totp(stack, clock)
    code = oathtool(secret, clock.now)
    with client(stack) as c:
        password_step(c, "alice")
        assert code_step(c, code).status_code == 303
    with client(stack) as c:
        password_step(c, "alice")
        for _ in range(4):
            assert code_step(c, "000000" if code != "000000" else "111111").status_code == 401
        replay = code_step(c, code)
        assert replay.status_code == 401
        assert "used already" in replay.text
        # The replay was the 5th consecutive failure: the next attempt must wait (RL-02).
        waiting = code_step(c, code)
        assert waiting.status_code == 429
        assert waiting.headers["retry-after"] == "30"


def test_totp_throttled_through_the_regulator(stack: Stack, clock: Clock) -> None:
    """TO-08: after the free failures a correct code is refused (not evaluated) until the
    wait is over; then it works."""
    secret = alice_with_totp(stack, clock)
    with client(stack) as c:
        password_step(c, "alice")
        for _ in range(5):
            assert code_step(c, "999999" if oathtool(secret, clock.now) != "999999"
                             else "888888").status_code == 401
        refused = code_step(c, oathtool(secret, clock.now))
        assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
        assert session_cookie(refused) is None
    clock.advance(31)
    with client(stack) as c:
        password_step(c, "alice")
        assert code_step(c, oathtool(secret, clock.now)).status_code == 303


def test_recovery_code_as_second_factor_leads_to_reenrolment(stack: Stack,
                                                             clock: Clock) -> None:
    """RC-02, RC-05, RC-06: a code after the password; once only; then the Security page."""
    codes: list[str] = []
    alice_with_totp(stack, clock, codes=codes)
    assert len(codes) == 10
    with client(stack) as c:
        password_step(c, "alice")
        wrong = code_step(c, "0000-0000-0000-0000-0000-0000", kind="recovery")
        assert wrong.status_code == 401 and "not valid" in wrong.text
        done = code_step(c, codes[0].lower(), kind="recovery")
        assert done.status_code == 303
        assert done.headers["location"] == f"{P}/security?recovered=1"
        security = c.get(done.headers["location"], headers=HTML)
        assert "You signed in with a recovery code" in security.text
        assert 'data-recovery-remaining="9"' in security.text
    with client(stack) as c:
        password_step(c, "alice")
        again = code_step(c, codes[0], kind="recovery")
        assert again.status_code == 401 and session_cookie(again) is None


def test_required_user_is_led_through_enrolment(stack: Stack, clock: Clock) -> None:
    """Policy: a user in a required group without a factor enrols right after the password,
    then gets recovery codes, then the session is active (LF-06 until then)."""
    with client(stack) as c:
        first = password_step(c, "sam", next_url="/wiki")
        assert first.headers["location"] == f"{P}/mfa?next=/wiki"
        setup = c.get(first.headers["location"], headers=HTML)
        assert setup.status_code == 303
        assert setup.headers["location"] == f"{P}/mfa/setup?next=/wiki"
        assert c.get("/wiki", headers=HTML).status_code == 302  # still pending
        choice = c.get(setup.headers["location"], headers=HTML)
        assert "requires a second sign-in factor" in choice.text
        secret, done = enrol_totp(c, clock, next_url="/wiki")
        assert done.status_code == 303
        assert done.headers["location"] == f"{P}/mfa/codes?next=/wiki"
        assert session_cookie(done)  # rotated to an active session
        codes = create_codes(c)
        assert len(codes) == 10 and len(set(codes)) == 10
        assert c.get("/wiki").status_code == 200
    clock.advance(30)
    with client(stack) as c:
        password_step(c, "sam")
        assert code_step(c, oathtool(secret, clock.now)).status_code == 303


def test_mfa_page_is_no_store(stack: Stack, clock: Clock) -> None:
    """SE-09: auth pages are not cached."""
    alice_with_totp(stack, clock)
    with client(stack) as c:
        password_step(c, "alice")
        page = c.get(f"{P}/mfa", headers=HTML)
        assert page.headers["cache-control"] == "no-store"
        assert "content-security-policy" in page.headers


def test_cancel_ends_the_pending_session(stack: Stack, clock: Clock) -> None:
    alice_with_totp(stack, clock)
    with client(stack) as c:
        password_step(c, "alice")
        page = c.get(f"{P}/mfa", headers=HTML)
        pending = c.cookies.get("sekisho_session")
        bye = c.post(f"{P}/mfa/cancel", data={"csrf_token": field(page.text, "csrf_token")})
        assert bye.status_code == 303
    with client(stack) as c:
        c.cookies.set("sekisho_session", pending or "")
        page = c.get(f"{P}/mfa", headers=HTML)
        assert page.status_code == 303  # the pending session is gone
