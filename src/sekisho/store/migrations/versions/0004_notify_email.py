"""A second notification address per user (AU-06: at least two per account).

``users.email`` stays the first; ``users.notify_email`` (NULL: none) is the second. Security
notices go to both (audit.notifier).

Revision ID: 0004
Revises: 0003
Create Date: 2025-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("notify_email", sa.String(320), nullable=True))


def downgrade() -> None:
    # In place (SQLite >= 3.35 drops columns itself): a batch copy of ``users`` would drop
    # the table, and with foreign keys on, that cascades to every row that refers to it.
    op.drop_column("users", "notify_email")
