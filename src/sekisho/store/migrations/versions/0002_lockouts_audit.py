"""Lockout events, hourly login failure counts, and the hash-chained audit trail.

``audit_events`` is append-only at the database level too: triggers refuse UPDATE and DELETE
on both backends, so the gateway's own connection cannot rewrite or drop its history (AU-04).
Whoever owns the schema can still drop the triggers; the hash chain makes that visible.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_APPEND_ONLY_SQLITE = (
    "CREATE TRIGGER audit_events_no_{verb} BEFORE {VERB} ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
)
_APPEND_ONLY_FUNCTION_PG = """
CREATE FUNCTION sekisho_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END $$
"""
_APPEND_ONLY_TRIGGER_PG = (
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
    "ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION sekisho_audit_append_only()"
)


def upgrade() -> None:
    _lockout_events()
    op.create_table(
        "login_failures_hourly",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("refused", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("hour", name="pk_login_failures_hourly"),
    )
    _audit_events()


def _lockout_events() -> None:
    op.create_table(
        "lockout_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_key", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("factor", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("failure_count", sa.Integer, nullable=False),
        sa.Column("distinct_ips", sa.Integer, nullable=False),
        sa.Column("distinct_subnets", sa.Integer, nullable=False),
        sa.Column("top_ips", sa.JSON, nullable=False),
        sa.Column("top_subnets", sa.JSON, nullable=False),
        sa.Column("user_agents", sa.JSON, nullable=False),
        sa.Column("seen_ips", sa.JSON, nullable=False),
        sa.Column("seen_subnets", sa.JSON, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("unlocked_by", sa.String(128), nullable=True),
        sa.Column("unlocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unlock_reason", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_lockout_events"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_lockout_events_user_id_users",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "reason IN ('maxretries', 'suspicious', 'admin')", name="ck_lockout_events_reason"
        ),
        sa.CheckConstraint(
            "state IN ('active', 'expired', 'unlocked')", name="ck_lockout_events_state"
        ),
    )
    op.create_index("ix_lockout_events_account_key", "lockout_events", ["account_key"])
    op.create_index("ix_lockout_events_user_id", "lockout_events", ["user_id"])
    op.create_index("ix_lockout_events_last_seen", "lockout_events", ["last_seen"])
    active = sa.text("state = 'active'")
    op.create_index(
        "uq_lockout_events_active", "lockout_events", ["account_key", "factor"], unique=True,
        sqlite_where=active, postgresql_where=active,
    )


def _audit_events() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(128), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_events_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_audit_events_hash"),
    )
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"])
    op.create_index("ix_audit_events_event", "audit_events", ["event"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND_ONLY_FUNCTION_PG)
        op.execute(_APPEND_ONLY_TRIGGER_PG)
    else:
        for verb in ("update", "delete"):
            op.execute(_APPEND_ONLY_SQLITE.format(verb=verb, VERB=verb.upper()))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS sekisho_audit_append_only()")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_events_no_{verb}")
    op.drop_index("ix_audit_events_event", table_name="audit_events")
    op.drop_index("ix_audit_events_ts", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("login_failures_hourly")
    op.drop_index("uq_lockout_events_active", table_name="lockout_events")
    op.drop_index("ix_lockout_events_last_seen", table_name="lockout_events")
    op.drop_index("ix_lockout_events_user_id", table_name="lockout_events")
    op.drop_index("ix_lockout_events_account_key", table_name="lockout_events")
    op.drop_table("lockout_events")
