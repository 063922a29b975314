"""Accounts caught with a breached password, from the audit trail (PW-08a, PW-12).

One query for ``sekisho breach report`` and the admin page: every ``authn_password_breached``
event (``:login`` when a login's password was found, ``:set`` when a new one was refused),
joined with the user record to tell whether the password has been changed since.

Events come from the chained SQL trail, so the report covers every replica and survives
restarts; an event that names a user since deleted is still listed (``username`` empty).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sekisho.audit.log import audit_log
from sekisho.store.db import Database
from sekisho.store.users import User, UserRepository

__all__ = ["BREACH_EVENT", "REPORT_FIELDS", "BreachCatch", "breach_report"]

BREACH_EVENT = "authn_password_breached"
REPORT_FIELDS = ("when", "username", "user_id", "where", "source", "count",
                 "changed_since", "password_changed_at")


@dataclass(frozen=True, slots=True)
class BreachCatch:
    seq: int
    when: datetime
    user_id: int | None
    username: str
    where: str  # "login" or "set"
    source: str  # "offline", "online", "common"
    count: int | None
    password_changed_at: datetime | None

    @property
    def changed_since(self) -> bool:
        """Whether the account's password was changed after this catch."""
        return self.password_changed_at is not None and self.password_changed_at > self.when

    def row(self) -> dict[str, Any]:
        """The CSV/JSON row, fields as in REPORT_FIELDS."""
        changed = self.password_changed_at
        return {
            "when": self.when.isoformat(), "username": self.username,
            "user_id": self.user_id, "where": self.where, "source": self.source,
            "count": self.count, "changed_since": self.changed_since,
            "password_changed_at": None if changed is None else changed.isoformat(),
        }


def _user_id(data: Mapping[str, Any]) -> int | None:
    account = data.get("account")
    return int(account) if isinstance(account, str) and account.isdigit() else None


async def breach_report(
    db: Database, *, since: datetime | None = None, until: datetime | None = None,
    limit: int = 1000, pending_only: bool = False,
) -> list[BreachCatch]:
    """The catches, newest first. ``pending_only``: only accounts that have not changed
    their password since."""
    events = await audit_log(db).list(event=BREACH_EVENT, since=since, until=until,
                                      limit=limit)
    users = UserRepository(db)
    known: dict[int, User | None] = {}
    caught: list[BreachCatch] = []
    for record in events:
        data = record.data()
        details: Mapping[str, Any] = data.get("details") or {}
        user_id = _user_id(data)
        if user_id is not None and user_id not in known:
            known[user_id] = await users.get(user_id)
        user = known.get(user_id) if user_id is not None else None
        count = details.get("count")
        catch = BreachCatch(
            seq=record.seq, when=record.ts, user_id=user_id,
            username=user.username if user else str(details.get("username", "")),
            where=record.event.partition(":")[2] or "unknown",
            source=str(details.get("source", "")),
            count=count if isinstance(count, int) else None,
            password_changed_at=user.password_changed_at if user else None,
        )
        if not (pending_only and catch.changed_since):
            caught.append(catch)
    return caught
