"""Attack mode's store on Redis, shared by replicas (attack_store.py has the contract).

Keys (``{prefix}`` is ``sekisho:`` unless configured):

- ``{prefix}atk:o:<n>``: hash ``f``/``t`` (failures, attempts) of ratio counter ``n``;
- ``{prefix}atk:n:<source>``: sorted set of account keys scored by when they were last
  tried from the source, at most ``cap`` of them (the usernames detector);
- ``{prefix}atk:mode``: hash ``since``, ``until``, ``reason``, ``ended`` — the one key
  that says whether the gateway is in attack mode;
- ``{prefix}atk:flags``: sorted set of flagged sources scored by their end, and
  ``{prefix}atk:flagsince``: hash of when each was flagged;
- ``{prefix}atk:pow:<signature>``: a spent proof-of-work solution (SET NX, expiring).

Times are the callers' clocks, passed in; TTLs only collect garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from sekisho.errors import StateError
from sekisho.ratelimit.attack_store import (
    RATIO_BUCKETS,
    Activation,
    Episode,
    Flag,
    Tally,
    bucket_seconds,
    ttl,
)

__all__ = ["RedisAttackStore"]

# KEYS: RATIO_BUCKETS ratio counters (current first), then one sorted set per source.
# ARGV: failed (0/1), counter ttl, now, cutoff, name ttl, cap, account key, counters.
_TALLY = """
local b = tonumber(ARGV[8])
redis.call('HINCRBY', KEYS[1], 't', 1)
if ARGV[1] == '1' then redis.call('HINCRBY', KEYS[1], 'f', 1) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local f, t = 0, 0
for i = 1, b do
  local v = redis.call('HMGET', KEYS[i], 'f', 't')
  f = f + (tonumber(v[1]) or 0)
  t = t + (tonumber(v[2]) or 0)
end
local out = {f, t}
local cap = tonumber(ARGV[6])
for i = b + 1, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[3], ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[4])
  local n = redis.call('ZCARD', KEYS[i])
  if n > cap then
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, n - cap - 1)
    n = cap
  end
  redis.call('EXPIRE', KEYS[i], ARGV[5])
  out[#out + 1] = n
end
return out
"""

# KEYS[1] mode. ARGV: now, until, reason, ttl. Returns {started, since, until, reason,
# ended since, ended until, ended reason} (the ended fields empty unless there was one).
_ACTIVATE = """
local m = redis.call('HMGET', KEYS[1], 'since', 'until', 'reason', 'ended')
if m[1] and tonumber(m[2]) > tonumber(ARGV[1]) then
  local untl = m[2]
  if tonumber(ARGV[2]) > tonumber(untl) then
    redis.call('HSET', KEYS[1], 'until', ARGV[2])
    untl = ARGV[2]
  end
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {0, m[1], untl, m[3], '', '', ''}
end
local ended = {'', '', ''}
if m[1] and m[4] ~= '1' then ended = {m[1], m[2], m[3]} end
redis.call('HSET', KEYS[1], 'since', ARGV[1], 'until', ARGV[2], 'reason', ARGV[3], 'ended', '0')
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, ARGV[1], ARGV[2], ARGV[3], ended[1], ended[2], ended[3]}
"""

# KEYS[1] mode. ARGV: now. The episode if over and unannounced; marks it announced.
_CLAIM_END = """
local m = redis.call('HMGET', KEYS[1], 'since', 'until', 'reason', 'ended')
if not m[1] or m[4] == '1' or tonumber(m[2]) > tonumber(ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'ended', '1')
return {m[1], m[2], m[3]}
"""

# KEYS: flags, flagsince. ARGV: source, now, until, max. Returns 1 if newly flagged.
_FLAG = """
local old = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
local now, untl = tonumber(ARGV[2]), tonumber(ARGV[3])
local fresh = old <= now
if fresh then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
if untl > old then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 64)
for _, s in ipairs(gone) do
  redis.call('ZREM', KEYS[1], s)
  redis.call('HDEL', KEYS[2], s)
