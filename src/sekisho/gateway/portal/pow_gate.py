"""The login page's proof-of-work gate (attack mode, docs/attack-mode.md).

In attack mode, or for a flagged address or subnet, a password from a browser that is not a
known device of the account is evaluated only with a fresh, genuine, unused ALTCHA solution
in the form's ``altcha`` field (static/altcha-solver.js finds it). Otherwise the login page
comes back with **429** and a new challenge, and nothing about the password or the account is
looked at: the gate sees only the attack state, the device token and the solution, so its
answer is the same for every name. A missing, invalid or replayed solution also costs the
address budgets a failure (``Regulator.count_refusal``): a tool that never solves is held a
few times, then refused at the admission gate from its request head alone. An expired one
does not (the page was left open too long). Each refusal is audited, without the password.

With ``challenge.report_only`` nothing is asked of the browser: the gate audits what it would
have refused and lets the attempt through.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.requests import Request

from sekisho.audit.events import AuditEvent
from sekisho.gateway.i18n import translate
from sekisho.gateway.portal.attempts import Attempt
from sekisho.gateway.portal.render import language
from sekisho.gateway.services import Services

__all__ = ["STATE_KEY", "PowGate"]

#: Where the page context for the challenge is put on ``request.state`` (login.html reads it).
STATE_KEY = "sekisho_pow"
_COSTLY = frozenset({"missing", "invalid", "replayed"})


class PowGate:
    def __init__(self, services: Services) -> None:
        self.s = services

    async def prepare(self, request: Request) -> None:
        """Put a challenge on the login page about to be rendered, if the gate applies to this
        client (the account is not known yet: a known device simply ignores it)."""
        if self.s.settings.ratelimit.attack.challenge.report_only:
            return
        if await self._applies(request.scope.get("sekisho.client_ip", "")):
            self._offer(request)

    async def hold(self, request: Request, form: Mapping[str, str], attempt: Attempt) -> str | None:
        """None: evaluate the password. Otherwise the message for the login page, which the
        caller renders with status 429 (it carries a fresh challenge); nothing is evaluated."""
        if attempt.device is not None or not await self._applies(attempt.client_ip):
            return None
        report_only = self.s.settings.ratelimit.attack.challenge.report_only
        if not report_only:
            self._offer(request)  # whatever page comes next carries a fresh challenge
        verdict = await self.s.attack.challenges.verify(payload=form.get("altcha"))
        if verdict == "ok":
            return None
        details: dict[str, object] = {"reason": f"pow_{verdict}"}
        if report_only:
            details["report_only"] = True
        await self.s.auditor.record(AuditEvent(
            event="excess_rate_limit_exceeded", account=self.s.keys.account(attempt.username),
            factor=attempt.factor, client_ip=attempt.client_ip, user_agent=attempt.user_agent,
            details=details))
        if report_only:
            return None
        if verdict in _COSTLY:
            await self.s.regulator.count_refusal(
                account=attempt.username, client_ip=attempt.client_ip)
        return translate(language(request, self.s.cookies.lang), "attack.held")

    async def _applies(self, client_ip: str) -> bool:
        challenge = self.s.settings.ratelimit.attack.challenge
        return challenge.enabled and await self.s.attack.tight_for(client_ip)

    def _offer(self, request: Request) -> None:
        challenges = self.s.attack.challenges
        setattr(request.state, STATE_KEY, {
            "json": json.dumps(challenges.issue(), separators=(",", ":")),
            "max": challenges.max_number,
        })
