"""Durable records in SQL: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) by URL."""

from sekisho.store.audit_log import AuditLog, StoredAuditEvent
from sekisho.store.db import Database, create_engine, migrate
from sekisho.store.lockouts import (
    IntervalCount,
    LockoutNotActive,
    LockoutRecord,
    LockoutRepository,
    LockoutRequestError,
    LockoutUpdate,
    Sighting,
    Tally,
    UnlockReasonRequired,
)
from sekisho.store.users import User, UserRepository

__all__ = [
    "AuditLog",
    "Database",
    "IntervalCount",
    "LockoutNotActive",
    "LockoutRecord",
    "LockoutRepository",
    "LockoutRequestError",
    "LockoutUpdate",
    "Sighting",
    "StoredAuditEvent",
    "Tally",
    "UnlockReasonRequired",
    "User",
    "UserRepository",
    "create_engine",
    "migrate",
]
