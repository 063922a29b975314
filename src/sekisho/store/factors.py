"""Second factors of users: sealed TOTP seeds, WebAuthn credentials, recovery-code hashes.

Values in and out are plain: bytes as sealed or as the authenticator gave them, frozen
dataclasses. Nothing here decrypts or hashes; ``auth.mfa`` does that. Every row belongs to a
user and is deleted with it (``ON DELETE CASCADE``).

Atomic where it matters (security invariant 6):

- a recovery code is spent by ``UPDATE ... WHERE used_at IS NULL`` and counts only if that
  changed a row (RC-02);
- a passkey's counter moves only forward, in the same ``UPDATE`` that records the use (WA-06);
- removing a factor re-counts the user's factors inside the deleting transaction, with the
  user row locked on PostgreSQL (SQLite serialises writers), so two concurrent removals cannot
  both pass a "not the last one" check (WA-08).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sekisho.errors import Conflict
from sekisho.store.db import Database
from sekisho.store.tables import (
    recovery_codes,
    totp_secrets,
    users,
    webauthn_credentials,
    webauthn_user_handles,
)

__all__ = ["FactorCounts", "FactorRepository", "NewPasskey", "StoredPasskey", "StoredTotp"]

HANDLE_BYTES = 32


@dataclass(frozen=True, slots=True)
class StoredTotp:
    id: int
    user_id: int
    sealed: bytes = field(repr=False)
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewPasskey:
    user_id: int
    credential_id: bytes
    public_key: bytes = field(repr=False)
    sign_count: int
    transports: tuple[str, ...]
    name: str
    backup_eligible: bool
    backed_up: bool
    aaguid: str


@dataclass(frozen=True, slots=True)
class StoredPasskey:
    id: int
    user_id: int
    credential_id: bytes
    public_key: bytes = field(repr=False)
    sign_count: int
    transports: tuple[str, ...]
    name: str
    backup_eligible: bool
    backed_up: bool
    aaguid: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class FactorCounts:
    totp: bool
    passkeys: int
    recovery_remaining: int


#: Raises (e.g. LastFactor) to stop a removal; called with the counts *before* it.
RemovalCheck = Callable[[FactorCounts], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _passkey(row: Row[Any]) -> StoredPasskey:
    return StoredPasskey(
        id=row.id, user_id=row.user_id, credential_id=bytes(row.credential_id),
        public_key=bytes(row.public_key), sign_count=int(row.sign_count),
        transports=tuple(row.transports or ()), name=row.name,
        backup_eligible=bool(row.backup_eligible), backed_up=bool(row.backed_up),
        aaguid=row.aaguid, created_at=row.created_at, last_used_at=row.last_used_at)


class FactorRepository:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._db = db
        self._clock = clock

    # -- TOTP ------------------------------------------------------------------------------

    async def totp(self, user_id: int) -> StoredTotp | None:
        async with self._db.guarded(what="factor store") as conn:
            row = (await conn.execute(
                select(totp_secrets).where(totp_secrets.c.user_id == user_id))).first()
        if row is None:
            return None
        return StoredTotp(id=row.id, user_id=row.user_id, sealed=bytes(row.sealed),
                          created_at=row.created_at, last_used_at=row.last_used_at)

    async def set_totp(self, user_id: int, sealed: bytes) -> int:
        """Bind a TOTP authenticator, replacing any earlier one (its seed is gone at once,
        TO-09). Returns the new record's id."""
        async with self._db.guarded(what="factor store", write=True) as conn:
            await conn.execute(delete(totp_secrets).where(totp_secrets.c.user_id == user_id))
            result = await conn.execute(insert(totp_secrets).values(
                user_id=user_id, sealed=sealed, created_at=self._clock(), last_used_at=None,
            ).returning(totp_secrets.c.id))
            return int(result.scalar_one())

    async def touch_totp(self, totp_id: int) -> None:
        async with self._db.guarded(what="factor store", write=True) as conn:
            await conn.execute(update(totp_secrets).where(totp_secrets.c.id == totp_id)
                               .values(last_used_at=self._clock()))

    async def delete_totp(self, user_id: int, *, check: RemovalCheck) -> bool:
        async with self._db.guarded(what="factor store", write=True) as conn:
            check(await self._locked_counts(conn, user_id))
            result = await conn.execute(
                delete(totp_secrets).where(totp_secrets.c.user_id == user_id))
            return bool(result.rowcount)

    # -- WebAuthn --------------------------------------------------------------------------

    async def user_handle(self, user_id: int, *, create: bool = False) -> bytes | None:
        """The user's WebAuthn handle; with ``create``, a new random one if there is none."""
        query = select(webauthn_user_handles.c.handle).where(
            webauthn_user_handles.c.user_id == user_id)
        async with self._db.guarded(what="factor store") as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        if found is not None or not create:
            return None if found is None else bytes(found)
        try:
            async with self._db.guarded(what="factor store", write=True,
                                        on_conflict=Conflict("handle")) as conn:
                handle = secrets.token_bytes(HANDLE_BYTES)
                await conn.execute(insert(webauthn_user_handles).values(
                    user_id=user_id, handle=handle))
                return handle
        except Conflict:  # another replica made one first
            return await self.user_handle(user_id)

    async def passkeys(self, user_id: int) -> list[StoredPasskey]:
        query = (select(webauthn_credentials).where(webauthn_credentials.c.user_id == user_id)
                 .order_by(webauthn_credentials.c.id))
        async with self._db.guarded(what="factor store") as conn:
            return [_passkey(row) for row in await conn.execute(query)]

    async def passkey_by_credential_id(self, credential_id: bytes) -> StoredPasskey | None:
        query = select(webauthn_credentials).where(
            webauthn_credentials.c.credential_id == credential_id)
        async with self._db.guarded(what="factor store") as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _passkey(row)

    async def add_passkey(self, new: NewPasskey) -> StoredPasskey:
        """Store a verified credential. Raises Conflict when its ID is known already (WA-05)."""
        values = {
            "user_id": new.user_id, "credential_id": new.credential_id,
            "public_key": new.public_key, "sign_count": new.sign_count,
            "transports": list(new.transports), "name": new.name,
            "backup_eligible": new.backup_eligible, "backed_up": new.backed_up,
            "aaguid": new.aaguid, "created_at": self._clock(), "last_used_at": None,
        }
        async with self._db.guarded(
            what="factor store", write=True,
            on_conflict=Conflict("this credential ID is registered already"),
        ) as conn:
            row = (await conn.execute(
                insert(webauthn_credentials).values(**values)
                .returning(*webauthn_credentials.c))).one()
        return _passkey(row)

    async def record_passkey_use(self, passkey_id: int, *, sign_count: int,
                                 backed_up: bool) -> bool:
        """Store a use: new counter, backup state, time. False (nothing changed) when the
        counter would not move forward (another replica stored a higher one meanwhile)."""
        col = webauthn_credentials.c.sign_count
        forward = col == 0 if sign_count == 0 else col < sign_count
        async with self._db.guarded(what="factor store", write=True) as conn:
            result = await conn.execute(
                update(webauthn_credentials)
                .where(webauthn_credentials.c.id == passkey_id, forward)
                .values(sign_count=sign_count, backed_up=backed_up,
                        last_used_at=self._clock()))
            return bool(result.rowcount)

    async def rename_passkey(self, user_id: int, passkey_id: int, name: str) -> bool:
        async with self._db.guarded(what="factor store", write=True) as conn:
            result = await conn.execute(
                update(webauthn_credentials)
                .where(webauthn_credentials.c.id == passkey_id,
                       webauthn_credentials.c.user_id == user_id)
                .values(name=name))
            return bool(result.rowcount)

    async def delete_passkey(self, user_id: int, passkey_id: int, *,
                             check: RemovalCheck) -> StoredPasskey | None:
        """Delete one of the user's passkeys; None when there is no such passkey."""
        own = (webauthn_credentials.c.id == passkey_id,
               webauthn_credentials.c.user_id == user_id)
        async with self._db.guarded(what="factor store", write=True) as conn:
            row = (await conn.execute(select(webauthn_credentials).where(*own))).first()
            if row is None:
                return None
            check(await self._locked_counts(conn, user_id))
            await conn.execute(delete(webauthn_credentials).where(*own))
            return _passkey(row)

    # -- recovery codes --------------------------------------------------------------------

    async def replace_recovery_codes(self, user_id: int, hashes: Sequence[str]) -> None:
        """The new set; every earlier code of the user is gone in the same transaction."""
        now = self._clock()
        async with self._db.guarded(what="factor store", write=True) as conn:
            await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
            if hashes:
                await conn.execute(insert(recovery_codes), [
                    {"user_id": user_id, "code_hash": h, "created_at": now, "used_at": None}
                    for h in hashes])

    async def use_recovery_code(self, user_id: int, hashes: Sequence[str]) -> bool:
        """Spend the unused code whose hash is one of ``hashes``. True exactly once per code,
        however many requests race for it (RC-02)."""
        if not hashes:
            return False
        async with self._db.guarded(what="factor store", write=True) as conn:
            result = await conn.execute(
                update(recovery_codes)
                .where(recovery_codes.c.user_id == user_id,
                       recovery_codes.c.code_hash.in_(list(hashes)),
                       recovery_codes.c.used_at.is_(None))
                .values(used_at=self._clock()))
            return result.rowcount == 1

    # -- all factors -----------------------------------------------------------------------

    async def counts(self, user_id: int) -> FactorCounts:
        async with self._db.guarded(what="factor store") as conn:
            return await self._counts(conn, user_id)

    async def _locked_counts(self, conn: AsyncConnection, user_id: int) -> FactorCounts:
        # FOR UPDATE on PostgreSQL; SQLite (BEGIN IMMEDIATE) already has the write lock.
        await conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())
        return await self._counts(conn, user_id)

    @staticmethod
    async def _counts(conn: AsyncConnection, user_id: int) -> FactorCounts:
        totp = await conn.scalar(select(func.count()).select_from(totp_secrets)
                                 .where(totp_secrets.c.user_id == user_id))
        passkeys = await conn.scalar(select(func.count()).select_from(webauthn_credentials)
                                     .where(webauthn_credentials.c.user_id == user_id))
        remaining = await conn.scalar(
            select(func.count()).select_from(recovery_codes)
            .where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None)))
        return FactorCounts(totp=bool(totp), passkeys=int(passkeys or 0),
                            recovery_remaining=int(remaining or 0))
