"""Engine, transactions and schema migrations.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) is chosen by URL. On SQLite
the driver's legacy transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself,
so DDL is transactional (a failed migration leaves nothing behind). Write transactions use
``BEGIN IMMEDIATE`` so that two processes never both read and then both try to write
(``SQLITE_BUSY_SNAPSHOT``, which the busy timeout does not retry).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from sekisho.errors import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
MIGRATION_WAIT_S = 120.0  # how long a starting replica waits for another one's migration
# Serialises concurrent `migrate()` calls from several replicas on PostgreSQL.
_MIGRATION_LOCK_ID = 0x5E515E0
_BEGIN_OPTION = "sekisho_sqlite_begin"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for a ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URL.

    Plain ``sqlite://`` and ``postgresql://`` URLs are accepted and given the async driver.
    """
    url = _with_async_driver(url)
    if url.startswith("sqlite+aiosqlite://"):
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql+asyncpg://"):
        return create_async_engine(url, pool_pre_ping=True, **kwargs)
    raise StoreError("database URL must be sqlite+aiosqlite:// or postgresql+asyncpg://")


def _with_async_driver(url: str) -> str:
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        try:
            # The busy timeout first: switching to WAL takes a lock that a replica starting
            # at the same moment may hold.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


class Database:
    """The engine, a session factory for ORM-style users, and Core transactions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )
        self._writer = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(create_engine(url, **kwargs))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """A Core connection inside one transaction; commits on success, rolls back on error."""
        engine = self._writer if write else self.engine
        async with engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def guarded(
        self, *, what: str, write: bool = False, on_conflict: StoreError | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """:meth:`transaction` with driver errors translated at this boundary: an integrity
        violation becomes ``on_conflict`` (when given), anything else ``StoreError``."""
        try:
            async with self.transaction(write=write) as conn:
                yield conn
        except IntegrityError as exc:
            raise (on_conflict or StoreError(f"{what} failed: IntegrityError")) from exc
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"{what} failed: {type(exc).__name__}") from exc

    async def migrate(self) -> None:
        await migrate(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to the newest revision. Idempotent: safe at every start.

    Replicas starting together queue on one lock (PostgreSQL: an advisory lock; SQLite: the
    write lock of ``BEGIN IMMEDIATE``). SQLite's busy timeout is sized for requests, not for a
    whole migration on a slow machine, so a "database is locked" there is retried, the
    failed attempt having rolled back, until ``MIGRATION_WAIT_S`` have passed."""
    deadline = time.monotonic() + MIGRATION_WAIT_S
    while True:
        try:
            await _migrate_once(engine)
            return
        except OperationalError as exc:
            locked = engine.dialect.name == "sqlite" and "locked" in str(exc.orig)
            if not locked or time.monotonic() > deadline:
                raise StoreError(f"schema migration failed: {type(exc).__name__}") from exc
            await asyncio.sleep(0.2)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"schema migration failed: {type(exc).__name__}") from exc


async def _migrate_once(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
            await conn.run_sync(_upgrade)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config built in code: no alembic.ini on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def current_revision(connection: Connection) -> str | None:
    """The schema revision a database is at (None before the first migration)."""
    return MigrationContext.configure(connection).get_current_revision()