end
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if extra > 0 then
  local out = redis.call('ZPOPMIN', KEYS[1], extra)
  for i = 1, #out, 2 do redis.call('HDEL', KEYS[2], out[i]) end
end
return fresh and 1 or 0
"""


class RedisAttackStore:
    def __init__(self, url: str, *, prefix: str = "sekisho:") -> None:
        self._redis: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._p = f"{prefix}atk:"
        self._tally = self._redis.register_script(_TALLY)
        self._activate = self._redis.register_script(_ACTIVATE)
        self._claim_end = self._redis.register_script(_CLAIM_END)
        self._flag = self._redis.register_script(_FLAG)

    async def tally(
        self, *, now: float, failed: bool, window: int, sources: Sequence[str],
        account_key: str, name_window: int, cap: int,
    ) -> Tally:
        span = bucket_seconds(window)
        current = int(now // span)
        keys = [f"{self._p}o:{current - i}" for i in range(RATIO_BUCKETS)]
        keys += [f"{self._p}n:{source}" for source in sources]
        args = [int(failed), 2 * window, repr(float(now)), repr(float(now - name_window)),
                name_window, cap, account_key, RATIO_BUCKETS]
        out = await self._call(self._tally, keys, args)
        return Tally(int(out[0]), int(out[1]), tuple(int(n) for n in out[2:]))

    async def activate(self, *, now: float, until: float, reason: str) -> Activation:
        out = await self._call(self._activate, [self._mode], [
            repr(float(now)), repr(float(until)), reason, ttl(until - now + 86400)])
        ended = _episode(out[4:7]) if out[4] else None
        episode = _episode(out[1:4])
        assert episode is not None
        return Activation(bool(int(out[0])), episode, ended)

    async def episode(self) -> Episode | None:
        try:
            fields = await self._redis.hmget(self._mode, ["since", "until", "reason"])
        except RedisError as exc:
            raise StateError("attack-mode store unavailable") from exc
        return _episode(fields)

    async def claim_end(self, *, now: float) -> Episode | None:
        out = await self._call(self._claim_end, [self._mode], [repr(float(now))])
        return _episode(out) if out else None

    async def flag(self, source: str, *, now: float, until: float, max_flagged: int) -> bool:
        out = await self._call(self._flag, [f"{self._p}flags", f"{self._p}flagsince"], [
            source, repr(float(now)), repr(float(until)), max_flagged])
        return bool(int(out))

    async def flagged_until(self, sources: Sequence[str]) -> tuple[float, ...]:
        if not sources:
            return ()
        try:
            scores = await self._redis.zmscore(f"{self._p}flags", list(sources))
        except RedisError as exc:
            raise StateError("attack-mode store unavailable") from exc
        return tuple(float(s) if s is not None else 0.0 for s in scores)

    async def flags(self, *, now: float, limit: int) -> list[Flag]:
        try:
            raw: list[Any] = await self._redis.zrangebyscore(
                f"{self._p}flags", f"({now!r}", "+inf", start=0, num=limit, withscores=True)
            pairs = [(str(name), float(until)) for name, until in raw]
            names = [name for name, _ in pairs]
            since = await self._redis.hmget(f"{self._p}flagsince", names) if names else []
        except RedisError as exc:
            raise StateError("attack-mode store unavailable") from exc
        return [Flag(name, float(s) if s else 0.0, float(until))
                for name, (_, until), s in zip(names, pairs, since, strict=True)]

    async def use_once(self, key: str, *, now: float, until: float) -> bool:
        try:
            done = await self._redis.set(f"{self._p}pow:{key}", "1", nx=True, ex=ttl(until - now))
        except RedisError as exc:
            raise StateError("attack-mode store unavailable") from exc
        return bool(done)

    async def close(self) -> None:
        await self._redis.aclose()

    @property
    def _mode(self) -> str:
        return f"{self._p}mode"

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise StateError("attack-mode store unavailable") from exc


def _episode(fields: Sequence[Any]) -> Episode | None:
    since, until, reason = fields[0], fields[1], fields[2]
    if not since:
        return None
    return Episode(float(since), float(until), str(reason or ""))
