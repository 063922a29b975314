"""Fixtures for the MFA tests.

- ``env``: an :class:`MfaEnv` over every combination of database (SQLite, PostgreSQL) and
  state (memory, Redis): for the behaviours that depend on the store (atomicity, replay,
  single use, challenges).
- ``state_env``: SQLite with memory and Redis state: for behaviours of the state alone
  (challenges), where a PostgreSQL run would only add minutes.
- ``quick_env``: SQLite and memory only, for the pure logic around them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.auth.mfa.helpers import FakeClock, MfaEnv

from sekisho.store import Database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def state_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def env(database: Database, state_url: str, clock: FakeClock) -> AsyncIterator[MfaEnv]:
    environment = MfaEnv(db=database, state_url=state_url, clock=clock)
    try:
        yield environment
    finally:
        await environment.close()


@pytest.fixture
async def state_env(tmp_path: Path, state_url: str, clock: FakeClock) -> AsyncIterator[MfaEnv]:
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/mfa.sqlite3")
    await db.migrate()
    environment = MfaEnv(db=db, state_url=state_url, clock=clock)
    try:
        yield environment
    finally:
        await environment.close()
        await db.close()


@pytest.fixture
async def quick_env(tmp_path: Path, clock: FakeClock) -> AsyncIterator[MfaEnv]:
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/mfa.sqlite3")
    await db.migrate()
    environment = MfaEnv(db=db, state_url="memory://", clock=clock)
    try:
        yield environment
    finally:
        await environment.close()
        await db.close()
