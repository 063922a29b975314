"""The user repository, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from sekisho.errors import Conflict, NotFound, StoreError
from sekisho.store import Database, User, UserRepository
from sekisho.store.db import current_revision, migrate


def _script_head() -> str:
    from alembic.script import ScriptDirectory

    from sekisho.store.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


HEAD = _script_head()


@pytest.fixture
def users(database: Database) -> UserRepository:
    return UserRepository(database)


async def test_add_and_get(users: UserRepository) -> None:
    added = await users.add(
        username="alice",
        email="alice@example.com",
        display_name="Alice Liddell",
        groups=["staff", "admins", "staff"],
        password_hash="$argon2id$stub",
    )
    assert isinstance(added, User)
    assert added.id > 0
    assert added.groups == ("admins", "staff")
    assert not added.disabled and not added.compromised
    assert added.has_password
    assert added.created_at.tzinfo is not None
    assert added.password_changed_at == added.created_at
    assert await users.get(added.id) == added
    assert await users.get_by_username("alice") == added
    assert await users.get_by_username("bob") is None
    assert await users.get(added.id + 1000) is None


async def test_repr_never_shows_the_hash(users: UserRepository) -> None:
    added = await users.add(username="alice", password_hash="$argon2id$secret-looking")
    assert "secret-looking" not in repr(added)
    assert "secret-looking" not in str(added)


async def test_user_without_password(users: UserRepository) -> None:
    added = await users.add(username="passkey-only")
    assert added.password_hash is None
    assert added.password_changed_at is None
    assert not added.has_password


async def test_duplicate_username_is_a_conflict(users: UserRepository) -> None:
    await users.add(username="alice")
    with pytest.raises(Conflict) as caught:
        await users.add(username="alice", email="other@example.com")
    assert caught.value.__cause__ is not None  # translated at the boundary, cause kept
    assert [u.username for u in await users.list()] == ["alice"]


async def test_list_is_ordered_with_groups(users: UserRepository) -> None:
    await users.add(username="carol", groups=["b"])
    await users.add(username="alice", groups=["x", "a"])
    await users.add(username="bob")
    listed = await users.list()
    assert [(u.username, u.groups) for u in listed] == [
        ("alice", ("a", "x")),
        ("bob", ()),
        ("carol", ("b",)),
    ]


async def test_disable_and_enable(users: UserRepository) -> None:
    added = await users.add(username="alice")
    await users.set_disabled(added.id, True)
    fetched = await users.get(added.id)
    assert fetched is not None and fetched.disabled
    assert fetched.updated_at >= added.updated_at
    await users.set_disabled(added.id, False)
    fetched = await users.get(added.id)
    assert fetched is not None and not fetched.disabled


async def test_set_groups_replaces(users: UserRepository) -> None:
    added = await users.add(username="alice", groups=["a", "b"])
    other = await users.add(username="bob", groups=["a"])
    await users.set_groups(added.id, ["c", "b", "c"])
    assert (await users.get(added.id)).groups == ("b", "c")  # type: ignore[union-attr]
    await users.set_groups(added.id, [])
    assert (await users.get(added.id)).groups == ()  # type: ignore[union-attr]
    assert (await users.get(other.id)).groups == ("a",)  # type: ignore[union-attr]


async def test_unknown_id_is_not_found(users: UserRepository) -> None:
    with pytest.raises(NotFound):
        await users.set_disabled(999, True)
    with pytest.raises(NotFound):
        await users.set_groups(999, ["a"])
    with pytest.raises(NotFound):
        await users.set_password_hash(999, "x")


async def test_set_password_hash_stamps_and_clears_compromised(database: Database) -> None:
    clock = _Clock()
    users = UserRepository(database, clock=clock)
    added = await users.add(username="alice", password_hash="old")
    await users.set_compromised(added.id, True)
    assert (await users.get(added.id)).compromised  # type: ignore[union-attr]
    clock.advance(days=1)
    await users.set_password_hash(added.id, "new")
    fetched = await users.get(added.id)
    assert fetched is not None
    assert fetched.password_hash == "new"
    assert fetched.password_changed_at == clock.now
    assert not fetched.compromised


async def test_rehash_is_compare_and_swap(users: UserRepository) -> None:
    """ST-03: an upgrade never overwrites a password changed in the meantime."""
    added = await users.add(username="alice", password_hash="h1")
    assert await users.rehash_password(added.id, old_hash="h1", new_hash="h1-upgraded")
    await users.set_password_hash(added.id, "h2")
    assert not await users.rehash_password(added.id, old_hash="h1-upgraded", new_hash="stale")
    fetched = await users.get(added.id)
    assert fetched is not None and fetched.password_hash == "h2"


async def test_rehash_keeps_password_changed_at(database: Database) -> None:
    clock = _Clock()
    users = UserRepository(database, clock=clock)
    added = await users.add(username="alice", password_hash="h1")
    clock.advance(days=3)
    await users.rehash_password(added.id, old_hash="h1", new_hash="h1b")
    fetched = await users.get(added.id)
    assert fetched is not None
    assert fetched.password_changed_at == added.password_changed_at
    assert fetched.updated_at == clock.now


async def test_unicode_round_trip(users: UserRepository) -> None:
    added = await users.add(username="たろう", display_name="山田 太郎", groups=["開発"])
    fetched = await users.get_by_username("たろう")
    assert fetched == added
    assert fetched.display_name == "山田 太郎"


async def test_driver_errors_become_store_errors(database: Database) -> None:
    users = UserRepository(database)
    async with database.transaction(write=True) as conn:
        await conn.execute(text("DROP TABLE user_groups"))
    with pytest.raises(StoreError) as caught:
        await users.list()
    assert not isinstance(caught.value, (Conflict, NotFound))


async def test_migrations_are_idempotent(db_url: str) -> None:
    db = Database.from_url(db_url)
    try:
        await migrate(db.engine)
        await migrate(db.engine)
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(current_revision) == HEAD
        users = UserRepository(db)
        await users.add(username="alice")
        await db.migrate()  # a migration at start-up keeps the data
        assert [u.username for u in await users.list()] == ["alice"]
    finally:
        await db.close()


async def test_concurrent_migrations(db_url: str) -> None:
    """Replicas starting together all migrate; exactly one creates the schema."""
    dbs = [Database.from_url(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(db.migrate() for db in dbs))
        async with dbs[0].engine.connect() as conn:
            assert await conn.run_sync(current_revision) == HEAD
    finally:
        for db in dbs:
            await db.close()


async def test_migration_waits_out_a_long_sqlite_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica starting while another holds SQLite's write lock for longer than the busy
    timeout (a migration on a slow machine) waits and migrates, instead of failing to start."""
    import sekisho.store.db as dbmod

    monkeypatch.setattr(dbmod, "SQLITE_BUSY_TIMEOUT_MS", 100)
    url = f"sqlite:///{tmp_path}/x.sqlite3"
    holder, starter = Database.from_url(url), Database.from_url(url)
    try:
        async with holder.transaction() as conn:
            await conn.execute(text("CREATE TABLE held (x INTEGER)"))
            task = asyncio.create_task(starter.migrate())
            await asyncio.sleep(1.0)  # ten busy timeouts
            assert not task.done()
        await asyncio.wait_for(task, 60)
        async with starter.engine.connect() as conn:
            assert await conn.run_sync(current_revision) == HEAD
    finally:
        await holder.close()
        await starter.close()


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path}/x.sqlite3")
    try:
        async with db.transaction() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await db.close()


async def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        Database.from_url("mysql://localhost/x")


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def __call__(self) -> datetime:
        return self.now
