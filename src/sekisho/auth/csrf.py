"""CSRF tokens bound to a session (synchronizer token) or to a pre-session cookie (login CSRF).

A token is an HMAC of the binding under the session key, so it needs no storage and cannot be
forged or moved to another session (CR-01).
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class CsrfTokens:
    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"sekisho-csrf\0" + key).digest()

    def issue(self, binding: str) -> str:
        mac = hmac.new(self._key, binding.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(self, token: str | None, *, binding: str) -> bool:
        if not token or not binding or len(token) > 64:
            return False
        return hmac.compare_digest(token.encode("ascii", "replace"), self.issue(binding).encode())
