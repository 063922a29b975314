"""Users and their groups.

The repository takes and returns plain values: usernames already in canonical form
(``auth.usernames.canonical_username``), :class:`User` frozen dataclasses. No SQLAlchemy object
leaves this module, and database errors leave it only as :class:`StoreError` / :class:`Conflict`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sekisho.errors import Conflict, NotFound
from sekisho.store.db import Database
from sekisho.store.tables import user_groups, users


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    email: str
    groups: tuple[str, ...]
    disabled: bool
    # Kept out of repr so that a logged User never carries the hash.
    password_hash: str | None = field(repr=False)
    password_changed_at: datetime | None
    compromised: bool
    created_at: datetime
    updated_at: datetime
    notify_email: str | None = None  # AU-06: the second notification address

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    @property
    def notify_addresses(self) -> tuple[str, ...]:
        """Where security notices go: ``email`` and ``notify_email``, blanks and repeats
        (ignoring case) left out."""
        found: dict[str, str] = {}
        for address in (self.email, self.notify_email or ""):
            if address.strip():
                found.setdefault(address.strip().lower(), address.strip())
        return tuple(found.values())


def _utcnow() -> datetime:
    return datetime.now(UTC)


# One query for a user and all its groups, so that a known and an unknown username cost the
# same number of round trips (LF-02).
_SELECT = (
    select(users, user_groups.c.name.label("group_name"))
    .select_from(users.outerjoin(user_groups, user_groups.c.user_id == users.c.id))
    .order_by(users.c.username, user_groups.c.name)
)


def _fold(rows: Iterable[Row[Any]]) -> builtins.list[User]:
    found: dict[int, tuple[Row[Any], builtins.list[str]]] = {}
    for row in rows:
        _, groups = found.setdefault(row.id, (row, []))
        if row.group_name is not None:
            groups.append(row.group_name)
    return [
        User(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            email=row.email,
            groups=tuple(groups),
            disabled=bool(row.disabled),
            password_hash=row.password_hash,
            password_changed_at=row.password_changed_at,
            compromised=bool(row.compromised),
            created_at=row.created_at,
            updated_at=row.updated_at,
            notify_email=row.notify_email,
        )
        for row, groups in found.values()
    ]


def _unique(groups: Iterable[str]) -> builtins.list[str]:
    return sorted(set(groups))


class UserRepository:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._db = db
        self._clock = clock

    def _tx(self, *, write: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._db.guarded(
            what="user store", write=write,
            on_conflict=Conflict("a user with this username already exists"),
        )

    async def add(
        self,
        *,
        username: str,
        email: str = "",
        display_name: str = "",
        groups: Sequence[str] = (),
        password_hash: str | None = None,
        notify_email: str | None = None,
    ) -> User:
        """Create a user. Raises Conflict when the (canonical) username is taken."""
        now = self._clock()
        values = {
            "username": username,
            "email": email,
            "notify_email": notify_email,
            "display_name": display_name,
            "disabled": False,
            "password_hash": password_hash,
            "password_changed_at": now if password_hash is not None else None,
            "compromised": False,
            "created_at": now,
            "updated_at": now,
        }
        async with self._tx(write=True) as conn:
            result = await conn.execute(insert(users).values(**values).returning(users.c.id))
            user_id = int(result.scalar_one())
            await self._insert_groups(conn, user_id, groups)
            found = _fold(await conn.execute(_SELECT.where(users.c.id == user_id)))
        return found[0]

    async def get(self, user_id: int) -> User | None:
        return await self._one(users.c.id == user_id)

    async def get_by_username(self, username: str) -> User | None:
        """Look up by canonical username; the caller canonicalises."""
        return await self._one(users.c.username == username)

    async def list(self) -> builtins.list[User]:
        """Every user, ordered by username."""
        async with self._tx() as conn:
            return _fold(await conn.execute(_SELECT))

    async def set_password_hash(self, user_id: int, password_hash: str | None) -> None:
        """A new password (or none): stamps the change and clears the compromised flag."""
        now = self._clock()
        await self._update(
            user_id,
            password_hash=password_hash,
            password_changed_at=now if password_hash is not None else None,
            compromised=False,
        )

    async def rehash_password(self, user_id: int, *, old_hash: str, new_hash: str) -> bool:
        """Swap in an upgraded hash of the same password (ST-03), only if it is unchanged.

        The compare-and-swap keeps a login that raced a password change from writing the old
        password back. Returns whether the hash was replaced.
        """
        stmt = (
            update(users)
            .where(users.c.id == user_id, users.c.password_hash == old_hash)
            .values(password_hash=new_hash, updated_at=self._clock())
        )
        async with self._tx(write=True) as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def set_notify_email(self, user_id: int, address: str | None) -> None:
        """The second notification address (AU-06); None removes it. The caller checks
        the address (``config.notifications.is_mailbox``)."""
        await self._update(user_id, notify_email=address)

    async def set_disabled(self, user_id: int, disabled: bool) -> None:
        await self._update(user_id, disabled=disabled)

    async def set_compromised(self, user_id: int, compromised: bool) -> None:
        """PW-06: flag (or clear) evidence of compromise; the next login must change it."""
        await self._update(user_id, compromised=compromised)

    async def set_groups(self, user_id: int, groups: Sequence[str]) -> None:
        """Replace the user's groups."""
        async with self._tx(write=True) as conn:
            await self._touch(conn, user_id, {})
            await conn.execute(delete(user_groups).where(user_groups.c.user_id == user_id))
            await self._insert_groups(conn, user_id, groups)

    async def _one(self, where: Any) -> User | None:
        async with self._tx() as conn:
            found = _fold(await conn.execute(_SELECT.where(where)))
        return found[0] if found else None

    async def _update(self, user_id: int, **values: Any) -> None:
        async with self._tx(write=True) as conn:
            await self._touch(conn, user_id, values)

    async def _touch(self, conn: AsyncConnection, user_id: int, values: dict[str, Any]) -> None:
        stmt = (
            update(users)
            .where(users.c.id == user_id)
            .values(**values, updated_at=self._clock())
        )
        result = await conn.execute(stmt)
        if not result.rowcount:
            raise NotFound("no such user")

    @staticmethod
    async def _insert_groups(conn: AsyncConnection, user_id: int, groups: Iterable[str]) -> None:
        rows = [{"user_id": user_id, "name": name} for name in _unique(groups)]
        if rows:
            await conn.execute(insert(user_groups), rows)
