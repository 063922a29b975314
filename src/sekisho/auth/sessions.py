"""Server-side sessions: the record, the store protocol, and the in-memory store.

The browser holds only an opaque 128-bit token (SE-01). Stores key sessions by the SHA-256 of
the token, so a dump of the state backend yields no usable cookie. Timeouts are enforced here,
on the server, never by cookie expiry (SE-04).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Protocol

TOKEN_BYTES = 16  # 128 bits (SE-01)

SessionState = Literal["active", "pending"]
Invalidation = Callable[[str], None]


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_key(token: str) -> str:
    """The store key for a token: its SHA-256. Also safe to log truncated."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    key: str
    user_id: int
    username: str
    groups: tuple[str, ...]
    email: str
    display_name: str
    created_at: float
    auth_at: float
    expires_at: float
    last_seen: float
    client_ip: str = ""
    user_agent: str = ""
    state: SessionState = "active"
    # How the user authenticated (RFC 8176 values: "pwd", "otp", "hwk", "swk"...).
    amr: tuple[str, ...] = ()
    # A session that may reach only one portal page until the user acts there, e.g.
    # "change_password" after a login with a breached password (PW-12). Never proxied.
    restriction: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = list(self.groups)
        data["amr"] = list(self.amr)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(**{
            **data, "groups": tuple(data["groups"]), "amr": tuple(data.get("amr", ())),
        })

    def touched(self, now: float) -> Session:
        return replace(self, last_seen=now)


class SessionStore(Protocol):
    """Where sessions live. Implementations: MemorySessionStore, RedisSessionStore."""

    async def put(self, session: Session, *, ttl: int) -> None: ...

    async def get(self, key: str) -> Session | None: ...

    async def touch(self, key: str, last_seen: float, *, ttl: int) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def delete_user(self, user_id: int) -> int: ...

    async def list_user(self, user_id: int) -> list[Session]: ...

    def on_invalidate(self, callback: Invalidation) -> None:
        """Call ``callback(key)`` when any replica deletes a session; "*" means all."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class MemorySessionStore:
    """One process, no persistence: the embedded default."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: dict[str, tuple[Session, float]] = {}
        self._callbacks: list[Invalidation] = []

    async def put(self, session: Session, *, ttl: int) -> None:
        self._sweep()
        self._items[session.key] = (session, self._clock() + ttl)

    async def get(self, key: str) -> Session | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._items[key]
            return None
        return item[0]

    async def touch(self, key: str, last_seen: float, *, ttl: int) -> None:
        item = self._items.get(key)
        if item is not None:
            self._items[key] = (item[0].touched(last_seen), self._clock() + ttl)

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)
        self._notify(key)

    async def delete_user(self, user_id: int) -> int:
        keys = [k for k, (s, _) in self._items.items() if s.user_id == user_id]
        for key in keys:
            await self.delete(key)
        return len(keys)

    async def list_user(self, user_id: int) -> list[Session]:
        now = self._clock()
        return [s for s, exp in self._items.values() if s.user_id == user_id and exp > now]

    def on_invalidate(self, callback: Invalidation) -> None:
        self._callbacks.append(callback)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._items.clear()

    def _notify(self, key: str) -> None:
        for callback in self._callbacks:
            callback(key)

    def _sweep(self) -> None:
        # Amortised: only when the table has grown, so put() stays O(1) on average.
        if len(self._items) % 1024 == 0 and self._items:
            now = self._clock()
            for key in [k for k, (_, exp) in self._items.items() if exp <= now]:
                del self._items[key]
