"""Device tokens: "this browser completed a login for this account".

After a successful login the HTTP layer sets a cookie holding :meth:`DeviceTokens.issue`'s
token; on the next login it passes the cookie to :meth:`DeviceTokens.verify` with the
account being tried, and gives the returned device id to the regulator, which then counts
the attempt in that device's own counters and budget (see regulator.py).

Token: ``base64url(version | device id (16 random bytes) | issued (8 bytes, seconds) | tag)``
with ``tag = HMAC-SHA-256(k, version | device id | account key | issued)``, ``k`` derived from
the session key material for this purpose alone. The account enters the tag as its HMAC key,
not as text, so the cookie names no one; a token for another account fails verification.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct

from sekisho.ratelimit.keys import RateLimitKeys, derive_key

__all__ = ["DeviceTokens"]

_VERSION = b"\x01"
_ID_BYTES = 16
_TAG_BYTES = 32
_RAW = 1 + _ID_BYTES + 8 + _TAG_BYTES
_TEXT = (_RAW * 4 + 2) // 3  # unpadded base64 length
_SKEW = 300  # seconds a token may seem to come from the future (replica clocks)


class DeviceTokens:
    __slots__ = ("_key", "_keys")

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, "device-tokens")
        self._keys = RateLimitKeys(secret)

    def issue(self, account: str, *, now: float) -> str:
        """A new device token for ``account`` (URL-safe text, fit for a cookie value)."""
        device = secrets.token_bytes(_ID_BYTES)
        body = _VERSION + device + struct.pack(">Q", int(now))
        tag = self._tag(body, account)
        return base64.urlsafe_b64encode(body + tag).rstrip(b"=").decode("ascii")

    def verify(
        self, token: str | None, *, account: str, now: float, max_age: int
    ) -> str | None:
        """The device id (32 hex) if ``token`` is a genuine, unexpired token for ``account``;
        otherwise None. Never raises on a hostile token."""
        raw = _decode(token)
        if raw is None or raw[:1] != _VERSION:
            return None
        body, tag = raw[: -_TAG_BYTES], raw[-_TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(body, account)):
            return None
        (issued,) = struct.unpack(">Q", body[1 + _ID_BYTES :])
        if issued > now + _SKEW or now - issued > max_age:
            return None
        return body[1 : 1 + _ID_BYTES].hex()

    def _tag(self, body: bytes, account: str) -> bytes:
        account_key = self._keys.account(account).encode("ascii")
        message = body[: 1 + _ID_BYTES] + account_key + body[1 + _ID_BYTES :]
        return hmac.new(self._key, message, hashlib.sha256).digest()


def _decode(token: str | None) -> bytes | None:
    # Length first: nothing hostile gets decoded, let alone hashed.
    if not isinstance(token, str) or len(token) != _TEXT or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _RAW else None

