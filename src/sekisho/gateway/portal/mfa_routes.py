"""The MFA part of the portal, assembled: handlers, routes, and the hooks it sets on the
password login (the second step) and on the change-password page (step-up, PW-14).

Routes (under ``server.portal_prefix``)::

    GET  /mfa                         the second-factor page of a pending login (LF-06)
    POST /mfa/totp | /mfa/recovery    a TOTP or recovery code for it
    POST /mfa/cancel                  give the pending login up
    GET  /mfa/setup                   choose what to enrol
    GET  /mfa/totp/setup, POST        enrol an authenticator app (TO-03)
    GET  /mfa/passkey/setup           enrol a passkey (the ceremony: /webauthn/register/*)
    GET  /mfa/codes, POST             recovery codes: explain, create and show once (RC-03)
    POST /webauthn/login/options|verify      passkey sign-in without a password (WA-03)
    POST /webauthn/mfa/options|verify        passkey as the second factor
    POST /webauthn/register/options|verify   passkey registration (WA-05)
    GET  /security                    factors and sessions (SE-07)
    POST /security/totp/remove, /security/passkeys/rename|delete,
         /security/sessions/end|end-others
    GET  /recover, POST               recovery code plus password (RC-06, RL-07)
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.routing import BaseRoute, Route

from sekisho.auth.sessions import Session
from sekisho.gateway.portal.mfa_base import MfaBase
from sekisho.gateway.portal.mfa_enrol import MfaEnrol
from sekisho.gateway.portal.mfa_login import MfaLogin
from sekisho.gateway.portal.pages import Pages
from sekisho.gateway.portal.passkey_api import PasskeyApi
from sekisho.gateway.portal.recover_page import RecoverPage
from sekisho.gateway.portal.security_page import SecurityPage

__all__ = ["MfaPortal", "PasswordStepUp"]


class PasswordStepUp:
    """The change-password page's step-up hook (PW-14, SE-08). A session that is not fresh
    is sent through a new login (password and second factor) rather than asked for a code
    inline, so passkey-only users are served the same way: ``redirect`` says where."""

    def __init__(self, base: MfaBase) -> None:
        self._base = base

    async def required(self, session: Session) -> bool:
        return False  # no inline code: see redirect()

    async def verify(self, session: Session, form: Mapping[str, str], *,
                     client_ip: str) -> bool:
        return True

    async def redirect(self, session: Session) -> str | None:
        """Where to re-authenticate before changing the password, or None when fresh."""
        if session.restriction:
            return None  # straight from a login whose password must change (PW-12)
        summary = await self._base.mfa.summary(user_id=session.user_id)
        if self._base.fresh(session, has_second_factor=summary.has_second_factor):
            return None
        return self._base.step_up.login_url(f"{self._base.prefix}/password")


class MfaPortal:
    def __init__(self, pages: Pages) -> None:
        clock = pages.s.clock
        self.login = MfaLogin(pages, clock=clock)
        self.enrol = MfaEnrol(self.login)
        self.passkeys = PasskeyApi(self.login, self.enrol)
        self.security = SecurityPage(pages, clock=clock)
        self.recover = RecoverPage(pages, clock=clock)
        self.password_step_up = PasswordStepUp(self.login)
        pages.after_password = self.login.after_password  # the second step (LF-06)

    def routes(self) -> list[BaseRoute]:
        p = self.login.prefix
        login, enrol, api, sec = self.login, self.enrol, self.passkeys, self.security
        get, post = ["GET", "HEAD"], ["POST"]
        return [
            Route(f"{p}/mfa", login.choose, methods=get),
            Route(f"{p}/mfa/totp", login.totp, methods=post),
            Route(f"{p}/mfa/recovery", login.recovery, methods=post),
            Route(f"{p}/mfa/cancel", login.cancel, methods=post),
            Route(f"{p}/mfa/setup", enrol.setup, methods=get),
            Route(f"{p}/mfa/totp/setup", enrol.totp_form, methods=get),
            Route(f"{p}/mfa/totp/setup", enrol.totp_bind, methods=post),
            Route(f"{p}/mfa/passkey/setup", enrol.passkey_form, methods=get),
            Route(f"{p}/mfa/codes", enrol.codes, methods=get),
            Route(f"{p}/mfa/codes", enrol.codes_generate, methods=post),
            Route(f"{p}/webauthn/login/options", api.login_options, methods=post),
            Route(f"{p}/webauthn/login/verify", api.login_verify, methods=post),
            Route(f"{p}/webauthn/mfa/options", api.mfa_options, methods=post),
            Route(f"{p}/webauthn/mfa/verify", api.mfa_verify, methods=post),
            Route(f"{p}/webauthn/register/options", api.register_options, methods=post),
            Route(f"{p}/webauthn/register/verify", api.register_verify, methods=post),
            Route(f"{p}/security", sec.show, methods=get),
            Route(f"{p}/security/totp/remove", sec.totp_remove, methods=post),
            Route(f"{p}/security/passkeys/rename", sec.passkey_rename, methods=post),
            Route(f"{p}/security/passkeys/delete", sec.passkey_delete, methods=post),
            Route(f"{p}/security/sessions/end", sec.end_session, methods=post),
            Route(f"{p}/security/sessions/end-others", sec.end_others, methods=post),
            Route(f"{p}/recover", self.recover.show, methods=get),
            Route(f"{p}/recover", self.recover.recover, methods=post),
        ]
