"""PW-12 through the proxy on a real uvicorn: a login with a breached password reaches no
upstream until the password is changed at ``{prefix}/password``.

Over memory + SQLite and Redis + PostgreSQL, with the offline corpus; then the common list
and the online range API (a local fake) as the sources that catch the password.
"""

from __future__ import annotations

import asyncio
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
    session_cookie,
    user_record,
)
from tests.integration.stack import PASSWORD, Stack, running_stack

from sekisho.store.db import Database
from sekisho.store.users import UserRepository

BREACHED = "tangerine orbit quietly 77"


@pytest.fixture(params=["memory+sqlite", "redis+postgresql"])
def bstack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A gateway with an offline corpus listing BREACHED; carol's password is BREACHED."""
    corpus = build_corpus(tmp_path / "pwned.sekisho", {BREACHED: 12})
    if request.param == "memory+sqlite":
        db_url, state_url = f"sqlite:///{tmp_path / 'gw.sqlite3'}", "memory://"
    else:
        db_url = request.getfixturevalue("pg_url")
        state_url = request.getfixturevalue("redis_url")
    with running_stack(db_url=db_url, state_url=state_url, session={"touch_interval": 1},
                       breach={"mode": "offline", "corpus_path": str(corpus)}) as running:
        running.add_user("carol", BREACHED, groups=["staff"])
        running.add_user("alice", PASSWORD, groups=["staff"])
        yield running


def _quarantined(c: httpx.Client, stack: Stack) -> None:
    """Nothing of the upstream is reachable; the portal leads to the password page."""
    page = c.get("/wiki/page", headers=HTML)
    assert page.status_code == 302 and page.headers["location"] == "/_sekisho/"
    assert c.get("/api/items", headers={"accept": "application/json"}).status_code == 403
    assert c.post("/api/items", content=b"{}").status_code == 403
    assert c.get("/pub/x").status_code == 200  # public paths stay public
    stack.upstream.requests.clear()
    home = c.get("/_sekisho/", headers=HTML)
    assert home.status_code == 303 and home.headers["location"] == "/_sekisho/password"


def test_breached_login_is_quarantined_until_the_password_changes(bstack: Stack) -> None:
    """PW-12: login works, the session reaches no upstream, the change lifts it."""
    with client(bstack) as c:
        done = login(c, "carol", BREACHED, next_url="/wiki/page")
        assert done.status_code == 303
        restricted_cookie = session_cookie(done)
        _quarantined(c, bstack)
        assert bstack.upstream.requests == []
        assert user_record(bstack.settings, "carol").compromised  # PW-06 flag for admins
        page = c.get("/_sekisho/password", headers=HTML)
        assert page.status_code == 200 and 'data-restriction="change_password"' in page.text
        changed = change_password(c, current=BREACHED, new=NEW_PASSWORD)
        assert changed.status_code == 303
        assert changed.headers["location"] == "/_sekisho/password?changed=1&ended=0"
        fresh_cookie = session_cookie(changed)
        assert fresh_cookie and fresh_cookie != restricted_cookie  # SE-03: new ID
        proxied = c.get("/wiki/page", headers=HTML)
        assert proxied.status_code == 200
        assert bstack.upstream.header(0, "remote-user") == ["carol"]
    # The restricted session died with the change.
    stale = httpx.get(f"{bstack.base}/_sekisho/password", headers=HTML,
                      cookies={"sekisho_session": restricted_cookie or ""})
    assert stale.status_code == 303 and "/login" in stale.headers["location"]
    assert not user_record(bstack.settings, "carol").compromised
    caught = audit_events(bstack.settings, "authn_password_breached")
    assert [(e["event"], e["details"]["source"], e["details"]["count"]) for e in caught] == [
        ("authn_password_breached:login", "offline", 12)]
    changes = audit_events(bstack.settings, "authn_password_change")
    assert [e["details"]["was_restricted"] for e in changes] == [True]
    with client(bstack) as c:
        assert login(c, "carol", BREACHED).status_code == 401  # the old password is gone
        assert login(c, "carol", NEW_PASSWORD).status_code == 303
        assert c.get("/wiki/other", headers=HTML).status_code == 200


def test_clean_login_is_not_restricted(bstack: Stack) -> None:
    with client(bstack) as c:
        assert login(c, "alice", PASSWORD).status_code == 303
        assert c.get("/wiki/page").status_code == 200
    assert audit_events(bstack.settings, "authn_password_breached") == []


