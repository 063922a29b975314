"""The Security page: the user's second factors, recovery codes and active sessions (SE-07).

Every change here needs step-up (SE-08): removing or renaming a factor, ending sessions.
Deleting the last factor of a user whose group requires MFA is refused (WA-08, 409).
Sessions are named on the page by an opaque reference (a labelled SHA-256 of the store key,
itself a hash of the token), never by their key or token.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sekisho.auth.mfa.errors import InvalidName, LastFactor, UnknownPasskey
from sekisho.auth.sessions import Session
from sekisho.gateway.portal.mfa_base import MfaBase
from sekisho.store.users import User

# What a refused passkey change answers: status and message key.
_PASSKEY_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    InvalidName: (400, "mfa.error.invalid_name"),
    UnknownPasskey: (404, "mfa.error.unknown_passkey"),
    LastFactor: (409, "mfa.error.last_factor"),  # WA-08
}

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"),
            ("iPad", "iPadOS"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))
_ID = re.compile(r"[0-9]{1,12}")


def session_ref(session: Session) -> str:
    return hashlib.sha256(b"sekisho-session-ref\0" + session.key.encode()).hexdigest()[:24]


def device_label(user_agent: str) -> str:
    """"Chrome on Windows" from a User-Agent, for people; empty when nothing is known."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), "")
    return " / ".join(part for part in (browser, system) if part)


