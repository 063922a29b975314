"""The admin pages on a real uvicorn stack, over memory + SQLite and Redis + PostgreSQL:
access control, filters and paging, unlock (reason, CSRF, the regulator really lets the user
back in), CSV/JSON export, the chart, the audit trail (AD-01, AD-02, AD-05, AD-06, CR-01)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.stack import PASSWORD, Stack, running_stack
from tests.integration.test_login_flow import HTML, client, csrf_from, login

from sekisho.audit.log import audit_log
from sekisho.config import load_secrets
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.store import Database, LockoutRepository, Sighting
from sekisho.store.lockouts import EXPORT_FIELDS

WRONG = "definitely not the password"
ADMIN_PASSWORD = "admin horse battery staple"
API_TOKEN = "test-admin-token-0123456789abcdef"
API_DIGEST = hashlib.sha256(API_TOKEN.encode()).hexdigest()
ADMIN = "/_sekisho/admin"


@pytest.fixture(params=["memory+sqlite", "redis+postgresql"])
def admin_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A gateway whose password locks after 3 failures, with users alice (staff), bob (staff)
    and root (sekisho-admins), pages of 10, and one admin API token."""
    if request.param == "memory+sqlite":
        db_url, state_url = f"sqlite:///{tmp_path / 'gw.sqlite3'}", "memory://"
    else:
        db_url = request.getfixturevalue("pg_url")
        state_url = request.getfixturevalue("redis_url")
    with running_stack(
        db_url=db_url, state_url=state_url, session={"touch_interval": 1},
        ratelimit={"free_failures": 2, "disable_after": 3},
        admin={"groups": ["sekisho-admins"], "api_token_sha256": [API_DIGEST],
               "page_size": 10},
    ) as running:
        running.add_user("alice", PASSWORD, groups=["staff"])
        running.add_user("bob", PASSWORD, groups=["staff"])
        running.add_user("root", ADMIN_PASSWORD, groups=["sekisho-admins"])
        yield running


def run(stack: Stack, work: Any) -> Any:
    """Run ``await work(db)`` against the stack's database."""
    async def go() -> Any:
        db = Database.from_url(stack.settings.database.url)
        try:
            return await work(db)
        finally:
            await db.close()
    return asyncio.run(go())


def keys(stack: Stack) -> RateLimitKeys:
    return RateLimitKeys(load_secrets(stack.settings).session_key)


def lock(stack: Stack, username: str) -> None:
    """Lock ``username``'s password through the login page (3 failures, RL-01)."""
    with client(stack) as attacker:
        assert [login(attacker, username, WRONG).status_code for _ in range(3)] == [401] * 3


@contextmanager
def admin_client(stack: Stack) -> Iterator[httpx.Client]:
    """A client signed in as the admin ``root``."""
    with client(stack) as c:
        assert login(c, "root", ADMIN_PASSWORD).status_code == 303
        yield c


def records(stack: Stack, **filters: Any) -> list[Any]:
    return list(run(stack, lambda db: LockoutRepository(db).list(**filters)))


def audit_events(stack: Stack, event: str = "authz_admin") -> list[dict[str, Any]]:
    async def read(db: Database) -> list[dict[str, Any]]:
        return [r.data() for r in await audit_log(db).list(event=event)]
    return list(run(stack, read))


def listed_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)">', html)]


