"""Recovery codes: generation, the form people type, and the keyed hash that is stored.

**Codes (RC-01).** Each code is 120 random bits from ``secrets`` written as 24 Crockford
base32 characters in six groups: ``7KQ2-M9XD-4RTW-B1CN-Z6HP-03VA``. Crockford's alphabet has
no I, L, O or U; on input, case, dashes and spaces are ignored and I/L read as 1, O as 0, so a
code read aloud or copied by hand still works.

**Hash.** A code is stored as HMAC-SHA-256 under a key derived from the data key, over the
user id and the code. RC-01 allows a plain approved keyed hash for codes of at least 112 bits;
at 120 bits a brute-force search of one code is ~2**119 HMACs even for someone holding the
database *and* the key, so a slow password hash (Argon2) would add cost to every legitimate
use and nothing an attacker would notice. Without the data key the stored hashes are not even
testable offline. Binding the user id into the hash keeps a code from one account useless on
another, and the key rotation order of :class:`~sekisho.auth.sealing.Sealer` applies: every
configured data key is tried when a code is checked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from sekisho.auth.sealing import derive_key

__all__ = ["CODE_BITS", "RecoveryCodes", "normalize"]

CODE_BITS = 120
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_CHARS = CODE_BITS // 5  # 24
_GROUP = 4
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})
_LABEL = b"sekisho recovery codes v1"


def _format(value: int) -> str:
    chars = [_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(_CHARS))]
    text = "".join(chars)
    return "-".join(text[i:i + _GROUP] for i in range(0, _CHARS, _GROUP))


def normalize(code: str) -> str | None:
    """The 24 canonical characters of a typed code, or None if it cannot be one."""
    if not isinstance(code, str) or len(code) > 64:
        return None
    text = "".join(code.split()).replace("-", "").upper().translate(_READ_AS)
    if len(text) != _CHARS or any(c not in _ALPHABET for c in text):
        return None
    return text


class RecoveryCodes:
    def __init__(self, data_keys: Sequence[bytes]) -> None:
        if not data_keys:
            raise ValueError("recovery codes need at least one data key")
        self._keys = [derive_key(k, _LABEL) for k in data_keys]

    @staticmethod
    def generate(count: int) -> list[str]:
        """``count`` distinct fresh codes, formatted for display."""
        codes: set[str] = set()
        while len(codes) < count:
            codes.add(_format(secrets.randbits(CODE_BITS)))
        return sorted(codes)

    def hash(self, *, user_id: int, code: str) -> str:
        """The stored form of a code under the primary key (hex)."""
        found = self.hashes(user_id=user_id, code=code)
        if not found:
            raise ValueError("not a recovery code")
        return found[0]

    def hashes(self, *, user_id: int, code: str) -> list[str]:
        """The code's hash under every configured key ([] when the code is malformed)."""
        text = normalize(code)
        if text is None:
            return []
        message = f"{user_id}:{text}".encode()
        return [hmac.new(k, message, hashlib.sha256).hexdigest() for k in self._keys]
