"""The whole gateway on the embedded backends and on the replica backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.stack import PASSWORD, Stack, running_stack


@pytest.fixture(params=["memory+sqlite", "redis+postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A running gateway with user ``alice`` (groups: staff), over memory + SQLite and over
    Redis + PostgreSQL. Sessions write back every second so revocation tests stay short."""
    if request.param == "memory+sqlite":
        db_url, state_url = f"sqlite:///{tmp_path / 'gw.sqlite3'}", "memory://"
    else:
        db_url = request.getfixturevalue("pg_url")
        state_url = request.getfixturevalue("redis_url")
    with running_stack(db_url=db_url, state_url=state_url,
                       session={"touch_interval": 1}) as running:
        running.add_user("alice", PASSWORD, groups=["staff"], email="alice@example.com",
                         display_name="Alice Liddell")
        yield running
