"""Password login: one failure for every reason, at one cost (LF-01, LF-02, ST-03).

Every path runs exactly one Argon2 verify with the current profile's cost:

- unknown user, or a username that is not even valid: the dummy verify;
- a user with no password set: the dummy verify;
- a disabled user: the real verify against the stored hash (a verify costs the same whether
  it matches or not), and the result is ignored;
- a known user: the real verify.

and every failure raises the same ``AuthenticationFailed`` with the same message and no
chained cause. A password over the length cap is refused without hashing, for every user
alike (see ``auth.passwords``), so that shortcut says nothing about the account.

Rate limits are checked by the caller *before* this function (no Argon2 work for a refused
attempt). ``HasherBusy`` propagates; the HTTP layer answers 503 with Retry-After.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from sekisho.auth.passwords import Passwords
from sekisho.auth.usernames import InvalidUsername, canonical_username
from sekisho.errors import AuthenticationFailed, HasherBusy, StoreError
from sekisho.store.users import User, UserRepository

LOGIN_FAILED = "Login failed; invalid user ID or password."

log = logging.getLogger(__name__)


async def authenticate(
    *, username: str, password: str, users: UserRepository, passwords: Passwords,
    priority: bool = False,
) -> User:
    """The user whose password this is, or AuthenticationFailed. Upgrades old hashes (ST-03).
    ``priority``: the attempt comes from a device known for this account (hash_slots)."""
    user = await _lookup(username, users)
    stored = user.password_hash if user is not None else None
    matched = await passwords.verify(stored, password, priority=priority)
    if user is None or stored is None or not matched or user.disabled:
        raise AuthenticationFailed(LOGIN_FAILED)
    if passwords.needs_rehash(stored):
        return await _upgrade(user, stored, password, users=users, passwords=passwords)
    return user


async def _lookup(username: str, users: UserRepository) -> User | None:
    try:
        canonical = canonical_username(username)
    except InvalidUsername:
        return None  # no such account can exist; it still costs the dummy verify
    return await users.get_by_username(canonical)


async def _upgrade(
    user: User, stored: str, password: str, *, users: UserRepository, passwords: Passwords
) -> User:
    """Re-hash with the current profile after a successful verify. Best effort: the login
    has already succeeded, and the old hash still works next time."""
    try:
        new_hash = await passwords.hash(password, priority=False)
        replaced = await users.rehash_password(user.id, old_hash=stored, new_hash=new_hash)
    except (HasherBusy, StoreError) as exc:
        log.warning("password rehash skipped for user id %d: %s", user.id, type(exc).__name__)
        return user
    if not replaced:  # the password changed meanwhile; keep the newer one
        return user
    log.info("password hash upgraded for user id %d to profile %s", user.id, passwords.profile)
    return replace(user, password_hash=new_hash)