def _when(value: float | datetime | None) -> str:
    if value is None:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class SecurityPage(MfaBase):
    path = "/security"

    async def show(self, request: Request) -> Response:
        """GET /security."""
        session = await self.active(request)
        if session is None:
            return RedirectResponse(f"{self.prefix}/login?next={self.prefix}/security",
                                    status_code=303)
        return await self._render(request, session, notice=self._notice(request))

    def _notice(self, request: Request) -> str:
        if request.query_params.get("recovered") == "1":
            return self.t(request, "mfa.security.recovered")
        done = request.query_params.get("done")
        if done in ("otp", "hwk", "removed", "renamed", "ended"):
            return self.t(request, f"mfa.security.done_{done}")
        return ""

    async def _render(self, request: Request, session: Session, *, status: int = 200,
                      message: str = "", notice: str = "") -> Response:
        user_id = session.user_id
        summary = await self.mfa.summary(user_id=user_id)
        sessions = sorted(
            (s for s in await self.s.sessions.list_user(user_id) if s.state == "active"),
            key=lambda s: (s.key != session.key, -s.last_seen))
        rows = [{
            "ref": session_ref(s), "current": s.key == session.key,
            "device": device_label(s.user_agent), "user_agent": s.user_agent,
            "ip": s.client_ip, "created": _when(s.created_at), "last_seen": _when(s.last_seen),
        } for s in sessions]
        passkeys = [{
            "id": p.id, "name": p.name, "created": _when(p.created_at),
            "last_used": _when(p.last_used_at), "synced": p.backed_up,
            "backup_eligible": p.backup_eligible,
        } for p in summary.passkeys]
        user = await self.s.users.get(user_id)  # AU-06: where notices go, shown read-only
        notifier = self.s.notifier
        return self.page(
            request, "security.html", status, session=session, csrf_token=self.csrf(session),
            summary=summary, passkeys=passkeys, sessions=rows, message=message, notice=notice,
            fresh=self.fresh(session, has_second_factor=summary.has_second_factor),
            required=self.mfa.mfa_required(groups=session.groups),
            total_codes=self.s.settings.mfa.recovery_codes,
            notify_addresses=user.notify_addresses if user is not None else (),
            notify_on=notifier is not None and notifier.enabled,
        )

    async def _change(self, request: Request, action: str) -> tuple[Session, User,
                                                                  dict[str, str]] | Response:
        """The common start of every change: active session, CSRF, step-up (SE-08)."""
        session = await self.active(request)
        if session is None:
            return RedirectResponse(f"{self.prefix}/login?next={self.prefix}/security",
                                    status_code=303)
        form = await self.form(request)
        if not self.csrf_ok(form.get("csrf_token"), session, path=f"security/{action}"):
            return self.pages._forbidden(request)
        user = await self.user_of(session)
        if user is None:
            await self.s.sessions.end_key(session.key)
            return self.to_login()
        summary = await self.mfa.summary(user_id=user.id)
        if not self.fresh(session, has_second_factor=summary.has_second_factor):
            return self.reauthenticate(f"{self.prefix}/security")
        return session, user, form

    def _done(self, what: str) -> Response:
        return RedirectResponse(f"{self.prefix}/security?done={what}", status_code=303)

    async def _refused(self, request: Request, session: Session, status: int,
                       key: str) -> Response:
        return await self._render(request, session, status=status,
                                  message=self.t(request, key))

    # -- factors --------------------------------------------------------------------------

    async def totp_remove(self, request: Request) -> Response:
        """POST /security/totp/remove (TO-09)."""
        found = await self._change(request, "totp/remove")
        if isinstance(found, Response):
            return found
        session, user, _ = found
        try:
            await self.mfa.totp_remove(user_id=user.id)
        except LastFactor:
            return await self._refused(request, session, 409, "mfa.error.last_factor")
        return self._done("removed")

    def _passkey_id(self, form: dict[str, str]) -> int | None:
        raw = form.get("passkey_id", "")
        return int(raw) if _ID.fullmatch(raw) else None

    async def passkey_rename(self, request: Request) -> Response:
        """POST /security/passkeys/rename."""
        async def rename(user_id: int, passkey_id: int, form: dict[str, str]) -> None:
            await self.mfa.passkey_rename(user_id=user_id, passkey_id=passkey_id,
                                          name=form.get("name", "")[:256])
        return await self._passkey_change(request, "passkeys/rename", rename, done="renamed")

    async def passkey_delete(self, request: Request) -> Response:
        """POST /security/passkeys/delete (WA-08: never the last factor of a required user)."""
        async def delete(user_id: int, passkey_id: int, form: dict[str, str]) -> None:
            await self.mfa.passkey_delete(user_id=user_id, passkey_id=passkey_id)
        return await self._passkey_change(request, "passkeys/delete", delete, done="removed")

    async def _passkey_change(
        self, request: Request, path: str,
        act: Callable[[int, int, dict[str, str]], Awaitable[None]], *, done: str,
    ) -> Response:
        found = await self._change(request, path)
        if isinstance(found, Response):
            return found
        session, user, form = found
        passkey_id = self._passkey_id(form)
        if passkey_id is None:
            return await self._refused(request, session, 400, "mfa.error.unknown_passkey")
        try:
            await act(user.id, passkey_id, form)
        except (InvalidName, LastFactor, UnknownPasskey) as exc:
            status, key = _PASSKEY_REFUSALS[type(exc)]
            return await self._refused(request, session, status, key)
        return self._done(done)

    # -- sessions (SE-07) -----------------------------------------------------------------

    async def end_session(self, request: Request) -> Response:
        """POST /security/sessions/end: end one other session."""
        found = await self._change(request, "sessions/end")
        if isinstance(found, Response):
            return found
        session, user, form = found
        ref = form.get("session", "")
        targets = [s for s in await self.s.sessions.list_user(user.id)
                   if session_ref(s) == ref and s.key != session.key]
        if not targets:
            return await self._refused(request, session, 404, "mfa.error.unknown_session")
        await self._end(request, user, targets)
        return self._done("ended")

    async def end_others(self, request: Request) -> Response:
        """POST /security/sessions/end-others: every session but this one."""
        found = await self._change(request, "sessions/end-others")
        if isinstance(found, Response):
            return found
        session, user, _ = found
        others = [s for s in await self.s.sessions.list_user(user.id) if s.key != session.key]
        await self._end(request, user, others)
        return self._done("ended")

    async def _end(self, request: Request, user: User, targets: list[Session]) -> None:
        for target in targets:
            await self.s.sessions.end_key(target.key)
        details: dict[str, Any] = {"count": len(targets), "by": "user"}
        await self.audit(request, "session_revoked", user_id=user.id, **details)
