"""The portal: the gateway's own pages under ``server.portal_prefix`` (Starlette)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from sekisho.errors import BadRequest
from sekisho.gateway.i18n import translate
from sekisho.gateway.portal.admin_breaches import BreachPages
from sekisho.gateway.portal.admin_pages import admin_routes
from sekisho.gateway.portal.mfa_routes import MfaPortal
from sekisho.gateway.portal.pages import Pages
from sekisho.gateway.portal.password_pages import PasswordPages
from sekisho.gateway.portal.render import language, render
from sekisho.gateway.security_headers import SecurityHeaders
from sekisho.gateway.services import Services


def build_portal(services: Services) -> ASGIApp:
    pages = Pages(services)
    mfa = MfaPortal(pages)  # sets the login's second step (LF-06)
    password = PasswordPages(services, pages, step_up=mfa.password_step_up)  # PW-14
    prefix = services.settings.server.portal_prefix

    async def bad_request(request: Request, exc: Exception) -> Response:
        status = exc.status if isinstance(exc, BadRequest) else 400
        lang = language(request, services.cookies.lang)
        return render(
            request, "error.html", lang=lang, prefix=prefix, status=status,
            message=translate(lang, f"error.{status}"),
        )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route(f"{prefix}/login", pages.login_form, methods=["GET", "HEAD"]),
        Route(f"{prefix}/login", pages.login, methods=["POST"]),
        Route(f"{prefix}/logout", pages.logout, methods=["POST"]),
        Route(f"{prefix}/", pages.account, methods=["GET", "HEAD"]),
        Route(f"{prefix}/password", password.form, methods=["GET", "HEAD"]),
        Route(f"{prefix}/password", password.change, methods=["POST"]),
        Route(f"{prefix}/healthz", healthz, methods=["GET", "HEAD"]),
        Mount(f"{prefix}/static", StaticFiles(packages=[("sekisho.gateway", "static")])),
        *admin_routes(services),
        *BreachPages(services).routes(),
        *mfa.routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={BadRequest: bad_request})
    server = services.settings.server
    return SecurityHeaders(app, https=server.https, hsts_max_age=server.hsts_max_age)
