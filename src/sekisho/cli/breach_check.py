"""`sekisho breach check`: the gateway's check of one password, from the command line.

The same lists in the same order as the change-password page and the login check: the
common-password list, then the configured :class:`BreachChecker` (``breach.mode``,
``breach.min_count``; the offline corpus, then the range API with k-anonymity). The password
is read without echo, or as one line from stdin with ``--password-stdin``, NFC-normalised
as the gateway does, and never printed. One line on stdout says the verdict and why::

    breached: seen 3,000 times by the range API https://api.pwnedpasswords.com (min_count 1)
    common: on the common-password list (zxcvbn passwords list)
    clean: not on the common-password list; not listed by the offline corpus ./pwned.sekisho
    unavailable: no breach source could answer (online: range API answered HTTP 503); ...

Exit status: 0 clean, 1 listed (breached or common), 2 no answer (no source could answer,
an unusable corpus, no password given; also argparse's usage errors and a bad configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from dataclasses import dataclass
from typing import Any

from sekisho.auth.breach import BreachError
from sekisho.auth.breach.checker import BreachChecker
from sekisho.auth.common_passwords import common_passwords
from sekisho.auth.passwords import normalize
from sekisho.config import Settings
from sekisho.config.breach import BreachSettings

__all__ = ["EXIT_CLEAN", "EXIT_LISTED", "EXIT_UNKNOWN", "Verdict", "check_password", "register"]

EXIT_CLEAN, EXIT_LISTED, EXIT_UNKNOWN = 0, 1, 2
_EPILOG = ("exit status: 0 clean, 1 listed (breached or common), 2 no answer (no breach "
           "source could answer, an unusable corpus, a bad configuration)")


@dataclass(frozen=True, slots=True)
class Verdict:
    """``kind``: breached | common | clean | unavailable; ``text``: the line printed."""

    kind: str
    text: str

    @property
    def exit_code(self) -> int:
        return {"clean": EXIT_CLEAN, "breached": EXIT_LISTED,
                "common": EXIT_LISTED}.get(self.kind, EXIT_UNKNOWN)


def register(cmds: Any) -> None:
    check = cmds.add_parser(
        "check", help="the gateway's check on a password: common list and breach sources",
        epilog=_EPILOG)
    check.add_argument("--password-stdin", action="store_true",
                       help="read the password as one line from stdin (default: a prompt)")
    check.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = getpass.getpass("Password to check: ")
    if not password:
        print("sekisho: no password given", file=sys.stderr)
        return EXIT_UNKNOWN
    try:
        verdict = asyncio.run(check_password(normalize(password), settings.breach))
    except (BreachError, OSError) as exc:  # a corpus that is there but unusable
        print(f"sekisho: breach check: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    print(verdict.text)
    return verdict.exit_code


async def check_password(password: str, settings: BreachSettings) -> Verdict:
    """The verdict on the NFC ``password``, as the gateway would give it. Raises BreachError
    when the configured corpus cannot be used (the gateway would not start then)."""
    common = common_passwords()
    if common.is_common(password):
        return Verdict("common", f"common: on the common-password list ({common.source})")
    failed: dict[str, str] = {}

    async def unavailable(source: str, why: str, missed: int) -> None:
        failed[source] = why  # built without the password, the hash or the prefix

    checker = BreachChecker.from_settings(settings, on_unavailable=unavailable)
    try:
        await checker.start()
        asked = _asked(checker)
        found = await checker.check(password)
    finally:
        await checker.close()
    why = " (" + "; ".join(f"{source}: {text}" for source, text in failed.items()) + ")"
    if found.breached:
        times = "at least " if found.source == "offline" else ""
        return Verdict("breached", f"breached: seen {times}{found.count:,} times by "
                       f"{asked.get(found.source, found.source)} "
                       f"(min_count {settings.min_count})")
    if found.unavailable:
        return Verdict("unavailable", f"unavailable: no breach source could answer{why}; "
                       "not on the common-password list")
    answered = {name: text for name, text in asked.items() if name not in failed}
    text = "clean: not on the common-password list; " + _sources(answered, settings)
    if found.count:
        text += f"; seen {found.count:,} times, fewer than min_count {settings.min_count}"
    if failed:
        text += f"; unavailable{why}"
    return Verdict("clean", text)


def _sources(asked: dict[str, str], settings: BreachSettings) -> str:
    if asked:
        return "not listed by " + " nor ".join(asked.values())
    if settings.mode == "auto":
        return f"no breach source to ask (breach.mode = auto, no corpus at {settings.corpus_path})"
    return f"no breach source to ask (breach.mode = {settings.mode})"


def _asked(checker: BreachChecker) -> dict[str, str]:
    """The sources that take part now, by name, as the operator knows them."""
    asked: dict[str, str] = {}
    if checker.offline is not None and checker.offline.present():
        asked["offline"] = f"the offline corpus {checker.offline.path}"
    if checker.online is not None:
        asked["online"] = f"the range API {checker.online.api_url}"
    return asked
