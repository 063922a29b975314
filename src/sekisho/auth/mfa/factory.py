"""Build the MFA facade from settings: the one call the composition root makes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from sekisho.audit.alerter import Alerter
from sekisho.audit.log import Auditor
from sekisho.auth.mfa.challenges import challenge_store
from sekisho.auth.mfa.passkeys import Passkeys
from sekisho.auth.mfa.recovery import RecoveryCodes
from sekisho.auth.mfa.replay import step_store
from sekisho.auth.mfa.service import Mfa
from sekisho.auth.sealing import Sealer
from sekisho.config import Secrets, Settings
from sekisho.store.db import Database
from sekisho.store.factors import FactorRepository
from sekisho.store.users import UserRepository

__all__ = ["build_mfa"]


def build_mfa(
    settings: Settings, secrets: Secrets, *, db: Database, users: UserRepository,
    auditor: Auditor, alerter: Alerter, clock: Callable[[], float] = time.time,
    prefix: str = "sekisho:",
) -> tuple[Mfa, Callable[[], Awaitable[None]]]:
    """The facade and its closer. State (TOTP steps, challenges) lives at ``state.url``."""
    mfa_settings = settings.mfa
    rp_id, origins = mfa_settings.relying_party(settings.server.public_origins)
    factors = FactorRepository(db)
    steps = step_store(settings.state.url, clock=clock, prefix=prefix)
    challenges = challenge_store(settings.state.url, clock=clock, prefix=prefix)
    passkeys = Passkeys(
        rp_id=rp_id, rp_name=mfa_settings.rp_name, origins=origins,
        challenge_ttl=mfa_settings.challenge_ttl, factors=factors, challenges=challenges,
        clock=clock)
    mfa = Mfa(
        mfa_settings, public_origins=settings.server.public_origins, factors=factors,
        users=users, sealer=Sealer([secrets.data_key]),
        recovery=RecoveryCodes([secrets.data_key]), steps=steps, passkeys=passkeys,
        auditor=auditor, alerter=alerter, clock=clock)

    async def close() -> None:
        await steps.close()
        await challenges.close()

    return mfa, close
