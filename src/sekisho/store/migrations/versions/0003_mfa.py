"""Second factors: sealed TOTP seeds, WebAuthn credentials and user handles, recovery codes.

Every row belongs to a user and goes with it (ON DELETE CASCADE).

Revision ID: 0003
Revises: 0002
Create Date: 2025-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "totp_secrets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_totp_secrets"),
        sa.UniqueConstraint("user_id", name="uq_totp_secrets_user_id"),
        _user_fk("totp_secrets"),
        sqlite_autoincrement=True,  # ids never reused: a new seed gets a new replay record
    )
    op.create_table(
        "webauthn_user_handles",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("handle", sa.LargeBinary(64), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_webauthn_user_handles"),
        sa.UniqueConstraint("handle", name="uq_webauthn_user_handles_handle"),
        _user_fk("webauthn_user_handles"),
    )
    op.create_table(
        "webauthn_credentials",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("credential_id", sa.LargeBinary(1023), nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", sa.BigInteger, nullable=False),
        sa.Column("transports", sa.JSON, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("backup_eligible", sa.Boolean, nullable=False),
        sa.Column("backed_up", sa.Boolean, nullable=False),
        sa.Column("aaguid", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webauthn_credentials"),
        sa.UniqueConstraint("credential_id", name="uq_webauthn_credentials_credential_id"),
        _user_fk("webauthn_credentials"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webauthn_credentials_user_id", "webauthn_credentials", ["user_id"])
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_codes"),
        sa.UniqueConstraint("user_id", "code_hash", name="uq_recovery_codes_user_id"),
        _user_fk("recovery_codes"),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_recovery_codes_user_id", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index("ix_webauthn_credentials_user_id", table_name="webauthn_credentials")
    op.drop_table("webauthn_credentials")
    op.drop_table("webauthn_user_handles")
    op.drop_table("totp_secrets")
