"""``sekisho user``: add, passwd, disable, enable, list, groups.

Each handler is called as ``args.func(args, settings)`` and returns the exit code: 0 on
success, 1 when the request is refused (policy, unknown user, taken name, store error).
New passwords are read without echo (twice, must match) or as one line from stdin with
``--password-stdin``; they are checked against the password policy and never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hmac
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any

from sekisho.auth.breach.checker import BreachChecker, build_policy
from sekisho.auth.passwords import Passwords
from sekisho.auth.policy import PasswordPolicy
from sekisho.auth.usernames import InvalidUsername, canonical_group, canonical_username
from sekisho.cli.user_notify import BadAddress, notify_address, register_notify
from sekisho.config import Settings
from sekisho.errors import Conflict, NotFound, PasswordRejected, StoreError
from sekisho.store import Database, User, UserRepository

# (settings, user id) -> number of sessions ended. Wired by the main CLI to the session store.
EndSessions = Callable[[Settings, int], Awaitable[int]]
PolicyFactory = Callable[[Settings], PasswordPolicy]


class _Refused(Exception):
    """A user-facing refusal; the message is printed as is."""


def default_policy(settings: Settings) -> PasswordPolicy:
    """Length, context, the common list and the configured breach sources (PW-08)."""
    return build_policy(settings, BreachChecker.from_settings(settings.breach))


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    end_sessions: EndSessions | None = None,
    policy: PolicyFactory = default_policy,
) -> None:
    """Add the ``user`` command and its subcommands to the main CLI."""
    user = sub.add_parser("user", help="manage users")
    cmds = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    _register_add(cmds, policy)

    passwd = cmds.add_parser("passwd", help="set a user's password")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read one line")
    passwd.set_defaults(func=partial(_handle, _passwd, policy=policy))

    disable = cmds.add_parser("disable", help="disable a user and end their sessions")
    disable.add_argument("username")
    disable.set_defaults(func=partial(_handle, _disable, end_sessions=end_sessions))

    enable = cmds.add_parser("enable", help="enable a user")
    enable.add_argument("username")
    enable.set_defaults(func=partial(_handle, _enable))

    listing = cmds.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=partial(_handle, _list))
    _register_groups(cmds)
    register_notify(cmds, _handle)


def _register_add(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser], policy: PolicyFactory
) -> None:
    add = cmds.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--email", default="")
    add.add_argument("--notify-email", help="second address for security notices (AU-06)")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--group", action="append", default=[], help="repeat for more groups")
    source = add.add_mutually_exclusive_group()
    source.add_argument("--password-stdin", action="store_true", help="read one line")
    source.add_argument("--no-password", action="store_true", help="passkey-only user")
    add.set_defaults(func=partial(_handle, _add, policy=policy))


def _register_groups(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    groups = cmds.add_parser("groups", help="show or change a user's groups")
    groups.add_argument("username")
    change = groups.add_mutually_exclusive_group()
    change.add_argument("--set", nargs="*", metavar="G", help="replace all groups")
    change.add_argument("--add", action="append", metavar="G", help="add a group")
    change.add_argument("--remove", action="append", metavar="G", help="remove a group")
    groups.set_defaults(func=partial(_handle, _groups))


Handler = Callable[..., Coroutine[Any, Any, None]]


def _handle(handler: Handler, args: argparse.Namespace, settings: Settings, **extra: Any) -> int:
    try:
        asyncio.run(handler(args, settings, **extra))
    except PasswordRejected as exc:
        print(f"password rejected ({exc.reason}): {exc.message}", file=sys.stderr)
    except (_Refused, InvalidUsername, BadAddress) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except Conflict:
        print("error: a user with this name already exists", file=sys.stderr)
    except NotFound:
        print("error: no such user", file=sys.stderr)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
    else:
        return 0
    return 1


@asynccontextmanager
async def _repository(settings: Settings) -> AsyncIterator[UserRepository]:
    db = Database.from_url(settings.database.url)
    try:
        await db.migrate()
        yield UserRepository(db)
    finally:
        await db.close()


async def _find(users: UserRepository, raw: str) -> User:
    user = await users.get_by_username(canonical_username(raw))
    if user is None:
        raise NotFound("no such user")
    return user


def read_new_password(*, from_stdin: bool) -> str:
    """One line from stdin (only the line break removed, PW-04), or two no-echo prompts."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise _Refused("no password on stdin")
        return line.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("New password: ")
    second = getpass.getpass("Repeat the new password: ")
    if not hmac.compare_digest(first.encode("utf-8", "replace"), second.encode("utf-8", "replace")):
        raise _Refused("the two passwords do not match")
    return first


