"""Account recovery with a recovery code plus the password, ``{prefix}/recover``.

For the user who lost their second factor, or whose password login is locked by someone
else's guessing (RL-07). It needs both the password and a recovery code (RC-06): a code
alone never makes a session. Attempts count against the ``recovery`` factor, with its own
delay and disable schedule (RC-04), not the password's, so attack traffic on the password
cannot close this door too. Every failure gets one answer whatever failed (LF-01), and the
unknown-user path costs the same dummy verification as at login (LF-02).

Success spends the code (RC-02), lifts the account's locks (RL-07), passes through the same
breached-password check as a login (PW-12), and lands on the security page with the prompt
to enrol a new factor and make new codes (RC-05).
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from sekisho.auth.login import authenticate
from sekisho.auth.mfa.errors import InvalidCode
from sekisho.errors import AuthenticationFailed, HasherBusy
from sekisho.gateway.portal.breach_gate import login_restriction
from sekisho.gateway.portal.mfa_base import MfaBase, log
from sekisho.gateway.portal.mfa_login import CODE_LIMIT
from sekisho.gateway.portal.pow_gate import STATE_KEY
from sekisho.gateway.portal.self_unlock import self_unlock


class RecoverPage(MfaBase):
    def _form(self, request: Request, *, status: int = 200, message: str = "",
              username: str = "") -> Response:
        pre = secrets.token_urlsafe(16)  # a fresh pre-session binding, as on the login page
        response = self.page(request, "recover.html", status,
                             csrf_token=self.s.csrf.issue("recover:" + pre), message=message,
                             username=username, pow=getattr(request.state, STATE_KEY, None))
        response.headers.append("set-cookie", self.s.cookies.set(self.s.cookies.pre, pre))
        return response

    async def show(self, request: Request) -> Response:
        """GET /recover."""
        await self.pages.pow_gate.prepare(request)
        return self._form(request)

    async def recover(self, request: Request) -> Response:
        """POST /recover."""
        form = await self.form(request)
        pre = request.cookies.get(self.s.cookies.pre, "")
        if not pre or not self.s.csrf.verify(form.get("csrf_token"), binding="recover:" + pre):
            log.warning("malicious_csrf", extra={"event": "malicious_csrf", "path": "recover"})
            return self.pages._forbidden(request)
        username = form.get("username", "")[:256]
        attempt = self.attempt(request, username, "recovery")
        decision = await self.pages.attempts.before(attempt)  # RC-04: limits first
        if not decision.allowed:
            response = self._form(request, status=429, username=username,
                                  message=self.throttled_message(request, decision))
            response.headers["retry-after"] = str(decision.retry_after)
            return response
        if (held := await self.pages.pow_gate.hold(request, form, attempt)) is not None:
            # attack mode: no proof of work, nothing evaluated (as on the login page)
            return self._form(request, status=429, username=username, message=held)
        failed = self.t(request, "mfa.recover.failed")
        try:
            user = await authenticate(username=username, password=form.get("password", ""),
                                      users=self.s.users, passwords=self.s.passwords)
            await self.mfa.recovery_use(user_id=user.id, code=form.get("code", "")[:CODE_LIMIT])
        except (AuthenticationFailed, InvalidCode):
            await self.pages.attempts.failed(attempt)
            return self._form(request, status=401, username=username, message=failed)
        except HasherBusy as exc:
            response = self._form(request, status=503, username=username,
                                  message=self.t(request, "login.busy"))
            response.headers["retry-after"] = str(exc.retry_after)
            return response
        await self.pages.attempts.succeeded(attempt, user)
        await self_unlock(self, request, user, via="recovery")
        restriction = await login_restriction(
            self.s, user=user, password=form.get("password", ""),
            client_ip=attempt.client_ip, user_agent=attempt.user_agent)
        return await self.pages._start_session(
            request, user=user, next_url=f"{self.prefix}/security?recovered=1",
            amr=("pwd", "recovery"), restriction=restriction)
