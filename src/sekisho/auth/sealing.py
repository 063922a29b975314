"""Sealing: AES-256-GCM for the few reversible secrets Sekisho keeps (TOTP seeds, ST-07).

A sealed value is bytes in a versioned format::

    0x01 | key id (4) | nonce (12) | ciphertext + tag (16)

- **Key.** The AES key is derived from ``secrets.data_key`` with HKDF-SHA-256 and a purpose
  label, so the same data key can serve other jobs (recovery-code hashing) without two
  algorithms ever sharing key bytes. The data key itself comes from the config, the
  environment or a file (``config.loader.load_secrets``), never from the database.
- **Key id.** The first 4 bytes of an HMAC of the derived key: it names the key that sealed a
  value, so a :class:`Sealer` built with ``[new, old]`` keys seals with the new one and still
  opens values sealed with the old one (rotation: add the new key first, re-seal, drop the old).
- **Nonce.** 96 random bits per seal (``os.urandom``). At a few seals per user this is far
  below the 2**32-messages bound for random GCM nonces under one key.
- **Associated data.** The header, the purpose and the context (the user id) are
  authenticated: a ciphertext copied to another user's row, or used for another purpose,
  fails to open.

Errors::

    SekishoError
    └── SealError           the value cannot be opened: tampered, truncated, another key or
                            another owner (never says which; never quotes the value)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sekisho.errors import SekishoError

__all__ = ["FORMAT_V1", "SealError", "Sealer", "derive_key"]

FORMAT_V1 = 0x01
_KEY_ID = 4
_NONCE = 12
_TAG = 16
_HEADER = 1 + _KEY_ID
_SEAL_LABEL = b"sekisho seal v1"


class SealError(SekishoError):
    """A sealed value cannot be opened (tampered, wrong key, wrong owner or purpose)."""


def derive_key(data_key: bytes, label: bytes) -> bytes:
    """A 256-bit key for one purpose, derived from the data key (HKDF-SHA-256, no salt)."""
    if len(data_key) < 32:
        raise ValueError("the data key must be at least 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(data_key)


def _key_id(key: bytes) -> bytes:
    return hmac.new(key, b"sekisho key id", hashlib.sha256).digest()[:_KEY_ID]


class Sealer:
    """Seal and open small secrets. ``data_keys[0]`` seals; every key in the list opens."""

    def __init__(self, data_keys: Sequence[bytes]) -> None:
        if not data_keys:
            raise ValueError("a Sealer needs at least one data key")
        derived = [derive_key(k, _SEAL_LABEL) for k in data_keys]
        self._primary = _key_id(derived[0])
        self._keys = {_key_id(k): AESGCM(k) for k in reversed(derived)}

    def seal(self, plaintext: bytes, *, purpose: str, context: str) -> bytes:
        header = bytes([FORMAT_V1]) + self._primary
        nonce = os.urandom(_NONCE)
        body = self._keys[self._primary].encrypt(
            nonce, plaintext, _aad(header, purpose, context))
        return header + nonce + body

    def open(self, sealed: bytes, *, purpose: str, context: str) -> bytes:
        if len(sealed) < _HEADER + _NONCE + _TAG or sealed[0] != FORMAT_V1:
            raise SealError(f"{purpose}: not a sealed value of a known format")
        header, nonce = sealed[:_HEADER], sealed[_HEADER:_HEADER + _NONCE]
        aead = self._keys.get(header[1:])
        if aead is None:
            raise SealError(f"{purpose}: sealed with a key that is not configured")
        try:
            return aead.decrypt(nonce, sealed[_HEADER + _NONCE:], _aad(header, purpose, context))
        except InvalidTag:
            raise SealError(f"{purpose}: the sealed value does not authenticate") from None

    def needs_reseal(self, sealed: bytes) -> bool:
        """True when ``sealed`` was made with an older key (rotation)."""
        return sealed[1:_HEADER] != self._primary


def _aad(header: bytes, purpose: str, context: str) -> bytes:
    # Length-prefixed, so ("a:b", "c") and ("a", "b:c") never give the same bytes.
    parts = [purpose.encode(), context.encode()]
    return header + b"".join(len(p).to_bytes(2, "big") + p for p in parts)
