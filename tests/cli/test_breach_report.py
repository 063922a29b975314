"""`sekisho breach report` and the function behind it (PW-08a, PW-12), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sekisho.audit.breach_report import REPORT_FIELDS, breach_report
from sekisho.audit.events import AuditEvent
from sekisho.audit.log import Auditor
from sekisho.store import Database
from sekisho.store.users import UserRepository


def sekisho(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


async def _seed(database: Database) -> tuple[int, int]:
    earlier = datetime.now(UTC) - timedelta(minutes=10)
    created = UserRepository(database, clock=lambda: earlier - timedelta(days=30))
    alice = await created.add(username="alice", password_hash="$argon2id$x")
    bob = await created.add(username="bob", password_hash="$argon2id$y")
    users = UserRepository(database)
    auditor = Auditor.for_database(database)
    await auditor.record(AuditEvent(
        event="authn_password_breached:login", timestamp=earlier, account=str(alice.id),
        details={"source": "offline", "count": 7, "username": "alice"}))
    await auditor.record(AuditEvent(
        event="authn_password_breached:set", timestamp=earlier + timedelta(minutes=1),
        account=str(bob.id), details={"source": "online", "count": 120, "username": "bob"}))
    await auditor.record(AuditEvent(event="authn_login_success", account=str(bob.id)))
    await users.set_password_hash(alice.id, "$argon2id$z")  # alice changed hers afterwards
    return alice.id, bob.id


async def test_report_function_for_cli_and_admin_page(database: Database) -> None:
    alice_id, bob_id = await _seed(database)
    caught = await breach_report(database)
    assert [(c.username, c.where, c.source, c.count, c.changed_since) for c in caught] == [
        ("bob", "set", "online", 120, False),
        ("alice", "login", "offline", 7, True),
    ]
    assert caught[1].user_id == alice_id
    pending = await breach_report(database, pending_only=True)
    assert [c.user_id for c in pending] == [bob_id]
    assert await breach_report(database, since=datetime.now(UTC)) == []
    assert set(caught[0].row()) == set(REPORT_FIELDS)


async def test_report_command_formats(database: Database, db_url: str, tmp_path: Path) -> None:
    await _seed(database)
    config = tmp_path / "sekisho.toml"
    config.write_text(f"[database]\nurl = '{db_url}'\n")
    as_json = sekisho(config, "breach", "report", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert [(r["username"], r["changed_since"]) for r in rows] == [("bob", False),
                                                                   ("alice", True)]
    as_csv = sekisho(config, "breach", "report", "--format", "csv", "--pending")
    assert as_csv.returncode == 0, as_csv.stderr
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert table[0] == list(REPORT_FIELDS)
    assert [row[1] for row in table[1:]] == ["bob"]
    text = sekisho(config, "breach", "report")
    assert text.returncode == 0, text.stderr
    assert "alice" in text.stdout and "2 catch(es); 1 not changed since" in text.stdout
    recent = sekisho(config, "breach", "report", "--hours", "0.001", "--format", "json")
    assert json.loads(recent.stdout) == []
