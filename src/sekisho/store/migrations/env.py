"""Alembic environment. Migrations run in-process through ``sekisho.store.db.migrate``.

The caller passes an open connection (inside a transaction) in ``config.attributes``; there is
no alembic.ini and no URL here. Offline (SQL script) mode is not supported.
"""

from __future__ import annotations

from alembic import context

from sekisho.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run migrations with sekisho.store.db.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
