"""Table definitions (SQLAlchemy Core). The migrations under ``migrations/`` create them.

The metadata here is the target for ``alembic revision --autogenerate``; the migration scripts
themselves are written out explicitly so that an old migration never changes when a table does.

Later tables (credentials, lockout events, audit) go in this module next to ``users``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)

USERNAME_LENGTH = 64
GROUP_LENGTH = 64

# Constraint names are fixed so that later migrations can refer to them on both backends.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on PostgreSQL and on SQLite (which drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Canonical form (auth.usernames.canonical_username); the caller canonicalises.
    Column("username", String(USERNAME_LENGTH), nullable=False, unique=True),
    Column("display_name", String(256), nullable=False, default=""),
    Column("email", String(320), nullable=False, default=""),
    Column("disabled", Boolean, nullable=False, default=False),
    # NULL: no password set (passkey-only users, or not yet enrolled).
    Column("password_hash", String(512), nullable=True),
    Column("password_changed_at", UTCDateTime, nullable=True),
    # PW-06: set by an admin or by a breach hit at login; forces a change at the next login.
    Column("compromised", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

user_groups = Table(
    "user_groups",
    metadata,
    Column(
        "user_id",
        Integer,
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(GROUP_LENGTH), primary_key=True, index=True),
)
