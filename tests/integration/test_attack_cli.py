"""`sekisho attack status` as an operator runs it, against the Redis state the replicas share
(issue 3 item 4: attack mode is shown to admins)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from sekisho.config import generate_key
from sekisho.config.attack import AttackSettings
from sekisho.ratelimit.attack import create_attack_monitor
from sekisho.ratelimit.keys import RateLimitKeys


def sekisho(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def config(tmp_path: Path, state_url: str, session_key: str) -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(
        f"[database]\nurl = 'sqlite:///{tmp_path / 'gw.sqlite3'}'\n"
        f"[state]\nurl = '{state_url}'\n"
        "[ratelimit.attack.distinct_usernames]\nmax_per_ip = 2\nmax_per_subnet = 2\n"
        f"[secrets]\nsession_key = '{session_key}'\ndata_key = '{generate_key()}'\n")
    return path


async def spray(state_url: str, secret: bytes) -> None:
    """Three failed names from one address, seen by a replica's monitor."""
    settings = AttackSettings.model_validate(
        {"distinct_usernames": {"max_per_ip": 2, "max_per_subnet": 2}})
    monitor = create_attack_monitor(settings, url=state_url, secret=secret)
    keys = RateLimitKeys(secret)
    try:
        for n in range(3):
            await monitor.observe(account_key=keys.account(f"user{n}"), client_ip="203.0.113.9",
                                  success=False, device=False)
    finally:
        await monitor.close()


def test_status_off_then_on(tmp_path: Path, redis_url: str) -> None:
    key = generate_key()
    cfg = config(tmp_path, redis_url, key)
    off = sekisho(cfg, "attack", "status")
    assert off.returncode == 0, off.stderr
    assert off.stdout.splitlines()[0] == "attack mode: off"
    asyncio.run(spray(redis_url, base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))))
    on = sekisho(cfg, "attack", "status")
    assert on.returncode == 0, on.stderr
    assert on.stdout.startswith("attack mode: ON since ")
    assert "(distinct_usernames)" in on.stdout and "flagged sources: 2" in on.stdout
    assert "203.0.113.9" in on.stdout and "203.0.113.0/24" in on.stdout
    data = json.loads(sekisho(cfg, "attack", "status", "--json").stdout)
    assert data["active"] and data["reason"] == "distinct_usernames"
    assert {f["kind"] for f in data["flagged"]} == {"ip", "subnet"}


def test_memory_state_cannot_be_read_from_outside(tmp_path: Path) -> None:
    done = sekisho(config(tmp_path, "memory://", generate_key()), "attack", "status")
    assert done.returncode == 1
    assert "memory://" in done.stderr and "admin page" in done.stderr
