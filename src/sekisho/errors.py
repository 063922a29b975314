"""The one error tree of Sekisho.

Every error the package raises on purpose derives from :class:`SekishoError`; third-party
errors are translated at the boundary (``raise ConfigError(...) from exc``). The HTTP layer
maps these to responses in one place (``gateway.errors``).

::

    SekishoError
    ├── ConfigError                 a setting is missing or invalid (names the key)
    ├── StoreError                  the database refused or failed
    │   ├── NotFound                no such user / record
    │   └── Conflict                a unique value is taken (username); LockoutNotActive
    ├── StateError                  the state backend (memory/Redis) failed
    ├── RateLimitError              the limiter was called wrongly: unknown factor or budget,
    │                               a secret too short (also a ValueError)
    ├── PasswordError
    │   ├── PasswordRejected        a new password breaks the policy (has .reason)
    │   └── HasherBusy              the bounded Argon2 executor is full (has .retry_after)
    ├── InvalidUsername             a name that cannot be canonicalised (also a ValueError)
    ├── AuthenticationFailed        login failed; deliberately carries no reason
    ├── BreachError                 the offline breached-password corpus (auth/breach/errors.py)
    ├── MfaError                    a second factor refused or misused; has a stable .code
    │                               (auth/mfa/errors.py: InvalidCode, ReplayedCode,
    │                               WebAuthnRejected > SignCountRegression, LastFactor,
    │                               DuplicateCredential, UnknownPasskey, InvalidName,
    │                               MfaUsageError)
    ├── SealError                   a sealed secret (TOTP seed) does not open: tampered, moved,
    │                               or another data key (auth/sealing.py)
    ├── LockoutRequestError         a lockout request is unusable, e.g. an unlock without a
    │                               reason (store/lockouts.py; also a ValueError)
    ├── AuditError                  an audit event is malformed or names a secret field
    │                               (audit/events.py; also a ValueError)
    ├── AlertError                  an alert is malformed or undeliverable (audit/alerts.py)
    └── ProxyError
        ├── BadRequest              a hostile or malformed request (400)
        ├── UnknownHost             Host outside the configuration (421)
        ├── UpstreamUnavailable     connect failed (502)
        └── UpstreamTimeout         upstream too slow (504)
"""

from __future__ import annotations


class SekishoError(Exception):
    """Root of every error Sekisho raises on purpose."""


class ConfigError(SekishoError):
    """One or more configuration problems; each line names the key and the rule."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class StoreError(SekishoError):
    """The durable store failed."""


class NotFound(StoreError):
    """No such record."""


class Conflict(StoreError):
    """A unique value is already taken."""


class StateError(SekishoError):
    """The shared-state backend (memory or Redis) failed."""


class RateLimitError(SekishoError, ValueError):
    """The rate limiter was called with something it cannot use (a caller bug)."""


class PasswordError(SekishoError):
    """Base for password handling errors."""


class PasswordRejected(PasswordError):
    """A new password breaks the policy. ``reason`` is machine-readable (PW-09)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class HasherBusy(PasswordError):
    """Too many Argon2 computations are queued (ST-06)."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"password hashing is saturated; retry after {retry_after}s")


class InvalidUsername(SekishoError, ValueError):
    """A username or group name that cannot be canonicalised. The message names the rule and
    never echoes the input."""


class AuthenticationFailed(SekishoError):
    """Login failed. Carries no reason on purpose (LF-01)."""


class ProxyError(SekishoError):
    """The request cannot be proxied."""

    status = 502


class BadRequest(ProxyError):
    status = 400


class UnknownHost(ProxyError):
    status = 421


class UpstreamUnavailable(ProxyError):
    status = 502


class UpstreamTimeout(ProxyError):
    status = 504
