"""Errors of the second factors (TOTP, passkeys, recovery codes).

Every error carries ``code``: a stable name the portal turns into a message
(``mfa.error.<code>``). Messages and ``reason`` are for logs: they name what failed and never
quote a code, a secret or a client-sent value.

::

    MfaError
    ├── InvalidCode             a TOTP or recovery code that does not match
    ├── ReplayedCode            a TOTP code whose step was already used (TO-05, TO-06)
    ├── WebAuthnRejected        a passkey ceremony failed (``reason`` for logs only)
    │   └── SignCountRegression the signature counter went backwards: a clone? (WA-06)
    ├── LastFactor              removing this factor would leave the account without one (WA-08)
    ├── DuplicateCredential     the credential ID is registered already, to anyone (WA-05)
    ├── UnknownPasskey          no such passkey for this user (rename, delete)
    ├── InvalidName             a passkey name that is empty or too long
    └── MfaUsageError           the facade was called wrongly (a caller bug; also a ValueError)
"""

from __future__ import annotations

from sekisho.errors import SekishoError

__all__ = [
    "DuplicateCredential", "InvalidCode", "InvalidName", "LastFactor", "MfaError",
    "MfaUsageError", "ReplayedCode", "SignCountRegression", "UnknownPasskey",
    "WebAuthnRejected",
]


class MfaError(SekishoError):
    """Base of the MFA errors. ``code`` is stable (i18n key ``mfa.error.<code>``)."""

    code = "mfa_error"


class InvalidCode(MfaError):
    code = "invalid_code"

    def __init__(self, message: str = "the code does not match") -> None:
        super().__init__(message)


class ReplayedCode(MfaError):
    """The code was right but its time step was used already. Counts as a failure (TO-06)."""

    code = "replayed_code"

    def __init__(self, message: str = "this code was used already") -> None:
        super().__init__(message)


class WebAuthnRejected(MfaError):
    """One error for every failed ceremony (WA-09); ``reason`` says why, for logs only."""

    code = "webauthn_rejected"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"passkey rejected: {reason}")


class SignCountRegression(WebAuthnRejected):
    """A valid assertion whose counter did not increase (WA-06). Audited and alerted."""

    def __init__(self, *, stored: int, received: int, passkey_id: int | None = None,
                 user_id: int | None = None) -> None:
        self.stored = stored
        self.received = received
        self.passkey_id = passkey_id
        self.user_id = user_id
        super().__init__(f"sign count regression (stored {stored}, received {received})")


class LastFactor(MfaError):
    code = "last_factor"

    def __init__(self, message: str = "this is the account's last second factor") -> None:
        super().__init__(message)


class DuplicateCredential(MfaError):
    code = "duplicate_credential"

    def __init__(self, message: str = "this passkey is registered already") -> None:
        super().__init__(message)


class UnknownPasskey(MfaError):
    code = "unknown_passkey"

    def __init__(self, message: str = "no such passkey") -> None:
        super().__init__(message)


class InvalidName(MfaError):
    code = "invalid_name"


class MfaUsageError(MfaError, ValueError):
    """The facade was called with arguments that cannot go together (a caller bug)."""

    code = "usage"
