"""Load settings from a TOML file plus ``SEKISHO_*`` environment overrides.

An override names a key path with double underscores: ``SEKISHO_SESSION__IDLE_TIMEOUT=900``
sets ``session.idle_timeout``. Values are read as TOML when they parse (numbers, booleans,
arrays) and as plain strings otherwise.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sekisho.config.models import Settings
from sekisho.errors import ConfigError

ENV_PREFIX = "SEKISHO_"
# Environment variables that configure the process, not the settings tree.
_NOT_SETTINGS = {"SEKISHO_CONFIG", "SEKISHO_TEST_REDIS_URL", "SEKISHO_TEST_DATABASE_URL"}


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate. Raises ConfigError listing every problem with its key."""
    return validate_settings(load_raw(path, env))


def load_raw(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The file merged with the environment overrides, not yet validated."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(Path(path))
    problems: list[str] = []
    for name, raw in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and name not in _NOT_SETTINGS:
            _apply_override(data, name, raw, problems)
    if problems:
        raise ConfigError(problems)
    return data


def validate_settings(data: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def _apply_override(data: dict[str, Any], name: str, raw: str, problems: list[str]) -> None:
    keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
    if not all(keys):
        problems.append(f"{name}: malformed override name")
        return
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            problems.append(f"{name}: {'.'.join(keys)} cannot be set from the environment")
            return
        node = child
    node[keys[-1]] = _parse_value(raw)


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _describe(err: Any) -> str:
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    loc = loc.lstrip(".") or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if err["type"] == "missing":
        return f"{loc}: required"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}"


@dataclass(frozen=True, repr=False)
class Secrets:
    """Key material resolved from settings, env or files. Never printed."""

    session_key: bytes
    data_key: bytes

    def __repr__(self) -> str:
        return "Secrets(<redacted>)"


def load_secrets(settings: Settings) -> Secrets:
    """Resolve and check both keys. Raises ConfigError naming the missing/bad key."""
    problems: list[str] = []
    session = _secret(settings, "session_key", problems)
    data = _secret(settings, "data_key", problems)
    if session is not None and len(session) < 32:
        problems.append("secrets.session_key: must decode to at least 32 bytes")
    if data is not None and len(data) != 32:
        problems.append("secrets.data_key: must decode to exactly 32 bytes (AES-256-GCM)")
    if problems or session is None or data is None:
        raise ConfigError(problems)
    return Secrets(session_key=session, data_key=data)


def _secret(settings: Settings, name: str, problems: list[str]) -> bytes | None:
    value = getattr(settings.secrets, name)
    file_name = getattr(settings.secrets, f"{name}_file")
    if value is not None and file_name is not None:
        problems.append(f"secrets.{name}: set either {name} or {name}_file, not both")
        return None
    if file_name is not None:
        try:
            text = Path(file_name).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"secrets.{name}_file: cannot read ({exc.__class__.__name__})")
            return None
    elif value is not None:
        text = value.get_secret_value().strip()
    else:
        problems.append(
            f"secrets.{name}: required (set SEKISHO_SECRETS__{name.upper()} "
            f"or secrets.{name}_file; generate one with `sekisho gen-key`)"
        )
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        problems.append(f"secrets.{name}: must be base64 (url-safe) text")
        return None


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
