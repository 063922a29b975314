"""`sekisho check-config` and `serve` on bad input: every problem named, non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sekisho.config import generate_key


def sekisho(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    return subprocess.run([sys.executable, "-m", "sekisho", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, timeout=60, check=False)


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nlisten = 'x'\n[session]\nidle_timeout = 5\nbogus = 1\n")
    result = sekisho("check-config", str(bad))
    assert result.returncode == 1
    for key in ("server.listen", "session.idle_timeout", "session.bogus: unknown key",
                "secrets.session_key: required", "secrets.data_key: required"):
        assert key in result.stderr or key.split(":")[0] in result.stderr, result.stderr


def test_check_config_ok_and_secrets_not_printed(tmp_path: Path) -> None:
    key, data = generate_key(), generate_key()
    good = tmp_path / "good.toml"
    good.write_text(f"[secrets]\nsession_key = '{key}'\ndata_key = '{data}'\n")
    result = sekisho("check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert key not in result.stdout + result.stderr
    assert data not in result.stdout + result.stderr


def test_serve_refuses_missing_secret(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text("[server]\nlisten = '127.0.0.1:1'\n")
    result = sekisho("-c", str(config), "serve")
    assert result.returncode == 2
    assert "secrets.session_key: required" in result.stderr


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text("[state]\nurl = 'mongodb://x'\n")
    result = sekisho("-c", str(config), "serve")
    assert result.returncode == 2
    assert "state.url: must be memory:// or a redis:// URL" in result.stderr


def test_serve_refuses_workers_on_memory_state(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text(f"[secrets]\nsession_key = '{generate_key()}'\n"
                      f"data_key = '{generate_key()}'\n")
    result = sekisho("-c", str(config), "serve", "--workers", "2")
    assert result.returncode == 2
    assert "redis://" in result.stderr
