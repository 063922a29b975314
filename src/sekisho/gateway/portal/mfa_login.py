"""The second login step (LF-06): after the password, a pending session and the MFA page.

``after_password`` is what the password login calls once the password is verified. A user
with a second factor, or one whose group requires MFA, gets a *pending* session: it lives
``session.pending_timeout`` (300 s), is never proxied (dispatch.py), and reaches only the
pages here (and the enrolment pages when the user still has to enrol). The second factor
rotates it into a new active session (SE-03) that keeps the password step's restriction.

TOTP and recovery codes go through the regulator with their own factor (TO-08, RC-04,
RL-09): limits before verification, a replayed code counts as a failure (TO-06).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sekisho.auth.mfa.errors import InvalidCode, ReplayedCode
from sekisho.auth.session_manager import Principal
from sekisho.auth.sessions import Session
from sekisho.gateway.portal.mfa_base import MfaBase
from sekisho.gateway.portal.self_unlock import self_unlock
from sekisho.store.users import User

CODE_LIMIT = 64  # a recovery code with its dashes and spaces; anything longer is not a code


def principal(user: User) -> Principal:
    return Principal(
        user_id=user.id, username=user.username, groups=tuple(user.groups),
        email=user.email or "", display_name=user.display_name or "",
    )


class MfaLogin(MfaBase):
    def mfa_url(self, next_url: str) -> str:
        return f"{self.prefix}/mfa?next={quote(next_url, safe='/')}"

    async def after_password(
        self, request: Request, *, user: User, next_url: str, restriction: str = ""
    ) -> Response:
        """The password is verified: an active session, or a pending one and the MFA step."""
        summary = await self.mfa.summary(user_id=user.id)
        required = self.mfa.mfa_required(groups=user.groups)
        if not summary.has_second_factor and not required:
            return await self.pages._start_session(
                request, user=user, next_url=next_url, restriction=restriction)
        cookies = self.s.cookies
        old = request.cookies.get(cookies.session)
        if old:
            await self.s.sessions.end(old)  # a re-authentication replaces the old session
        token, _ = await self.s.sessions.create(
            principal(user), client_ip=request.scope.get("sekisho.client_ip", ""),
            user_agent=request.headers.get("user-agent", ""), state="pending",
            amr=("pwd",), restriction=restriction,
        )
        response = RedirectResponse(self.mfa_url(next_url), status_code=303)
        response.headers.append("set-cookie", cookies.set(cookies.session, token))
        response.headers.append("set-cookie", cookies.clear(cookies.pre))
        return response

    async def complete(
        self, request: Request, session: Session, user: User, *, amr: tuple[str, ...],
        next_url: str,
    ) -> Response:
        """Second factor done: a new active session replaces the pending one (SE-03)."""
        await self.audit(request, "session_renewed", user_id=user.id, factor=amr[-1],
                         amr=list(amr))
        return await self.pages._start_session(
            request, user=user, next_url=next_url, amr=amr, restriction=session.restriction)

    # -- the MFA page ----------------------------------------------------------------------

    async def _pending_user(self, request: Request) -> tuple[Session, User] | Response:
        session = await self.pending(request)
        next_url = self.next_url(request.query_params.get("next"))
        if session is None:
            return RedirectResponse(
                f"{self.prefix}/login?next={quote(next_url, safe='/')}", status_code=303)
        user = await self.user_of(session)
        if user is None:
            await self.s.sessions.end_key(session.key)
            return self.to_login()
        return session, user

    async def choose(self, request: Request) -> Response:
        """GET /mfa: the second-factor page (TOTP, passkey, recovery code)."""
        found = await self._pending_user(request)
        if isinstance(found, Response):
            return found
        session, user = found
        next_url = self.next_url(request.query_params.get("next"))
        summary = await self.mfa.summary(user_id=user.id)
        if not summary.has_second_factor:  # required, nothing enrolled yet
            return RedirectResponse(
                f"{self.prefix}/mfa/setup?next={quote(next_url, safe='/')}", status_code=303)
        return self._verify_page(request, session, next_url=next_url, totp=summary.totp,
                                 passkeys=bool(summary.passkeys))

    def _verify_page(
        self, request: Request, session: Session, *, next_url: str, totp: bool,
        passkeys: bool, status: int = 200, message: str = "", method: str = "",
    ) -> Response:
        return self.page(
            request, "mfa_verify.html", status, csrf_token=self.csrf(session), next=next_url,
            totp=totp, passkeys=passkeys, message=message, method=method,
            username=session.username,
        )

    async def totp(self, request: Request) -> Response:
        """POST /mfa/totp."""
        return await self._code(request, factor="totp")

    async def recovery(self, request: Request) -> Response:
        """POST /mfa/recovery: a recovery code instead of the lost factor (RC-05, RC-06: the
        password was verified a moment ago in this same pending session)."""
        return await self._code(request, factor="recovery")

    async def _code(self, request: Request, *, factor: str) -> Response:
        found = await self._pending_user(request)
        if isinstance(found, Response):
            return found
        session, user = found
        form = await self.form(request)
        if not self.csrf_ok(form.get("csrf_token"), session, path=f"mfa/{factor}"):
            return self.pages._forbidden(request)
        next_url = self.next_url(form.get("next"))
        summary = await self.mfa.summary(user_id=user.id)

        def again(status: int, key: str = "", message: str = "") -> Response:
            text = message or (self.t(request, key) if key else "")
            return self._verify_page(
                request, session, next_url=next_url, totp=summary.totp,
                passkeys=bool(summary.passkeys), status=status, message=text, method=factor)

        attempt = self.attempt(request, session.username, factor)
        decision = await self.pages.attempts.before(attempt)  # limits first (TO-08, RC-04)
        if not decision.allowed:
            response = again(429, message=self.throttled_message(request, decision))
            response.headers["retry-after"] = str(decision.retry_after)
            return response
        code = form.get("code", "")[:CODE_LIMIT]
        try:
            if factor == "totp":
                await self.mfa.totp_verify(user_id=user.id, code=code.replace(" ", ""))
            else:
                await self.mfa.recovery_use(user_id=user.id, code=code)
        except ReplayedCode:
            await self.pages.attempts.failed(attempt)  # TO-06: a replay is a failure
            return again(401, "mfa.error.replayed_code")
        except InvalidCode:
            await self.pages.attempts.failed(attempt)
            return again(401, f"mfa.error.invalid_{factor}")
        await self.pages.attempts.succeeded(attempt, user)
        if factor == "totp":
            return await self.complete(request, session, user, amr=("pwd", "otp"),
                                       next_url=next_url)
        # RC-05: the recovery lifts any lock on the account's factors and leads to
        # re-enrolment on the security page.
        await self_unlock(self, request, user, via="recovery")
        return await self.complete(request, session, user, amr=("pwd", "recovery"),
                                   next_url=f"{self.prefix}/security?recovered=1")

    async def cancel(self, request: Request) -> Response:
        """POST /mfa/cancel: give up the pending sign-in."""
        session = await self.pending(request)
        form = await self.form(request)
        if session is not None:
            if not self.csrf_ok(form.get("csrf_token"), session, path="mfa/cancel"):
                return self.pages._forbidden(request)
            await self.s.sessions.end_key(session.key)
        response = RedirectResponse(f"{self.prefix}/login", status_code=303)
        response.headers.append("set-cookie", self.s.cookies.clear(self.s.cookies.session))
        return response
