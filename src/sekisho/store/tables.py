"""Table definitions (SQLAlchemy Core). The migrations under ``migrations/`` create them.

The metadata here is the target for ``alembic revision --autogenerate``; the migration scripts
themselves are written out explicitly so that an old migration never changes when a table does.

Later tables (credentials, lockout events, audit) go in this module next to ``users``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
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

# -- lockout events (AD-01, AD-02) ----------------------------------------------------------

LOCKOUT_REASONS = ("maxretries", "suspicious", "admin")
LOCKOUT_STATES = ("active", "expired", "unlocked")
ACCOUNT_KEY_LENGTH = 64
FACTOR_LENGTH = 32
ACTOR_LENGTH = 128
UNLOCK_REASON_LENGTH = 1000

lockout_events = Table(
    "lockout_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The regulator's HMAC of the canonical name (ratelimit.keys): present for every lock,
    # the only trace of an unknown name an attacker tried.
    Column("account_key", String(ACCOUNT_KEY_LENGTH), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True,
           index=True),
    Column("username", String(USERNAME_LENGTH), nullable=True),
    Column("factor", String(FACTOR_LENGTH), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("failure_count", Integer, nullable=False),
    Column("distinct_ips", Integer, nullable=False),
    Column("distinct_subnets", Integer, nullable=False),
    # [{"value": ..., "count": ...}], at most 20 each, most failures first.
    Column("top_ips", JSON, nullable=False),
    Column("top_subnets", JSON, nullable=False),
    Column("user_agents", JSON, nullable=False),
    # Fingerprints of every address / subnet seen (bounded): exact distinct counts and the
    # address filter. Internal; never exported.
    Column("seen_ips", JSON, nullable=False),
    Column("seen_subnets", JSON, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False, index=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("state", String(16), nullable=False),
    Column("unlocked_by", String(ACTOR_LENGTH), nullable=True),
    Column("unlocked_at", UTCDateTime, nullable=True),
    Column("unlock_reason", String(UNLOCK_REASON_LENGTH), nullable=True),
    CheckConstraint("reason IN ('maxretries', 'suspicious', 'admin')", name="reason"),
    CheckConstraint("state IN ('active', 'expired', 'unlocked')", name="state"),
    # One active record per account and factor, whichever replica opens it.
    Index(
        "uq_lockout_events_active", "account_key", "factor", unique=True,
        sqlite_where=text("state = 'active'"), postgresql_where=text("state = 'active'"),
    ),
)

# Failed and refused login attempts per hour, summed by every replica (the admin chart).
login_failures_hourly = Table(
    "login_failures_hourly",
    metadata,
    Column("hour", UTCDateTime, primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("refused", Integer, nullable=False),
)

# -- audit trail (AU-01, AU-04, AD-06) ------------------------------------------------------

AUDIT_EVENT_LENGTH = 128
HASH_LENGTH = 64

audit_events = Table(
    "audit_events",
    metadata,
    # The chain's sequence number, assigned under the append lock (no autoincrement gaps).
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("ts", UTCDateTime, nullable=False, index=True),
    Column("event", String(AUDIT_EVENT_LENGTH), nullable=False, index=True),
    # The canonical JSON text that was hashed, byte for byte.
    Column("body", Text, nullable=False),
    Column("prev_hash", String(HASH_LENGTH), nullable=False, unique=True),
    Column("hash", String(HASH_LENGTH), nullable=False, unique=True),
)
