"""Login, logout and the account page."""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sekisho.auth.login import authenticate
from sekisho.auth.session_manager import Principal
from sekisho.auth.sessions import Session
from sekisho.errors import AuthenticationFailed, HasherBusy
from sekisho.gateway.i18n import translate
from sekisho.gateway.portal.attempts import Attempt, Attempts
from sekisho.gateway.portal.breach_gate import login_restriction
from sekisho.gateway.portal.forms import check_same_origin, read_form
from sekisho.gateway.portal.pow_gate import STATE_KEY, PowGate
from sekisho.gateway.portal.render import language, render
from sekisho.gateway.redirects import origins_for, safe_return_to
from sekisho.gateway.services import Services
from sekisho.ratelimit.decision import Decision
from sekisho.store.users import User

log = logging.getLogger("sekisho.portal")


class AfterPassword(Protocol):
    async def __call__(
        self, request: Request, *, user: User, next_url: str, restriction: str = ""
    ) -> Response: ...


class Pages:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.prefix = services.settings.server.portal_prefix
        self.home = f"{self.prefix}/"
        self.same_origin = origins_for(services.settings.server.public_origins)
        self.attempts = Attempts(services)
        self.pow_gate = PowGate(services)  # attack mode's proof of work (pow_gate.py)
        # What follows a verified password; the MFA portal sets its second step here
        # (mfa_login.py: a pending session and the MFA page, LF-06).
        self.after_password: AfterPassword = self._start_session

    async def current(self, request: Request, *, restricted: bool = False) -> Session | None:
        """The active session; one restricted to a single page (PW-12) only if asked for."""
        token = request.cookies.get(self.s.cookies.session)
        if not token:
            return None
        session = await self.s.sessions.resolve(token)
        if session is None or session.state != "active":
            return None
        return session if restricted or not session.restriction else None

    def _page(self, request: Request, template: str, status: int = 200, **ctx: Any) -> Response:
        lang = language(request, self.s.cookies.lang)
        response = render(request, template, lang=lang, prefix=self.prefix, status=status, **ctx)
        if request.query_params.get("lang") == lang:
            response.headers.append("set-cookie", self.s.cookies.set(self.s.cookies.lang, lang))
        return response

    def _next(self, value: str | None) -> str:
        return safe_return_to(value, allowed_origins=self.s.redirect_origins, fallback="/")

    async def login_form(self, request: Request) -> Response:
        next_url = self._next(request.query_params.get("next"))
        forced = request.query_params.get("prompt") == "login"  # re-authentication
        if not forced and await self.current(request) is not None:
            return RedirectResponse(next_url, status_code=303)
        notice = ""
        if request.query_params.get("logged_out") == "1":
            notice = translate(language(request, self.s.cookies.lang), "logout.done")
        await self.pow_gate.prepare(request)
        return self._login_page(request, next_url=next_url, notice=notice)

    def _login_page(
        self, request: Request, *, next_url: str, status: int = 200, message: str = "",
        username: str = "", notice: str = "",
    ) -> Response:
        # A fresh pre-session binding for the login CSRF token at every render (CR-01, SE-03).
        pre = secrets.token_urlsafe(16)
        response = self._page(
            request, "login.html", status, csrf_token=self.s.csrf.issue("login:" + pre),
            next=next_url, message=message, username=username, notice=notice,
            pow=getattr(request.state, STATE_KEY, None),
        )
        response.headers.append("set-cookie", self.s.cookies.set(self.s.cookies.pre, pre))
        return response

    async def login(self, request: Request) -> Response:
        check_same_origin(request, origins=self.same_origin)
        form = await read_form(request, limit=self.s.settings.server.max_body_bytes_portal)
        pre = request.cookies.get(self.s.cookies.pre, "")
        if not self.s.csrf.verify(form.get("csrf_token"), binding="login:" + pre):
            log.warning("malicious_csrf", extra={"event": "malicious_csrf", "path": "login"})
            return self._forbidden(request)
        next_url = self._next(form.get("next"))
        username = form.get("username", "")[:256]
        lang = language(request, self.s.cookies.lang)
        attempt = Attempt(
            username=username, client_ip=request.scope.get("sekisho.client_ip", ""),
            user_agent=request.headers.get("user-agent", "")[:256],
            device=self._device(request, username),
        )
        # Limits before any hashing: a refused attempt is never evaluated (RL-02).
        decision = await self.attempts.before(attempt)
        if not decision.allowed:
            return self._refused(request, decision, next_url=next_url, username=username)
        if (held := await self.pow_gate.hold(request, form, attempt)) is not None:
            return self._login_page(  # attack mode: no proof of work, nothing evaluated
                request, next_url=next_url, status=429, username=username, message=held)
        try:
            user = await authenticate(
                username=username,
                password=form.get("password", ""),
                users=self.s.users,
                passwords=self.s.passwords,
                priority=attempt.device is not None,  # known devices never queue behind attacks
            )
        except AuthenticationFailed:
            after = await self.attempts.failed(attempt)
            response = self._failed(request, next_url=next_url, username=username, lang=lang)
            if attempt.device is not None and not after.device:
                response.headers.append("set-cookie", self.s.cookies.clear(self.s.cookies.device))
            return response
        except HasherBusy as exc:
            response = self._login_page(
                request, next_url=next_url, status=503, username=username,
                message=translate(lang, "login.busy"),
            )
            response.headers["retry-after"] = str(exc.retry_after)
            return response
        await self.attempts.succeeded(attempt, user)
        restriction = await login_restriction(  # PW-12: a breached password quarantines
            self.s, user=user, password=form.get("password", ""),
            client_ip=attempt.client_ip, user_agent=attempt.user_agent)
        return await self.after_password(
            request, user=user, next_url=next_url, restriction=restriction)

    def _device(self, request: Request, username: str) -> str | None:
        return self.s.devices.verify(
            request.cookies.get(self.s.cookies.device), account=username, now=time.time(),
            max_age=self.s.settings.ratelimit.device_max_age,
        )

    def _refused(
        self, request: Request, decision: Decision, *, next_url: str, username: str
    ) -> Response:
        lang = language(request, self.s.cookies.lang)
        if decision.reason == "disabled":
            # A disabled authenticator looks like any other failure (invariant 1); the help
            # text on the page says where to turn.
            return self._failed(request, next_url=next_url, username=username, lang=lang)
        wait = _duration(decision.retry_after, lang)
        response = self._login_page(
            request, next_url=next_url, status=429, username=username,
            message=translate(lang, "login.throttled").format(wait=wait),
        )
        response.headers["retry-after"] = str(decision.retry_after)
        return response

    def _failed(self, request: Request, *, next_url: str, username: str, lang: str) -> Response:
        # One response for every failure (LF-01): same status, body shape and cookies.
        return self._login_page(
            request, next_url=next_url, status=401, username=username,
            message=translate(lang, "login.failed"),
        )

    async def _start_session(
        self, request: Request, *, user: User, next_url: str, amr: tuple[str, ...] = ("pwd",),
        restriction: str = "",
    ) -> Response:
        old = request.cookies.get(self.s.cookies.session)
        if old:
            await self.s.sessions.end(old)
        token, _ = await self.s.sessions.create(
            Principal(
                user_id=user.id, username=user.username, groups=tuple(user.groups),
                email=user.email or "", display_name=user.display_name or "",
            ),
            client_ip=request.scope.get("sekisho.client_ip", ""),
            user_agent=request.headers.get("user-agent", ""),
            amr=amr, restriction=restriction,
        )
        response = RedirectResponse(next_url, status_code=303)
        cookies = self.s.cookies
        response.headers.append("set-cookie", cookies.set(cookies.session, token))
        response.headers.append("set-cookie", cookies.clear(cookies.pre))
        # This browser now counts as a known device for this account (issue 3: the real user
        # keeps a way in while attackers elsewhere trip the account's limits).
        device = self.s.devices.issue(user.username, now=time.time())
        max_age = self.s.settings.ratelimit.device_max_age
        response.headers.append("set-cookie", cookies.set(cookies.device, device, max_age=max_age))
        return response

    async def logout(self, request: Request) -> Response:
        check_same_origin(request, origins=self.same_origin)
        form = await read_form(request, limit=self.s.settings.server.max_body_bytes_portal)
        token = request.cookies.get(self.s.cookies.session, "")
        session = await self.current(request, restricted=True)
        if session is None or not self.s.csrf.verify(form.get("csrf_token"), binding=session.key):
            if session is not None:
                log.warning("malicious_csrf", extra={"event": "malicious_csrf", "path": "logout"})
                return self._forbidden(request)
        else:
            await self.s.sessions.end(token)
        response = RedirectResponse(f"{self.prefix}/login?logged_out=1", status_code=303)
        response.headers.append("set-cookie", self.s.cookies.clear(self.s.cookies.session))
        response.headers["clear-site-data"] = '"cache", "cookies", "storage"'
        return response

    async def account(self, request: Request) -> Response:
        session = await self.current(request, restricted=True)
        if session is None:
            return RedirectResponse(f"{self.prefix}/login?next={self.home}", status_code=303)
        if session.restriction:  # the one page a restricted session may use
            return RedirectResponse(f"{self.prefix}/password", status_code=303)
        expires = datetime.fromtimestamp(session.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        apps = [
            {"name": u.name, "url": _app_url(u.hosts, u.path_prefix)}
            for u in self.s.settings.upstreams
            if not u.allow_groups or set(u.allow_groups) & set(session.groups)
        ]
        return self._page(
            request, "home.html", session=session, csrf_token=self.s.csrf.issue(session.key),
            expires=expires, apps=apps,
        )

    def _forbidden(self, request: Request) -> Response:
        lang = language(request, self.s.cookies.lang)
        return self._page(request, "error.html", 403, message=translate(lang, "error.403"))


def _duration(seconds: int, lang: str) -> str:
    if seconds < 60:
        return translate(lang, "unit.seconds").format(n=seconds)
    minutes = -(-seconds // 60)
    return translate(lang, "unit.minutes").format(n=minutes)


def _app_url(hosts: list[str], path_prefix: str) -> str:
    path = path_prefix if path_prefix.endswith("/") else path_prefix + "/"
    return f"//{hosts[0]}{path}" if hosts else path
