"""`sekisho lockouts ...` and `sekisho audit ...` as an admin runs them: a real SQLite
database, generated secrets, memory or Redis state (AD-01, AD-02, AD-06, AU-04)."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sekisho.config import RateLimitSettings
from sekisho.ratelimit import RateLimitKeys, create_regulator
from sekisho.store import Database, LockoutRepository, Sighting, UserRepository
from sekisho.store.lockouts import EXPORT_FIELDS

NOW = datetime.now(UTC).replace(microsecond=0)
EVIL_AGENT = "evil\x1b[31mred"


def sekisho(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    env["USER"] = "tester"
    return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def gen_key() -> str:
    done = subprocess.run([sys.executable, "-m", "sekisho", "gen-key"], capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.strip()


class Site:
    def __init__(self, tmp_path: Path, state_url: str) -> None:
        self.db_path = tmp_path / "gw.sqlite3"
        self.session_key = gen_key()
        self.config = tmp_path / "sekisho.toml"
        self.config.write_text(
            f"[database]\nurl = 'sqlite:///{self.db_path}'\n"
            f"[state]\nurl = '{state_url}'\n"
            "[ratelimit]\nfree_failures = 2\ndisable_after = 3\n"
            f"[secrets]\nsession_key = '{self.session_key}'\ndata_key = '{gen_key()}'\n")
        secret = base64.urlsafe_b64decode(self.session_key + "=" * (-len(self.session_key) % 4))
        self.secret = secret
        self.keys = RateLimitKeys(secret)
        self.ids = asyncio.run(self._seed())

    async def _seed(self) -> dict[str, int]:
        db = Database.from_url(f"sqlite+aiosqlite:///{self.db_path}")
        try:
            await db.migrate()
            repo = LockoutRepository(db)
            alice = await UserRepository(db).add(username="alice")
            made = {}
            for name, key, ip, at, extra in (
                ("alice", self.keys.account("alice"), "203.0.113.5", NOW - timedelta(hours=3),
                 {"user_id": alice.id, "username": "alice"}),
                ("ghost", self.keys.account("ghost"), "198.51.100.7", NOW - timedelta(minutes=5),
                 {}),
                ("bob", self.keys.account("bob"), "192.0.2.9", NOW - timedelta(days=3), {}),
            ):
                sighting = Sighting(50, at, at + timedelta(minutes=1), {ip: 50},
                                    {ip.rsplit(".", 1)[0] + ".0/24": 50}, {EVIL_AGENT: 50})
                update = await repo.open_or_update(account_key=key, factor="password",
                                                   sighting=sighting, **extra)
                assert update is not None
                made[name] = update.record.id
            await repo.unlock(made["bob"], actor="cli:earlier", reason="=1+1")
            return made
        finally:
            await db.close()

    def tamper(self, sql: str) -> None:
        with sqlite3.connect(self.db_path) as conn:
            conn.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
            conn.execute(sql)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path, "memory://")


def listed(site: Site, *args: str) -> list[int]:
    done = sekisho(site.config, "lockouts", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    return [row["id"] for row in json.loads(done.stdout)]


def test_list_and_filters(site: Site) -> None:
    """AD-01: seeded lockouts are listed with their fields; filters by time, account (a
    user or an unknown name), address and state work."""
    ids = site.ids
    assert listed(site) == [ids["ghost"], ids["alice"], ids["bob"]]
    assert listed(site, "--account", "ALICE") == [ids["alice"]]
    assert listed(site, "--account", "ghost") == [ids["ghost"]]
    assert listed(site, "--ip", "198.51.100.7") == [ids["ghost"]]
    assert listed(site, "--ip", "203.0.113.0/24") == [ids["alice"]]
    assert listed(site, "--state", "unlocked") == [ids["bob"]]
    assert listed(site, "--hours", "1") == [ids["ghost"]]
    since = (NOW - timedelta(hours=4)).isoformat()
    until = (NOW - timedelta(hours=1)).isoformat()
    assert listed(site, "--since", since, "--until", until) == [ids["alice"]]
    table = sekisho(site.config, "lockouts", "list")
    assert table.returncode == 0, table.stderr
    assert "alice" in table.stdout and "(unknown name" in table.stdout
    assert "ghost" not in table.stdout  # an unknown name is kept only as its key
    bad = sekisho(site.config, "lockouts", "list", "--ip", "nonsense")
    assert bad.returncode == 1 and "ip must be" in bad.stderr


def test_show_escapes_client_text(site: Site) -> None:
    """AD-01: one record in full; user agents are printed with control characters escaped."""
    shown = sekisho(site.config, "lockouts", "show", str(site.ids["alice"]))
    assert shown.returncode == 0, shown.stderr
    assert "203.0.113.5" in shown.stdout and "failure_count: 50" in shown.stdout
    assert "\x1b" not in shown.stdout and "evil\\x1b[31mred" in shown.stdout
    as_json = json.loads(sekisho(site.config, "lockouts", "show", str(site.ids["alice"]),
                                 "--json").stdout)
    assert as_json["user_agents"] == [{"value": EVIL_AGENT, "count": 50}]
    missing = sekisho(site.config, "lockouts", "show", "999")
    assert missing.returncode == 1 and "no such lockout record" in missing.stderr


def test_unlock_requires_a_reason(site: Site) -> None:
    """AD-02: unlock without a reason is refused (non-zero exit) and changes nothing."""
    rid = str(site.ids["ghost"])
    missing = sekisho(site.config, "lockouts", "unlock", rid)
    assert missing.returncode == 2 and "--reason" in missing.stderr
    for empty in ("", "   "):
        refused = sekisho(site.config, "lockouts", "unlock", rid, "--reason", empty)
        assert refused.returncode == 1 and "needs a reason" in refused.stderr
    assert listed(site, "--state", "active") == [site.ids["ghost"], site.ids["alice"]]
    audit = sekisho(site.config, "audit", "list", "--json")
    assert json.loads(audit.stdout) == []


def test_unlock_is_recorded_and_audited(site: Site) -> None:
    """AD-02, AD-06: unlock with a reason marks the record (actor defaults to cli:$USER) and
    files exactly one authz_admin event with actor, target, action, reason, before, after;
    the chain verifies."""
    rid = site.ids["ghost"]
    done = sekisho(site.config, "lockouts", "unlock", str(rid), "--reason", "owner called")
    assert done.returncode == 0, done.stderr
    assert f"unlocked lockout {rid}" in done.stdout
    assert "memory://" in done.stderr  # the warning: the gateway's own counters
    record = json.loads(sekisho(site.config, "lockouts", "show", str(rid), "--json").stdout)
    assert record["state"] == "unlocked" and record["unlocked_by"] == "cli:tester"
    assert record["unlock_reason"] == "owner called"
    events = json.loads(sekisho(site.config, "audit", "list", "--json").stdout)
    assert len(events) == 1
    [event] = events
    assert event["event"] == "authz_admin" and event["action"] == "lockout.unlock"
    assert event["actor"] == "cli:tester" and event["target"] == f"lockout:{rid}"
    assert event["reason"] == "owner called"
    assert event["before"]["state"] == "active" and event["after"]["state"] == "unlocked"
    assert event["account"] == site.keys.account("ghost")
    assert event["timestamp"].endswith("Z") and event["node"]
    again = sekisho(site.config, "lockouts", "unlock", str(rid), "--reason", "again",
                    "--actor", "ops:carol")
    assert again.returncode == 1 and "is unlocked" in again.stderr
    verified = sekisho(site.config, "audit", "verify")
    assert verified.returncode == 0 and "ok: 1 record" in verified.stdout
    table = sekisho(site.config, "audit", "list", "--event", "authz_admin")
    assert "actor=cli:tester" in table.stdout


def test_unlock_clears_the_shared_state(tmp_path: Path, redis_url: str) -> None:
    """AD-02, RL-01: on Redis, the CLI's unlock lifts the disable the gateway would see,
    for a name that is no user (unlocked by its key)."""
    site = Site(tmp_path, redis_url)

    async def drive(unlocked: bool) -> str:
        settings = RateLimitSettings(free_failures=2, disable_after=3)
        regulator = create_regulator(settings, url=redis_url, secret=site.secret)
        try:
            if not unlocked:
                for _ in range(3):
                    await regulator.record_attempt(account="ghost", client_ip="192.0.2.1",
                                                   success=False)
            return (await regulator.check(account="ghost", client_ip="192.0.2.1")).reason
        finally:
            await regulator.close()

    assert asyncio.run(drive(unlocked=False)) == "disabled"
    done = sekisho(site.config, "lockouts", "unlock", str(site.ids["ghost"]), "--reason",
                   "verified")
    assert done.returncode == 0, done.stderr
    assert "memory://" not in done.stderr
    assert asyncio.run(drive(unlocked=True)) == "ok"


def test_export_csv_and_json(site: Site, tmp_path: Path) -> None:
    """AD-01: CSV and JSON exports carry the review fields and nothing secret; CSV cells
    cannot start a spreadsheet formula."""
    done = sekisho(site.config, "lockouts", "export", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert tuple(rows[0]) == EXPORT_FIELDS and len(rows) == 4
    bob = dict(zip(rows[0], rows[3], strict=True))
    assert bob["unlock_reason"] == "'=1+1"
    assert json.loads(bob["top_ips"]) == [{"value": "192.0.2.9", "count": 50}]
    out = tmp_path / "lockouts.json"
    done = sekisho(site.config, "lockouts", "export", "--format", "json", "--state", "active",
                   "--output", str(out))
    assert done.returncode == 0, done.stderr
    exported = json.loads(out.read_text())
    assert [r["id"] for r in exported] == [site.ids["ghost"], site.ids["alice"]]
    for row in exported:
        assert tuple(row) == EXPORT_FIELDS
    text = out.read_text() + "".join(",".join(r) for r in rows)
    for secret in ("password_hash", "seen_ips", "$argon2", site.session_key):
        assert secret not in text


def test_audit_verify_names_the_broken_record(site: Site) -> None:
    """AU-04: after a row's body is changed in SQL, `audit verify` exits 1 naming it."""
    for rid in (site.ids["ghost"], site.ids["alice"]):
        assert sekisho(site.config, "lockouts", "unlock", str(rid), "--reason",
                       "checked").returncode == 0
    assert sekisho(site.config, "audit", "verify").returncode == 0
    site.tamper("UPDATE audit_events SET body = replace(body, 'checked', 'nothing') "
                "WHERE id = 1")
    broken = sekisho(site.config, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at record 1" in broken.stdout
