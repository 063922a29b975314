"""Enrolling a second factor and creating recovery codes.

Who may enrol (TO-03, WA-05: inside a freshly authenticated session):

- a *pending* session of a user who must use MFA and has no second factor yet: the password
  was verified moments ago, which is the account's whole current strength. Enrolment then
  completes the login (the new factor proves itself) and leads to the recovery codes;
- an *active*, unrestricted session that passes step-up (SE-08).

The TOTP secret travels in the form between the setup page and the confirmation, with an
HMAC tag bound to the session, so no server state is needed and no other secret can be
slipped in. It is bound only after a correct code (TO-03). Recovery codes are shown once,
on a ``no-store`` page (RC-03).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sekisho.auth.mfa.errors import InvalidCode, MfaUsageError
from sekisho.auth.mfa.service import FactorSummary
from sekisho.auth.sessions import Session
from sekisho.gateway.portal.mfa_base import MfaBase
from sekisho.gateway.portal.mfa_login import MfaLogin
from sekisho.store.users import User


@dataclass(frozen=True, slots=True)
class Enroller:
    session: Session
    user: User
    pending: bool
    summary: FactorSummary


def group_key(secret: str) -> str:
    """The key as people type it from the page: groups of four."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


class MfaEnrol(MfaBase):
    def __init__(self, login: MfaLogin) -> None:
        super().__init__(login.pages, clock=login.clock)
        self.login = login

    async def enroller(self, request: Request) -> Enroller | str:
        """Who enrols, or why not: ``login``, ``verify`` (a pending user who has a factor
        must use it), ``restricted`` or ``step_up``."""
        session = await self.session(request)
        if session is None:
            return "login"
        user = await self.user_of(session)
        if user is None:
            await self.s.sessions.end_key(session.key)
            return "login"
        summary = await self.mfa.summary(user_id=user.id)
        if session.state == "pending":
            return "verify" if summary.has_second_factor else Enroller(
                session, user, True, summary)
        if session.restriction:
            return "restricted"
        if not self.fresh(session, has_second_factor=summary.has_second_factor):
            return "step_up"
        return Enroller(session, user, False, summary)

    def refusal(self, request: Request, why: str, *, here: str) -> Response:
        next_url = self.next_url(request.query_params.get("next"))
        if why == "verify":
            return RedirectResponse(self.login.mfa_url(next_url), status_code=303)
        if why == "step_up":
            return self.reauthenticate(here)
        if why == "restricted":
            return RedirectResponse(f"{self.prefix}/", status_code=303)
        return RedirectResponse(
            f"{self.prefix}/login?next={quote(here, safe='/')}", status_code=303)

    def _here(self, request: Request) -> str:
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")

    def codes_url(self, next_url: str) -> str:
        return f"{self.prefix}/mfa/codes?next={quote(next_url, safe='/')}"

    async def after_enrol(self, request: Request, who: Enroller, *, method: str,
                          next_url: str) -> Response:
        """A newly bound factor has just proved itself: the session is renewed with it in its
        ``amr`` (SE-03), finishing a pending login. Then on to the recovery codes if the user
        has none, else to ``next`` (pending) or the security page."""
        if who.pending:
            amr: tuple[str, ...] = ("pwd", method)
            target = next_url if who.session.restriction else self.codes_url(next_url)
        else:
            amr = tuple(dict.fromkeys((*who.session.amr, method)))
            target = (self.codes_url(next_url) if who.summary.recovery_remaining == 0
                      else f"{self.prefix}/security?done={method}")
        return await self.login.complete(request, who.session, who.user, amr=amr,
                                         next_url=target)

    # -- choosing -----------------------------------------------------------------------

    async def setup(self, request: Request) -> Response:
        """GET /mfa/setup: authenticator app or passkey."""
        who = await self.enroller(request)
        if isinstance(who, str):
            return self.refusal(request, who, here=self._here(request))
        next_url = self.next_url(request.query_params.get("next"))
        return self.page(request, "mfa_setup.html", session=self._nav(who),
                         csrf_token=self.csrf(who.session), next=next_url, pending=who.pending)

    def _nav(self, who: Enroller) -> Session | None:
        # The header's sign-out form is for active sessions; a pending one cancels instead.
        return None if who.pending else who.session

    # -- TOTP -----------------------------------------------------------------------------

    async def totp_form(self, request: Request) -> Response:
        """GET /mfa/totp/setup: a new secret as a QR code and as text."""
        who = await self.enroller(request)
        if isinstance(who, str):
            return self.refusal(request, who, here=self._here(request))
        secret = self.mfa.totp_new_secret()
        next_url = self.next_url(request.query_params.get("next"))
        return self._totp_page(request, who, secret=secret, next_url=next_url)

    def _totp_page(self, request: Request, who: Enroller, *, secret: str, next_url: str,
                   status: int = 200, message: str = "") -> Response:
        uri = self.mfa.totp_uri(secret=secret, username=who.user.username)
        return self.page(
            request, "mfa_totp_setup.html", status, session=self._nav(who),
            csrf_token=self.csrf(who.session), next=next_url, secret=secret,
            grouped=group_key(secret), qr_svg=self.mfa.totp_qr_svg(uri=uri),
            tag=self._tag(who.session, secret), message=message, pending=who.pending,
            replacing=who.summary.totp, username=who.user.username,
        )

    def _tag(self, session: Session, secret: str) -> str:
        return self.s.csrf.issue(f"totp-setup:{session.key}:{secret}")

    async def totp_bind(self, request: Request) -> Response:
        """POST /mfa/totp/setup: bind the secret once a code from it is right (TO-03)."""
        who = await self.enroller(request)
        if isinstance(who, str):
            return self.refusal(request, who, here=f"{self.prefix}/mfa/totp/setup")
        form = await self.form(request)
        if not self.csrf_ok(form.get("csrf_token"), who.session, path="mfa/totp/setup"):
            return self.pages._forbidden(request)
        next_url = self.next_url(form.get("next"))
        secret = form.get("secret", "")[:128]
        if not self.s.csrf.verify(form.get("tag"),
                                  binding=f"totp-setup:{who.session.key}:{secret}"):
            return self.pages._forbidden(request)
        try:
            await self.mfa.totp_enrol(user_id=who.user.id, secret=secret,
                                      code=form.get("code", "")[:32])
        except (InvalidCode, MfaUsageError):
            return self._totp_page(request, who, secret=secret, next_url=next_url, status=400,
                                   message=self.t(request, "mfa.error.invalid_setup_code"))
        return await self.after_enrol(request, who, method="otp", next_url=next_url)

    # -- passkeys (the page; the ceremony is in passkey_api) ------------------------------

    async def passkey_form(self, request: Request) -> Response:
        """GET /mfa/passkey/setup."""
        who = await self.enroller(request)
        if isinstance(who, str):
            return self.refusal(request, who, here=self._here(request))
        next_url = self.next_url(request.query_params.get("next"))
        return self.page(request, "mfa_passkey_setup.html", session=self._nav(who),
                         csrf_token=self.csrf(who.session), next=next_url, pending=who.pending)

    # -- recovery codes -------------------------------------------------------------------

    async def codes(self, request: Request) -> Response:
        """GET /mfa/codes: what recovery codes are, and the button that makes them."""
        session = await self.active(request)
        next_url = self.next_url(request.query_params.get("next") or f"{self.prefix}/security")
        if session is None:
            return self.refusal(request, "login", here=self._here(request))
        summary = await self.mfa.summary(user_id=session.user_id)
        return self.page(request, "mfa_codes.html", session=session,
                         csrf_token=self.csrf(session), next=next_url,
                         remaining=summary.recovery_remaining, codes=None)

    async def codes_generate(self, request: Request) -> Response:
        """POST /mfa/codes: a new set, shown once (RC-03); the old set stops working."""
        session = await self.active(request)
        if session is None:
            return self.refusal(request, "login", here=f"{self.prefix}/mfa/codes")
        form = await self.form(request)
        if not self.csrf_ok(form.get("csrf_token"), session, path="mfa/codes"):
            return self.pages._forbidden(request)
        next_url = self.next_url(form.get("next") or f"{self.prefix}/security")
        summary = await self.mfa.summary(user_id=session.user_id)
        if not self.fresh(session, has_second_factor=summary.has_second_factor):
            return self.reauthenticate(self.codes_url(next_url))
        codes = await self.mfa.recovery_generate(user_id=session.user_id)
        response = self.page(request, "mfa_codes.html", session=session,
                             csrf_token=self.csrf(session), next=next_url, codes=codes,
                             remaining=len(codes))
        response.headers["cache-control"] = "no-store"
        return response
