"""`sekisho user ...` against a real SQLite database, as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = "violet orbit lantern meadow"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(
        f"[database]\nurl = 'sqlite:///{tmp_path / 'users.sqlite3'}'\n"
        "[passwords]\nargon2_profile = 'owasp-minimum'\n"
    )
    return path


def sekisho(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(config), *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_add_list_groups_disable_enable(config: Path) -> None:
    added = sekisho(config, "user", "add", "Alice", "--email", "alice@example.com", "--name",
                    "Alice Liddell", "--group", "staff", "--password-stdin", stdin=GOOD + "\n")
    assert added.returncode == 0, added.stderr
    assert "added user alice" in added.stdout
    assert sekisho(config, "user", "groups", "ALICE", "--add", "admins").returncode == 0
    listing = json.loads(sekisho(config, "user", "list", "--json").stdout)
    assert listing[0]["username"] == "alice"
    assert sorted(listing[0]["groups"]) == ["admins", "staff"]
    assert listing[0]["disabled"] is False
    assert "password_hash" not in json.dumps(listing) and "$argon2" not in json.dumps(listing)
    disabled = sekisho(config, "user", "disable", "alice")
    assert disabled.returncode == 0, disabled.stderr
    assert json.loads(sekisho(config, "user", "list", "--json").stdout)[0]["disabled"] is True
    assert sekisho(config, "user", "enable", "alice").returncode == 0
    assert json.loads(sekisho(config, "user", "list", "--json").stdout)[0]["disabled"] is False


@pytest.mark.parametrize(("password", "reason"), [
    ("short one", "too_short"),
    ("alice2024!!!!!!!!!!", "context"),
])
def test_policy_rejection_names_the_reason_and_never_echoes(config: Path, password: str,
                                                            reason: str) -> None:
    """PW-09: a machine-readable reason and guidance; the password is not printed."""
    result = sekisho(config, "user", "add", "alice", "--password-stdin", stdin=password + "\n")
    assert result.returncode == 1
    assert f"password rejected ({reason})" in result.stderr
    assert password not in result.stdout + result.stderr
    assert json.loads(sekisho(config, "user", "list", "--json").stdout) == []


def test_duplicate_and_unknown_users(config: Path) -> None:
    assert sekisho(config, "user", "add", "bob", "--password-stdin",
                   stdin=GOOD + "\n").returncode == 0
    again = sekisho(config, "user", "add", "BOB", "--password-stdin", stdin=GOOD + "\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    missing = sekisho(config, "user", "passwd", "nobody", "--password-stdin", stdin=GOOD + "\n")
    assert missing.returncode == 1
    assert "no such user" in missing.stderr


def test_passwd_changes_the_hash(config: Path) -> None:
    sekisho(config, "user", "add", "carol", "--password-stdin", stdin=GOOD + "\n")
    before = json.loads(sekisho(config, "user", "list", "--json").stdout)[0]
    changed = sekisho(config, "user", "passwd", "carol", "--password-stdin",
                      stdin="amber quartz ferry whistle\n")
    assert changed.returncode == 0, changed.stderr
    after = json.loads(sekisho(config, "user", "list", "--json").stdout)[0]
    assert after["password_changed_at"] != before["password_changed_at"]
