"""TOTP maths (RFC 6238 over RFC 4226): secrets, otpauth URIs, QR codes, matching a code.

Parameters are fixed for authenticator-app compatibility (TO-02): SHA-1, 6 digits, 30 s,
T0 = 0. ``pyotp`` computes the codes; the comparison is ours: every step of the window
``now-1 .. now+1`` (TO-04, never wider) is compared with :func:`hmac.compare_digest`, all of
them, and the matching *step* is returned so the caller can refuse replays (TO-05). pyotp's
``verify()`` returns only a bool and would not allow that.

The time is the gateway's own clock, injected (TO-07): nothing here reads a client time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable

import pyotp
import segno

__all__ = ["DIGITS", "PERIOD", "WINDOW", "TotpCodes", "normalize_code", "valid_secret"]

DIGITS = 6
PERIOD = 30
WINDOW = 1  # steps either side of now (TO-04)
SECRET_CHARS = 32  # base32 characters: 160 bits (TO-01)


def valid_secret(secret: str) -> bool:
    """A base32 secret of at least 160 bits (what :meth:`TotpCodes.new_secret` makes)."""
    if not isinstance(secret, str) or not SECRET_CHARS <= len(secret) <= 128:
        return False
    try:
        return len(base64.b32decode(secret + "=" * (-len(secret) % 8))) >= 20
    except (binascii.Error, ValueError):
        return False


def normalize_code(code: str) -> str | None:
    """The code as 6 ASCII digits (spaces dropped), or None when it cannot be one."""
    if not isinstance(code, str) or len(code) > 32:
        return None
    digits = code.replace(" ", "").replace("\u3000", "")
    if len(digits) != DIGITS or not (digits.isascii() and digits.isdigit()):
        return None
    return digits


class TotpCodes:
    def __init__(self, *, issuer: str, clock: Callable[[], float]) -> None:
        self._issuer = issuer
        self._clock = clock

    def new_secret(self) -> str:
        """160 random bits as 32 base32 characters (pyotp uses ``secrets``; TO-01)."""
        return pyotp.random_base32(length=SECRET_CHARS)

    def uri(self, *, secret: str, username: str) -> str:
        """``otpauth://totp/Issuer:username?secret=...&issuer=Issuer`` (TO-02)."""
        return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
            name=username, issuer_name=self._issuer)

    @staticmethod
    def qr_svg(*, uri: str) -> str:
        """The URI as an inline SVG QR code (no XML declaration, scales with CSS)."""
        return str(segno.make(uri, error="m").svg_inline(scale=4, border=2, omitsize=True))

    def current_step(self) -> int:
        return int(self._clock()) // PERIOD

    def code_at(self, *, secret: str, step: int) -> str:
        return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).generate_otp(step)

    def match(self, *, secret: str, code: str) -> int | None:
        """The step ``code`` belongs to within ``now ± WINDOW``, or None.

        Each candidate is compared in constant time and the loop never stops early, so the
        timing does not tell which step matched.
        """
        digits = normalize_code(code)
        if digits is None:
            return None
        now = self.current_step()
        found: int | None = None
        for step in range(now - WINDOW, now + WINDOW + 1):
            if hmac.compare_digest(self.code_at(secret=secret, step=step), digits):
                found = step
        return found
