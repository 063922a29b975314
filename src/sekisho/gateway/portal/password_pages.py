"""The change-password page, ``{prefix}/password`` (PW-08, PW-09, PW-12, PW-13, PW-14).

GET shows the form; POST changes the password. It serves every signed-in session, and is the
one page a session restricted to ``change_password`` (a breached password at login, PW-12)
may use besides logout and static files.

A change, in order: same-origin check and a body cap (forms.py); the CSRF token bound to the
session; the confirmation; the regulator's limits (the current password is a password guess
like a login's, RL-02); the second factor when one is enrolled (the :class:`StepUp` hook,
PW-14); the current password (Argon2, counted as a failure when wrong); the policy (length,
context, common list, breach sources) with the reason, guidance and the strength estimate on
refusal (PW-09). Nothing costly (zxcvbn, Argon2, a breach source) runs before the limits are
checked. Then the new hash, the other sessions of the user ended when the user asks (the
default) or when the change is forced (:func:`forced_change`), a new session (new ID, no
restriction), and an ``authn_password_change`` event that says which.

``intent=check`` runs the local rules and the strength estimate only: nothing is verified,
changed or sent to a breach source. Typed passwords are never written back into the page.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sekisho.audit.events import AuditEvent
from sekisho.auth.breach.checker import build_policy
from sekisho.auth.passwords import normalize
from sekisho.auth.policy import PasswordBreached
from sekisho.auth.session_manager import Principal
from sekisho.auth.sessions import Session
from sekisho.auth.strength import Strength, estimate
from sekisho.errors import HasherBusy, PasswordRejected
from sekisho.gateway.i18n import translate
from sekisho.gateway.portal.attempts import Attempt, Attempts
from sekisho.gateway.portal.breach_gate import CHANGE_PASSWORD
from sekisho.gateway.portal.forms import check_same_origin, read_form
from sekisho.gateway.portal.pages import Pages
from sekisho.gateway.portal.password_view import changed_notice, result_query, strength_view
from sekisho.gateway.portal.render import language, render
from sekisho.gateway.services import Services
from sekisho.store.users import User

__all__ = ["PasswordPages", "StepUp", "forced_change"]

log = logging.getLogger("sekisho.portal")


class StepUp(Protocol):
    """MFA step-up for a password change (PW-14: "a fresh second factor"). Not built here:
    the MFA module passes one to :class:`PasswordPages`. ``required`` decides whether the page
    asks for a code (field ``second_factor``); ``verify`` checks the posted form."""

    async def required(self, session: Session) -> bool: ...

    async def verify(
        self, session: Session, form: Mapping[str, str], *, client_ip: str
    ) -> bool: ...

    async def redirect(self, session: Session) -> str | None:
        """Where to re-authenticate first (SE-08: a stale session), or None."""


def forced_change(session: Session, user: User) -> bool:
    """Whether this change is forced by evidence of compromise (PW-06, PW-12): a session
    quarantined at login, or the account flagged ``compromised``. The other sessions then
    always end, whatever the form says: they may be the attacker's."""
    return session.restriction == CHANGE_PASSWORD or user.compromised


