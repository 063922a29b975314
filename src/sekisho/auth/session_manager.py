"""Session lifecycle over a store, with a process-local cache for the proxied fast path.

A cached session is served with no network round trip. Activity is written back to the store
at most once per ``touch_interval``; before declaring a cached session idle, the store is asked
again, since another replica may have seen the user more recently. Deletions anywhere reach the
cache through the store's invalidation callbacks (Redis pub/sub with the Redis store).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sekisho.auth.sessions import Session, SessionState, SessionStore, new_token, token_key
from sekisho.config import SessionSettings


class _Entry:
    __slots__ = ("last_seen", "session", "written")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.last_seen = session.last_seen
        self.written = session.last_seen


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a new session is for; the user record's fields the session copies."""

    user_id: int
    username: str
    groups: tuple[str, ...]
    email: str
    display_name: str


# Whether the session's user may still be signed in (exists, not disabled).
UserCheck = Callable[[Session], Awaitable[bool]]


class SessionManager:
    """``user_check`` runs with each write-back (once per touch interval per session), so an
    account disabled in the database loses its sessions within that interval even where no
    revocation message can reach this process (memory state, a lost subscription)."""

    def __init__(
        self,
        store: SessionStore,
        settings: SessionSettings,
        *,
        clock: Callable[[], float] = time.time,
        cache_size: int = 100_000,
        user_check: UserCheck | None = None,
    ) -> None:
        self._store = store
        self._user_check = user_check
        self._settings = settings
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._cache_size = cache_size
        store.on_invalidate(self._invalidate)

    async def start(self) -> None:
        await self._store.start()

    async def close(self) -> None:
        await self._store.close()

    async def create(
        self,
        principal: Principal,
        *,
        client_ip: str,
        user_agent: str,
        state: SessionState = "active",
        amr: tuple[str, ...] = ("pwd",),
        restriction: str = "",
    ) -> tuple[str, Session]:
        """A fresh session with a new token (SE-03: every login gets a new ID)."""
        now = self._clock()
        lifetime = self._lifetime(state)
        token = new_token()
        session = Session(
            key=token_key(token),
            user_id=principal.user_id,
            username=principal.username,
            groups=principal.groups,
            email=principal.email,
            display_name=principal.display_name,
            created_at=now,
            auth_at=now,
            expires_at=now + lifetime,
            last_seen=now,
            client_ip=client_ip,
            user_agent=user_agent[:256],
            state=state,
            amr=amr,
            restriction=restriction,
        )
        await self._store.put(session, ttl=self._ttl(session, now))
        return token, session

    async def resolve(self, token: str) -> Session | None:
        """The live session for a cookie value, or None. The proxied hot path."""
        key = token_key(token)
        now = self._clock()
        entry = self._cache.get(key)
        if entry is None:
            stored = await self._store.get(key)
            if stored is None:
                return None
            entry = self._remember(stored)
        if now >= entry.session.expires_at:
            await self._drop(key)
            return None
        if now - entry.last_seen > self._idle(entry.session):
            entry = await self._recheck_idle(key, now)
            if entry is None:
                return None
        entry.last_seen = now
        if now - entry.written >= self._settings.touch_interval:
            entry.written = now
            if self._user_check is not None and not await self._user_check(entry.session):
                await self._drop(key)
                return None
            await self._store.touch(key, now, ttl=self._ttl(entry.session, now))
        return entry.session

    async def end(self, token: str) -> None:
        await self._drop(token_key(token))

    async def end_key(self, key: str) -> None:
        await self._drop(key)

    async def end_user(self, user_id: int) -> int:
        # This process forgets at once; other replicas hear it through the store.
        for key in [k for k, e in self._cache.items() if e.session.user_id == user_id]:
            del self._cache[key]
        return await self._store.delete_user(user_id)

    async def list_user(self, user_id: int) -> list[Session]:
        return await self._store.list_user(user_id)

    def _lifetime(self, state: SessionState) -> int:
        if state == "pending":
            return self._settings.pending_timeout
        return self._settings.absolute_timeout

    def _idle(self, session: Session) -> int:
        if session.state == "pending":
            return self._settings.pending_timeout
        return self._settings.idle_timeout

    def _ttl(self, session: Session, now: float) -> int:
        remaining = session.expires_at - now
        return max(1, int(min(remaining, self._idle(session) + self._settings.touch_interval)) + 1)

    async def _recheck_idle(self, key: str, now: float) -> _Entry | None:
        stored = await self._store.get(key)
        if stored is None or now - stored.last_seen > self._idle(stored):
            await self._drop(key)
            return None
        return self._remember(stored)

    def _remember(self, session: Session) -> _Entry:
        if len(self._cache) >= self._cache_size:
            # FIFO eviction: dicts keep insertion order; an evicted entry is just re-read.
            del self._cache[next(iter(self._cache))]
        entry = _Entry(session)
        self._cache[session.key] = entry
        return entry

    async def _drop(self, key: str) -> None:
        self._cache.pop(key, None)
        await self._store.delete(key)

    def _invalidate(self, key: str) -> None:
        if key == "*":
            self._cache.clear()
        else:
            self._cache.pop(key, None)
