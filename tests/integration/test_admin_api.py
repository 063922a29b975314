"""The admin JSON API on a real uvicorn stack, over memory + SQLite and Redis + PostgreSQL:
authentication (session, bearer token), CSRF on POST, unlock, listing, stats, audit
(AD-01, AD-02, AD-05, AD-06, CR-01)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from tests.integration.stack import PASSWORD, Stack, running_stack
from tests.integration.test_admin_pages import (
    API_TOKEN,
    admin_client,
    admin_stack,
    audit_events,
    lock,
    records,
    run,
    seed,
)
from tests.integration.test_login_flow import HTML, client, login

from sekisho.audit.log import audit_log
from sekisho.config import generate_key
from sekisho.store import Database, LockoutRepository

__all__ = ["admin_stack"]  # the fixture, shared with the page tests

API = "/_sekisho/api/v1"
BEARER = {"authorization": f"Bearer {API_TOKEN}"}
ACTOR = f"api-token:{hashlib.sha256(API_TOKEN.encode()).hexdigest()[:8]}"


def test_authentication(admin_stack: Stack) -> None:
    """AD-05: no credentials 401 (with a Bearer challenge), a bad or malformed bearer token
    401, a non-admin session 403; an admin session and a listed token get in."""
    with client(admin_stack) as anon:
        for path in ("/lockouts", "/lockouts/1", "/audit", "/audit/verify", "/stats", "/csrf"):
            refused = anon.get(API + path)
            assert refused.status_code == 401, path
            assert refused.json() == {"error": "unauthenticated", "message": "sign in first"}
            assert refused.headers["www-authenticate"] == 'Bearer realm="sekisho-admin"'
        for header in ("Bearer wrong-token-0123456789", "Bearer " + API_TOKEN + "x",
                       "Basic cm9vdDpyb290", "Bearer", "Bearer short"):
            bad = anon.get(f"{API}/lockouts", headers={"authorization": header})
            assert bad.status_code == 401 and bad.json()["error"] == "invalid_token", header
            assert 'error="invalid_token"' in bad.headers["www-authenticate"]
        ok = anon.get(f"{API}/lockouts", headers=BEARER)
        assert ok.status_code == 200 and ok.json()["items"] == []
        assert anon.get(f"{API}/csrf", headers=BEARER).json() == {
            "actor": ACTOR, "csrf_token": None}
        assert anon.post(f"{API}/lockouts/1/unlock", json={"reason": "x"}).status_code == 401
    with client(admin_stack) as bob:
        assert login(bob, "bob", PASSWORD).status_code == 303
        denied = bob.get(f"{API}/lockouts")
        assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    with admin_client(admin_stack) as root:
        assert root.get(f"{API}/lockouts").status_code == 200
        assert root.get(f"{API}/csrf").json()["actor"] == "portal:root"
        assert root.get(f"{API}/nowhere").json()["error"] == "not_found"
        assert root.delete(f"{API}/lockouts").status_code == 405


def test_session_unlock_needs_the_csrf_header(admin_stack: Stack) -> None:
    """CR-01, AD-02: a session POST without (or with a wrong) X-CSRF-Token is 403 and
    changes nothing; with the token from GET csrf it unlocks, and the user signs in again."""
    lock(admin_stack, "alice")
    [record] = records(admin_stack)
    url = f"{API}/lockouts/{record.id}/unlock"
    with admin_client(admin_stack) as root:
        for headers in ({}, {"x-csrf-token": "nope"}):
            refused = root.post(url, json={"reason": "called back"}, headers=headers)
            assert refused.status_code == 403 and refused.json()["error"] == "csrf"
        token = root.get(f"{API}/csrf").json()["csrf_token"]
        cross = root.post(url, json={"reason": "x"},
                          headers={"x-csrf-token": token, "sec-fetch-site": "cross-site"})
        assert (cross.status_code, cross.json()["error"]) == (403, "cross_site")
        assert records(admin_stack)[0].state == "active" and audit_events(admin_stack) == []
        done = root.post(url, json={"reason": "called back"}, headers={"x-csrf-token": token})
        assert done.status_code == 200, done.text
        assert done.json()["lockout"]["state"] == "unlocked"
        assert done.json()["lockout"]["unlocked_by"] == "portal:root"
    with client(admin_stack) as fresh:
        assert login(fresh, "alice", PASSWORD).status_code == 303


def test_bearer_unlock_and_errors(admin_stack: Stack) -> None:
    """AD-02, AD-06: unlock by bearer token (no CSRF needed), audited as api-token:<digest>;
    a missing reason 422, a bad body 400, an unknown record 404, a closed one 409."""
    lock(admin_stack, "alice")
    [record] = records(admin_stack)
    url = f"{API}/lockouts/{record.id}/unlock"
    with client(admin_stack) as api:
        for body, code in (({}, "reason_required"), ({"reason": "  "}, "reason_required"),
                           ({"reason": 5}, "reason_required"),
                           ({"reason": "x" * 1001}, "invalid_reason")):
            refused = api.post(url, json=body, headers=BEARER)
            assert (refused.status_code, refused.json()["error"]) == (422, code), body
        for content, ctype in ((b"reason=x", "application/x-www-form-urlencoded"),
                               (b"{not json", "application/json"),
                               (b'["reason"]', "application/json")):
            bad = api.post(url, content=content, headers={**BEARER, "content-type": ctype})
            assert (bad.status_code, bad.json()["error"]) == (400, "invalid_body")
        assert api.post(f"{API}/lockouts/9999/unlock", json={"reason": "x"},
                        headers=BEARER).status_code == 404
        assert records(admin_stack)[0].state == "active" and audit_events(admin_stack) == []
        with client(admin_stack) as fresh:
            assert login(fresh, "alice", PASSWORD).status_code == 401

        done = api.post(url, json={"reason": "ticket INC-1234"}, headers=BEARER)
        assert done.status_code == 200, done.text
        again = api.post(url, json={"reason": "again"}, headers=BEARER)
        assert (again.status_code, again.json()["error"]) == (409, "not_active")
        shown = api.get(f"{API}/lockouts/{record.id}", headers=BEARER).json()
        assert shown["state"] == "unlocked" and shown["unlocked_by"] == ACTOR
        assert api.get(f"{API}/lockouts/9999", headers=BEARER).status_code == 404
    [event] = audit_events(admin_stack)
    assert (event["actor"], event["action"], event["reason"], event["target"]) == (
        ACTOR, "lockout.unlock", "ticket INC-1234", f"lockout:{record.id}")
    with client(admin_stack) as fresh:
        assert login(fresh, "alice", PASSWORD).status_code == 303


def test_listing_stats_and_audit(admin_stack: Stack) -> None:
    """AD-01, AD-06: the JSON list takes the page filters and pages; stats are the chart's
    series; the audit call filters by event and account and the chain verifies."""
    now = datetime.now(UTC).replace(microsecond=0)
    ids = seed(admin_stack, [(f"user{i}", f"192.0.2.{i}", now - timedelta(minutes=i), {})
                             for i in range(5)])
    hour = now.replace(minute=0, second=0)
    run(admin_stack, lambda db: LockoutRepository(db).add_hourly({hour: (9, 4)}))
    run(admin_stack, lambda db: LockoutRepository(db).unlock(ids[4], actor="x", reason="y"))
    with client(admin_stack) as api:
        def get(path: str, **params: str) -> httpx.Response:
            return api.get(API + path, params=params, headers=BEARER)

        page = get("/lockouts", state="active", limit="3").json()
        assert [r["id"] for r in page["items"]] == ids[:3] and page["next_offset"] == 3
        rest = get("/lockouts", state="active", limit="3", offset="3").json()
        assert [r["id"] for r in rest["items"]] == [ids[3]] and rest["next_offset"] is None
        assert [r["id"] for r in get("/lockouts", account="USER2").json()["items"]] == [ids[2]]
        assert [r["id"] for r in get("/lockouts", ip="192.0.2.0/24").json()["items"]] == ids
        for params in ({"ip": "x"}, {"limit": "0"}, {"limit": "5000"}, {"since": "soon"}):
            bad = get("/lockouts", **params)
            assert (bad.status_code, bad.json()["error"]) == (400, "invalid_parameter")
            assert bad.json()["message"].startswith(next(iter(params)) + ":")

        stats = get("/stats").json()
        assert stats["bucket_seconds"] == 3600 and len(stats["series"]) == 24
        current = next(s for s in stats["series"]
                       if datetime.fromisoformat(s["start"]) == hour)
        assert (current["failures"], current["refused"]) == (9, 4)
        assert sum(s["lockouts"] for s in stats["series"]) == 5
        custom = get("/stats", since=(hour - timedelta(days=2)).isoformat(),
                     until=(hour + timedelta(hours=1)).isoformat(), bucket="86400").json()
        assert custom["range"] == "custom" and sum(s["failures"] for s in custom["series"]) == 9
        assert get("/stats", bucket="100").status_code == 400
        assert get("/stats", range="1y").status_code == 400

        lock(admin_stack, "alice")
        events = get("/audit", account="alice").json()["items"]
        assert [e["event"] for e in events] == ["authn_login_lock:maxretries"]
        assert events[0]["seq"] >= 1 and len(events[0]["hash"]) == 64
        assert get("/audit", event="authz_admin").json()["items"] == []
        assert get("/audit", event="bogus").status_code == 400
        assert get("/audit/verify").json()["ok"] is True


def test_api_token_command_makes_a_working_token(tmp_path: Path) -> None:
    """`sekisho admin api-token` prints a token once and the digest line; a gateway with
    that line accepts the token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    done = subprocess.run([sys.executable, "-m", "sekisho", "admin", "api-token"],
                          capture_output=True, text=True, env=env, timeout=60, check=True)
    token = done.stdout.splitlines()[1].strip()
    digest = re.search(r'api_token_sha256 = \["([0-9a-f]{64})"\]', done.stdout)
    assert digest and hashlib.sha256(token.encode()).hexdigest() == digest.group(1)
    assert f"api-token:{digest.group(1)[:8]}" in done.stdout
    with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", state_url="memory://",
                       admin={"api_token_sha256": [digest.group(1)]}) as stack, \
            client(stack) as api:
        ok = api.get(f"{API}/csrf", headers={"authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["actor"] == f"api-token:{digest.group(1)[:8]}"
        assert api.get(f"{API}/csrf", headers=HTML).status_code == 401


def test_cli_export_is_audited_like_the_page(tmp_path: Path) -> None:
    """AD-06: `sekisho lockouts export` files the same lockout.export event as the admin
    page (shared audit.admin_actions), with the CLI actor and the filters it ran."""
    db_path = tmp_path / "gw.sqlite3"
    config = tmp_path / "sekisho.toml"
    config.write_text(f"[database]\nurl = 'sqlite:///{db_path}'\n[secrets]\n"
                      f"session_key = '{generate_key()}'\ndata_key = '{generate_key()}'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    env["USER"] = "tester"
    done = subprocess.run(
        [sys.executable, "-m", "sekisho", "-c", str(config), "lockouts", "export",
         "--format", "json", "--state", "active"],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

    async def read() -> list[dict[str, object]]:
        db = Database.from_url(f"sqlite+aiosqlite:///{db_path}")
        try:
            return [r.data() for r in await audit_log(db).list()]
        finally:
            await db.close()

    [event] = asyncio.run(read())
    assert (event["event"], event["action"], event["actor"], event["target"]) == (
        "authz_admin", "lockout.export", "cli:tester", "lockouts")
    assert event["details"] == {"format": "json", "count": 0, "filters": {
        "state": "active", "limit": 10000, "offset": 0}}


def test_require_mfa_refuses_a_password_only_admin(tmp_path: Path) -> None:
    """AD-04: with admin.require_mfa, an admin signed in with a password alone gets 403
    (page and API) until they sign in with a second factor; bearer tokens are unaffected."""
    with running_stack(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", state_url="memory://",
                       admin={"require_mfa": True, "api_token_sha256": [
                           hashlib.sha256(API_TOKEN.encode()).hexdigest()]}) as stack:
        stack.add_user("root", PASSWORD, groups=["sekisho-admins"])
        with client(stack) as root:
            assert login(root, "root", PASSWORD).status_code == 303
            page = root.get("/_sekisho/admin/", headers=HTML)
            assert page.status_code == 403 and "second factor" in page.text
            api = root.get(f"{API}/lockouts")
            assert (api.status_code, api.json()["error"]) == (403, "mfa_required")
            assert root.get(f"{API}/lockouts", headers=BEARER).status_code == 200
