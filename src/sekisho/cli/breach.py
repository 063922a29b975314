"""`sekisho breach import|stats|check|report`: the offline corpus, and the accounts caught.

``check`` runs the gateway's check on one password (common list and breach sources), see
:mod:`sekisho.cli.breach_check`.

``report`` lists the accounts whose password was found in a breach source or on the common
list, at login or when a new one was refused (the ``authn_password_breached`` audit events,
through :func:`sekisho.audit.breach_report.breach_report`, which the admin page calls too).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sekisho.audit.breach_report import REPORT_FIELDS, BreachCatch, breach_report
from sekisho.auth.breach import BreachCorpus, BreachError, import_corpus
from sekisho.cli import breach_check
from sekisho.cli.lockouts import database, handle, printable, since_from, timestamp
from sekisho.config import Settings
from sekisho.store.lockout_export import csv_cell


def register(sub: Any) -> None:
    breach = sub.add_parser("breach", help="breached passwords: the corpus, checks, report")
    cmds = breach.add_subparsers(dest="breach_command", required=True, metavar="COMMAND")
    imp = cmds.add_parser("import", help="build the corpus from HIBP downloader output")
    imp.add_argument("paths", nargs="+", help="SHA1:COUNT files, range directories, or .gz")
    imp.add_argument("--output", help="corpus file (default: breach.corpus_path)")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=_import)
    stats = cmds.add_parser("stats", help="what the corpus holds")
    stats.add_argument("--verify", action="store_true", help="check every checksum (slow)")
    stats.set_defaults(func=_stats)
    breach_check.register(cmds)
    report = cmds.add_parser("report", help="accounts caught with a breached password")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    when = report.add_mutually_exclusive_group()
    when.add_argument("--since", type=timestamp, help="ISO-8601 time (UTC if no offset)")
    when.add_argument("--hours", type=float, help="the last N hours")
    report.add_argument("--pending", action="store_true",
                        help="only accounts that have not changed the password since")
    report.add_argument("--limit", type=int, default=1000, help="at most this many events")
    report.set_defaults(func=lambda args, settings: handle(_report, args, settings))


async def _report(args: argparse.Namespace, settings: Settings) -> None:
    async with database(settings) as db:
        caught = await breach_report(db, since=since_from(args), limit=args.limit,
                                     pending_only=args.pending)
    if args.format == "json":
        print(json.dumps([c.row() for c in caught], ensure_ascii=False, indent=2))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(REPORT_FIELDS)
        for c in caught:
            row = c.row()
            writer.writerow([csv_cell(row[name]) for name in REPORT_FIELDS])
    else:
        _table(caught)


def _table(caught: list[BreachCatch]) -> None:
    print(f"{'WHEN (UTC)':<20} {'USER':<24} {'WHERE':<6} {'SOURCE':<8} {'COUNT':>9} CHANGED")
    for c in caught:
        count = "" if c.count is None else f"{c.count:,}"
        print(f"{c.when:%Y-%m-%d %H:%M:%S} {printable(c.username or '?'):<24} {c.where:<6} "
              f"{c.source:<8} {count:>9} {'yes' if c.changed_since else 'NO'}")
    pending = sum(1 for c in caught if not c.changed_since)
    print(f"{len(caught)} catch(es); {pending} not changed since")


def _import(args: argparse.Namespace, settings: Settings) -> int:
    target = args.output or settings.breach.corpus_path
    progress = None if args.quiet else _Progress()
    try:
        result = import_corpus(args.paths, target, on_progress=progress)
    except BreachError as exc:
        print(f"\nsekisho: import failed, the previous corpus is unchanged: {exc}",
              file=sys.stderr)
        return 1
    if progress is not None:
        progress.done()
    print(f"imported {result.count:,} hashes from {result.lines:,} lines "
          f"({result.duplicates:,} duplicates, {result.padding_lines:,} padding lines) "
          f"in {result.seconds:.1f} s into {target} ({result.file_size:,} bytes, "
          f"{result.resident_bytes:,} of them resident); "
          f"false-positive rate {result.false_positive_rate:.2g}")
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.breach.corpus_path
    try:
        with BreachCorpus(path) as corpus:
            info = corpus.info
            if args.verify:
                corpus.verify()
    except (BreachError, OSError) as exc:
        print(f"sekisho: {path}: {exc}", file=sys.stderr)
        return 1
    created = datetime.fromtimestamp(info.created, UTC).isoformat(timespec="seconds")
    lay = info.layout
    print(f"corpus             {path}\nhashes             {info.count:,}\n"
          f"imported           {created}\n"
          f"geometry           {lay.bucket_bits}-bit buckets, "
          f"{lay.fingerprint_bits}-bit fingerprints (format version 2)\n"
          f"resident tier      {lay.resident_bytes:,} bytes (index and blocks: keep them in "
          f"the page cache)\n"
          f"disk tier          {lay.disk_tier_bytes:,} bytes (read by members and "
          f"{info.resident_pass_rate:.2%} of non-members)\n"
          f"false positives    {info.false_positive_rate:.2g} per non-member\n"
          f"checksums          {'verified' if args.verify else 'header and index checked'}")
    return 0


class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self) -> None:
        self._shown = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._shown < 0.1 and done < total:
            return
        self._shown = now
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        print(f"\r  [{bar:<30}] {share:6.1%}  {done / 2**20:,.0f} MiB", end="",
              file=sys.stderr, flush=True)

    def done(self) -> None:
        print(file=sys.stderr)
