"""What the gateway needs, built by the composition root (``sekisho.app``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sekisho.audit.alerter import Alerter
from sekisho.audit.log import Auditor
from sekisho.audit.notifier import UserNotifier
from sekisho.auth.breach.checker import BreachChecker
from sekisho.auth.csrf import CsrfTokens
from sekisho.auth.mfa import Mfa
from sekisho.auth.passwords import Passwords
from sekisho.auth.session_manager import SessionManager
from sekisho.config import Settings
from sekisho.gateway.cookies import CookieNames
from sekisho.gateway.redirects import origins_for
from sekisho.ratelimit.attack import AttackMonitor
from sekisho.ratelimit.device import DeviceTokens
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.ratelimit.lockout_recorder import LockoutRecorder
from sekisho.ratelimit.regulator import Regulator
from sekisho.store.db import Database
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
    database: Database  # for the admin views' repositories (lockouts, audit trail)
    mfa: Mfa  # second factors (auth.mfa; docs/mfa.md)
    attack: AttackMonitor  # attack mode; .status() for the admin page (docs/attack-mode.md)
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    breach: BreachChecker | None = None  # PW-08a, PW-12 (auth.breach.checker)
    clock: Callable[[], float] = time.time  # the gateway's clock (controllable in tests)
    notifier: UserNotifier | None = None  # AU-06 user notices (audit.notifier); .stats()

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
