"""The change-password page on a real uvicorn: ending the other sessions is an offer (PW-14)
unless the change is forced by evidence of compromise; and the strength estimate runs only
after the rate limits and the current password (a refused attempt costs no zxcvbn work)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.auth.breach.corpora import build_corpus
from tests.integration.breach_helpers import (
    HTML,
    NEW_PASSWORD,
    audit_events,
    change_password,
    client,
    login,
    reason_of,
    session_cookie,
)
from tests.integration.stack import PASSWORD, Stack, running_stack

from sekisho.auth import strength
from sekisho.gateway.portal import password_pages

BREACHED = "tangerine orbit quietly 77"
KEEP = {"end_other_sessions": "0"}  # what the form sends with the box unchecked


@pytest.fixture
def pstack(tmp_path: Path) -> Iterator[Stack]:
    corpus = build_corpus(tmp_path / "pwned.sekisho", {BREACHED: 40})
    with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", state_url="memory://",
                       breach={"mode": "offline", "corpus_path": str(corpus)}) as running:
        running.add_user("alice", PASSWORD)
        running.add_user("carol", BREACHED)
        yield running




def _changes(stack: Stack) -> list[tuple[Any, ...]]:
    return [(e["details"]["forced"], e["details"]["end_other_sessions"],
             e["details"]["other_sessions_ended"])
            for e in audit_events(stack.settings, "authn_password_change")]


def test_offer_is_shown_checked(pstack: Stack) -> None:
    """PW-14: a voluntary change offers "Sign out my other sessions", checked by default;
    unchecked, the form still says so (the hidden 0 before the box's 1)."""
    with client(pstack) as c:
        login(c, "alice", PASSWORD)
        page = c.get("/_sekisho/password", headers=HTML).text
        box = re.search(r'<input type="checkbox" name="end_other_sessions"[^>]*>', page)
        assert box and 'value="1"' in box.group(0) and " checked" in box.group(0)
        assert "Sign out my other sessions" in page
        hidden = page.index('type="hidden" name="end_other_sessions" value="0"')
        assert hidden < box.start()
        assert 'data-other-sessions="forced"' not in page
        ja = c.get("/_sekisho/password?lang=ja", headers=HTML).text
        assert "ほかのセッションをすべてサインアウトする" in ja


def test_unchecked_keeps_the_other_session(pstack: Stack) -> None:
    """PW-14: with the box unchecked another session stays signed in and still works; this
    one gets a new ID all the same (SE-03); the page and the event say nothing ended."""
    with client(pstack) as other, client(pstack) as c:
        assert login(other, "alice", PASSWORD).status_code == 303
        assert login(c, "alice", PASSWORD).status_code == 303
        old = c.cookies.get("sekisho_session")
        changed = change_password(c, current=PASSWORD, new=NEW_PASSWORD, **KEEP)
        assert changed.status_code == 303
        assert changed.headers["location"] == "/_sekisho/password?changed=1&kept=1"
        assert session_cookie(changed) not in (None, old)
        page = c.get(changed.headers["location"], headers=HTML).text
        assert "Your other sessions stay signed in" in page
        assert other.get("/app").status_code == 200  # still signed in, still proxied
        assert c.get("/app").status_code == 200
        stale = httpx.get(f"{pstack.base}/app", headers=HTML,
                          cookies={"sekisho_session": old or ""})
        assert stale.status_code == 302  # the replaced session is gone
    assert _changes(pstack) == [(False, False, 0)]


def test_checked_ends_the_other_session(pstack: Stack) -> None:
    """PW-14: with the box checked (the default) the other session ends; the page says how
    many."""
    with client(pstack) as other, client(pstack) as c:
        login(other, "alice", PASSWORD)
        login(c, "alice", PASSWORD)
        changed = change_password(c, current=PASSWORD, new=NEW_PASSWORD,
                                  end_other_sessions="1")
        assert changed.headers["location"] == "/_sekisho/password?changed=1&ended=1"
        page = c.get(changed.headers["location"], headers=HTML).text
        assert 'data-sessions-ended="1"' in page and "1 other session(s) were signed out" in page
        assert other.get("/app", headers=HTML).status_code == 302
        assert c.get("/app").status_code == 200
    assert _changes(pstack) == [(False, True, 1)]


def test_forced_change_ends_other_sessions_whatever_the_form_says(pstack: Stack) -> None:
    """PW-14 with PW-12: a session quarantined by a breached password never offers to keep
    the other sessions, and a forged "keep" is ignored: they may be the attacker's."""
    with client(pstack) as other, client(pstack) as c:
        login(other, "carol", BREACHED)
        login(c, "carol", BREACHED)
        page = c.get("/_sekisho/password", headers=HTML).text
        assert 'data-other-sessions="forced"' in page
        assert 'name="end_other_sessions"' not in page
        changed = change_password(c, current=BREACHED, new=NEW_PASSWORD, **KEEP)
        assert changed.headers["location"] == "/_sekisho/password?changed=1&ended=1"
        gone = other.get("/_sekisho/password", headers=HTML)
        assert gone.status_code == 303 and "/login" in gone.headers["location"]
    assert _changes(pstack) == [(True, True, 1)]


def test_compromised_flag_forces_it_for_an_unrestricted_session(pstack: Stack) -> None:
    """PW-14 with PW-06: an account flagged compromised after its sessions began: a change
    from one of them ends the others, a forged "keep" notwithstanding."""
    with client(pstack) as other, client(pstack) as c:
        login(other, "alice", PASSWORD)
        login(c, "alice", PASSWORD)
        pstack.set_compromised("alice", True)
        assert 'data-other-sessions="forced"' in c.get("/_sekisho/password", headers=HTML).text
        changed = change_password(c, current=PASSWORD, new=NEW_PASSWORD, **KEEP)
        assert changed.headers["location"].endswith("ended=1")
        assert other.get("/app", headers=HTML).status_code == 302
        assert c.get("/app").status_code == 200
    assert _changes(pstack) == [(True, True, 1)]


def test_refused_change_runs_no_strength_estimate(
    pstack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The strength estimate (zxcvbn, ms of CPU) runs after the rate limit and the current
    password: a throttled or wrong-password attempt never reaches it (RL-02, PW-09)."""
    calls: list[str] = []

    def counting(password: str, **kwargs: Any) -> strength.Strength:
        calls.append("estimate")
        return strength.estimate(password, **kwargs)

    monkeypatch.setattr(password_pages, "estimate", counting)
    with client(pstack) as c:
        login(c, "alice", PASSWORD)
        # The counter sees the page's calls: the check intent, and a policy refusal.
        assert 'data-score="' in change_password(c, current="", new=NEW_PASSWORD,
                                                 intent="check").text
        refused = change_password(c, current=PASSWORD, new="QWERTYUIOP12345")
        assert reason_of(refused.text) == "common" and 'data-score="' in refused.text
        assert len(calls) == 2
        wrong = [change_password(c, current=f"guess number {i}", new=NEW_PASSWORD)
                 for i in range(5)]
        assert [reason_of(r.text) for r in wrong] == ["current_wrong"] * 5
        assert len(calls) == 2
        throttled = change_password(c, current=PASSWORD, new=NEW_PASSWORD)
        assert throttled.status_code == 429 and reason_of(throttled.text) == "throttled"
        assert 'data-score="' not in throttled.text
    assert len(calls) == 2