def admin_token(html: str) -> str:
    match = re.search(r'action="[^"]*/unlock" class="stack">\s*<input type="hidden" '
                      r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no unlock form on the page"
    return match.group(1)


def export_token(html: str) -> str:
    match = re.search(r'action="[^"]*/lockouts/export"[^>]*>\s*<input type="hidden" '
                      r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no export form on the page"
    return match.group(1)


def seed(stack: Stack, specs: list[tuple[str, str, datetime, dict[str, Any]]]) -> list[int]:
    """Open one record per (name, ip, when, extra) directly in the store."""
    k = keys(stack)

    async def go(db: Database) -> list[int]:
        repo, made = LockoutRepository(db), []
        for name, ip, at, extra in specs:
            subnet = ip.rsplit(".", 1)[0] + ".0/24"
            agent = extra.pop("agent", "Mozilla/5.0")
            update = await repo.open_or_update(
                account_key=k.account(name), factor="password",
                sighting=Sighting(7, at, at + timedelta(minutes=1), {ip: 7}, {subnet: 7},
                                  {agent: 7}), **extra)
            assert update is not None
            made.append(update.record.id)
        return made
    return list(run(stack, go))


def test_access_control(admin_stack: Stack) -> None:
    """AD-05: anonymous visitors are sent to sign in, non-admins get 403, admins the page;
    a non-admin's unlock post changes nothing."""
    lock(admin_stack, "alice")
    [record] = records(admin_stack)
    with client(admin_stack) as anon:
        for path in (f"{ADMIN}/", f"{ADMIN}/lockouts/{record.id}", f"{ADMIN}/audit"):
            page = anon.get(path, headers=HTML)
            assert page.status_code == 303
            assert page.headers["location"].startswith("/_sekisho/login?next=%2F_sekisho%2Fadmin")
        assert anon.get(ADMIN).status_code == 308
    with client(admin_stack) as bob:
        assert login(bob, "bob", PASSWORD).status_code == 303
        for path in (f"{ADMIN}/", f"{ADMIN}/lockouts/{record.id}", f"{ADMIN}/audit",
                     f"{ADMIN}/audit/verify"):
            denied = bob.get(path, headers=HTML)
            assert denied.status_code == 403, path
            assert "not in an admin group" in denied.text
        token = csrf_from(bob.get("/_sekisho/", headers=HTML).text)
        post = bob.post(f"{ADMIN}/lockouts/{record.id}/unlock",
                        data={"csrf_token": token, "reason": "let me in"})
        assert post.status_code == 403
    assert records(admin_stack)[0].state == "active"
    with admin_client(admin_stack) as root:
        page = root.get(f"{ADMIN}/", headers=HTML)
        assert page.status_code == 200 and listed_ids(page.text) == [record.id]
        assert "portal:root" in page.text and 'href="/_sekisho/static/sekisho.css"' in page.text


def test_unlock_lets_the_user_back_in(admin_stack: Stack) -> None:
    """AD-02, AD-06, RL-01: a locked password refuses the right password; an unlock without
    a reason or without the admin CSRF token is refused and changes nothing; with both, the
    record is closed, one authz_admin event is chained, and the user signs in again."""
    lock(admin_stack, "alice")
    with client(admin_stack) as fresh:
        assert login(fresh, "alice", PASSWORD).status_code == 401
    [record] = records(admin_stack)
    assert (record.username, record.state, record.failure_count) == ("alice", "active", 3)
    url = f"{ADMIN}/lockouts/{record.id}/unlock"
    with admin_client(admin_stack) as root:
        detail = root.get(f"{ADMIN}/lockouts/{record.id}", headers=HTML)
        assert detail.status_code == 200 and "alice" in detail.text
        token = admin_token(detail.text)
        logout_token = csrf_from(root.get("/_sekisho/", headers=HTML).text)
        for data, headers in (
            ({"reason": "called back"}, {}),  # no token
            ({"csrf_token": "x" * 43, "reason": "called back"}, {}),  # wrong token
            ({"csrf_token": logout_token, "reason": "called back"}, {}),  # another form's
            ({"csrf_token": token, "reason": "called back"}, {"sec-fetch-site": "cross-site"}),
            ({"csrf_token": token, "reason": "called back"}, {"origin": "https://evil.example"}),
        ):
            assert root.post(url, data=data, headers=headers).status_code == 403
        for reason in ("", "   "):
            refused = root.post(url, data={"csrf_token": token, "reason": reason})
            assert refused.status_code == 422
            assert "Give a reason" in refused.text
        assert root.post(url, data={"csrf_token": token}).status_code == 422
        assert records(admin_stack)[0].state == "active" and audit_events(admin_stack) == []
        with client(admin_stack) as fresh:
            assert login(fresh, "alice", PASSWORD).status_code == 401

        done = root.post(url, data={"csrf_token": token, "reason": "called back on desk phone"})
        assert done.status_code == 303
        assert done.headers["location"] == f"{ADMIN}/lockouts/{record.id}?done=unlocked"
        shown = root.get(done.headers["location"], headers=HTML)
        assert "The lockout was lifted" in shown.text and "portal:root" in shown.text
        again = root.post(url, data={"csrf_token": token, "reason": "again"})
        assert again.status_code == 409
    after = records(admin_stack)[0]
    assert (after.state, after.unlocked_by, after.unlock_reason) == (
        "unlocked", "portal:root", "called back on desk phone")
    [event] = audit_events(admin_stack)
    assert (event["action"], event["actor"], event["target"], event["reason"]) == (
        "lockout.unlock", "portal:root", f"lockout:{record.id}", "called back on desk phone")
    assert event["before"]["state"] == "active" and event["after"]["state"] == "unlocked"
    assert event["client_ip"] == "127.0.0.1"
    with client(admin_stack) as fresh:
        back = login(fresh, "alice", PASSWORD)
        assert back.status_code == 303
        assert fresh.get("/inside").status_code == 200


def test_filters_and_paging(admin_stack: Stack) -> None:
    """AD-01: filter by time, account (a user or a name that is no user), address, subnet
    and state; page through long lists; a bad filter is a 400 naming it."""
    now = datetime.now(UTC).replace(microsecond=0)
    alice, ghost, old = seed(admin_stack, [
        ("alice", "203.0.113.5", now - timedelta(hours=3), {"user_id": None,
                                                             "username": "alice"}),
        ("ghost", "198.51.100.7", now - timedelta(minutes=5),
         {"agent": "<script>alert(1)</script>"}),
        ("carol", "192.0.2.9", now - timedelta(days=3), {}),
    ])
    run(admin_stack, lambda db: LockoutRepository(db).unlock(old, actor="cli:x", reason="ok"))
    with admin_client(admin_stack) as root:
        def ids(**params: str) -> list[int]:
            page = root.get(f"{ADMIN}/lockouts", params=params, headers=HTML)
            assert page.status_code == 200, page.text
            return listed_ids(page.text)

        assert ids() == [ghost, alice, old]
        assert ids(account="ALICE") == [alice]
        assert ids(account="ghost") == [ghost]
        assert ids(ip="198.51.100.7") == [ghost]
        assert ids(ip="203.0.113.0/24") == [alice]
        assert ids(state="unlocked") == [old]
        assert ids(state="active", hours="24") == [ghost, alice]
        assert ids(hours="1") == [ghost]
        since = (now - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M")
        until = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        assert ids(since=since, until=until) == [alice]
        for params, named in (({"ip": "nonsense"}, "ip:"), ({"state": "gone"}, "state:"),
                              ({"since": "yesterday"}, "since:"),
                              ({"hours": "1", "since": since}, "hours:"),
                              ({"page": "0"}, "page:")):
            bad = root.get(f"{ADMIN}/lockouts", params=params, headers=HTML)
            assert bad.status_code == 400 and named in bad.text, params
        detail = root.get(f"{ADMIN}/lockouts/{ghost}", headers=HTML).text
        assert "<script>alert" not in detail  # client text is shown, never interpreted
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
        assert "name that is no user" in detail and "ghost" not in detail

    more = seed(admin_stack, [(f"user{i}", f"192.0.2.{i}", now - timedelta(minutes=10 + i), {})
                              for i in range(10)])
    with admin_client(admin_stack) as root:
        first = root.get(f"{ADMIN}/lockouts", params={"state": "active"}, headers=HTML)
        assert listed_ids(first.text) == [ghost, *more[:9]]
        older = re.search(r'<a href="([^"]+)" rel="next">', first.text)
        assert older and "state=active" in older.group(1)
        second = root.get(older.group(1).replace("&amp;", "&"), headers=HTML)
        assert listed_ids(second.text) == [more[9], alice]
        assert 'rel="next"' not in second.text and 'rel="prev"' in second.text


def test_export_csv_and_json(admin_stack: Stack) -> None:
    """AD-01, AD-06: the filtered list as CSV and JSON attachments with the review fields;
    CSV cells cannot start a formula; each export is audited; no CSRF token, no export."""
    now = datetime.now(UTC).replace(microsecond=0)
    first, second = seed(admin_stack, [
        ("alice", "203.0.113.5", now - timedelta(hours=1), {"agent": "=cmd|' /C calc'!A0"}),
        ("ghost", "198.51.100.7", now - timedelta(minutes=5), {}),
    ])
    run(admin_stack, lambda db: LockoutRepository(db).unlock(
        first, actor="@ops", reason="=HYPERLINK(\"http://evil.example\")"))
    with admin_client(admin_stack) as root:
        token = export_token(root.get(f"{ADMIN}/lockouts", headers=HTML).text)
        url = f"{ADMIN}/lockouts/export"
        assert root.post(url, data={"format": "csv"}).status_code == 403
        assert audit_events(admin_stack) == []

        as_csv = root.post(url, data={"csrf_token": token, "format": "csv"})
        assert as_csv.status_code == 200
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert re.fullmatch(r'attachment; filename="sekisho-lockouts-\d{8}T\d{6}Z\.csv"',
                            as_csv.headers["content-disposition"])
        assert as_csv.text.startswith("\ufeff")
        rows = list(csv.reader(io.StringIO(as_csv.text.lstrip("\ufeff"))))
        assert tuple(rows[0]) == EXPORT_FIELDS and len(rows) == 3
        by_id = {int(r[0]): dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
        assert by_id[first]["unlock_reason"] == "'=HYPERLINK(\"http://evil.example\")"
        assert by_id[first]["unlocked_by"] == "'@ops"
        assert json.loads(by_id[first]["user_agents"]) == [
            {"value": "=cmd|' /C calc'!A0", "count": 7}]
        assert by_id[second]["username"] == ""

        as_json = root.post(url, data={"csrf_token": token, "format": "json",
                                       "state": "active"})
        assert as_json.status_code == 200
        assert as_json.headers["content-disposition"].endswith('.json"')
        exported = json.loads(as_json.text)
        assert [r["id"] for r in exported] == [second]
        assert tuple(exported[0]) == EXPORT_FIELDS
        bad = root.post(url, data={"csrf_token": token, "format": "xlsx"})
        assert bad.status_code == 400
    events = audit_events(admin_stack)
    assert [(e["action"], e["details"]["format"], e["details"]["count"]) for e in events] == [
        ("lockout.export", "json", 1), ("lockout.export", "csv", 2)]
    assert events[0]["details"]["filters"] == {"state": "active"}
    assert all(e["actor"] == "portal:root" and e["target"] == "lockouts" for e in events)


def test_chart_shows_the_series(admin_stack: Stack) -> None:
    """AD-01: the chart is inline SVG with labelled axes whose buckets carry the failures,
    refusals and lockouts of each hour; it renders in Japanese too."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    run(admin_stack, lambda db: LockoutRepository(db).add_hourly(
        {hour: (37, 5), hour - timedelta(hours=2): (11, 0)}))
    seed(admin_stack, [("ghost", "198.51.100.7", datetime.now(UTC), {})])
    with admin_client(admin_stack) as root:
        page = root.get(f"{ADMIN}/", headers=HTML).text
        svg = page[page.index("<svg"):page.index("</svg>")]
        buckets = re.findall(r'<g class="bucket" data-start="([^"]+)" data-failures="(\d+)" '
                             r'data-refused="(\d+)" data-lockouts="(\d+)">', svg)
        assert len(buckets) == 24
        by_start = {datetime.fromisoformat(s): (int(f), int(r), int(n))
                    for s, f, r, n in buckets}
        assert by_start[hour] == (37, 5, 1)
        assert by_start[hour - timedelta(hours=2)] == (11, 0, 0)
        assert sum(f for f, _, _ in by_start.values()) == 48
        assert "Time (UTC)" in svg and "Sign-in attempts" in svg and ">50</text>" in svg
        week = root.get(f"{ADMIN}/", params={"chart": "7d"}, headers=HTML).text
        assert week.count('<g class="bucket"') == 28
        ja = root.get(f"{ADMIN}/", params={"lang": "ja"}, headers=HTML).text
        assert "時刻（UTC）" in ja and "サインイン試行" in ja and 'data-failures="37"' in ja
        assert root.get(f"{ADMIN}/", params={"chart": "1y"}, headers=HTML).status_code == 400


def test_audit_trail_page(admin_stack: Stack) -> None:
    """AD-06, AU-04: admin actions appear in the trail with actor, action and reason;
    filters by event and account; the chain verifies on request."""
    lock(admin_stack, "alice")
    [record] = records(admin_stack)
    with admin_client(admin_stack) as root:
        token = admin_token(root.get(f"{ADMIN}/lockouts/{record.id}", headers=HTML).text)
        assert root.post(f"{ADMIN}/lockouts/{record.id}/unlock",
                         data={"csrf_token": token, "reason": "ticket INC-1234"}
                         ).status_code == 303
        trail = root.get(f"{ADMIN}/audit", params={"event": "authz_admin"}, headers=HTML)
        assert trail.status_code == 200
        assert trail.text.count("<tr data-seq=") == 1
        assert "ticket INC-1234" in trail.text and "lockout.unlock" in trail.text
        by_account = root.get(f"{ADMIN}/audit", params={"account": "Alice"}, headers=HTML)
        events = re.findall(r"<code>(authn_login_lock:maxretries|authz_admin|"
                            r"authn_login_success)</code>", by_account.text)
        assert "authz_admin" in events and "authn_login_lock:maxretries" in events
        nobody = root.get(f"{ADMIN}/audit", params={"account": "bob"}, headers=HTML)
        assert "<tr data-seq=" not in nobody.text
        assert root.get(f"{ADMIN}/audit", params={"event": "no_such"},
                        headers=HTML).status_code == 400
        verified = root.get(f"{ADMIN}/audit/verify", headers=HTML)
        assert verified.status_code == 200
        assert 'id="chain-status" data-ok="true"' in verified.text
