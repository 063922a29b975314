"""Settings: models, TOML + environment loading, validation that names the key."""

from sekisho.config.loader import (
    Secrets,
    generate_key,
    load_secrets,
    load_settings,
    validate_settings,
)
from sekisho.config.models import (
    DatabaseSettings,
    IdentitySettings,
    PasswordSettings,
    SecretSettings,
    ServerSettings,
    SessionSettings,
    Settings,
    StateSettings,
    UpstreamSettings,
)
from sekisho.config.ratelimit import RateLimitSettings

__all__ = [
    "DatabaseSettings",
    "IdentitySettings",
    "PasswordSettings",
    "RateLimitSettings",
    "SecretSettings",
    "Secrets",
    "ServerSettings",
    "SessionSettings",
    "Settings",
    "StateSettings",
    "UpstreamSettings",
    "generate_key",
    "load_secrets",
    "load_settings",
    "validate_settings",
]
