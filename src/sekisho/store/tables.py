"""Table definitions (SQLAlchemy Core). The migrations under ``migrations/`` create them.

The metadata here is the target for ``alembic revision --autogenerate``; the migration scripts
themselves are written out explicitly so that an old migration never changes when a table does.

Later tables (credentials, lockout events, audit) go in this module next to ``users``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
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
    # AU-06: a second address for security notices (NULL: none); ``email`` is the first.
    Column("notify_email", String(320), nullable=True),
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

# -- second factors (issue 4: TO-*, WA-*, RC-*; ST-07) -------------------------------------

CREDENTIAL_ID_LENGTH = 1023  # WA-05: longer IDs are refused
PASSKEY_NAME_LENGTH = 64

# One TOTP authenticator per user. ``sealed`` is the seed under AES-256-GCM (auth.sealing),
# bound to the user id: never base32, never readable without the data key (ST-07).
totp_secrets = Table(
    "totp_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           unique=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    # Ids are never reused (a replacement's replay record starts afresh; audit ids stay unique).
    sqlite_autoincrement=True,
)

# The WebAuthn user handle (user.id in the ceremonies): 32 random bytes, no personal data.
webauthn_user_handles = Table(
    "webauthn_user_handles",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("handle", LargeBinary(64), nullable=False, unique=True),
)

webauthn_credentials = Table(
    "webauthn_credentials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    # Unique across all users (WA-05).
    Column("credential_id", LargeBinary(CREDENTIAL_ID_LENGTH), nullable=False, unique=True),
    Column("public_key", LargeBinary, nullable=False),  # COSE_Key bytes
    Column("sign_count", BigInteger, nullable=False),  # unsigned 32-bit in the spec
    Column("transports", JSON, nullable=False),
    Column("name", String(PASSKEY_NAME_LENGTH), nullable=False),
    Column("backup_eligible", Boolean, nullable=False),
    Column("backed_up", Boolean, nullable=False),
    Column("aaguid", String(36), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    sqlite_autoincrement=True,
)

# Keyed hashes (HMAC-SHA-256, hex) of the recovery codes; ``used_at`` set once (RC-02).
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("code_hash", String(HASH_LENGTH), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    UniqueConstraint("user_id", "code_hash", name="uq_recovery_codes_user_id"),
)
