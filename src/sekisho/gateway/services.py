"""What the gateway needs, built by the composition root (``sekisho.app``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sekisho.audit.alerter import Alerter
from sekisho.audit.log import Auditor
from sekisho.auth.csrf import CsrfTokens
from sekisho.auth.passwords import Passwords
from sekisho.auth.session_manager import SessionManager
from sekisho.config import Settings
from sekisho.gateway.cookies import CookieNames
from sekisho.gateway.redirects import origins_for
from sekisho.ratelimit.device import DeviceTokens
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.ratelimit.lockout_recorder import LockoutRecorder
from sekisho.ratelimit.regulator import Regulator
from sekisho.store.users import UserRepository


@dataclass
class Services:
    settings: Settings
    sessions: SessionManager
    users: UserRepository
    passwords: Passwords
    csrf: CsrfTokens
    cookies: CookieNames
    regulator: Regulator
    devices: DeviceTokens
    alerter: Alerter
    auditor: Auditor
    lockouts: LockoutRecorder
    keys: RateLimitKeys
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def redirect_origins(self) -> frozenset[str]:
        server = self.settings.server
        return origins_for([*server.public_origins, *server.redirect_allowlist])

    async def start(self) -> None:
        for step in self.startup:
            await step()

    async def close(self) -> None:
        for step in reversed(self.shutdown):
            await step()
