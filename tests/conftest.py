"""Shared fixtures: real databases and Redis, and a fast password hasher.

Service URLs come from ``SEKISHO_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and ``SEKISHO_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/15``). An unreachable service skips the test, except under
``CI=true``, where it fails it (DESIGN.md, "How we build").

- ``db_url``: parametrized over ``sqlite`` (a file in tmp_path) and ``postgresql``
  (``pg_url``).
- ``pg_url``: a fresh PostgreSQL database created for the test and dropped after it, so tests
  (and engineers running them at the same time) never see each other's rows.
- ``database``: a :class:`sekisho.store.Database` on ``db_url``, migrated to head.
- ``redis_url``: the Redis URL, after ``FLUSHDB``.
- ``fast_passwords``: a :class:`Passwords` with tiny Argon2id parameters, for tests where the
  cost does not matter. Tests of the profiles themselves (ST-01..ST-03) use the real ones.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from argon2 import Parameters, Type
from sqlalchemy.engine import URL, make_url

from sekisho.auth.passwords import Passwords
from sekisho.store import Database

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# Argon2id at its cheapest sensible setting: ~1 ms. Never use outside tests.
FAST_ARGON2 = Parameters(
    type=Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=1024,
    parallelism=1,
)


def require_service(name: str, ok: bool, detail: str = "") -> None:
    """Skip (or, under CI=true, fail) the current test when a service is unavailable."""
    if ok:
        return
    message = f"{name} is not reachable" + (f": {detail}" if detail else "")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: required services must be running)")
    pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/sekisho.sqlite3"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    admin = make_url(os.environ.get("SEKISHO_TEST_DATABASE_URL", DEFAULT_DATABASE_URL))
    admin = admin.set(drivername="postgresql")
    name = f"sekisho_test_{uuid.uuid4().hex[:12]}"
    try:
        _pg_admin(admin, f'CREATE DATABASE "{name}"')
    except OSError as exc:
        require_service("PostgreSQL", False, f"{type(exc).__name__}: {exc}")
    try:
        url = admin.set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_admin(admin: URL, sql: str) -> None:
    """Run one statement on the admin database, on a private thread and event loop, so that
    this works from sync and async tests alike."""
    import asyncpg

    async def run() -> None:
        dsn = admin.render_as_string(hide_password=False)
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except asyncpg.PostgresError as exc:  # e.g. auth failure: unusable, like unreachable
            raise OSError(str(exc)) from exc
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = Database.from_url(db_url)
    await db.migrate()
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("SEKISHO_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        import redis
    except ImportError:
        require_service("Redis", False, "the redis package is not installed")
        raise
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        require_service("Redis", False, f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return url


@pytest.fixture
def fast_passwords() -> Iterator[Passwords]:
    passwords = Passwords(profile=FAST_ARGON2, workers=2, queue=64)
    try:
        yield passwords
    finally:
        passwords.close()
