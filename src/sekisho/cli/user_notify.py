"""``sekisho user set-notify-email``: a user's second notification address (AU-06).

Security notices (docs/notifications.md) go to the user's ``email`` and to this address.
``sekisho user add --notify-email`` sets it at creation; addresses are checked the way the
notifier will use them (a plain mailbox such as ``alice@example.org``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from typing import Any

from sekisho.auth.usernames import canonical_username
from sekisho.config import Settings
from sekisho.config.notifications import is_mailbox
from sekisho.errors import NotFound, SekishoError
from sekisho.store import Database, UserRepository

__all__ = ["BadAddress", "notify_address", "register_notify"]


class BadAddress(SekishoError, ValueError):
    """An address the notifier would not send to; the message names the option."""


def notify_address(raw: str | None, *, option: str = "--notify-email") -> str | None:
    """``raw`` stripped, None for none; raises BadAddress unless it is a plain mailbox."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not is_mailbox(value):
        raise BadAddress(f"{option}: must be a plain address like alice@example.org "
                         "(no display name or spaces)")
    return value


def register_notify(cmds: argparse._SubParsersAction[argparse.ArgumentParser],
                    handle: Callable[..., int]) -> None:
    cmd = cmds.add_parser("set-notify-email",
                          help="set or clear a user's second notification address")
    cmd.add_argument("username")
    cmd.add_argument("address", nargs="?", help="e.g. alice@example.org")
    cmd.add_argument("--clear", action="store_true", help="remove the second address")
    cmd.set_defaults(func=partial(handle, _set_notify_email))


async def _set_notify_email(args: argparse.Namespace, settings: Settings, **_: Any) -> None:
    if args.clear == (args.address is not None):
        raise BadAddress("set-notify-email: give either ADDRESS or --clear")
    address = None if args.clear else notify_address(args.address, option="ADDRESS")
    if not args.clear and address is None:
        raise BadAddress("ADDRESS: must not be empty (use --clear to remove it)")
    db = Database.from_url(settings.database.url)
    try:
        await db.migrate()
        users = UserRepository(db)
        user = await users.get_by_username(canonical_username(args.username))
        if user is None:
            raise NotFound("no such user")
        await users.set_notify_email(user.id, address)
    finally:
        await db.close()
    if address is None:
        print(f"{user.username}: second notification address removed")
    else:
        shown = dict.fromkeys(a for a in (user.email, address) if a)
        print(f"{user.username}: notices go to {', '.join(shown)}")
