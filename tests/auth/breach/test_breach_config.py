"""The [breach] settings: defaults, and every bad value refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sekisho.config import load_settings
from sekisho.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_download_and_no_network(tmp_path: Path) -> None:
    breach = load_settings(write(tmp_path, ""), env={}).breach
    assert breach.mode == "auto"
    assert breach.api_url == "https://api.pwnedpasswords.com"
    assert breach.timeout == 2.0  # PW-11
    assert breach.fail == "open" and breach.fail_closed_groups == ["admins"]  # PW-11 default
    assert breach.min_count == 1 and breach.check_at_login is True


def test_file_and_env_values(tmp_path: Path) -> None:
    text = ("[breach]\nmode = 'both'\napi_url = 'http://mirror.intra:8080/hibp/'\n"
            "timeout = 0.5\nfail = 'closed'\nmin_count = 10\ncache_size = 0\n"
            "cache_ttl = 60\ncheck_at_login = false\nfail_closed_groups = []\n")
    breach = load_settings(write(tmp_path, text), env={"SEKISHO_BREACH__MODE": "online"}).breach
    assert breach.mode == "online"
    assert breach.api_url == "http://mirror.intra:8080/hibp"
    assert (breach.timeout, breach.fail, breach.min_count) == (0.5, "closed", 10)
    assert (breach.cache_size, breach.cache_ttl, breach.check_at_login) == (0, 60, False)


@pytest.mark.parametrize(("text", "expected"), [
    ("mode = 'sometimes'", "breach.mode: Input should be 'auto', 'offline', 'online'"),
    ("api_url = 'ftp://x'", "breach.api_url: must be an http(s) URL"),
    ("api_url = 'https://x/?k=1'", "breach.api_url: must not carry a query"),
    ("api_url = 'https://user:pw@x'", "breach.api_url: must not carry a query"),
    ("timeout = 0", "breach.timeout: Input should be greater than 0"),
    ("timeout = 60", "breach.timeout: Input should be less than or equal to 30"),
    ("fail = 'maybe'", "breach.fail: Input should be 'open' or 'closed'"),
    ("min_count = 0", "breach.min_count: Input should be greater than or equal to 1"),
    ("cache_size = -1", "breach.cache_size: Input should be greater than or equal to 0"),
    ("cache_ttl = -5", "breach.cache_ttl: Input should be greater than or equal to 0"),
    ("check_at_login = 'perhaps'", "breach.check_at_login: Input should be a valid boolean"),
    ("corpus_path = ' '", "breach.corpus_path: must name a file"),
    ("fail_closed_groups = 'admins'", "breach.fail_closed_groups: Input should be a valid list"),
    ("cache = 5", "breach.cache: unknown key"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, f"[breach]\n{text}\n"), env={})
    assert any(expected in p for p in info.value.problems), info.value.problems
