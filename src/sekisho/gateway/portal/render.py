"""Jinja2 rendering for portal pages, with the language and CSP nonce of the request."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from sekisho.gateway.i18n import negotiate, translate

_env = Environment(
    loader=PackageLoader("sekisho.gateway", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)


def language(request: Request, cookie_name: str) -> str:
    return negotiate(
        query=request.query_params.get("lang"),
        cookie=request.cookies.get(cookie_name),
        accept_language=request.headers.get("accept-language"),
    )


def render(
    request: Request,
    template: str,
    *,
    lang: str,
    prefix: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    def t(key: str) -> str:
        return translate(lang, key)

    nonce = request.scope.get("state", {}).get("csp_nonce", "")
    context.setdefault("session", None)
    html = _env.get_template(template).render(
        t=t, lang=lang, prefix=prefix, nonce=nonce, **context
    )
    return HTMLResponse(html, status_code=status)
