"""``sekisho attack status``: is the gateway in attack mode, and which sources are flagged.

Reads the shared state (``state.url`` on Redis) that every replica uses. With
``state.url = "memory://"`` the state lives inside the one server process: the CLI cannot see
it and says so (exit 1); the admin page shows it. Exit 0 after printing, 1 when the state
cannot be read, 2 for a configuration problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from sekisho.cli.lockouts import printable
from sekisho.config import Settings, load_secrets
from sekisho.errors import ConfigError, StateError
from sekisho.ratelimit.attack import create_attack_monitor
from sekisho.ratelimit.attack_types import AttackStatus

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``attack`` command and its subcommands to the main CLI."""
    attack = sub.add_parser("attack", help="attack mode: status")
    cmds = attack.add_subparsers(dest="attack_command", required=True, metavar="COMMAND")
    status = cmds.add_parser("status", help="attack mode on or off, since when, flagged sources")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace, settings: Settings) -> int:
    if settings.state.url.startswith("memory://"):
        print("error: state.url is memory://, so attack mode lives inside the server process; "
              "see the admin page", file=sys.stderr)
        return 1
    try:
        status = asyncio.run(_read(settings))
    except ConfigError as exc:
        print("sekisho: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except StateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
    else:
        print(describe(status))
    return 0


async def _read(settings: Settings) -> AttackStatus:
    monitor = create_attack_monitor(
        settings.ratelimit.attack, url=settings.state.url,
        secret=load_secrets(settings).session_key)
    try:
        return await monitor.status()
    finally:
        await monitor.close()


def describe(status: AttackStatus) -> str:
    """The status as a few lines of text."""
    if not status.enabled:
        lines = ["attack mode: disabled (ratelimit.attack.enabled = false)"]
    elif status.active:
        lines = [f"attack mode: ON since {_when(status.since)} ({status.reason}); ends "
                 f"{_when(status.until)} unless a detector fires again"]
    elif status.last_since is not None:
        lines = [f"attack mode: off (last on {_when(status.last_since)} – "
                 f"{_when(status.last_until)})"]
    else:
        lines = ["attack mode: off"]
    lines.append("report-only: " + (", ".join(
        name for name, on in status.report_only.items() if on) or "none"))
    lines.append(f"flagged sources: {len(status.flagged)}")
    for flag in status.flagged:
        lines.append(f"  {flag.kind:<6} {printable(flag.source):<40} since {_when(flag.since)}"
                     f"  until {_when(flag.until)}")
    return "\n".join(lines)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
