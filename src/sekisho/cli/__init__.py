"""The `sekisho` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from sekisho import __version__
from sekisho.app import end_user_sessions
from sekisho.cli import admin, attack, audit, breach, configcmd, lockouts, serve, users
from sekisho.config import load_settings
from sekisho.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sekisho", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sekisho {__version__}")
    parser.add_argument(
        "-c", "--config", default=os.environ.get("SEKISHO_CONFIG"),
        help="TOML settings file (default: $SEKISHO_CONFIG; SEKISHO_* variables override it)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(sub)
    configcmd.register(sub)
    users.register(sub, end_sessions=end_user_sessions)
    lockouts.register(sub)
    audit.register(sub)
    admin.register(sub)
    attack.register(sub)
    breach.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if getattr(args, "needs_settings", True):
        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            print("sekisho: invalid configuration:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
    else:
        settings = None
    code: int = args.func(args, settings)
    return code


def run() -> None:
    sys.exit(main())
