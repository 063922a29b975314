"""The breached-password admin page and API on a real uvicorn stack, over memory + SQLite and
Redis + PostgreSQL: who was caught (PW-08a, PW-12), where and by which source, whether the
password was changed since; filters, paging, CSV/JSON export (AD-01, AD-06), the JSON API,
access control (AD-05).

Catches are produced the real way (a login with a password in a small offline corpus, a
login with a common password, a new password refused as breached); older ones, for the
period filters and paging, are filed straight into the audit trail as the gateway files
them.
"""

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
from tests.auth.breach.corpora import build_corpus
from tests.integration.breach_helpers import (
    HTML,
    NEW_PASSWORD,
    change_password,
    client,
    csrf_from,
    login,
    user_record,
)
from tests.integration.stack import PASSWORD, Stack, running_stack

from sekisho.audit.breach_report import REPORT_FIELDS
from sekisho.audit.events import AuditEvent
from sekisho.audit.log import Auditor, audit_log
from sekisho.store.db import Database

BREACHED = "tangerine orbit quietly 77"
COMMON = "QwertyUiop12345"
ADMIN_PASSWORD = "admin horse battery staple"
API_TOKEN = "test-admin-token-breaches-0123456789"
BEARER = {"authorization": f"Bearer {API_TOKEN}"}
ADMIN = "/_sekisho/admin"
PAGE = f"{ADMIN}/breaches"
API = "/_sekisho/api/v1/breaches"
FORMULA = '=HYPERLINK("http://evil.example")'
_ROW = re.compile(r'<tr data-seq="(\d+)" data-user="([^"]*)" data-where="(\w+)" '
                  r'data-source="(\w*)" data-changed="(true|false)">')


@pytest.fixture(params=["memory+sqlite", "redis+postgresql"])
def bstack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """An offline corpus listing BREACHED (12 times); carol's password is BREACHED, dave's is
    on the common list, alice's is clean; root is an admin; pages of 10; one API token."""
    corpus = build_corpus(tmp_path / "pwned.sekisho", {BREACHED: 12})
    if request.param == "memory+sqlite":
        db_url, state_url = f"sqlite:///{tmp_path / 'gw.sqlite3'}", "memory://"
    else:
        db_url = request.getfixturevalue("pg_url")
        state_url = request.getfixturevalue("redis_url")
    with running_stack(
        db_url=db_url, state_url=state_url, session={"touch_interval": 1},
        breach={"mode": "offline", "corpus_path": str(corpus)},
        admin={"groups": ["sekisho-admins"], "page_size": 10,
               "api_token_sha256": [hashlib.sha256(API_TOKEN.encode()).hexdigest()]},
    ) as running:
        running.add_user("carol", BREACHED, groups=["staff"])
        running.add_user("dave", COMMON, groups=["staff"])
        running.add_user("alice", PASSWORD, groups=["staff"])
        running.add_user("root", ADMIN_PASSWORD, groups=["sekisho-admins"])
        yield running


def run(stack: Stack, work: Any) -> Any:
    async def go() -> Any:
        db = Database.from_url(stack.settings.database.url)
        try:
            return await work(db)
        finally:
            await db.close()
    return asyncio.run(go())


def file_catches(stack: Stack, specs: list[tuple[str, str, datetime, dict[str, Any]]]) -> None:
    """Chain ``authn_password_breached:<where>`` events for (account, where, when, details)
    as the gateway files them."""
    async def go(db: Database) -> None:
        auditor = Auditor.for_database(db)
        for account, where, at, details in specs:
            await auditor.record(AuditEvent(
                event=f"authn_password_breached:{where}", timestamp=at, account=account,
                factor="password", details=details))
    run(stack, go)


def admin_events(stack: Stack) -> list[dict[str, Any]]:
    async def read(db: Database) -> list[dict[str, Any]]:
        return [r.data() for r in await audit_log(db).list(event="authz_admin")]
    return list(run(stack, read))


@contextmanager
def admin_client(stack: Stack) -> Iterator[httpx.Client]:
    with client(stack) as c:
        assert login(c, "root", ADMIN_PASSWORD).status_code == 303
        yield c


