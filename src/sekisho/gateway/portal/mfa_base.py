"""What every MFA portal handler shares: the session a request carries (pending or active),
CSRF for forms and for script calls, JSON bodies, rate-limit answers, audit.

The MFA handlers are built on :class:`~sekisho.gateway.portal.pages.Pages` (rendering, the
device cookie, ``_start_session``) so that every way in ends in the same session rotation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from sekisho.audit.events import AuditEvent
from sekisho.auth.mfa.service import Mfa
from sekisho.auth.sessions import Session
from sekisho.errors import BadRequest
from sekisho.gateway.i18n import translate
from sekisho.gateway.portal.attempts import Attempt
from sekisho.gateway.portal.forms import TooLarge, check_same_origin, read_form
from sekisho.gateway.portal.pages import Pages, _duration
from sekisho.gateway.portal.render import language
from sekisho.gateway.portal.step_up import StepUp
from sekisho.ratelimit.decision import Decision
from sekisho.store.users import User

log = logging.getLogger("sekisho.portal.mfa")

CSRF_HEADER = "x-csrf-token"


class MfaBase:
    def __init__(self, pages: Pages, *, clock: Callable[[], float] = time.time) -> None:
        self.pages = pages
        self.s = pages.s
        self.prefix = pages.prefix
        self.clock = clock
        self.step_up = StepUp(prefix=pages.prefix, clock=clock,
                              max_age=self.s.settings.mfa.step_up_max_age)

    @property
    def mfa(self) -> Mfa:
        return self.s.mfa

    # -- sessions -----------------------------------------------------------------------

    async def session(self, request: Request) -> Session | None:
        """The live session of the cookie, in any state."""
        token = request.cookies.get(self.s.cookies.session)
        if not token or len(token) > 64:
            return None
        return await self.s.sessions.resolve(token)

    async def pending(self, request: Request) -> Session | None:
        """The password-verified, second-factor-pending session (LF-06), if that is what the
        request carries."""
        session = await self.session(request)
        return session if session is not None and session.state == "pending" else None

    async def active(self, request: Request) -> Session | None:
        return await self.pages.current(request)

    async def user_of(self, session: Session) -> User | None:
        """The session's user, or None when it was deleted or disabled meanwhile."""
        user = await self.s.users.get(session.user_id)
        return None if user is None or user.disabled else user

    def fresh(self, session: Session, *, has_second_factor: bool) -> bool:
        return self.step_up.fresh(session, has_second_factor=has_second_factor)

    def reauthenticate(self, next_path: str) -> Response:
        """Send the browser through a new login (SE-08); it comes back to ``next_path``."""
        return RedirectResponse(self.step_up.login_url(next_path), status_code=303)

    def to_login(self) -> Response:
        return RedirectResponse(f"{self.prefix}/login", status_code=303)

    # -- forms and JSON ---------------------------------------------------------------------

    async def form(self, request: Request) -> dict[str, str]:
        check_same_origin(request, origins=self.pages.same_origin)
        return await read_form(request, limit=self.s.settings.server.max_body_bytes_portal)

    def csrf_ok(self, token: str | None, session: Session, *, path: str) -> bool:
        if self.s.csrf.verify(token, binding=session.key):
            return True
        log.warning("malicious_csrf", extra={"event": "malicious_csrf", "path": path})
        return False

    def csrf(self, session: Session) -> str:
        return self.s.csrf.issue(session.key)

    async def read_json(self, request: Request) -> dict[str, Any]:
        """A JSON object body from a same-origin script (CR-02), size-capped before parsing."""
        check_same_origin(request, origins=self.pages.same_origin)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise BadRequest("expected application/json")
        limit = self.s.settings.server.max_body_bytes_portal
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise TooLarge("request body too large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise TooLarge("request body too large")
        try:
            data = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("body is not JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        return data

    def json_error(self, request: Request, code: str, status: int, *,
                   retry_after: int | None = None, **extra: Any) -> JSONResponse:
        lang = self.lang(request)
        body = {"error": code, "message": translate(lang, f"mfa.error.{code}"), **extra}
        response = JSONResponse(body, status_code=status)
        if retry_after is not None:
            response.headers["retry-after"] = str(retry_after)
        return response

    # -- pages ------------------------------------------------------------------------------

    def lang(self, request: Request) -> str:
        return language(request, self.s.cookies.lang)

    def t(self, request: Request, key: str) -> str:
        return translate(self.lang(request), key)

    def page(self, request: Request, template: str, status: int = 200, **ctx: Any) -> Response:
        return self.pages._page(request, template, status, **ctx)

    def next_url(self, value: str | None) -> str:
        return self.pages._next(value)

    def throttled_message(self, request: Request, decision: Decision) -> str:
        lang = self.lang(request)
        if decision.reason == "disabled":
            return translate(lang, "mfa.error.factor_locked")
        wait = _duration(max(1, decision.retry_after), lang)
        return translate(lang, "mfa.error.throttled").format(wait=wait)

    # -- attempts and audit -------------------------------------------------------------

    def attempt(self, request: Request, username: str, factor: str) -> Attempt:
        return Attempt(
            username=username, client_ip=request.scope.get("sekisho.client_ip", ""),
            user_agent=request.headers.get("user-agent", "")[:256],
            device=self.pages._device(request, username), factor=factor,
        )

    async def audit(self, request: Request, event: str, *, user_id: int | None,
                    factor: str | None = None, **details: Any) -> None:
        await self.s.auditor.record(AuditEvent(
            event=event, account=None if user_id is None else str(user_id), factor=factor,
            client_ip=request.scope.get("sekisho.client_ip", ""),
            user_agent=request.headers.get("user-agent", "")[:256],
            details=details or None,
        ))
