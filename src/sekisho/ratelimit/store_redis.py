"""Redis failure store, shared by replicas and kept across restarts (RL-08).

One hash per key, ``{prefix}f:{key}`` with fields ``c`` (count), ``l`` (last failure, a
float as text) and ``d`` (``1`` when disabled). Every change is one Lua script or one
MULTI, so concurrent failures from several replicas are each counted exactly once
(security invariant 6). Live records expire ``ttl`` seconds after their last failure;
disabled ones are made persistent and stay until an unlock deletes them.
"""

from __future__ import annotations

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from sekisho.errors import StateError
from sekisho.ratelimit.store import FailureRecord

__all__ = ["RedisFailureStore"]

# KEYS[1] record; ARGV: now, ttl, disable_at. Returns {count, last (text), disabled}.
_ADD_FAILURE = """
local count = redis.call('HINCRBY', KEYS[1], 'c', 1)
-- Keep the latest time even if a replica's clock lags: the text, to keep its precision.
local last = redis.call('HGET', KEYS[1], 'l') or '0'
if tonumber(ARGV[1]) > tonumber(last) then
  redis.call('HSET', KEYS[1], 'l', ARGV[1])
  last = ARGV[1]
end
local disabled = redis.call('HGET', KEYS[1], 'd') == '1'
if count >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'd', '1')
  disabled = true
end
if disabled then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {count, last, disabled and 1 or 0}
"""

# KEYS[1] record. Forget the failures unless the record is disabled.
_RESET_UNLESS_DISABLED = """
if redis.call('HGET', KEYS[1], 'd') == '1' then
  return 0
end
return redis.call('DEL', KEYS[1])
"""

# KEYS[1] record; ARGV: now. Disable and keep; stamp a time if there was no failure yet.
_DISABLE = """
redis.call('HSET', KEYS[1], 'd', '1')
redis.call('HSETNX', KEYS[1], 'l', ARGV[1])
redis.call('PERSIST', KEYS[1])
return 1
"""


class RedisFailureStore:
    def __init__(self, url: str, *, prefix: str = "sekisho:") -> None:
        self._redis: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._prefix = f"{prefix}f:"
        self._add = self._redis.register_script(_ADD_FAILURE)
        self._reset = self._redis.register_script(_RESET_UNLESS_DISABLED)
        self._disable = self._redis.register_script(_DISABLE)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> FailureRecord:
        try:
            fields = await self._redis.hgetall(self._key(key))
        except RedisError as exc:
            raise StateError("rate-limit store unavailable") from exc
        if not fields:
            return FailureRecord()
        return FailureRecord(
            count=int(fields.get("c", 0)),
            last_failure=float(fields.get("l", 0.0)),
            disabled=fields.get("d") == "1",
        )

    async def add_failure(
        self, key: str, now: float, *, ttl: int, disable_at: int
    ) -> FailureRecord:
        try:
            count, last, disabled = await self._add(
                keys=[self._key(key)], args=[repr(float(now)), int(ttl), int(disable_at)])
        except RedisError as exc:
            raise StateError("rate-limit store unavailable") from exc
        return FailureRecord(count=int(count), last_failure=float(last), disabled=bool(disabled))

    async def disable(self, key: str, now: float) -> None:
        try:
            await self._disable(keys=[self._key(key)], args=[repr(float(now))])
        except RedisError as exc:
            raise StateError("rate-limit store unavailable") from exc

    async def reset(self, key: str, *, force: bool = False) -> None:
        try:
            if force:
                await self._redis.delete(self._key(key))
            else:
                await self._reset(keys=[self._key(key)])
        except RedisError as exc:
            raise StateError("rate-limit store unavailable") from exc

    async def close(self) -> None:
        await self._redis.aclose()
