"""Settings loading: TOML + SEKISHO_* overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sekisho.config import generate_key, load_secrets, load_settings
from sekisho.errors import ConfigError

GOOD = """
[server]
listen = "0.0.0.0:9443"
public_origins = ["https://gw.intranet.example"]
trusted_proxies = ["10.0.0.0/8"]

[[upstreams]]
name = "wiki"
hosts = ["Wiki.Intranet.Example"]
target = "http://127.0.0.1:9000/"

[session]
idle_timeout = 900
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_values_and_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), env={})
    assert settings.server.host_port == ("0.0.0.0", 9443)
    assert settings.server.https
    assert settings.upstreams[0].hosts == ["wiki.intranet.example"]
    assert settings.upstreams[0].target == "http://127.0.0.1:9000"
    assert settings.session.idle_timeout == 900
    assert settings.session.absolute_timeout == 43200
    assert settings.database.url.startswith("sqlite+aiosqlite://")
    assert settings.state.url == "memory://"


def test_env_overrides_file(tmp_path: Path) -> None:
    env = {"SEKISHO_SESSION__IDLE_TIMEOUT": "600", "SEKISHO_STATE__URL": "redis://r:6379/0",
           "SEKISHO_SERVER__TRUSTED_PROXIES": '["192.168.0.0/16"]'}
    settings = load_settings(write(tmp_path, GOOD), env=env)
    assert settings.session.idle_timeout == 600
    assert settings.state.url == "redis://r:6379/0"
    assert settings.server.trusted_proxies == ["192.168.0.0/16"]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[server]\nlisten = 'nope'\n", {}, "server.listen: must be host:port"),
        ("[sesion]\nidle_timeout = 1\n", {}, "sesion: unknown key"),
        ("[session]\nidle_timeout = 10\n", {}, "session.idle_timeout: Input should be greater"),
        ("[session]\nidle_timeout = 7200\nabsolute_timeout = 3600\n", {},
         "session: idle_timeout must be <= absolute_timeout"),
        ("[[upstreams]]\nname='a'\ntarget='ftp://x'\n", {}, "upstreams[0].target: must be an http"),
        ("[[upstreams]]\ntarget='http://x'\n", {}, "upstreams[0].name: required"),
        ("[server]\ntrusted_proxies=['10.0.0.0/33']\n", {}, "is not a CIDR"),
        ("", {"SEKISHO_DATABASE__URL": "mysql://x"}, "database.url: must be a sqlite://"),
        ("", {"SEKISHO_PASSWORDS__ARGON2_PROFILE": "md5"}, "passwords.argon2_profile"),
        ("x = [", {}, "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=env)
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = "[server]\nlisten='x'\nportal_prefix='nope'\n[session]\ncookie_name='a b'\n"
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env={})
    keys = {p.split(":")[0] for p in info.value.problems}
    assert keys == {"server.listen", "server.portal_prefix", "session.cookie_name"}


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "absent.toml", env={})


def test_secrets_required_and_checked(tmp_path: Path) -> None:
    settings = load_settings(None, env={})
    with pytest.raises(ConfigError) as info:
        load_secrets(settings)
    assert {p.split(":")[0] for p in info.value.problems} == {
        "secrets.session_key", "secrets.data_key"}
    short = load_settings(None, env={"SEKISHO_SECRETS__SESSION_KEY": "c2hvcnQ",
                                     "SEKISHO_SECRETS__DATA_KEY": generate_key()})
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        load_secrets(short)


def test_secrets_from_files_and_never_printed(tmp_path: Path) -> None:
    key_file = tmp_path / "session.key"
    key = generate_key()
    key_file.write_text(key + "\n")
    settings = load_settings(None, env={"SEKISHO_SECRETS__SESSION_KEY_FILE": str(key_file),
                                        "SEKISHO_SECRETS__DATA_KEY": generate_key()})
    secrets = load_secrets(settings)
    assert len(secrets.session_key) == 32 and len(secrets.data_key) == 32
    assert key not in repr(secrets) and key not in repr(settings)
    assert key not in str(settings.model_dump())
