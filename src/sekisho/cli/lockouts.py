"""``sekisho lockouts``: list, show, unlock, export (AD-01, AD-02, AD-06).

Each handler is called as ``args.func(args, settings)`` and returns the exit code: 0 on
success, 1 when the request is refused (no reason, no such record, not active, store error),
2 for a configuration problem. ``unlock`` needs the secrets (the regulator's keys) and the
state URL: it lifts the disable in the shared state, marks the record, and files one
``authz_admin`` audit event (``audit.admin_actions.unlock_lockout``, shared with the admin
pages and API); ``export`` files one too (``lockout.export``). Text that came from clients
(user agents) is printed with its control characters escaped, and CSV cells are defused
against spreadsheet formulas.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sekisho import __version__
from sekisho.audit.admin_actions import Origin, record_export, unlock_lockout
from sekisho.audit.log import Auditor
from sekisho.audit.notifier import UserNotifier
from sekisho.auth.usernames import canonical_username
from sekisho.config import Settings, load_secrets
from sekisho.errors import ConfigError, InvalidUsername, NotFound, StateError, StoreError
from sekisho.ratelimit.factory import create_regulator
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.ratelimit.lockout_recorder import LockoutRecorder
from sekisho.store import Database, LockoutRecord, LockoutRepository, UserRepository
from sekisho.store.lockout_export import write_export
from sekisho.store.lockouts import (
    LockoutNotActive,
    LockoutRequestError,
    validate_unlock,
)

__all__ = ["database", "printable", "register", "since_from", "timestamp"]

Handler = Callable[..., Coroutine[Any, Any, None]]
_CLI_ORIGIN = Origin(user_agent=f"sekisho-cli/{__version__}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lockouts`` command and its subcommands to the main CLI."""
    lockouts = sub.add_parser("lockouts", help="review, unlock and export lockout records")
    cmds = lockouts.add_subparsers(dest="lockouts_command", required=True, metavar="COMMAND")

    listing = cmds.add_parser("list", help="list lockout records, newest activity first")
    _add_filters(listing, limit=100)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=partial(handle, _list))

    show = cmds.add_parser("show", help="show one lockout record")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=partial(handle, _show))

    unlock = cmds.add_parser("unlock", help="lift a lock (a reason is mandatory)")
    unlock.add_argument("id", type=int)
    unlock.add_argument("--reason", required=True, help="why; kept in the record and audit")
    unlock.add_argument("--actor", default=None, help="who (default: cli:$USER)")
    unlock.set_defaults(func=partial(handle, _unlock))

    export = cmds.add_parser("export", help="export lockout records as CSV or JSON")
    _add_filters(export, limit=10_000)
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--output", "-o", default="-", help="file (default: stdout)")
    export.set_defaults(func=partial(handle, _export))


