"""Device tokens: "this browser completed a login for this account".

After a successful login the HTTP layer sets a cookie holding :meth:`DeviceTokens.issue`'s
token; on the next login it passes the cookie to :meth:`DeviceTokens.verify` with the
account being tried, and gives the returned device id to the regulator, which then counts
the attempt in that device's own counters and budget (see regulator.py).

Token: ``base64url(version | device id (16 random bytes) | issued (8 bytes, seconds) | bind | tag)``

- ``bind = HMAC-SHA-256(kb, device id | account key)[:16]``: the account, entered as its HMAC
  key and not as text, so the cookie names no one; a token for another account fails
  :meth:`verify`.
- ``tag = HMAC-SHA-256(kt, version | device id | issued | bind)[:16]``: the token as a whole,
  without the account. :meth:`genuine` checks only this, before the login form (and so the
  account) is read: the admission gate (gateway/admission.py) lets genuine tokens past the
  cheap refusals meant for the flood. A genuine token for some other account still meets the
  full verify, and is then no token at all.

``kb`` and ``kt`` are derived from the session key material for these purposes alone.
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

_VERSION = b"\x02"
_ID_BYTES = 16
_MAC_BYTES = 16
_HEAD = 1 + _ID_BYTES + 8  # version | id | issued
_RAW = _HEAD + 2 * _MAC_BYTES
_TEXT = (_RAW * 4 + 2) // 3  # unpadded base64 length
_SKEW = 300  # seconds a token may seem to come from the future (replica clocks)


class DeviceTokens:
    __slots__ = ("_bind_key", "_keys", "_tag_key")

    def __init__(self, secret: bytes) -> None:
        self._bind_key = derive_key(secret, "device-tokens/account")
        self._tag_key = derive_key(secret, "device-tokens/token")
        self._keys = RateLimitKeys(secret)

    def issue(self, account: str, *, now: float) -> str:
        """A new device token for ``account`` (URL-safe text, fit for a cookie value)."""
        device = secrets.token_bytes(_ID_BYTES)
        signed = _VERSION + device + struct.pack(">Q", int(now)) + self._bind(device, account)
        raw = signed + self._tag(signed)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def verify(
        self, token: str | None, *, account: str, now: float, max_age: int
    ) -> str | None:
        """The device id (32 hex) if ``token`` is a genuine, unexpired token for ``account``;
        otherwise None. Never raises on a hostile token."""
        raw = self._genuine(token, now=now, max_age=max_age)
        if raw is None:
            return None
        device = raw[1 : 1 + _ID_BYTES]
        if not hmac.compare_digest(raw[_HEAD : _HEAD + _MAC_BYTES], self._bind(device, account)):
            return None
        return device.hex()

    def genuine(self, token: str | None, *, now: float, max_age: int) -> bool:
        """Whether ``token`` is an unexpired token this gateway issued, for any account."""
        return self._genuine(token, now=now, max_age=max_age) is not None

    def _genuine(self, token: str | None, *, now: float, max_age: int) -> bytes | None:
        raw = _decode(token)
        if raw is None or raw[:1] != _VERSION:
            return None
        signed, tag = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(tag, self._tag(signed)):
            return None
        (issued,) = struct.unpack(">Q", raw[1 + _ID_BYTES : _HEAD])
        if issued > now + _SKEW or now - issued > max_age:
            return None
        return raw

    def _bind(self, device: bytes, account: str) -> bytes:
        message = device + self._keys.account(account).encode("ascii")
        return hmac.new(self._bind_key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def _tag(self, signed: bytes) -> bytes:
        return hmac.new(self._tag_key, signed, hashlib.sha256).digest()[:_MAC_BYTES]


def _decode(token: str | None) -> bytes | None:
    # Length first: nothing hostile gets decoded, let alone hashed.
    if not isinstance(token, str) or len(token) != _TEXT or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _RAW else None