def rows(html: str) -> list[tuple[str, str, str, bool]]:
    """(user, where, source, changed) of every listed catch, in page order."""
    return [(u, w, s, ch == "true") for _, u, w, s, ch in _ROW.findall(html)]


@contextmanager
def catch_carol(stack: Stack) -> Iterator[httpx.Client]:
    """carol signs in with BREACHED (caught: quarantined to the password page); her client."""
    with client(stack) as c:
        assert login(c, "carol", BREACHED, next_url="/wiki").status_code == 303
        assert c.get("/_sekisho/", headers=HTML).headers["location"] == "/_sekisho/password"
        yield c


def catch_all(stack: Stack) -> None:
    """carol at sign-in (offline corpus), dave at sign-in (common list), alice's new
    password refused as breached."""
    with catch_carol(stack):
        pass
    with client(stack) as c:
        assert login(c, "dave", COMMON).status_code == 303
    with client(stack) as c:
        assert login(c, "alice", PASSWORD).status_code == 303
        refused = change_password(c, current=PASSWORD, new=BREACHED)
        assert refused.status_code != 303


def test_access_control(bstack: Stack) -> None:
    """AD-05: anonymous visitors go to sign in and come back; a non-admin gets 403 on the
    page, the export and the API; the nav links the page for admins."""
    with catch_carol(bstack):
        pass
    with client(bstack) as anon:
        page = anon.get(PAGE, params={"pending": "1"}, headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == (
            "/_sekisho/login?next=%2F_sekisho%2Fadmin%2Fbreaches%3Fpending%3D1")
        assert anon.post(f"{PAGE}/export", data={"format": "csv"}).status_code == 303
        refused = anon.get(API)
        assert (refused.status_code, refused.json()["error"]) == (401, "unauthenticated")
    with client(bstack) as alice:
        assert login(alice, "alice", PASSWORD).status_code == 303
        denied = alice.get(PAGE, headers=HTML)
        assert denied.status_code == 403 and "carol" not in denied.text
        token = csrf_from(alice.get("/_sekisho/", headers=HTML).text)
        export = alice.post(f"{PAGE}/export", data={"csrf_token": token, "format": "json"})
        assert export.status_code == 403 and "carol" not in export.text
        api = alice.get(API)
        assert (api.status_code, api.json()["error"]) == (403, "forbidden")
    assert admin_events(bstack) == []
    with admin_client(bstack) as root:
        page = root.get(PAGE, headers=HTML)
        assert page.status_code == 200
        assert f'<a href="{PAGE}" aria-current="page">Breached passwords</a>' in page.text
        lockouts = root.get(f"{ADMIN}/lockouts", headers=HTML)
        assert f'<a href="{PAGE}">Breached passwords</a>' in lockouts.text


def test_caught_user_shows_not_changed_then_changed(bstack: Stack) -> None:
    """PW-12, PW-08a: the caught user is listed with where, source and count, "not changed",
    with links to their lockouts and audit events; once they change the password the same
    catch shows "changed" and leaves the pending filter."""
    user_id = user_record(bstack.settings, "carol").id
    with catch_carol(bstack) as carol, admin_client(bstack) as root:
        page = root.get(PAGE, headers=HTML)
        assert rows(page.text) == [("carol", "login", "offline", False)]
        assert "Breach corpus (offline)" in page.text and "At sign-in" in page.text
        assert ">Not changed<" in page.text and '<td class="num">12</td>' in page.text
        assert f'href="{ADMIN}/lockouts?account=carol"' in page.text
        assert f'href="{ADMIN}/audit?account={user_id}"' in page.text
        assert "1 shown, 1 not changed since" in page.text
        assert rows(root.get(PAGE, params={"pending": "1"}, headers=HTML).text) == [
            ("carol", "login", "offline", False)]
        assert change_password(carol, current=BREACHED, new=NEW_PASSWORD).status_code == 303
        page = root.get(PAGE, headers=HTML)
        assert rows(page.text) == [("carol", "login", "offline", True)]
        assert ">Changed<" in page.text and "1 shown, 0 not changed since" in page.text
        pending = root.get(PAGE, params={"pending": "1"}, headers=HTML)
        assert rows(pending.text) == [] and "No account was caught" in pending.text
        lockouts = root.get(f"{ADMIN}/lockouts", params={"account": "carol"}, headers=HTML)
        assert lockouts.status_code == 200
        ja = root.get(PAGE, params={"lang": "ja"}, headers=HTML)
        assert "変更済み" in ja.text and "漏えいデータ（オフライン）" in ja.text


def test_sources_filters_and_paging(bstack: Stack) -> None:
    """PW-08a, AD-01: every source and both places are told apart; the period and pending
    filters, paging by admin.page_size, and a bad filter is a 400 naming the parameter."""
    catch_all(bstack)
    alice_id = user_record(bstack.settings, "alice").id
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    file_catches(bstack, [
        (str(alice_id), "login", old + timedelta(minutes=i), {"source": "online", "count": 3000,
                                                              "username": "alice"})
        for i in range(11)])
    with admin_client(bstack) as root:
        recent = root.get(PAGE, params={"hours": "24"}, headers=HTML)
        assert sorted(rows(recent.text)) == [
            ("alice", "set", "offline", False), ("carol", "login", "offline", False),
            ("dave", "login", "common", False)]
        assert "Common-password list" in recent.text and "New password refused" in recent.text

        window = {"since": (old - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
                  "until": (old + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}
        first = root.get(PAGE, params=window, headers=HTML)
        assert rows(first.text) == [("alice", "login", "online", True)] * 10
        assert "Breach API (online)" in first.text and '<td class="num">3,000</td>' in first.text
        older = re.search(r'<a href="([^"]+)" rel="next">', first.text)
        assert older, "no link to the next page"
        second = root.get(older.group(1).replace("&amp;", "&"), headers=HTML)
        assert rows(second.text) == [("alice", "login", "online", True)]
        assert 'rel="prev"' in second.text and 'rel="next"' not in second.text

        everything = root.get(PAGE, headers=HTML)
        assert len(rows(everything.text)) == 10 and 'rel="next"' in everything.text
        pending = root.get(PAGE, params={"pending": "1"}, headers=HTML)
        assert sorted(u for u, *_ in rows(pending.text)) == ["alice", "carol", "dave"]
        assert all(not changed for *_, changed in rows(pending.text))
        assert rows(root.get(PAGE, params={**window, "pending": "1"}, headers=HTML).text) == []

        for params, named in (({"hours": "abc"}, "hours:"), ({"pending": "maybe"}, "pending:"),
                              ({"since": "yesterday"}, "since:"), ({"page": "0"}, "page:"),
                              ({"hours": "24", "since": "2025-01-01T00:00"}, "hours:")):
            bad = root.get(PAGE, params=params, headers=HTML)
            assert bad.status_code == 400 and named in bad.text, params
            assert rows(bad.text) == []


def test_export_csv_and_json(bstack: Stack) -> None:
    """AD-01, AD-06: the filtered catches as CSV (BOM, the CLI's columns, formula cells
    defused) and JSON; each export is audited; no CSRF token, no export and no event."""
    catch_all(bstack)
    file_catches(bstack, [("987654", "login", datetime.now(UTC) - timedelta(days=3),
                           {"source": "online", "count": 5, "username": FORMULA})])
    with admin_client(bstack) as root:
        page = root.get(PAGE, headers=HTML)
        token = re.search(r'action="[^"]*/breaches/export"[^>]*>\s*<input type="hidden" '
                          r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, "no export form on the page"
        url = f"{PAGE}/export"
        for data in ({"format": "csv"}, {"format": "csv", "csrf_token": "x" * 43}):
            assert root.post(url, data=data).status_code == 403
        assert root.post(url, data={"csrf_token": token.group(1), "format": "csv"},
                         headers={"sec-fetch-site": "cross-site"}).status_code == 403
        assert admin_events(bstack) == []

        as_csv = root.post(url, data={"csrf_token": token.group(1), "format": "csv"})
        assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
        assert re.fullmatch(r'attachment; filename="sekisho-breaches-\d{8}T\d{6}Z\.csv"',
                            as_csv.headers["content-disposition"])
        assert as_csv.text.startswith("\ufeff")
        table = list(csv.reader(io.StringIO(as_csv.text.lstrip("\ufeff"))))
        assert tuple(table[0]) == REPORT_FIELDS and len(table) == 5
        by_user = {r[1]: dict(zip(REPORT_FIELDS, r, strict=True)) for r in table[1:]}
        assert set(by_user) == {"alice", "carol", "dave", "'" + FORMULA}
        assert by_user["carol"]["where"] == "login" and by_user["carol"]["source"] == "offline"
        assert by_user["carol"]["count"] == "12" and by_user["carol"]["changed_since"] == "False"
        assert by_user["alice"]["where"] == "set"
        assert by_user["'" + FORMULA]["user_id"] == "987654"

        as_json = root.post(url, data={"csrf_token": token.group(1), "format": "json",
                                       "hours": "24", "pending": "1"})
        assert as_json.status_code == 200 and as_json.headers["content-disposition"].endswith(
            '.json"')
        exported = json.loads(as_json.text)
        assert sorted(r["username"] for r in exported) == ["alice", "carol", "dave"]
        assert all(tuple(r) == REPORT_FIELDS and r["changed_since"] is False for r in exported)
        bad = root.post(url, data={"csrf_token": token.group(1), "format": "xlsx"})
        assert bad.status_code == 400 and "format:" in bad.text
    events = admin_events(bstack)
    assert [(e["action"], e["target"], e["actor"], e["details"]["format"],
             e["details"]["count"]) for e in events] == [
        ("breach.export", "breaches", "portal:root", "json", 3),
        ("breach.export", "breaches", "portal:root", "csv", 4)]
    assert events[0]["details"]["filters"]["pending_only"] is True
    assert "since" in events[0]["details"]["filters"]
    assert events[1]["details"]["filters"] == {"pending_only": False}
    assert "carol" not in json.dumps(events)  # the event holds the query, not the catches


def test_api(bstack: Stack) -> None:
    """AD-01, AD-05: GET api/v1/breaches with a bearer token or an admin session: the same
    rows as the export, the filters, limit/offset paging; bad parameters 400 naming them."""
    catch_all(bstack)
    with client(bstack) as api:
        listed = api.get(API, headers=BEARER)
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert (body["limit"], body["offset"], body["next_offset"]) == (100, 0, None)
        items = body["items"]
        assert all(tuple(item) == REPORT_FIELDS for item in items)
        assert sorted((i["username"], i["where"], i["source"], i["count"], i["changed_since"])
                      for i in items) == [
            ("alice", "set", "offline", 12, False), ("carol", "login", "offline", 12, False),
            ("dave", "login", "common", None, False)]
        assert all(i["user_id"] == user_record(bstack.settings, i["username"]).id
                   for i in items)

        first = api.get(API, params={"limit": "2"}, headers=BEARER).json()
        assert len(first["items"]) == 2 and first["next_offset"] == 2
        rest = api.get(API, params={"limit": "2", "offset": "2"}, headers=BEARER).json()
        assert len(rest["items"]) == 1 and rest["next_offset"] is None
        assert [i["username"] for i in first["items"] + rest["items"]] == [
            i["username"] for i in items]
        future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        assert api.get(API, params={"since": future}, headers=BEARER).json()["items"] == []

        for params, named in (({"limit": "0"}, "limit:"), ({"hours": "-1"}, "hours:"),
                              ({"pending": "2"}, "pending:"),
                              ({"offset": "9999", "limit": "5"}, "offset:")):
            bad = api.get(API, params=params, headers=BEARER)
            assert (bad.status_code, bad.json()["error"]) == (400, "invalid_parameter"), params
            assert bad.json()["message"].startswith(named)
        assert api.post(API, headers=BEARER).status_code == 405

    with catch_carol(bstack) as carol:
        assert change_password(carol, current=BREACHED, new=NEW_PASSWORD).status_code == 303
    with admin_client(bstack) as root:
        pending = root.get(API, params={"pending": "1"}).json()["items"]
        assert sorted(i["username"] for i in pending) == ["alice", "dave"]
        changed = [i for i in root.get(API).json()["items"] if i["username"] == "carol"]
        assert changed[0]["changed_since"] is True and changed[0]["password_changed_at"]
    assert admin_events(bstack) == []  # reading is not audited; exports are
