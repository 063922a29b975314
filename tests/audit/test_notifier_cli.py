"""`sekisho user add --notify-email` and `sekisho user set-notify-email`, as an operator runs
them (a real SQLite database): the second notification address of AU-06."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(f"[database]\nurl = 'sqlite:///{tmp_path / 'users.sqlite3'}'\n")
    return path


def sekisho(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def listed(config: Path) -> dict[str, Any]:
    [user] = json.loads(sekisho(config, "user", "list", "--json").stdout)
    return dict(user)


def test_add_with_a_second_address_then_change_and_clear_it(config: Path) -> None:
    added = sekisho(config, "user", "add", "alice", "--email", "alice@example.com",
                    "--notify-email", "alice.private@example.org", "--no-password")
    assert added.returncode == 0, added.stderr
    assert listed(config)["notify_email"] == "alice.private@example.org"
    changed = sekisho(config, "user", "set-notify-email", "ALICE", "a2@example.net")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "alice: notices go to alice@example.com, a2@example.net"
    assert listed(config)["notify_email"] == "a2@example.net"
    cleared = sekisho(config, "user", "set-notify-email", "alice", "--clear")
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert listed(config)["notify_email"] is None


BAD = [
    (("set-notify-email", "alice", "Alice <a@example.org>"), "ADDRESS: must be a plain address"),
    (("set-notify-email", "alice", "a@example.org\r\nBcc: x@example.net"),
     "ADDRESS: must be a plain address"),
    (("set-notify-email", "alice", "  "), "ADDRESS: must not be empty"),
    (("set-notify-email", "alice"), "give either ADDRESS or --clear"),
    (("set-notify-email", "alice", "a@example.org", "--clear"), "give either ADDRESS or --clear"),
    (("set-notify-email", "nobody", "a@example.org"), "no such user"),
    (("add", "bob", "--no-password", "--notify-email", "bob at example"),
     "--notify-email: must be a plain address"),
]


def test_bad_input_names_the_option_and_changes_nothing(config: Path) -> None:
    assert sekisho(config, "user", "add", "alice", "--no-password",
                   "--notify-email", "keep@example.org").returncode == 0
    for args, message in BAD:
        refused = sekisho(config, "user", *args)
        assert refused.returncode == 1 and message in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr
    users = json.loads(sekisho(config, "user", "list", "--json").stdout)
    assert [(u["username"], u["notify_email"]) for u in users] == [
        ("alice", "keep@example.org")]
