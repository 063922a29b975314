"""``sekisho audit``: list the audit trail, verify its hash chain (AU-04, AD-06).

``verify`` exits 0 when every record holds and 1 naming the first broken record otherwise.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any

from sekisho.audit.log import Auditor, audit_log
from sekisho.cli.lockouts import database, handle, printable, since_from, timestamp
from sekisho.config import Settings
from sekisho.store.audit_log import StoredAuditEvent

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` command and its subcommands to the main CLI."""
    audit = sub.add_parser("audit", help="list and verify the audit trail")
    cmds = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    listing = cmds.add_parser("list", help="list audit events, newest first")
    listing.add_argument("--event", help="event name; also matches its name:detail forms")
    when = listing.add_mutually_exclusive_group()
    when.add_argument("--since", type=timestamp, help="ISO-8601 time (UTC if no offset)")
    when.add_argument("--hours", type=float, help="the last N hours")
    listing.add_argument("--until", type=timestamp, help="ISO-8601 time (UTC if no offset)")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=partial(handle, _list))

    verify = cmds.add_parser("verify", help="check the hash chain; exit 1 if it is broken")
    verify.set_defaults(func=_verify)


def _summary(data: dict[str, Any]) -> str:
    if data.get("actor") is not None:
        return (f"actor={data.get('actor')} action={data.get('action')} "
                f"target={data.get('target')} reason={data.get('reason')}")
    parts = [f"{k}={data[k]}" for k in ("account", "factor", "client_ip") if data.get(k)]
    return " ".join(parts)


def _as_json(record: StoredAuditEvent) -> dict[str, Any]:
    return {"seq": record.seq, "hash": record.hash, "prev_hash": record.prev_hash,
            **record.data()}


async def _list(args: argparse.Namespace, settings: Settings) -> None:
    async with database(settings) as db:
        records = await audit_log(db).list(
            event=args.event, since=since_from(args), until=args.until, limit=args.limit)
    if args.json:
        print(json.dumps([_as_json(r) for r in records], ensure_ascii=False, indent=2))
        return
    print(f"{'SEQ':>6} {'TIME':<27} {'EVENT':<32} DETAILS")
    for r in records:
        print(f"{r.seq:>6} {r.ts.isoformat():<27} {printable(r.event):<32} "
              f"{printable(_summary(r.data()))}")


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    outcome: dict[str, int] = {}

    async def run(_args: argparse.Namespace, settings: Settings) -> None:
        async with database(settings) as db:
            result = await Auditor.for_database(db).verify()
        if result.ok:
            print(f"audit trail ok: {result.checked} record(s), head {result.head}")
            outcome["code"] = 0
        else:
            print(f"audit trail BROKEN at record {result.broken_at}: {result.problem} "
                  f"({result.checked} record(s) before it verified)")
            outcome["code"] = 1

    code = handle(run, args, settings)
    return code or outcome.get("code", 1)