def timestamp(text: str) -> datetime:
    """An ISO-8601 time for ``--since``/``--until``; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def since_from(args: argparse.Namespace) -> datetime | None:
    if args.hours is not None:
        return datetime.now(UTC) - timedelta(hours=args.hours)
    value: datetime | None = args.since
    return value


def _add_filters(parser: argparse.ArgumentParser, *, limit: int) -> None:
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--since", type=timestamp, help="ISO-8601 time (UTC if no offset)")
    when.add_argument("--hours", type=float, help="the last N hours")
    parser.add_argument("--until", type=timestamp, help="ISO-8601 time (UTC if no offset)")
    parser.add_argument("--account", help="username (or an attempted name)")
    parser.add_argument("--ip", help="an address, or a /24 (/64) subnet as recorded")
    parser.add_argument("--state", choices=("active", "expired", "unlocked"))
    parser.add_argument("--limit", type=int, default=limit)
    parser.add_argument("--offset", type=int, default=0)


def handle(handler: Handler, args: argparse.Namespace, settings: Settings) -> int:
    try:
        asyncio.run(handler(args, settings))
    except ConfigError as exc:
        print("sekisho: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except NotFound:
        print("error: no such lockout record", file=sys.stderr)
    except (LockoutRequestError, LockoutNotActive, InvalidUsername) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except (StoreError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    else:
        return 0
    return 1


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database.from_url(settings.database.url)
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()


def printable(value: object) -> str:
    """Client-chosen text made safe for a terminal: control characters escaped."""
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _account_filter(settings: Settings, name: str | None) -> str | None:
    """The account key of ``name`` (finds unknown names too); without the secrets, the
    canonical username (finds users only)."""
    if name is None:
        return None
    try:
        return RateLimitKeys(load_secrets(settings).session_key).account(name)
    except ConfigError:
        print("note: secrets not available; matching usernames only", file=sys.stderr)
        return canonical_username(name)


def _query(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    return {
        "since": since_from(args), "until": args.until,
        "account": _account_filter(settings, args.account), "ip": args.ip,
        "state": args.state, "limit": args.limit, "offset": args.offset,
    }


def _who(record: LockoutRecord) -> str:
    return record.username or f"(unknown name {record.account_key[:12]})"


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


async def _list(args: argparse.Namespace, settings: Settings) -> None:
    query = _query(args, settings)
    async with database(settings) as db:
        records = await LockoutRepository(db).list(**query)
    if args.json:
        print(json.dumps([r.export() for r in records], ensure_ascii=False, indent=2))
        return
    print(f"{'ID':>6} {'STATE':<9} {'REASON':<10} {'FACTOR':<9} {'FAILS':>6} {'IPS':>5} "
          f"{'NETS':>5} {'LAST SEEN':<20} ACCOUNT")
    for r in records:
        print(f"{r.id:>6} {r.state:<9} {r.reason:<10} {r.factor:<9} {r.failure_count:>6} "
              f"{r.distinct_ips:>5} {r.distinct_subnets:>5} {_time(r.last_seen):<20} "
              f"{printable(_who(r))}")


async def _show(args: argparse.Namespace, settings: Settings) -> None:
    async with database(settings) as db:
        record = await LockoutRepository(db).get(args.id)
    if record is None:
        raise NotFound("no such lockout record")
    if args.json:
        print(json.dumps(record.export(), ensure_ascii=False, indent=2))
        return
    for name, value in record.export().items():
        if isinstance(value, list):
            print(f"{name}:")
            for entry in value:
                print(f"  {entry['count']:>6}  {printable(entry['value']) or '(none)'}")
        else:
            print(f"{name}: {printable(value) if value is not None else '-'}")


def default_actor() -> str:
    try:
        user = os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


async def _unlock(args: argparse.Namespace, settings: Settings) -> None:
    actor = args.actor if args.actor is not None else default_actor()
    validate_unlock(actor=actor, reason=args.reason)  # before anything is touched
    secret = load_secrets(settings).session_key
    async with database(settings) as db:
        recorder = LockoutRecorder(LockoutRepository(db), RateLimitKeys(secret),
                                   disable_after=settings.ratelimit.disable_after)
        regulator = create_regulator(settings.ratelimit, url=settings.state.url, secret=secret)
        auditor = Auditor.for_database(db)
        notifier = UserNotifier.from_settings(settings, users=UserRepository(db))
        auditor.subscribe(notifier.on_audit)  # AD-02, AU-06: the user is told, as from the API
        try:
            done = await unlock_lockout(
                record_id=args.id, actor=actor, reason=args.reason, recorder=recorder,
                regulator=regulator, auditor=auditor, origin=_CLI_ORIGIN)
        finally:
            await regulator.close()
            await notifier.close()  # sends the notice before the command exits
    after = done.after
    print(f"unlocked lockout {after.id} ({printable(_who(after))}, {after.factor}) "
          f"by {printable(actor)}")
    if settings.state.url.startswith("memory://"):
        print("warning: state.url is memory://; the gateway keeps its counters in its own "
              "process, out of this command's reach. Restart it (or unlock from the admin "
              "page) to lift the lock there.", file=sys.stderr)


async def _export(args: argparse.Namespace, settings: Settings) -> None:
    query = _query(args, settings)
    async with database(settings) as db:
        rows = await LockoutRepository(db).export(**query)
        await record_export(auditor=Auditor.for_database(db), actor=default_actor(),
                            fmt=args.format, count=len(rows), filters=query,
                            origin=_CLI_ORIGIN)
    if args.output == "-":
        write_export(rows, args.format, sys.stdout)
    else:
        await asyncio.to_thread(_save, args.output, rows, args.format)
    print(f"exported {len(rows)} record(s)", file=sys.stderr)


def _save(path: str, rows: list[dict[str, Any]], fmt: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as out:
        write_export(rows, fmt, out)
