"""The breach check at every successful password login (PW-12, PW-06).

:func:`login_restriction` runs right after the password was verified and before the session
starts. It answers the restriction for the new session: ``"change_password"`` when

- the password is on the common-password list, or a breach source lists it at least
  ``breach.min_count`` times: the account is flagged ``compromised`` and an
  ``authn_password_breached:login`` event is filed;
- the account is already flagged ``compromised`` (by an admin, or by an earlier catch whose
  user did not change the password then), whether or not a source can answer now;

and ``""`` otherwise. A restricted session reaches only the change-password page, logout and
static files; it is never proxied (gateway.dispatch).

An unavailable source never restricts a login (that would lock everyone out during an
outage): the checker files its ``authn_breach_check_unavailable`` event and the login goes on.
"""

from __future__ import annotations

import logging

from sekisho.audit.events import AuditEvent
from sekisho.audit.log import Auditor
from sekisho.auth.breach.checker import BreachChecker
from sekisho.auth.common_passwords import common_passwords
from sekisho.auth.passwords import normalize
from sekisho.config.breach import BreachSettings
from sekisho.errors import StoreError
from sekisho.gateway.services import Services
from sekisho.store.users import User

__all__ = ["CHANGE_PASSWORD", "build_checker", "login_restriction"]

CHANGE_PASSWORD = "change_password"  # noqa: S105 (a restriction name)
log = logging.getLogger("sekisho.portal")


async def login_restriction(
    services: Services, *, user: User, password: str, client_ip: str = "", user_agent: str = "",
) -> str:
    """The session restriction after ``user`` logged in with ``password`` (just verified)."""
    settings = services.settings.breach
    if not settings.check_at_login:
        return CHANGE_PASSWORD if user.compromised else ""
    nfc = normalize(password)
    source, count = "", None
    if common_passwords().is_common(nfc):
        source = "common"
    elif services.breach is not None:
        verdict = await services.breach.check(nfc, groups=user.groups)
        if verdict.breached:
            source, count = verdict.source, verdict.count
    if not source:
        return CHANGE_PASSWORD if user.compromised else ""
    await _caught(services, user=user, source=source, count=count, client_ip=client_ip,
                  user_agent=user_agent)
    return CHANGE_PASSWORD


async def _caught(
    services: Services, *, user: User, source: str, count: int | None, client_ip: str,
    user_agent: str,
) -> None:
    log.warning("password of user id %d found at login (%s); session restricted to the "
                "password change", user.id, source,
                extra={"event": "password_breached_at_login", "source": source})
    try:
        if not user.compromised:
            await services.users.set_compromised(user.id, True)
    except StoreError as exc:  # the restriction holds for this session all the same
        log.warning("could not flag user id %d compromised: %s", user.id, exc)
    details: dict[str, object] = {"source": source, "username": user.username}
    if count is not None:
        details["count"] = count
    await services.auditor.record(AuditEvent(
        event="authn_password_breached:login", account=str(user.id), factor="password",
        client_ip=client_ip or None, user_agent=user_agent or None, details=details,
    ))


def build_checker(settings: BreachSettings, auditor: Auditor) -> BreachChecker:
    """The app's checker, filing ``authn_breach_check_unavailable:<source>`` events (PW-11)."""

    async def unavailable(source: str, why: str, missed: int) -> None:
        await auditor.record(AuditEvent(
            event=f"authn_breach_check_unavailable:{source}",
            details={"source": source, "reason": why, "failures_since_last_event": missed},
        ))

    return BreachChecker.from_settings(settings, on_unavailable=unavailable)
