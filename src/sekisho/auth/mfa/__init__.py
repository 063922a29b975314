"""Second factors: TOTP, passkeys (WebAuthn) and recovery codes, behind one facade (:class:`Mfa`).

Built by :func:`build_mfa` in the composition root; the portal uses ``services.mfa``.
"""

from sekisho.auth.mfa.errors import (
    DuplicateCredential,
    InvalidCode,
    InvalidName,
    LastFactor,
    MfaError,
    MfaUsageError,
    ReplayedCode,
    SignCountRegression,
    UnknownPasskey,
    WebAuthnRejected,
)
from sekisho.auth.mfa.factory import build_mfa
from sekisho.auth.mfa.service import FactorSummary, Mfa, PasskeyInfo

__all__ = [
    "DuplicateCredential",
    "FactorSummary",
    "InvalidCode",
    "InvalidName",
    "LastFactor",
    "Mfa",
    "MfaError",
    "MfaUsageError",
    "PasskeyInfo",
    "ReplayedCode",
    "SignCountRegression",
    "UnknownPasskey",
    "WebAuthnRejected",
    "build_mfa",
]
