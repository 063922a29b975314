"""`sekisho check-config` and `sekisho gen-key`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sekisho.config import Settings, generate_key, load_secrets, validate_settings
from sekisho.config.loader import load_raw
from sekisho.errors import ConfigError


def register(sub: Any) -> None:
    check = sub.add_parser("check-config", help="validate a settings file and the secrets")
    check.add_argument("file", help="TOML settings file")
    check.set_defaults(func=check_config, needs_settings=False)
    key = sub.add_parser("gen-key", help="print a new random 256-bit key (base64)")
    key.set_defaults(func=gen_key, needs_settings=False)


def check_config(args: argparse.Namespace, _settings: Settings | None) -> int:
    """Print every problem with its key path; exit 1 when there is any."""
    problems: list[str] = []
    raw: dict[str, Any] | None = None
    settings: Settings | None = None
    try:
        raw = load_raw(args.file)
        settings = validate_settings(raw)
    except ConfigError as exc:
        problems.extend(exc.problems)
        settings = _secrets_only(raw)
    if settings is not None:
        try:
            load_secrets(settings)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def _secrets_only(raw: dict[str, Any] | None) -> Settings | None:
    """The secrets section alone, so one run reports secret problems with the others."""
    if raw is None:
        return None
    try:
        return validate_settings({"secrets": raw.get("secrets", {})})
    except ConfigError:
        return None


def gen_key(_args: argparse.Namespace, _settings: Settings | None) -> int:
    print(generate_key())
    return 0
