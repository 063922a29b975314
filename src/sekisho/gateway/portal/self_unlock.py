"""Self-service unlock (RL-07): a user who proved themselves with two factors lifts the locks
and delays that attack traffic put on their account.

Two ways lead here: a passkey login with user verification (a multi-factor authenticator on
its own, WA-03), and a recovery code together with the password (RC-06). Both authenticate
above the password's level, so resetting the password's (and the other factors') counters
follows RL-03. Open lockout records are closed as unlocked by ``self:<via>``, so the admin
review shows what happened; the unlock is audited.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request

from sekisho.errors import NotFound, StoreError
from sekisho.store.lockouts import LockoutNotActive, LockoutRepository
from sekisho.store.users import User

if TYPE_CHECKING:
    from sekisho.gateway.portal.mfa_base import MfaBase

log = logging.getLogger("sekisho.portal.mfa")


async def self_unlock(base: MfaBase, request: Request, user: User, *, via: str) -> bool:
    """Lift every lock and delay on ``user``'s factors; True if there was one to lift."""
    s = base.s
    state = await s.regulator.state(account=user.username)
    locked = sorted(name for name, f in state.factors.items() if f.disabled or f.failures)
    if not locked:
        return False
    reason = f"self-service unlock with {via}"
    try:
        records = await LockoutRepository(s.database).list(
            account=state.account_key, state="active", limit=50)
        for record in records:
            if record.id is None:
                continue
            try:
                await s.lockouts.unlock(record_id=record.id, actor=f"self:{via}",
                                        reason=reason, regulator=s.regulator)
            except (NotFound, LockoutNotActive):
                continue  # closed meanwhile (another replica, an admin)
    except StoreError:
        # The lock itself lives in the regulator; a record left open is for review only.
        log.exception("self-unlock could not close the lockout records")
    await s.regulator.unlock(account=user.username)
    await base.audit(request, "authz_change:selfunlock", user_id=user.id, factor=via,
                     factors=locked)
    return True
