"""The bookkeeping around one password attempt: limits before it, records and audit after.

Kept apart from the page handlers so every authentication pathway (LF-07) can share it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sekisho.audit.events import AuditEvent
from sekisho.gateway.services import Services
from sekisho.ratelimit.decision import Decision
from sekisho.store.users import User


@dataclass(frozen=True, slots=True)
class Attempt:
    """Who is trying, from where. ``username`` is as typed; it is never logged as such."""

    username: str
    client_ip: str
    user_agent: str
    device: str | None
    factor: str = "password"


class Attempts:
    def __init__(self, services: Services) -> None:
        self.s = services

    async def before(self, attempt: Attempt) -> Decision:
        """Ask the regulator before anything is evaluated (RL-02)."""
        decision = await self.s.regulator.check(
            account=attempt.username, client_ip=attempt.client_ip, factor=attempt.factor,
            device=attempt.device,
        )
        if not decision.allowed:
            await self.s.lockouts.after_refusal(
                decision, account=attempt.username, client_ip=attempt.client_ip,
                factor=attempt.factor, user_agent=attempt.user_agent,
            )
            await self._audit(attempt, "excess_rate_limit_exceeded",
                              details={"reason": decision.reason,
                                       "retry_after": decision.retry_after})
        elif decision.report_only:
            await self._audit(attempt, "excess_rate_limit_exceeded",
                              details={"reason": decision.reason, "report_only": True})
        return decision

    async def failed(self, attempt: Attempt) -> Decision:
        after = await self.s.regulator.record_attempt(
            account=attempt.username, client_ip=attempt.client_ip, factor=attempt.factor,
            success=False, device=attempt.device,
        )
        await self.s.lockouts.after_attempt(
            after, account=attempt.username, client_ip=attempt.client_ip, success=False,
            factor=attempt.factor, user_agent=attempt.user_agent,
        )
        await self._audit(attempt, "authn_login_fail")
        return after

    async def succeeded(self, attempt: Attempt, user: User) -> None:
        after = await self.s.regulator.record_attempt(
            account=attempt.username, client_ip=attempt.client_ip, factor=attempt.factor,
            success=True, device=attempt.device,
        )
        await self.s.lockouts.after_attempt(
            after, account=attempt.username, client_ip=attempt.client_ip, success=True,
            factor=attempt.factor, user_agent=attempt.user_agent, user_id=user.id,
            username=user.username,
        )
        await self._audit(attempt, "authn_login_success", account=str(user.id))

    async def _audit(
        self, attempt: Attempt, event: str, *, account: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        # Until the password is verified the account is named only by its HMAC key (AU-01).
        await self.s.auditor.record(AuditEvent(
            event=event, account=account or self.s.keys.account(attempt.username),
            factor=attempt.factor, client_ip=attempt.client_ip, user_agent=attempt.user_agent,
            details=details,
        ))
