"""Settings models. Unknown keys are errors; every rule names its key when it fails."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from sekisho.config.admin import AdminSettings
from sekisho.config.alerts import AlertSettings
from sekisho.config.base import _Strict
from sekisho.config.breach import BreachSettings
from sekisho.config.mfa import MfaSettings
from sekisho.config.notifications import NotificationPlan, NotificationSettings
from sekisho.config.ratelimit import RateLimitSettings

ARGON2_PROFILES = ("rfc9106-low-memory", "owasp-minimum")

DEFAULT_IDENTITY_STRIP = (
    "Remote-*",
    "X-Remote-*",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Auth-Request-*",
    "X-User-*",
    "X-User",
    "X-Email",
    "X-Gateway-*",
    "X-Sekisho-*",
)


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an origin like https://gw.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("must be an origin (scheme://host[:port]) with no path")
    return f"{parts.scheme}://{parts.netloc.lower()}"


class ServerSettings(_Strict):
    listen: str = "127.0.0.1:8080"
    public_origins: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8080"])
    portal_prefix: str = "/_sekisho"
    trusted_proxies: list[str] = Field(default_factory=list)
    redirect_allowlist: list[str] = Field(default_factory=list)
    max_body_bytes_portal: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    hsts_max_age: int = Field(default=31536000, ge=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return value

    @field_validator("public_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least one origin")
        return [_origin(v) for v in value]

    @field_validator("redirect_allowlist")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        return [_origin(v) for v in value]

    @field_validator("portal_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or len(value) < 2:
            raise ValueError("must start with / and not end with /, e.g. /_sekisho")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not a CIDR") from exc
        return value

    @property
    def https(self) -> bool:
        return self.public_origins[0].startswith("https://")

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class UpstreamSettings(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    target: str
    hosts: list[str] = Field(default_factory=list)
    path_prefix: str = "/"
    strip_prefix: bool = False
    allow_groups: list[str] = Field(default_factory=list)
    public_paths: list[str] = Field(default_factory=list)
    connect_timeout: float = Field(default=5.0, gt=0, le=300)
    read_timeout: float = Field(default=60.0, gt=0, le=3600)
    pool_size: int = Field(default=100, ge=1, le=10000)
    websocket: bool = True

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL, e.g. http://127.0.0.1:9000")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return value.rstrip("/")

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [h.lower() for h in value]

    @field_validator("path_prefix")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value if value == "/" else value.rstrip("/")


class SessionSettings(_Strict):
    cookie_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "sekisho_session"
    idle_timeout: int = Field(default=1800, ge=60, le=86400)
    absolute_timeout: int = Field(default=43200, ge=300, le=7 * 86400)
    pending_timeout: int = Field(default=300, ge=30, le=900)
    touch_interval: int = Field(default=30, ge=1, le=600)

    @model_validator(mode="after")
    def _order(self) -> SessionSettings:
        if self.idle_timeout > self.absolute_timeout:
            raise ValueError("idle_timeout must be <= absolute_timeout")
        return self


class DatabaseSettings(_Strict):
    url: str = "sqlite+aiosqlite:///./sekisho.sqlite3"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme in ("sqlite", "postgresql", "postgres"):
            driver = "sqlite+aiosqlite" if scheme == "sqlite" else "postgresql+asyncpg"
            value = driver + value[len(scheme) :]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value


class StateSettings(_Strict):
    url: str = "memory://"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://", "unix://")):
            raise ValueError("must be memory:// or a redis:// URL")
        return value


class PasswordSettings(_Strict):
    argon2_profile: Literal["rfc9106-low-memory", "owasp-minimum"] = "rfc9106-low-memory"
    min_length: int = Field(default=15, ge=8, le=64)
    max_length: int = Field(default=256, ge=64, le=256)
    hash_workers: int = Field(default=0, ge=0, le=64, description="0 = one per core")
    hash_queue: int = Field(default=16, ge=0, le=10000)
    # Workers the normal lane (unknown browsers) may never take: kept for known devices and
    # signed-in users. Capped at hash_workers - 1, so unknown browsers always get one.
    hash_reserved: int = Field(default=1, ge=0, le=63)
    context_words: list[str] = Field(default_factory=list)


class IdentitySettings(_Strict):
    user_header: str = "Remote-User"
    groups_header: str = "Remote-Groups"
    email_header: str = "Remote-Email"
    name_header: str = "Remote-Name"
    strip_headers: list[str] = Field(default_factory=lambda: list(DEFAULT_IDENTITY_STRIP))


class SecretSettings(_Strict):
    session_key: SecretStr | None = None
    session_key_file: str | None = None
    data_key: SecretStr | None = None
    data_key_file: str | None = None


class Settings(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    ratelimit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    upstreams: list[UpstreamSettings] = Field(default_factory=list)
    session: SessionSettings = Field(default_factory=SessionSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    passwords: PasswordSettings = Field(default_factory=PasswordSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    breach: BreachSettings = Field(default_factory=BreachSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    mfa: MfaSettings = Field(default_factory=MfaSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    secrets: SecretSettings = Field(default_factory=SecretSettings)

    @model_validator(mode="after")
    def _unique_upstreams(self) -> Settings:
        names = [u.name for u in self.upstreams]
        if len(names) != len(set(names)):
            raise ValueError("upstreams: names must be unique")
        return self

    @model_validator(mode="after")
    def _relying_party(self) -> Settings:
        self.mfa.check(self.server.public_origins)  # WA-02: RP ID and origins from here only
        return self

    @model_validator(mode="after")
    def _notifications(self) -> Settings:
        self.notification_plan()  # AU-06: a mail server, a sender and a contact, or off
        return self

    def notification_plan(self) -> NotificationPlan | None:
        """``[notifications]`` resolved against ``[alerts.smtp]`` and the portal's origin."""
        server = self.server
        return self.notifications.resolve(
            alerts_smtp=self.alerts.smtp,
            default_portal_url=server.public_origins[0] + server.portal_prefix)