async def _new_hash(
    settings: Settings, policy: PolicyFactory, *, from_stdin: bool, user: dict[str, str]
) -> str:
    password = await asyncio.to_thread(read_new_password, from_stdin=from_stdin)
    await policy(settings).check(password, **user)
    passwords = Passwords.from_settings(settings.passwords)
    try:
        return await passwords.hash(password)
    finally:
        passwords.close()


async def _add(args: argparse.Namespace, settings: Settings, *, policy: PolicyFactory) -> None:
    username = canonical_username(args.username)
    groups = [canonical_group(g) for g in args.group]
    notify_email = notify_address(args.notify_email)
    async with _repository(settings) as users:
        if await users.get_by_username(username) is not None:
            raise Conflict("taken")
        password_hash = None
        if not args.no_password:
            context = {"username": username, "email": args.email, "display_name": args.name}
            password_hash = await _new_hash(
                settings, policy, from_stdin=args.password_stdin, user=context
            )
        user = await users.add(
            username=username,
            email=args.email,
            display_name=args.name,
            groups=groups,
            password_hash=password_hash,
            notify_email=notify_email,
        )
    print(f"added user {user.username} (id {user.id})")


async def _passwd(args: argparse.Namespace, settings: Settings, *, policy: PolicyFactory) -> None:
    async with _repository(settings) as users:
        user = await _find(users, args.username)
        context = {
            "username": user.username,
            "email": user.email,
            "display_name": user.display_name,
        }
        password_hash = await _new_hash(
            settings, policy, from_stdin=args.password_stdin, user=context
        )
        await users.set_password_hash(user.id, password_hash)
    print(f"password set for {user.username}")


async def _disable(
    args: argparse.Namespace, settings: Settings, *, end_sessions: EndSessions | None
) -> None:
    async with _repository(settings) as users:
        user = await _find(users, args.username)
        await users.set_disabled(user.id, True)
    print(f"disabled {user.username}")
    # sessions: end all sessions of the user
    if end_sessions is None:
        print("warning: no session store wired; existing sessions were not ended", file=sys.stderr)
        return
    ended = await end_sessions(settings, user.id)
    print(f"ended {ended} session(s)")


async def _enable(args: argparse.Namespace, settings: Settings) -> None:
    async with _repository(settings) as users:
        user = await _find(users, args.username)
        await users.set_disabled(user.id, False)
    print(f"enabled {user.username}")


def _describe(user: User) -> dict[str, Any]:
    """What the CLI shows of a user: never the hash."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "notify_email": user.notify_email,
        "groups": list(user.groups),
        "disabled": user.disabled,
        "has_password": user.has_password,
        "compromised": user.compromised,
        "password_changed_at": _iso(user.password_changed_at),
        "created_at": _iso(user.created_at),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def _list(args: argparse.Namespace, settings: Settings) -> None:
    async with _repository(settings) as users:
        found = await users.list()
    if args.json:
        print(json.dumps([_describe(u) for u in found], ensure_ascii=False, indent=2))
        return
    print(f"{'USERNAME':<24} {'STATE':<9} {'PASSWORD':<9} GROUPS")
    for user in found:
        state = "disabled" if user.disabled else "active"
        password = "set" if user.has_password else "none"
        print(f"{user.username:<24} {state:<9} {password:<9} {','.join(user.groups)}")


def _changed_groups(current: Sequence[str], args: argparse.Namespace) -> list[str] | None:
    if args.set is not None:
        return [canonical_group(g) for g in args.set]
    if args.add:
        return [*current, *(canonical_group(g) for g in args.add)]
    if args.remove:
        removed = {canonical_group(g) for g in args.remove}
        return [g for g in current if g not in removed]
    return None


async def _groups(args: argparse.Namespace, settings: Settings) -> None:
    async with _repository(settings) as users:
        user = await _find(users, args.username)
        groups = _changed_groups(user.groups, args)
        if groups is not None:
            await users.set_groups(user.id, groups)
            user = await _find(users, user.username)
    print(f"{user.username}: {', '.join(user.groups) or '(no groups)'}")
