"""The factor repository on SQLite and PostgreSQL: uniqueness, atomic single use, forward-only
counters, guarded removals, cascades, and the 0003 migration going down and up again."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, inspect

from sekisho.errors import Conflict
from sekisho.store import Database, UserRepository
from sekisho.store.db import alembic_config
from sekisho.store.factors import FactorCounts, FactorRepository, NewPasskey
from sekisho.store.tables import users

MFA_TABLES = {"totp_secrets", "webauthn_user_handles", "webauthn_credentials", "recovery_codes"}


def _passkey(user_id: int, credential_id: bytes, *, sign_count: int = 0) -> NewPasskey:
    return NewPasskey(
        user_id=user_id, credential_id=credential_id, public_key=b"\xa5" * 77,
        sign_count=sign_count, transports=("usb",), name="Key", backup_eligible=False,
        backed_up=False, aaguid="00000000-0000-0000-0000-000000000000")


async def _user(db: Database, name: str) -> int:
    return (await UserRepository(db).add(username=name)).id


async def test_totp_replace_and_counts(database: Database) -> None:
    repo = FactorRepository(database)
    uid = await _user(database, "alice")
    assert await repo.totp(uid) is None
    first = await repo.set_totp(uid, b"\x01sealed-one")
    second = await repo.set_totp(uid, b"\x01sealed-two")
    stored = await repo.totp(uid)
    assert stored is not None and stored.id == second != first
    assert stored.sealed == b"\x01sealed-two" and "sealed" not in repr(stored)
    await repo.touch_totp(stored.id)
    assert (await repo.totp(uid)).last_used_at is not None  # type: ignore[union-attr]
    assert await repo.counts(uid) == FactorCounts(totp=True, passkeys=0, recovery_remaining=0)


async def test_credential_id_unique_across_users_WA_05(database: Database) -> None:
    repo = FactorRepository(database)
    alice, bob = await _user(database, "alice"), await _user(database, "bob")
    stored = await repo.add_passkey(_passkey(alice, b"\x09" * 1023))
    assert stored.credential_id == b"\x09" * 1023 and stored.transports == ("usb",)
    with pytest.raises(Conflict):
        await repo.add_passkey(_passkey(bob, b"\x09" * 1023))
    found = await repo.passkey_by_credential_id(b"\x09" * 1023)
    assert found is not None and found.user_id == alice
    assert await repo.passkeys(bob) == []


async def test_counter_moves_only_forward_WA_06(database: Database) -> None:
    repo = FactorRepository(database)
    uid = await _user(database, "alice")
    counted = await repo.add_passkey(_passkey(uid, b"c1", sign_count=5))
    assert await repo.record_passkey_use(counted.id, sign_count=6, backed_up=False)
    assert not await repo.record_passkey_use(counted.id, sign_count=6, backed_up=False)
    assert not await repo.record_passkey_use(counted.id, sign_count=0, backed_up=False)
    zero = await repo.add_passkey(_passkey(uid, b"c2"))
    assert await repo.record_passkey_use(zero.id, sign_count=0, backed_up=True)
    assert await repo.record_passkey_use(zero.id, sign_count=0, backed_up=True)
    both = {p.credential_id: p for p in await repo.passkeys(uid)}
    assert both[b"c1"].sign_count == 6 and both[b"c2"].backed_up
    assert both[b"c2"].last_used_at is not None


async def test_recovery_code_spent_once_under_concurrency_RC_02(database: Database) -> None:
    repo = FactorRepository(database)
    uid = await _user(database, "alice")
    await repo.replace_recovery_codes(uid, ["a" * 64, "b" * 64])
    results = await asyncio.gather(*(repo.use_recovery_code(uid, ["a" * 64])
                                     for _ in range(20)))
    assert results.count(True) == 1
    assert (await repo.counts(uid)).recovery_remaining == 1
    await repo.replace_recovery_codes(uid, ["c" * 64])
    assert not await repo.use_recovery_code(uid, ["b" * 64])  # the old set is gone
    assert not await repo.use_recovery_code(uid, [])


async def test_removal_check_runs_inside_the_transaction(database: Database) -> None:
    repo = FactorRepository(database)
    uid = await _user(database, "alice")
    await repo.set_totp(uid, b"sealed")
    key = await repo.add_passkey(_passkey(uid, b"k"))
    seen: list[FactorCounts] = []

    def refuse(counts: FactorCounts) -> None:
        seen.append(counts)
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        await repo.delete_passkey(uid, key.id, check=refuse)
    with pytest.raises(RuntimeError):
        await repo.delete_totp(uid, check=refuse)
    assert seen[0] == FactorCounts(totp=True, passkeys=1, recovery_remaining=0)
    assert await repo.counts(uid) == seen[0]  # nothing deleted
    assert await repo.delete_passkey(uid + 1, key.id, check=lambda c: None) is None
    removed = await repo.delete_passkey(uid, key.id, check=lambda c: None)
    assert removed is not None and removed.id == key.id
    assert await repo.delete_totp(uid, check=lambda c: None)


async def test_user_handle_created_once(database: Database) -> None:
    repo = FactorRepository(database)
    uid = await _user(database, "alice")
    assert await repo.user_handle(uid) is None
    handles = await asyncio.gather(*(repo.user_handle(uid, create=True) for _ in range(5)))
    assert len(set(handles)) == 1 and len(handles[0] or b"") == 32


async def test_rename_only_own(database: Database) -> None:
    repo = FactorRepository(database)
    alice, bob = await _user(database, "alice"), await _user(database, "bob")
    key = await repo.add_passkey(_passkey(alice, b"k"))
    assert not await repo.rename_passkey(bob, key.id, "Stolen")
    assert await repo.rename_passkey(alice, key.id, "Phone")
    assert (await repo.passkeys(alice))[0].name == "Phone"


async def test_factors_go_with_the_user(database: Database) -> None:
    repo = FactorRepository(database)
    uid = await _user(database, "alice")
    await repo.set_totp(uid, b"sealed")
    await repo.add_passkey(_passkey(uid, b"k"))
    await repo.user_handle(uid, create=True)
    await repo.replace_recovery_codes(uid, ["a" * 64])
    async with database.transaction(write=True) as conn:
        await conn.execute(delete(users).where(users.c.id == uid))
    assert await repo.counts(uid) == FactorCounts(totp=False, passkeys=0, recovery_remaining=0)
    assert await repo.passkey_by_credential_id(b"k") is None
    assert await repo.user_handle(uid) is None


async def test_migration_0003_down_and_up(database: Database) -> None:
    from alembic import command

    def tables(sync_conn: object) -> set[str]:
        return set(inspect(sync_conn).get_table_names())

    async with database.transaction(write=True) as conn:
        assert await conn.run_sync(tables) >= MFA_TABLES
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0002"))
        assert not MFA_TABLES & await conn.run_sync(tables)
    await database.migrate()
    async with database.transaction() as conn:
        assert await conn.run_sync(tables) >= MFA_TABLES


async def test_migration_matches_table_definitions(database: Database) -> None:
    """The 0003 migration creates exactly what store/tables.py declares for these tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from sekisho.store.tables import metadata

    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if _touches(d, MFA_TABLES)]

    async with database.transaction() as conn:
        assert await conn.run_sync(diff) == []


def _touches(entry: object, tables: set[str]) -> bool:
    text = repr(entry)
    return any(f"'{name}'" in text or f"{name}." in text for name in tables)