def test_restricted_session_can_log_out_and_stays_flagged(bstack: Stack) -> None:
    """Logging out without changing leaves the account flagged: the next login is
    quarantined again."""
    with client(bstack) as c:
        login(c, "carol", BREACHED)
        page = c.get("/_sekisho/password", headers=HTML)
        bye = c.post("/_sekisho/logout", data={"csrf_token": csrf_from(page.text)})
        assert bye.status_code == 303 and "logged_out=1" in bye.headers["location"]
    with client(bstack) as c:
        assert login(c, "carol", BREACHED, next_url="/wiki").status_code == 303
        _quarantined(c, bstack)
    assert bstack.upstream.requests == []


def test_common_password_is_caught_with_no_corpus(tmp_path: Path) -> None:
    """No download needed: breach.mode off, the common list still catches the login."""
    with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", state_url="memory://",
                       breach={"mode": "off"}) as stack:
        stack.add_user("dave", "QwertyUiop12345")
        with client(stack) as c:
            assert login(c, "dave", "QwertyUiop12345", next_url="/x").status_code == 303
            _quarantined(c, stack)
            assert change_password(c, current="QwertyUiop12345",
                                   new=NEW_PASSWORD).status_code == 303
            assert c.get("/x").status_code == 200
        caught = audit_events(stack.settings, "authn_password_breached")
        assert [e["details"]["source"] for e in caught] == ["common"]
        assert "count" not in caught[0]["details"]


def test_online_source_catches_the_login_with_k_anonymity(tmp_path: Path) -> None:
    """PW-10, PW-12: the range API (local fake) lists the password; only its prefix left."""
    with running_fake_range() as fake:
        fake.add(BREACHED, 3_000)
        with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
                           state_url="memory://",
                           breach={"mode": "online", "api_url": fake.base}) as stack:
            stack.add_user("erin", BREACHED)
            with client(stack) as c:
                assert login(c, "erin", BREACHED, next_url="/x").status_code == 303
                _quarantined(c, stack)
        assert len(fake.requests) == 1
        path, headers = fake.requests[0]
        assert len(path.rsplit("/", 1)[1]) == 5 and headers["Add-Padding"] == "true"
        caught = audit_events(stack.settings, "authn_password_breached")
        assert [(e["details"]["source"], e["details"]["count"]) for e in caught] == [
            ("online", 3_000)]


def test_online_outage_lets_the_login_through_and_files_the_event(tmp_path: Path) -> None:
    """PW-11: HIBP down never locks users out at login; hibp unavailable is recorded."""
    with running_fake_range() as fake:
        fake.status = 503
        fake.add(BREACHED, 3_000)
        with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
                           state_url="memory://",
                           breach={"mode": "online", "api_url": fake.base}) as stack:
            stack.add_user("frank", BREACHED, groups=["admins"])
            with client(stack) as c:
                assert login(c, "frank", BREACHED, next_url="/x").status_code == 303
                assert c.get("/x").status_code == 200
        events = audit_events(stack.settings, "authn_breach_check_unavailable")
        assert [e["event"] for e in events] == ["authn_breach_check_unavailable:online"]
        assert "503" in events[0]["details"]["reason"]


def test_check_at_login_can_be_turned_off(tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path / "pwned.sekisho", {BREACHED: 12})
    with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", state_url="memory://",
                       breach={"mode": "offline", "corpus_path": str(corpus),
                               "check_at_login": False}) as stack:
        stack.add_user("gina", BREACHED)
        with client(stack) as c:
            assert login(c, "gina", BREACHED, next_url="/x").status_code == 303
            assert c.get("/x").status_code == 200


def test_admin_flag_quarantines_a_clean_password(tmp_path: Path) -> None:
    """PW-06: an account flagged compromised must change its password at the next login."""
    with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
                       state_url="memory://") as stack:
        user_id = stack.add_user("hana", PASSWORD)

        async def flag() -> None:
            db = Database.from_url(stack.settings.database.url)
            try:
                await UserRepository(db).set_compromised(user_id, True)
            finally:
                await db.close()

        asyncio.run(flag())
        with client(stack) as c:
            assert login(c, "hana", PASSWORD, next_url="/x").status_code == 303
            _quarantined(c, stack)
            assert change_password(c, current=PASSWORD, new=NEW_PASSWORD).status_code == 303
            assert c.get("/x").status_code == 200
        assert audit_events(stack.settings, "authn_password_breached") == []
        assert not user_record(stack.settings, "hana").compromised