class _Refusal(Exception):
    def __init__(
        self, reason: str, status: int = 400, retry_after: int = 0,
        strength: Strength | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after
        self.strength = strength


class PasswordPages:
    def __init__(self, services: Services, pages: Pages, *, step_up: StepUp | None = None):
        self.s = services
        self.pages = pages
        self.prefix = pages.prefix
        self.step_up = step_up
        self.attempts = Attempts(services)
        self.policy = build_policy(services.settings, services.breach)
        self._local_policy = build_policy(services.settings, None)  # for intent=check

    async def form(self, request: Request) -> Response:
        session = await self.pages.current(request, restricted=True)
        if session is None:
            return RedirectResponse(f"{self.prefix}/login?next={self.prefix}/password", 303)
        if self.step_up is not None and (again := await self.step_up.redirect(session)):
            return RedirectResponse(again, 303)  # SE-08, PW-14
        user = await self.s.users.get(session.user_id)
        lang = language(request, self.s.cookies.lang)
        notice, ended = changed_notice(request, lang)
        return await self._page(request, session, notice=notice, ended=ended,
                                forced=user is not None and forced_change(session, user))

    async def change(self, request: Request) -> Response:
        check_same_origin(request, origins=self.pages.same_origin)
        form = await read_form(request, limit=self.s.settings.server.max_body_bytes_portal)
        session = await self.pages.current(request, restricted=True)
        if session is None:
            return RedirectResponse(f"{self.prefix}/login?next={self.prefix}/password", 303)
        if not self.s.csrf.verify(form.get("csrf_token"), binding=session.key):
            log.warning("malicious_csrf", extra={"event": "malicious_csrf", "path": "password"})
            lang = language(request, self.s.cookies.lang)
            return render(request, "error.html", lang=lang, prefix=self.prefix, status=403,
                          message=translate(lang, "error.403"))
        user = await self.s.users.get(session.user_id)
        if user is None or user.disabled:
            await self.s.sessions.end_key(session.key)
            return RedirectResponse(f"{self.prefix}/login", 303)
        if self.step_up is not None and (again := await self.step_up.redirect(session)):
            return RedirectResponse(again, 303)  # SE-08, PW-14
        if form.get("intent") == "check":
            return await self._check(request, session, user, form.get("new_password", ""))
        try:
            return await self._change(request, session, user, form)
        except _Refusal as refusal:
            response = await self._page(request, session, status=refusal.status,
                                        reason=refusal.reason, strength=refusal.strength,
                                        forced=forced_change(session, user))
            if refusal.retry_after:
                response.headers["retry-after"] = str(refusal.retry_after)
            return response

    async def _check(self, request: Request, session: Session, user: User, new: str) -> Response:
        reason = "empty" if not new else ""
        strength = await self._strength(new, user) if new else None
        if new:
            try:
                await self._local_policy.check(new, **_context(user), groups=user.groups)
            except PasswordRejected as exc:
                reason = exc.reason
        return await self._page(request, session, reason=reason, strength=strength,
                                checked=not reason, forced=forced_change(session, user))

    async def _change(
        self, request: Request, session: Session, user: User, form: Mapping[str, str]
    ) -> Response:
        current, new = form.get("current_password", ""), form.get("new_password", "")
        if not new:
            raise _Refusal("empty")
        if not hmac.compare_digest(new.encode("utf-8", "replace"),
                                   form.get("confirm_password", "").encode("utf-8", "replace")):
            raise _Refusal("mismatch")
        attempt = self._attempt(request, user)
        decision = await self.attempts.before(attempt)
        if not decision.allowed:
            raise _Refusal("throttled", 429, decision.retry_after)
        await self._second_factor(request, session, form, user)
        await self._verify_current(attempt, user, current)
        # Only now, past the limits and the current password, is the strength estimated.
        if normalize(new) == normalize(current):
            raise _Refusal("unchanged", strength=await self._strength(new, user))
        try:
            await self.policy.check(new, **_context(user), groups=user.groups)
        except PasswordBreached as exc:
            await self._audit(request, user, "authn_password_breached:set", {
                "source": exc.verdict.source, "count": exc.verdict.count,
                "username": user.username})
            raise _Refusal(exc.reason, strength=await self._strength(new, user)) from None
        except PasswordRejected as exc:
            raise _Refusal(exc.reason, strength=await self._strength(new, user)) from None
        # PW-14: ending the other sessions is offered (a hidden "0" before a checked "1");
        # a form without the field ends them, and a forced change always does.
        end_others = forced_change(session, user) or form.get("end_other_sessions") != "0"
        return await self._commit(request, session, user, new, end_others=end_others)

    async def _second_factor(
        self, request: Request, session: Session, form: Mapping[str, str], user: User
    ) -> None:
        # Hook: the MFA module decides whether a fresh second factor is needed (PW-14).
        if self.step_up is None or not await self.step_up.required(session):
            return
        client_ip = request.scope.get("sekisho.client_ip", "")
        if not await self.step_up.verify(session, form, client_ip=client_ip):
            await self._audit(request, user, "authn_password_change_fail",
                              {"reason": "second_factor"})
            raise _Refusal("second_factor")

    async def _verify_current(self, attempt: Attempt, user: User, current: str) -> None:
        try:
            ok = await self.s.passwords.verify(user.password_hash, current, priority=True)
        except HasherBusy as exc:
            raise _Refusal("busy", 503, exc.retry_after) from None
        outcome = await self.s.regulator.record_attempt(
            account=attempt.username, client_ip=attempt.client_ip, factor="password",
            success=ok, device=attempt.device)
        await self.s.lockouts.after_attempt(
            outcome, account=attempt.username, client_ip=attempt.client_ip, success=ok,
            user_agent=attempt.user_agent, user_id=user.id, username=user.username)
        if not ok:
            await self.s.auditor.record(AuditEvent(
                event="authn_password_change_fail", account=str(user.id), factor="password",
                client_ip=attempt.client_ip or None, user_agent=attempt.user_agent or None,
                details={"reason": "current_password"}))
            raise _Refusal("current_wrong")

    async def _commit(
        self, request: Request, session: Session, user: User, new: str, *, end_others: bool
    ) -> Response:
        try:
            new_hash = await self.s.passwords.hash(new)
        except HasherBusy as exc:
            raise _Refusal("busy", 503, exc.retry_after) from None
        await self.s.users.set_password_hash(user.id, new_hash)
        if end_others:  # this session too: it is replaced below (SE-03)
            ended = max(0, await self.s.sessions.end_user(user.id) - 1)
        else:
            await self.s.sessions.end_key(session.key)
            ended = 0
        token, _ = await self.s.sessions.create(
            Principal(user_id=user.id, username=user.username, groups=tuple(user.groups),
                      email=user.email or "", display_name=user.display_name or ""),
            client_ip=request.scope.get("sekisho.client_ip", ""),
            user_agent=request.headers.get("user-agent", ""), amr=session.amr)
        await self._audit(request, user, "authn_password_change", {
            "was_restricted": bool(session.restriction), "forced": forced_change(session, user),
            "end_other_sessions": end_others, "other_sessions_ended": ended})
        result = result_query(end_others=end_others, ended=ended)
        response = RedirectResponse(f"{self.prefix}/password?{result}", status_code=303)
        response.headers.append("set-cookie", self.s.cookies.set(self.s.cookies.session, token))
        return response

    def _attempt(self, request: Request, user: User) -> Attempt:
        device = self.s.devices.verify(
            request.cookies.get(self.s.cookies.device), account=user.username,
            now=time.time(), max_age=self.s.settings.ratelimit.device_max_age)
        return Attempt(username=user.username,
                       client_ip=request.scope.get("sekisho.client_ip", ""),
                       user_agent=request.headers.get("user-agent", "")[:256], device=device)

    async def _strength(self, new: str, user: User) -> Strength:
        words = [*_context(user).values(), *self.s.settings.passwords.context_words]
        return await asyncio.to_thread(estimate, new, user_inputs=words)

    async def _audit(
        self, request: Request, user: User, event: str, details: dict[str, Any]
    ) -> None:
        await self.s.auditor.record(AuditEvent(
            event=event, account=str(user.id), factor="password",
            client_ip=request.scope.get("sekisho.client_ip") or None,
            user_agent=request.headers.get("user-agent", "")[:256] or None, details=details))

    async def _page(
        self, request: Request, session: Session, *, forced: bool, status: int = 200,
        reason: str = "", strength: Strength | None = None,
        notice: str = "", ended: int | None = None, checked: bool = False,
    ) -> Response:
        lang = language(request, self.s.cookies.lang)
        settings = self.s.settings.passwords
        message = ""
        if reason:
            message = translate(lang, f"password.reason.{reason}").format(
                min=settings.min_length, max=settings.max_length)
        step_up = self.step_up is not None and await self.step_up.required(session)
        return render(
            request, "password.html", lang=lang, prefix=self.prefix, status=status,
            session=session, csrf_token=self.s.csrf.issue(session.key),
            restricted=bool(session.restriction), reason=reason, message=message,
            guidance=reason in _POLICY_REASONS, notice=notice, ended=ended, forced=forced,
            strength=strength_view(strength, lang), checked=checked, step_up=step_up,
            min_length=settings.min_length, max_length=settings.max_length,
            username=session.username,
        )


_POLICY_REASONS = frozenset({"too_short", "too_long", "context", "common", "breached",
                             "unchanged"})


def _context(user: User) -> dict[str, str]:
    return {"username": user.username, "email": user.email or "",
            "display_name": user.display_name or ""}
