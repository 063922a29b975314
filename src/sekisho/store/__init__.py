"""Durable records in SQL: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) by URL."""

from sekisho.store.db import Database, create_engine, migrate
from sekisho.store.users import User, UserRepository

__all__ = ["Database", "User", "UserRepository", "create_engine", "migrate"]
