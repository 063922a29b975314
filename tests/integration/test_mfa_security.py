"""The Security page over HTTP on a real uvicorn: step-up (SE-08), the last factor (WA-08),
recovery codes (RC-03), ending sessions (SE-07). Memory + SQLite and Redis + PostgreSQL,
on a controllable clock."""

from __future__ import annotations

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
    client,
    code_step,
    create_codes,
    enrol_totp,
    field,
    mfa_stack,
    oathtool,
    password_step,
)
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration
STEP_UP = f"{P}/login?prompt=login&next="


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Stack]:
    with mfa_stack(request, tmp_path, clock) as running:
        yield running


def security(c: httpx.Client) -> httpx.Response:
    page = c.get(f"{P}/security", headers=HTML)
    assert page.status_code == 200, page.status_code
    return page


def post(c: httpx.Client, path: str, **data: str) -> httpx.Response:
    token = field(security(c).text, "csrf_token")
    return c.post(f"{P}{path}", data={"csrf_token": token, **data})


def test_security_page_lists_factors_and_sessions(stack: Stack, clock: Clock) -> None:
    with client(stack) as c:
        password_step(c, "alice")
        page = security(c)
        assert page.headers["cache-control"] == "no-store"
        assert 'data-section="totp"' in page.text and 'data-recovery-remaining="0"' in page.text
        assert page.text.count("data-session=") == 1 and "data-current" in page.text


def test_step_up_after_fifteen_minutes(stack: Stack, clock: Clock) -> None:
    """SE-08: with auth age 16 min, every change redirects to re-authentication; after it,
    the change goes through, in a new session whose auth_at is fresh."""
    with client(stack) as c:
        password_step(c, "alice")
        token = field(security(c).text, "csrf_token")
        clock.advance(16 * 60)
        for path, data in [("/security/sessions/end-others", {}),
                           ("/security/totp/remove", {}),
                           ("/security/passkeys/delete", {"passkey_id": "1"}),
                           ("/mfa/codes", {})]:
            refused = c.post(f"{P}{path}", data={"csrf_token": token, **data})
            assert refused.status_code == 303, path
            assert refused.headers["location"].startswith(STEP_UP), path
        for path in ("/mfa/totp/setup", "/mfa/passkey/setup", "/password"):
            page = c.get(f"{P}{path}", headers=HTML)
            assert page.status_code == 303 and page.headers["location"].startswith(STEP_UP)
        assert password_step(c, "alice").status_code == 303  # re-authentication
        codes = create_codes(c)
        assert len(codes) == 10


def test_step_up_asks_the_second_factor_too(stack: Stack, clock: Clock) -> None:
    """SE-08 "both factors for MFA changes": a user with TOTP re-authenticates with it."""
    with client(stack) as c:
        password_step(c, "alice")
        secret, _ = enrol_totp(c, clock)
        clock.advance(16 * 60)
        assert c.get(f"{P}/mfa/totp/setup").headers["location"].startswith(STEP_UP)
        again = password_step(c, "alice", next_url=f"{P}/mfa/totp/setup")
        assert again.headers["location"].startswith(f"{P}/mfa?")
        done = code_step(c, oathtool(secret, clock.now), next_url=f"{P}/mfa/totp/setup")
        assert done.headers["location"] == f"{P}/mfa/totp/setup"
        assert c.get(f"{P}/mfa/totp/setup", headers=HTML).status_code == 200


def test_last_factor_of_a_required_user_cannot_be_removed(stack: Stack, clock: Clock) -> None:
    """WA-08: 409 and nothing changes; an optional user may remove theirs."""
    with client(stack) as c:
        password_step(c, "sam")
        secret, done = enrol_totp(c, clock, next_url="/")
        assert done.status_code == 303
        refused = post(c, "/security/totp/remove")
        assert refused.status_code == 409
        assert "This is your only second factor" in refused.text
        assert "mfa.security.on" not in refused.text and 'class="badge on"' in refused.text
    with client(stack) as c:
        password_step(c, "alice")
        enrol_totp(c, clock)
        removed = post(c, "/security/totp/remove")
        assert removed.status_code == 303 and removed.headers["location"].endswith("done=removed")
        assert "No authenticator app is set up" in security(c).text
    clock.advance(30)
    with client(stack) as c:  # sam still needs his TOTP
        password_step(c, "sam")
        assert code_step(c, oathtool(secret, clock.now)).status_code == 303


def test_regenerated_codes_replace_the_old_ones(stack: Stack, clock: Clock) -> None:
    """RC-03: shown once with no-store; the old set stops working."""
    with client(stack) as c:
        password_step(c, "alice")
        enrol_totp(c, clock)
        first = create_codes(c)
        second = create_codes(c)
        assert set(first).isdisjoint(second)
        assert 'data-recovery-remaining="10"' in security(c).text
    with client(stack) as c:
        password_step(c, "alice")
        assert code_step(c, first[0], kind="recovery").status_code == 401
        assert code_step(c, second[0], kind="recovery").status_code == 303


def test_end_one_session_and_all_others(stack: Stack) -> None:
    """SE-07: two other sessions; end one, then the rest: each is dead at once."""
    with client(stack) as a, client(stack) as b, client(stack) as d:
        for c in (a, b, d):
            assert password_step(c, "alice").status_code == 303
        page = security(a).text
        refs = re.findall(r'data-session="([0-9a-f]+)"(?! data-current)', page)
        assert len(refs) == 2
        assert b.get("/wiki").status_code == 200 and d.get("/wiki").status_code == 200
        ended = post(a, "/security/sessions/end", session=refs[0])
        assert ended.status_code == 303
        alive = [c for c in (b, d) if c.get("/wiki", headers=HTML).status_code == 200]
        assert len(alive) == 1
        assert post(a, "/security/sessions/end", session=refs[0]).status_code == 404
        assert post(a, "/security/sessions/end-others").status_code == 303
        assert alive[0].get("/wiki", headers=HTML).status_code == 302
        assert a.get("/wiki").status_code == 200
        assert security(a).text.count("data-session=") == 1


def test_changes_need_the_csrf_token(stack: Stack) -> None:
    with client(stack) as c:
        password_step(c, "alice")
        for path in ("/security/sessions/end-others", "/security/totp/remove", "/mfa/codes"):
            assert c.post(f"{P}{path}", data={}).status_code == 403
            assert c.post(f"{P}{path}", data={"csrf_token": "A" * 43}).status_code == 403
        cross = c.post(f"{P}/security/sessions/end-others",
                       data={"csrf_token": field(security(c).text, "csrf_token")},
                       headers={"sec-fetch-site": "cross-site"})
        assert cross.status_code == 403


def test_anonymous_is_sent_to_login(stack: Stack) -> None:
    with client(stack) as c:
        for path in ("/security", "/mfa", "/mfa/codes", "/mfa/totp/setup"):
            page = c.get(f"{P}{path}", headers=HTML)
            assert page.status_code == 303 and f"{P}/login" in page.headers["location"]
