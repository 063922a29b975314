"""The change-password page on a real uvicorn: every refusal says why and changes nothing
(PW-08, PW-09, PW-13, CR-01, CR-02); a voluntary change ends the other sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.auth.breach.corpora import build_corpus
from tests.auth.breach.fake_range import running_fake_range
from tests.integration.breach_helpers import (
    HTML,
    NEW_PASSWORD,
    audit_events,
    change_password,
    client,
    csrf_from,
    login,
    reason_of,
    session_cookie,
    user_record,
)
from tests.integration.stack import PASSWORD, Stack, running_stack

BREACHED = "tangerine orbit quietly 77"
GUIDANCE = "Use a long passphrase of four or more unrelated words"


@pytest.fixture
def pstack(tmp_path: Path) -> Iterator[Stack]:
    corpus = build_corpus(tmp_path / "pwned.sekisho", {BREACHED: 40})
    with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", state_url="memory://",
                       breach={"mode": "offline", "corpus_path": str(corpus)}) as running:
        running.add_user("alice", PASSWORD, email="alice.smith@example.com",
                         display_name="Alice Smith")
        yield running


@pytest.fixture
def signed_in(pstack: Stack) -> Iterator[httpx.Client]:
    with client(pstack) as c:
        assert login(c, "alice", PASSWORD).status_code == 303
        yield c


def _unchanged(stack: Stack) -> None:
    assert audit_events(stack.settings, "authn_password_change") == []
    with client(stack) as c:
        assert login(c, "alice", PASSWORD).status_code == 303


def test_form_markup_for_password_managers(signed_in: httpx.Client) -> None:
    """PW-13: autocomplete tokens, type=password, a show toggle; no restriction banner."""
    page = signed_in.get("/_sekisho/password", headers=HTML)
    assert page.status_code == 200
    for token in ('autocomplete="username"', 'type="password" autocomplete="current-password"',
                  'type="password" autocomplete="new-password"', 'data-toggle="new_password"'):
        assert token in page.text
    assert "data-restriction" not in page.text
    assert page.headers["cache-control"] == "no-store"


def test_anonymous_is_sent_to_login(pstack: Stack) -> None:
    with client(pstack) as c:
        page = c.get("/_sekisho/password", headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == "/_sekisho/login?next=/_sekisho/password"
        posted = c.post("/_sekisho/password", data={"new_password": "x"})
        assert posted.status_code == 303 and "/login" in posted.headers["location"]


@pytest.mark.parametrize(("new", "confirm", "current", "reason", "status"), [
    (NEW_PASSWORD, NEW_PASSWORD, "not my password at all", "current_wrong", 400),
    (NEW_PASSWORD, NEW_PASSWORD + "x", PASSWORD, "mismatch", 400),
    ("short words", "short words", PASSWORD, "too_short", 400),
    ("QWERTYUIOP12345", "QWERTYUIOP12345", PASSWORD, "common", 400),
    ("Alice-Smith-2024!!", "Alice-Smith-2024!!", PASSWORD, "context", 400),
    (BREACHED, BREACHED, PASSWORD, "breached", 400),
    (PASSWORD, PASSWORD, PASSWORD, "unchanged", 400),
    ("", "", PASSWORD, "empty", 400),
])
def test_refusals_say_why_and_change_nothing(
    pstack: Stack, signed_in: httpx.Client, new: str, confirm: str, current: str,
    reason: str, status: int,
) -> None:
    """PW-09: a machine-readable reason, guidance for policy reasons, no change; the typed
    passwords never come back in the page."""
    refused = change_password(signed_in, current=current, new=new, confirm=confirm)
    assert refused.status_code == status
    assert reason_of(refused.text) == reason
    if reason in ("too_short", "common", "context", "breached"):
        assert GUIDANCE in refused.text
    for typed in {new, confirm, current} - {""}:
        assert f'value="{typed}"' not in refused.text
    _unchanged(pstack)


def test_breached_new_password_is_reported(pstack: Stack, signed_in: httpx.Client) -> None:
    """PW-08a: a refused breached password is an ``authn_password_breached:set`` event."""
    change_password(signed_in, current=PASSWORD, new=BREACHED)
    caught = audit_events(pstack.settings, "authn_password_breached")
    assert [(e["event"], e["details"]["source"]) for e in caught] == [
        ("authn_password_breached:set", "offline")]


def test_wrong_current_password_is_counted_and_throttled(
    pstack: Stack, signed_in: httpx.Client
) -> None:
    """RL-02 on this page too: the current password is a guess like a login's."""
    statuses = [change_password(signed_in, current=f"guess number {i}",
                                new=NEW_PASSWORD).status_code for i in range(6)]
    assert statuses[:5] == [400] * 5 and statuses[5] == 429
    fails = audit_events(pstack.settings, "authn_password_change_fail")
    assert len(fails) == 5 and {e["details"]["reason"] for e in fails} == {"current_password"}


