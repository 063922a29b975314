"""Redis session store, shared by replicas.

Each session is a hash ``{prefix}s:{key}`` with the record (JSON) and ``last_seen`` apart, so
a touch rewrites one field. ``{prefix}u:{user_id}`` indexes a user's sessions. Deletions are
published on ``{prefix}invalidate`` so every replica drops its cached copy within one pub/sub
hop; when the subscription breaks, replicas drop their whole cache ("*").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from sekisho.auth.sessions import Invalidation, Session
from sekisho.errors import StateError

log = logging.getLogger(__name__)

_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RedisSessionStore:
    def __init__(self, url: str, *, prefix: str = "sekisho:") -> None:
        self._redis: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self._channel = f"{prefix}invalidate"
        self._callbacks: list[Invalidation] = []
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Atomic: a touch must never resurrect a session another replica just deleted.
        self._touch = self._redis.register_script(_TOUCH)

    def _skey(self, key: str) -> str:
        return f"{self._prefix}s:{key}"

    def _ukey(self, user_id: int) -> str:
        return f"{self._prefix}u:{user_id}"

    async def put(self, session: Session, *, ttl: int) -> None:
        record = session.to_dict()
        last_seen = record.pop("last_seen")
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._skey(session.key), mapping={
                    "record": json.dumps(record), "last_seen": repr(last_seen)})
                pipe.expire(self._skey(session.key), ttl)
                pipe.sadd(self._ukey(session.user_id), session.key)
                pipe.expire(self._ukey(session.user_id), max(ttl, 86400))
                await pipe.execute()
        except RedisError as exc:
            raise StateError("session store unavailable") from exc

    async def get(self, key: str) -> Session | None:
        try:
            fields = await self._redis.hgetall(self._skey(key))
        except RedisError as exc:
            raise StateError("session store unavailable") from exc
        if not fields or "record" not in fields:
            return None
        record = json.loads(fields["record"])
        record["last_seen"] = float(fields.get("last_seen", record["created_at"]))
        return Session.from_dict(record)

    async def touch(self, key: str, last_seen: float, *, ttl: int) -> None:
        try:
            await self._touch(keys=[self._skey(key)], args=[repr(last_seen), ttl])
        except RedisError as exc:
            raise StateError("session store unavailable") from exc

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(self._skey(key))
            await self._redis.publish(self._channel, key)
        except RedisError as exc:
            raise StateError("session store unavailable") from exc

    async def delete_user(self, user_id: int) -> int:
        try:
            keys = {str(k) for k in await self._redis.smembers(self._ukey(user_id))}
            # The index may hold keys of sessions that already ended; count the live ones.
            ended = int(await self._redis.delete(*[self._skey(k) for k in keys])) if keys else 0
            await self._redis.delete(self._ukey(user_id))
            for key in keys:
                await self._redis.publish(self._channel, key)
        except RedisError as exc:
            raise StateError("session store unavailable") from exc
        return ended

    async def list_user(self, user_id: int) -> list[Session]:
        try:
            keys = {str(k) for k in await self._redis.smembers(self._ukey(user_id))}
        except RedisError as exc:
            raise StateError("session store unavailable") from exc
        found = [await self.get(k) for k in sorted(keys)]
        stale = [k for k, s in zip(sorted(keys), found, strict=True) if s is None]
        if stale:
            await self._redis.srem(self._ukey(user_id), *stale)
        return [s for s in found if s is not None]

    def on_invalidate(self, callback: Invalidation) -> None:
        self._callbacks.append(callback)

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="sekisho-session-invalidate")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        self._notify(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                log.warning("session invalidation channel lost; dropping cached sessions")
            # Whatever was published while we were away is unknown: forget everything.
            self._notify("*")
            await asyncio.sleep(0.5)

    def _notify(self, key: str) -> None:
        for callback in self._callbacks:
            callback(key)
