"""WebAuthn challenges kept server-side: single use, bound to a session, short-lived (WA-01).

A challenge record is stored under the ceremony's *binding* (the store key of the session it
belongs to) and its kind (``register`` / ``authenticate``). ``take`` removes and returns it in
one atomic step (``GETDEL`` on Redis), so it is consumed by the first verification attempt,
whether that attempt succeeds or not, and two replicas can never both use it. A new options
request under the same binding replaces the old challenge.

Expiry is enforced twice: the store drops records after ``ttl`` (Redis ``EX``), and the record
carries its own deadline from the gateway clock, which the verifier checks (so a controllable
clock in tests, and a Redis that keeps a key a moment too long, change nothing).

Implementations: :class:`MemoryChallengeStore` and :class:`RedisChallengeStore`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from sekisho.errors import StateError

__all__ = [
    "Challenge", "ChallengeStore", "MemoryChallengeStore", "RedisChallengeStore",
    "challenge_store",
]

Kind = Literal["register", "authenticate"]


@dataclass(frozen=True, slots=True)
class Challenge:
    kind: Kind
    value: bytes
    expires_at: float
    user_id: int | None
    passwordless: bool = False

    def to_json(self) -> str:
        return json.dumps({
            "k": self.kind, "c": base64.urlsafe_b64encode(self.value).decode(),
            "e": self.expires_at, "u": self.user_id, "p": self.passwordless,
        })

    @classmethod
    def from_json(cls, text: str) -> Challenge:
        data = json.loads(text)
        return cls(kind=data["k"], value=base64.urlsafe_b64decode(data["c"]),
                   expires_at=float(data["e"]), user_id=data["u"], passwordless=bool(data["p"]))


class ChallengeStore(Protocol):
    async def put(self, binding: str, challenge: Challenge, *, ttl: int) -> None: ...

    async def take(self, binding: str, kind: Kind) -> Challenge | None:
        """Remove and return the challenge (None if there is none or it expired)."""
        ...

    async def close(self) -> None: ...


class MemoryChallengeStore:
    MAX_ITEMS = 100_000

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: dict[tuple[str, str], tuple[str, float]] = {}

    async def put(self, binding: str, challenge: Challenge, *, ttl: int) -> None:
        now = self._clock()
        if len(self._items) >= self.MAX_ITEMS:
            self._items = {k: v for k, v in self._items.items() if v[1] > now}
            if len(self._items) >= self.MAX_ITEMS:  # still full: drop the oldest entry
                self._items.pop(next(iter(self._items)))
        self._items[(binding, challenge.kind)] = (challenge.to_json(), now + ttl)

    async def take(self, binding: str, kind: Kind) -> Challenge | None:
        item = self._items.pop((binding, kind), None)
        if item is None or item[1] <= self._clock():
            return None
        return Challenge.from_json(item[0])

    async def close(self) -> None:
        self._items.clear()


class RedisChallengeStore:
    def __init__(self, url: str, *, prefix: str = "sekisho:") -> None:
        from redis import asyncio as aioredis

        self._redis: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._prefix = f"{prefix}mfa:challenge:"

    def _key(self, binding: str, kind: str) -> str:
        return f"{self._prefix}{kind}:{binding}"

    async def put(self, binding: str, challenge: Challenge, *, ttl: int) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.set(self._key(binding, challenge.kind), challenge.to_json(),
                                  ex=ttl)
        except RedisError as exc:
            raise StateError("challenge store unavailable") from exc

    async def take(self, binding: str, kind: Kind) -> Challenge | None:
        from redis.exceptions import RedisError

        try:
            text = await self._redis.getdel(self._key(binding, kind))
        except RedisError as exc:
            raise StateError("challenge store unavailable") from exc
        return None if text is None else Challenge.from_json(str(text))

    async def close(self) -> None:
        await self._redis.aclose()


def challenge_store(
    url: str, *, clock: Callable[[], float], prefix: str = "sekisho:"
) -> ChallengeStore:
    """The store for ``state.url``: memory:// or a Redis URL."""
    if url.startswith("memory://"):
        return MemoryChallengeStore(clock=clock)
    return RedisChallengeStore(url, prefix=prefix)
