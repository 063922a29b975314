"""The JSON endpoints behind static/webauthn.js: options and verification for passkey
sign-in without a password, passkeys as the second factor, and registration.

Every call is a same-origin POST (CR-02) with a CSRF token in ``X-CSRF-Token`` (CR-01):
before login the login form's token, bound to the pre-login cookie; after, the session's.
The challenge's ``binding`` is the store key of what the ceremony belongs to: the SHA-256 of
the pre-login cookie, or the session key (WA-01). RP ID and origins come from the settings,
never from the request (WA-02, in the MFA facade).

Passwordless sign-in is not stopped by the password lockout (RL-07): option issuance has its
own budget (``passkey_options``, RL-09), counted per client address since there is no
account yet. Every failed assertion gets the same answer (WA-09), and none tells whether an
account exists. A verified passkey (user verification required, WA-03) is multi-factor on its
own: the session's ``amr`` is ``("hwk", "mfa")`` (RFC 8176), and it lifts the account's
password lock (RL-07). As a second factor the ``amr`` is ``("pwd", "hwk")``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sekisho.auth.mfa.errors import DuplicateCredential, InvalidName, MfaError
from sekisho.auth.sessions import Session, token_key
from sekisho.gateway.portal.attempts import Attempt
from sekisho.gateway.portal.mfa_base import CSRF_HEADER, MfaBase
from sekisho.gateway.portal.mfa_enrol import Enroller, MfaEnrol
from sekisho.gateway.portal.mfa_login import MfaLogin
from sekisho.gateway.portal.self_unlock import self_unlock
from sekisho.store.users import User


def as_json(redirect: Response) -> JSONResponse:
    """A redirect made by the session code, as the JSON answer a script follows; the
    cookies it sets are kept."""
    out = JSONResponse({"redirect": redirect.headers["location"]})
    for value in redirect.headers.getlist("set-cookie"):
        out.headers.append("set-cookie", value)
    return out


def _credential(data: dict[str, Any]) -> str:
    credential = data.get("credential")
    return json.dumps(credential) if isinstance(credential, dict) else ""


class PasskeyApi(MfaBase):
    def __init__(self, login: MfaLogin, enrol: MfaEnrol) -> None:
        super().__init__(login.pages, clock=login.clock)
        self.login = login
        self.enrol = enrol

    def _options(self, text: str) -> Response:
        return Response(text, media_type="application/json")

    async def _budget(self, request: Request, account: str) -> Response | None:
        """RL-09: option issuance is limited; None when this request may have a challenge."""
        attempt = Attempt(
            username=account, client_ip=request.scope.get("sekisho.client_ip", ""),
            user_agent=request.headers.get("user-agent", "")[:256], device=None,
            factor="passkey_options")
        decision = await self.pages.attempts.before(attempt)
        if decision.allowed:
            return None
        return self.json_error(request, "throttled_passkey", 429,
                               retry_after=max(1, decision.retry_after))

    # -- sign in without a password -------------------------------------------------------

    def _pre_binding(self, request: Request) -> str | None:
        pre = request.cookies.get(self.s.cookies.pre, "")
        token = request.headers.get(CSRF_HEADER)
        if not pre or not self.s.csrf.verify(token, binding="login:" + pre):
            return None
        return token_key(pre)

    async def login_options(self, request: Request) -> Response:
        """POST /webauthn/login/options: a usernameless challenge (WA-03)."""
        await self.read_json(request)
        binding = self._pre_binding(request)
        if binding is None:
            return self.json_error(request, "csrf", 403)
        client_ip = request.scope.get("sekisho.client_ip", "")
        refused = await self._budget(request, f"passkey-login@{client_ip}")
        if refused is not None:
            return refused
        return self._options(await self.mfa.passkey_authentication_options(
            user=None, binding=binding, passwordless=True))

    async def login_verify(self, request: Request) -> Response:
        """POST /webauthn/login/verify: the assertion; an active session on success."""
        data = await self.read_json(request)
        binding = self._pre_binding(request)
        if binding is None:
            return self.json_error(request, "csrf", 403)
        try:
            user_id = await self.mfa.passkey_authenticate(
                binding=binding, response_json=_credential(data), user=None, passwordless=True)
        except MfaError:
            user_id = None
        user = None if user_id is None else await self.s.users.get(user_id)
        if user is None or user.disabled:
            # One answer for an unknown passkey, a bad signature, a disabled account (WA-09).
            await self.audit(request, "authn_login_fail", user_id=None, factor="passkey")
            return self.json_error(request, "passkey_failed", 401)
        await self_unlock(self, request, user, via="passkey")
        await self.audit(request, "authn_login_success", user_id=user.id, factor="passkey",
                         mode="usernameless")
        next_url = self.next_url(str(data.get("next") or ""))
        return as_json(await self.pages._start_session(
            request, user=user, next_url=next_url, amr=("hwk", "mfa")))

    # -- the second factor ----------------------------------------------------------------

    async def mfa_options(self, request: Request) -> Response:
        """POST /webauthn/mfa/options: a challenge for the pending session's user."""
        await self.read_json(request)
        found = await self._pending_user(request)
        if isinstance(found, Response):
            return found
        session, user = found
        refused = await self._budget(request, session.username)
        if refused is not None:
            return refused
        return self._options(await self.mfa.passkey_authentication_options(
            user=user, binding=session.key, passwordless=False))

    async def mfa_verify(self, request: Request) -> Response:
        """POST /webauthn/mfa/verify: the assertion completes the login (LF-06)."""
        data = await self.read_json(request)
        found = await self._pending_user(request)
        if isinstance(found, Response):
            return found
        session, user = found
        try:
            owner = await self.mfa.passkey_authenticate(
                binding=session.key, response_json=_credential(data), user=user,
                passwordless=False)
        except MfaError:
            owner = None
        if owner != user.id:
            await self.audit(request, "authn_login_fail", user_id=user.id, factor="passkey")
            return self.json_error(request, "passkey_failed", 401)
        await self.audit(request, "authn_login_success", user_id=user.id, factor="passkey")
        next_url = self.next_url(str(data.get("next") or ""))
        return as_json(await self.login.complete(
            request, session, user, amr=("pwd", "hwk"), next_url=next_url))

    async def _pending_user(self, request: Request) -> tuple[Session, User] | Response:
        """The pending session (LF-06) and its user for the second-factor calls, or the
        error to answer: an expired session, or a bad CSRF header."""
        session = await self.pending(request)
        if session is not None and not self.csrf_ok(
                request.headers.get(CSRF_HEADER), session, path="webauthn/mfa"):
            return self.json_error(request, "csrf", 403)
        user = None if session is None else await self.user_of(session)
        if session is None or user is None:
            return self.json_error(request, "session_expired", 401,
                                   redirect=f"{self.prefix}/login")
        return session, user

    # -- registration ---------------------------------------------------------------------

    async def _enroller(self, request: Request) -> Enroller | Response:
        who = await self.enrol.enroller(request)
        if isinstance(who, str):
            if who == "step_up":
                return self.json_error(request, "step_up", 403, redirect=self.step_up.login_url(
                    f"{self.prefix}/mfa/passkey/setup"))
            return self.json_error(request, "session_expired", 401,
                                   redirect=f"{self.prefix}/login")
        if not self.csrf_ok(request.headers.get(CSRF_HEADER), who.session,
                            path="webauthn/register"):
            return self.json_error(request, "csrf", 403)
        return who

    async def register_options(self, request: Request) -> Response:
        """POST /webauthn/register/options (WA-05: fresh session only)."""
        await self.read_json(request)
        who = await self._enroller(request)
        if isinstance(who, Response):
            return who
        refused = await self._budget(request, who.session.username)
        if refused is not None:
            return refused
        return self._options(await self.mfa.passkey_registration_options(
            user=who.user, binding=who.session.key))

    async def register_verify(self, request: Request) -> Response:
        """POST /webauthn/register/verify: bind the new passkey."""
        data = await self.read_json(request)
        who = await self._enroller(request)
        if isinstance(who, Response):
            return who
        name = data.get("name")
        try:
            await self.mfa.passkey_register(
                user=who.user, binding=who.session.key, response_json=_credential(data),
                name=name if isinstance(name, str) else "")
        except DuplicateCredential:
            return self.json_error(request, "duplicate_credential", 409)
        except InvalidName:
            return self.json_error(request, "invalid_name", 400)
        except MfaError:
            return self.json_error(request, "passkey_failed", 400)
        next_url = self.next_url(str(data.get("next") or ""))
        response = await self.enrol.after_enrol(request, who, method="hwk", next_url=next_url)
        return as_json(response)
