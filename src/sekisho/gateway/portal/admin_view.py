"""What every admin page shares: the admin check, rendering in the portal's look, error pages,
and the checks in front of every admin form post (CR-01, CR-02, AD-05)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sekisho.gateway.i18n import translate
from sekisho.gateway.portal.admin_auth import (
    AdminGate,
    AdminPrincipal,
    AdminRefused,
    MfaRequired,
    NotSignedIn,
)
from sekisho.gateway.portal.forms import check_same_origin, read_form
from sekisho.gateway.portal.render import language, render
from sekisho.gateway.redirects import origins_for
from sekisho.gateway.services import Services
from sekisho.store.lockouts import LockoutRepository

__all__ = ["AdminView", "when"]


def when(value: datetime | float | None) -> str:
    """A time (or a Unix timestamp) as admin pages show it: UTC, to the second."""
    if value is None:
        return "-"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


class AdminView:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.gate = AdminGate(services)
        self.prefix = services.settings.server.portal_prefix
        self.base = f"{self.prefix}/admin"
        self.same_origin = origins_for(services.settings.server.public_origins)
        self.repo = LockoutRepository(services.database)

    def lang(self, request: Request) -> str:
        return language(request, self.s.cookies.lang)

    async def principal(self, request: Request) -> AdminPrincipal | Response:
        """The admin making this request, or the response that refuses it: anonymous
        visitors go to the login page and come back here, others get a 403 page."""
        try:
            return await self.gate.admin(request, await self.gate.current(request))
        except NotSignedIn:
            target = request.url.path if request.method in ("GET", "HEAD") else f"{self.base}/"
            if request.method == "GET" and request.url.query:
                target += "?" + request.url.query
            return RedirectResponse(f"{self.prefix}/login?next={quote(target, safe='')}",
                                    status_code=303)
        except AdminRefused as exc:
            key = "admin.error.mfa_required" if isinstance(exc, MfaRequired) else (
                "admin.error.forbidden")
            return self.error(request, 403, key)

    async def form_post(
        self, request: Request
    ) -> tuple[AdminPrincipal, dict[str, str]] | Response:
        """An admin form post that passed the admin, origin (CR-02) and CSRF (CR-01) checks,
        with its fields; or the refusal. Nothing has changed when a refusal is returned."""
        who = await self.principal(request)
        if isinstance(who, Response):
            return who
        check_same_origin(request, origins=self.same_origin)  # BadRequest: the portal's 403
        form = await read_form(request, limit=self.s.settings.server.max_body_bytes_portal)
        try:
            await self.gate.check_csrf(request, who, form.get("csrf_token"))
        except AdminRefused:
            return self.error(request, 403, "error.403", who=who)
        return who, form

    def page(
        self, request: Request, template: str, who: AdminPrincipal, *, status: int = 200,
        **ctx: Any,
    ) -> Response:
        lang = self.lang(request)
        session = who.session
        response = render(
            request, template, lang=lang, prefix=self.prefix, status=status,
            session=session, admin=self.base, when=when, actor=who.actor,
            csrf_token="" if session is None else self.s.csrf.issue(session.key),
            admin_csrf=self.gate.csrf_token(who), **ctx,
        )
        if request.query_params.get("lang") == lang:
            response.headers.append("set-cookie", self.s.cookies.set(self.s.cookies.lang, lang))
        return response

    def error(
        self, request: Request, status: int, key: str, *, who: AdminPrincipal | None = None
    ) -> Response:
        lang = self.lang(request)
        session = None if who is None else who.session
        return render(
            request, "error.html", lang=lang, prefix=self.prefix, status=status,
            message=translate(lang, key), session=session,
            csrf_token="" if session is None else self.s.csrf.issue(session.key),
        )

    @staticmethod
    def link(path: str, params: dict[str, str]) -> str:
        query = urlencode({k: v for k, v in params.items() if v})
        return f"{path}?{query}" if query else path
