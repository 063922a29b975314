"""Who may use the admin pages and API (AD-04, AD-05), checked on the server for every request.

Two ways in:

- **A portal session** (pages and API): the session must be active and unrestricted, its
  user in one of ``admin.groups``, and pass :func:`require_admin_mfa`. State-changing
  requests also carry the admin CSRF token (a form field on the pages, the ``X-CSRF-Token``
  header on the API), an HMAC of ``"admin:" + session key`` (CR-01) — a different token
  from the logout form's, so the one cannot be replayed as the other.
- **A bearer token** (API only): ``Authorization: Bearer <token>`` whose SHA-256 is listed
  in ``admin.api_token_sha256``, compared in constant time against every listed digest.
  Browsers never send it on their own, so it needs no CSRF token. Its actor is
  ``api-token:<first 8 hex of the digest>``.

Refusals are :class:`AdminRefused` subclasses carrying the HTTP status and a short code the
API returns as ``error``; each is logged as ``authz_fail`` (log only, AU-02).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request

from sekisho.audit.admin_actions import Origin
from sekisho.audit.events import AuditEvent
from sekisho.auth.sessions import Session
from sekisho.config.admin import AdminSettings
from sekisho.errors import SekishoError
from sekisho.gateway.services import Services

__all__ = [
    "AdminGate", "AdminPrincipal", "AdminRefused", "CsrfRefused", "InvalidToken",
    "MfaRequired", "NotAdmin", "NotSignedIn", "admin_csrf_binding", "is_admin",
    "match_token", "require_admin_mfa", "token_digest",
]

_BEARER = re.compile(r"Bearer +([A-Za-z0-9._~+/=-]{16,256})", re.IGNORECASE)
_PASSWORD_ONLY = frozenset({"pwd"})


class AdminRefused(SekishoError):
    """An admin request refused; ``status`` and ``code`` say how to answer it."""

    status = 403
    code = "forbidden"


class NotSignedIn(AdminRefused):
    status, code = 401, "unauthenticated"


class InvalidToken(AdminRefused):
    status, code = 401, "invalid_token"


class NotAdmin(AdminRefused):
    status, code = 403, "forbidden"


class MfaRequired(AdminRefused):
    status, code = 403, "mfa_required"


class CsrfRefused(AdminRefused):
    status, code = 403, "csrf"


@dataclass(frozen=True, slots=True)
class AdminPrincipal:
    """An admin, as the audit trail names them (``actor``)."""

    actor: str
    session: Session | None  # None: a bearer token


def is_admin(session: Session, *, settings: AdminSettings) -> bool:
    """An active, unrestricted session of a user in one of the admin groups."""
    return (session.state == "active" and not session.restriction
            and not set(settings.groups).isdisjoint(session.groups))


def require_admin_mfa(session: Session, *, settings: AdminSettings) -> None:
    """The one place where "admins need MFA" (AD-04) is decided.

    With ``admin.require_mfa`` the session must have been authenticated with something
    beyond a password: its ``amr`` (RFC 8176) names another method than ``pwd`` (``otp``,
    ``hwk``, ``swk`` ...). When phishing-resistant MFA is to be demanded, narrow it here."""
    if settings.require_mfa and not set(session.amr) - _PASSWORD_ONLY:
        raise MfaRequired("admin pages need a sign-in with a second factor")


def admin_csrf_binding(session: Session) -> str:
    return "admin:" + session.key


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def match_token(token: str, *, digests: Iterable[str]) -> str | None:
    """The listed digest of ``token``, or None. Every digest is compared, in constant time."""
    presented = token_digest(token).encode("ascii")
    found: str | None = None
    for digest in digests:
        if hmac.compare_digest(presented, digest.encode("ascii")):
            found = digest
    return found


class AdminGate:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.settings = services.settings.admin

    async def current(self, request: Request) -> Session | None:
        token = request.cookies.get(self.s.cookies.session)
        if not token or len(token) > 64:
            return None
        session = await self.s.sessions.resolve(token)
        return session if session is not None and session.state == "active" else None

    async def admin(self, request: Request, session: Session | None) -> AdminPrincipal:
        """The admin behind ``session``, or the refusal (logged as ``authz_fail``)."""
        if session is None:
            raise NotSignedIn("sign in first")
        try:
            if not is_admin(session, settings=self.settings):
                raise NotAdmin("this account is not an admin")
            require_admin_mfa(session, settings=self.settings)
        except AdminRefused as exc:
            await self.refused(request, exc, account=str(session.user_id))
            raise
        return AdminPrincipal(actor=f"portal:{session.username}", session=session)

    async def api(self, request: Request) -> AdminPrincipal:
        """A bearer token when an Authorization header is sent, else the session."""
        header = request.headers.get("authorization")
        if header is None:
            return await self.admin(request, await self.current(request))
        match = _BEARER.fullmatch(header.strip())
        digest = None if match is None else match_token(
            match.group(1), digests=self.settings.api_token_sha256)
        if digest is None:
            exc = InvalidToken("the bearer token is not valid")
            await self.refused(request, exc)
            raise exc
        return AdminPrincipal(actor=f"api-token:{digest[:8]}", session=None)

    def csrf_token(self, principal: AdminPrincipal) -> str:
        """The admin CSRF token of a session principal ("" for a bearer token)."""
        if principal.session is None:
            return ""
        return self.s.csrf.issue(admin_csrf_binding(principal.session))

    async def check_csrf(
        self, request: Request, principal: AdminPrincipal, token: str | None
    ) -> None:
        """Refuse a state change by a session whose request lacks its admin CSRF token."""
        if principal.session is None:
            return
        if not self.s.csrf.verify(token, binding=admin_csrf_binding(principal.session)):
            exc = CsrfRefused("missing or wrong CSRF token")
            await self.record(request, "malicious_csrf", account=str(principal.session.user_id),
                              why=exc.code)
            raise exc

    async def refused(
        self, request: Request, exc: AdminRefused, *, account: str | None = None
    ) -> None:
        if isinstance(exc, NotSignedIn):
            return  # anonymous visitors are sent to the login page; nothing to record
        await self.record(request, "authz_fail", account=account, why=exc.code)

    async def record(
        self, request: Request, event: str, *, account: str | None, why: str
    ) -> None:
        origin = origin_of(request)
        await self.s.auditor.record(AuditEvent(
            event=event, account=account, client_ip=origin.client_ip,
            user_agent=origin.user_agent, details={"path": request.url.path[:256], "why": why},
        ))


def origin_of(request: Request) -> Origin:
    return Origin(client_ip=request.scope.get("sekisho.client_ip") or None,
                  user_agent=request.headers.get("user-agent", "")[:256] or None)
