"""The proof of work of attack mode: ALTCHA v2 challenges, issued and verified with the
``altcha`` package.

A challenge is ``altcha.create_challenge("SHA-256", 1, counter=n, ...)`` with ``n`` drawn
uniformly from ``[0, max_number]`` ("deterministic" mode): the browser must find ``n`` such
that SHA-256(salt | nonce | uint32be(n)) starts with the signed 16-byte key prefix, about
``max_number / 2`` hashes on average and never more than ``max_number``. The parameters are
HMAC-signed with a key derived from the session key material for this purpose alone, and
carry their expiry (``expiresAt``).

:meth:`Challenges.verify` is a flat list of checks, cheapest first, and computes one SHA-256
and one HMAC at most — never a password hash. A solution is accepted once: its challenge's
signature is spent in the shared store (SET NX) until the challenge expires.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal

import altcha

from sekisho.config.attack import ChallengeSettings
from sekisho.ratelimit.attack_store import AttackStore
from sekisho.ratelimit.keys import derive_key

__all__ = ["Challenges", "Verdict"]

#: ``ok``; ``missing`` (no payload); ``invalid`` (malformed, forged, wrong answer);
#: ``expired``; ``replayed`` (a solution already used once).
Verdict = Literal["ok", "missing", "invalid", "expired", "replayed"]

MAX_PAYLOAD = 2048  # a genuine payload is about 600 characters of base64
_ALGORITHM = "SHA-256"
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class Challenges:
    def __init__(
        self, settings: ChallengeSettings, *, secret: bytes, store: AttackStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._key = derive_key(secret, "altcha-challenges")
        self._store = store
        self._clock = clock

    @property
    def max_number(self) -> int:
        return self._settings.max_number

    def issue(self) -> dict[str, Any]:
        """A fresh signed challenge, as the JSON object the page hands to the solver."""
        challenge = altcha.create_challenge(
            _ALGORITHM, 1, counter=secrets.randbelow(self._settings.max_number + 1),
            hmac_secret=self._key, expires_at=int(self._clock()) + self._settings.ttl,
        )
        data: dict[str, Any] = challenge.to_dict()
        return data

    async def verify(self, *, payload: str | None) -> Verdict:
        """Is ``payload`` (the form's ``altcha`` field) a fresh, genuine, unused solution?
        Spends it if so. Never raises on hostile input."""
        if not payload:
            return "missing"
        if len(payload) > MAX_PAYLOAD or not payload.isascii():
            return "invalid"
        parsed = _parse(payload)
        if parsed is None:
            return "invalid"
        now = self._clock()
        expires_at = parsed.challenge.parameters.expires_at
        if not isinstance(expires_at, int) or isinstance(expires_at, bool):
            return "invalid"
        if expires_at <= now:
            return "expired"
        if parsed.challenge.parameters.algorithm != _ALGORITHM:
            return "invalid"
        result = altcha.verify_solution(parsed, self._key)
        if not result.verified:
            return "expired" if result.expired else "invalid"
        signature = parsed.challenge.signature
        assert signature is not None  # verified: it is signed
        if not await self._store.use_once(signature, now=now, until=float(expires_at)):
            return "replayed"
        return "ok"


def _parse(payload: str) -> altcha.Payload | None:
    """The payload's challenge and solution, if they have the shape we issue."""
    try:
        data = json.loads(base64.b64decode(payload, validate=True))
        parsed = altcha.Payload.from_dict(data)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    params = parsed.challenge.parameters
    fields = (params.nonce, params.salt, params.key_prefix, parsed.solution.derived_key)
    if not all(isinstance(f, str) for f in fields) or not isinstance(params.cost, int):
        return None
    if not isinstance(parsed.challenge.signature, str):
        return None
    if not _SIGNATURE.fullmatch(parsed.challenge.signature):
        return None
    return parsed