def test_missing_or_foreign_csrf_token_is_refused(pstack: Stack, signed_in: httpx.Client) -> None:
    """CR-01: no token, another session's token: 403 and nothing changes."""
    data = {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD}
    assert signed_in.post("/_sekisho/password", data=data).status_code == 403
    with client(pstack) as other:
        login(other, "alice", PASSWORD)
        foreign = csrf_from(other.get("/_sekisho/password", headers=HTML).text)
    assert signed_in.post("/_sekisho/password",
                          data={**data, "csrf_token": foreign}).status_code == 403
    _unchanged(pstack)


def test_cross_site_post_is_refused(pstack: Stack, signed_in: httpx.Client) -> None:
    """CR-02: Fetch Metadata and Origin checks, as on the login form."""
    token = csrf_from(signed_in.get("/_sekisho/password", headers=HTML).text)
    data = {"csrf_token": token, "current_password": PASSWORD, "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD}
    for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "https://evil.example"}):
        assert signed_in.post("/_sekisho/password", data=data,
                              headers=headers).status_code == 403
    _unchanged(pstack)


def test_check_intent_gives_strength_feedback_and_changes_nothing(
    pstack: Stack, signed_in: httpx.Client
) -> None:
    weak = change_password(signed_in, current="", new="alice smith alice smith", intent="check")
    assert weak.status_code == 200
    assert 'data-score="' in weak.text and reason_of(weak.text) == "context"
    strong = change_password(signed_in, current="", new=NEW_PASSWORD, intent="check")
    assert 'data-score="4"' in strong.text and 'data-check="ok"' in strong.text
    _unchanged(pstack)


def test_voluntary_change_ends_every_other_session(pstack: Stack) -> None:
    """PW-14 (sessions part): the other sessions end, this one continues with a new ID."""
    with client(pstack) as other, client(pstack) as c:
        assert login(other, "alice", PASSWORD).status_code == 303
        assert login(c, "alice", PASSWORD).status_code == 303
        assert other.get("/app").status_code == 200
        changed = change_password(c, current=PASSWORD, new=NEW_PASSWORD)
        assert changed.status_code == 303 and session_cookie(changed)
        notice = c.get(changed.headers["location"], headers=HTML)
        assert "Your password has been changed" in notice.text
        assert c.get("/app").status_code == 200
        assert other.get("/app", headers=HTML).status_code == 302  # signed out
    changes = audit_events(pstack.settings, "authn_password_change")
    assert [(e["details"]["was_restricted"], e["details"]["other_sessions_ended"])
            for e in changes] == [(False, 1)]
    assert user_record(pstack.settings, "alice").password_changed_at is not None


def test_japanese_page(signed_in: httpx.Client) -> None:
    page = signed_in.get("/_sekisho/password?lang=ja", headers=HTML)
    assert "パスワードの変更" in page.text and 'lang="ja"' in page.text


def test_admins_fail_closed_when_the_range_api_is_down(tmp_path: Path) -> None:
    """PW-11 default: an admin's new password is refused while no source can answer; a
    staff member's is accepted (fail open) with the event."""
    with running_fake_range() as fake:
        fake.status = 503
        with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
                           state_url="memory://",
                           breach={"mode": "online", "api_url": fake.base}) as stack:
            stack.add_user("root", PASSWORD, groups=["admins"])
            stack.add_user("bob", PASSWORD, groups=["staff"])
            with client(stack) as c:
                login(c, "root", PASSWORD)
                refused = change_password(c, current=PASSWORD, new=NEW_PASSWORD)
                assert refused.status_code == 400
                assert reason_of(refused.text) == "breach_unavailable"
            with client(stack) as c:
                login(c, "bob", PASSWORD)
                assert change_password(c, current=PASSWORD,
                                       new=NEW_PASSWORD).status_code == 303
            events = audit_events(stack.settings, "authn_breach_check_unavailable")
            assert events and events[0]["details"]["source"] == "online"
