"""The gateway's front door: every request passes the guard, then goes to the portal or,
when the access rules allow it for this session, to an upstream (invariant 2).

Pure ASGI and allocation-light: this is the proxied hot path.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from sekisho.auth.sessions import Session
from sekisho.errors import ProxyError
from sekisho.gateway.admission import Admission
from sekisho.gateway.clientip import ClientIP
from sekisho.gateway.cookies import cookie_header, read_cookie
from sekisho.gateway.errorpages import send_error
from sekisho.gateway.guard import Guard
from sekisho.gateway.identity import Identity
from sekisho.gateway.proxy import UpstreamProxy
from sekisho.gateway.routing import Route, Router
from sekisho.gateway.services import Services

log = logging.getLogger("sekisho.gateway")


class Gateway:
    def __init__(
        self,
        services: Services,
        *,
        portal: ASGIApp,
        proxy: UpstreamProxy,
        router: Router,
        guard: Guard,
        client_ip: ClientIP,
    ) -> None:
        self.services = services
        self.portal = portal
        self.proxy = proxy
        self.router = router
        self.guard = guard
        self.client_ip = client_ip
        prefix = services.settings.server.portal_prefix
        self._prefix = prefix
        self._prefix_slash = prefix + "/"
        self._login = prefix + "/login?next="
        self._home = prefix + "/"
        self._cookie = services.cookies.session
        self.admission = Admission(services)  # password POSTs: the flood's cheap refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind not in ("http", "websocket"):
            return
        try:
            host = self.guard.check(scope)
        except ProxyError as exc:
            await self._refuse(scope, send, exc.status)
            return
        headers = scope["headers"]
        client = scope.get("client")
        client_ip = self.client_ip.resolve(client[0] if client else None, headers)
        scope["sekisho.client_ip"] = client_ip
        path: str = scope["path"]
        if path == self._prefix or path.startswith(self._prefix_slash):
            if self.admission.gated(scope):
                await self.admission(scope, receive, send, self.portal)
            else:
                await self.portal(scope, receive, send)
            return
        try:
            route = self.router.match(host, path)
        except ProxyError as exc:
            await self._refuse(scope, send, exc.status)
            return
        if route is None:
            await self._refuse(scope, send, 404)
            return
        session = await self._session(headers)
        identity = self._authorize(route, session, path)
        if identity is None and not _is_public(route, path):
            await self._deny(scope, send, session)
            return
        if kind == "websocket":
            await self.proxy.websocket(
                scope, receive, send, route=route, identity=identity, client_ip=client_ip,
                host=host,
            )
        else:
            await self.proxy.http(
                scope, receive, send, route=route, identity=identity, client_ip=client_ip,
                host=host,
            )

    async def _session(self, headers: list[tuple[bytes, bytes]]) -> Session | None:
        token = read_cookie(cookie_header(headers), self._cookie)
        if not token or len(token) > 64:
            return None
        session = await self.services.sessions.resolve(token)
        if session is None or session.state != "active":
            return None  # a pending (pre-MFA) session has no upstream access (LF-06)
        return session

    @staticmethod
    def _authorize(route: Route, session: Session | None, path: str) -> Identity | None:
        if session is None or session.restriction:
            return None  # a restricted session (PW-12) reaches the portal only
        allowed = route.upstream.allow_groups
        if allowed and not set(allowed).intersection(session.groups):
            return None
        return Identity(
            username=session.username,
            groups=session.groups,
            email=session.email,
            display_name=session.display_name,
        )

    async def _deny(self, scope: Scope, send: Send, session: Session | None) -> None:
        if session is not None and not session.restriction:
            await self._refuse(scope, send, 403)
            return
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and _wants_html(scope):
            target = scope["path"]
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            # A restricted session is sent to the portal home, which shows the one page it
            # may use (PW-12); an anonymous one to the login page.
            location = self._home if session else self._login + quote(target, safe="")
            await send({
                "type": "http.response.start",
                "status": 302,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            })
            await send({"type": "http.response.body", "body": b""})
            return
        await self._refuse(scope, send, 403 if session else 401)

    async def _refuse(self, scope: Scope, send: Send, status: int) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_error(send, status)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.services.start()
                    await self.proxy.start()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.admission.close()
                await self.proxy.close()
                await self.services.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _wants_html(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"text/html" in value
    return False


def _is_public(route: Route, path: str) -> bool:
    return any(
        path == p or path.startswith(p.rstrip("/") + "/") for p in route.upstream.public_paths
    )
