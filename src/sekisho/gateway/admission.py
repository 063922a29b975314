"""The admission gate: a flood of password attempts is refused from the request head alone.

Credential stuffing comes from browsers that are not known devices (ratelimit/device.py), and
once an address, its subnet or the whole gateway has spent its failure budget the regulator
refuses such attempts anyway (RL-05). Refusing them through the portal costs a form parse, a
CSRF check and a login page rendered again, about a millisecond of the one event loop that
also carries every legitimate request. So before a password-bearing POST (``/login``,
``/recover``) reaches the portal, this gate looks only at its head:

1. A *genuine* device token (issued here, unexpired, for any account; :meth:`genuine`) goes
   straight on. The portal then verifies it for the account in the form; a token for another
   account counts as none there, and meets the budgets.
2. Otherwise, a budget this process already knows is spent for the client address, its
   subnet or globally (:meth:`Regulator.known_address_refusal`, memory only): 429 with
   ``Retry-After``, a small fixed page that names no account (invariant 1), and the attempt
   is not evaluated (RL-02). The portal would have given the same answer.
3. Otherwise, at most ``ratelimit.unknown_in_flight`` such POSTs are handled at once; one
   more is answered 503 with ``Retry-After: 1`` before its body is read. Known devices,
   sessions and proxied traffic never wait behind the flood's queue of form parses.

Refusals are answered ``ratelimit.refusal_delay`` seconds late (a timer, no work): a stuffing
tool runs a fixed number of connections, so it then sends that much slower and spends that
much less of the gateway's CPU, the event loop's included. At most ``MAX_DELAYED`` refusals
wait at once; beyond, they are answered at once (a flood with unbounded connections costs
their sockets, not our memory).

Refusals here are counted for the admin chart and summed in one audit line per
``DIGEST_SECONDS`` (``excess_rate_limit_exceeded:admission``), not one line each: the flood
is what makes them, and the log would grow at the attacker's pace.
"""

from __future__ import annotations

import asyncio
from html import escape

from starlette.types import ASGIApp, Receive, Scope, Send

from sekisho.audit.events import AuditEvent
from sekisho.gateway.cookies import cookie_header, read_cookie
from sekisho.gateway.errorpages import send_error
from sekisho.gateway.services import Services

__all__ = ["DIGEST_SECONDS", "MAX_DELAYED", "Admission"]

DIGEST_SECONDS = 10.0
MAX_DELAYED = 4096
_MAX_ADDRESSES = 10_000  # distinct addresses counted per digest

_PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>429 Too Many Requests</title></head>\n<body><h1>429 Too Many Requests</h1>\n"
    "<p>Too many sign-in attempts came from your network. Please try again in about"
    " {minutes} min. A passkey, or a browser you have signed in with before, still works.</p>\n"
    '<p lang="ja">お使いのネットワークからのログイン試行が多すぎます。約{minutes}分後に再度'
    "お試しください。パスキー、または以前にログインしたブラウザーからはログインできます。</p>\n"
    '<p><a href="{login}">Sign in / ログイン</a></p></body></html>\n'
)


class Admission:
    """``await gate(scope, receive, send, app)`` for the POSTs :meth:`gated` names."""

    def __init__(self, services: Services) -> None:
        self.s = services
        prefix = services.settings.server.portal_prefix
        self._paths = frozenset({f"{prefix}/login", f"{prefix}/recover"})
        self._login = escape(f"{prefix}/login", quote=True)
        self._cookie = services.cookies.device
        self._max_age = services.settings.ratelimit.device_max_age
        self._cap = services.settings.ratelimit.unknown_in_flight or None
        self._delay = services.settings.ratelimit.refusal_delay
        self._in_flight = 0
        self._delayed = 0
        self._digest = _Digest()

    def gated(self, scope: Scope) -> bool:
        return scope["type"] == "http" and scope["method"] == "POST" and (
            scope["path"] in self._paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        token = read_cookie(cookie_header(scope["headers"]), self._cookie)
        if token and self.s.devices.genuine(token, now=self.s.clock(), max_age=self._max_age):
            await app(scope, receive, send)
            return
        client_ip: str = scope["sekisho.client_ip"]
        refusal = self.s.regulator.known_address_refusal(client_ip=client_ip)
        if refusal is not None:
            await self._refuse(send, 429, refusal.retry_after, client_ip, refusal.reason)
            return
        if self._cap is not None and self._in_flight >= self._cap:
            await self._refuse(send, 503, 1, client_ip, "busy")
            return
        self._in_flight += 1
        try:
            await app(scope, receive, send)
        finally:
            self._in_flight -= 1

    async def _refuse(
        self, send: Send, status: int, retry_after: int, client_ip: str, reason: str
    ) -> None:
        self.s.lockouts.count_refused()
        self._digest.add(reason, client_ip)
        now = self.s.clock()
        if self._digest.due(now):
            await self.s.auditor.record(self._digest.event(now))
        if self._delay and self._delayed < MAX_DELAYED:
            self._delayed += 1
            try:
                await asyncio.sleep(self._delay)
            finally:
                self._delayed -= 1
        headers = [(b"retry-after", str(retry_after).encode("ascii"))]
        if status == 429:
            body = _PAGE.format(minutes=-(-retry_after // 60), login=self._login).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
                (b"x-content-type-options", b"nosniff"),
                (b"content-length", str(len(body)).encode("ascii")),
                *headers,
            ]})
            await send({"type": "http.response.body", "body": body})
        else:
            await send_error(send, status, headers=headers)

    @property
    def in_flight(self) -> int:
        """POSTs from unknown browsers being handled now (the cap's count)."""
        return self._in_flight

    @property
    def delayed(self) -> int:
        """Refusals waiting out ``refusal_delay`` now."""
        return self._delayed

    async def close(self) -> None:
        """Write the refusals not yet in an audit line."""
        if self._digest.due(float("inf")):
            await self.s.auditor.record(self._digest.event(self.s.clock()))


class _Digest:
    """Refusals since the last audit line: by reason, and how many addresses sent them.
    The first refusal after a quiet spell is written at once, the rest at most once per
    ``DIGEST_SECONDS``, and what is left at shutdown then (:meth:`Admission.close`)."""

    __slots__ = ("_addresses", "_reasons", "_written")

    def __init__(self) -> None:
        self._written = float("-inf")
        self._reasons: dict[str, int] = {}
        self._addresses: set[str] = set()

    def add(self, reason: str, client_ip: str) -> None:
        self._reasons[reason] = self._reasons.get(reason, 0) + 1
        if len(self._addresses) < _MAX_ADDRESSES:
            self._addresses.add(client_ip)

    def due(self, now: float) -> bool:
        return bool(self._reasons) and now - self._written >= DIGEST_SECONDS

    def event(self, now: float) -> AuditEvent:
        reasons, addresses = self._reasons, len(self._addresses)
        self._reasons, self._addresses, self._written = {}, set(), now
        return AuditEvent(event="excess_rate_limit_exceeded:admission", details={
            "refused": sum(reasons.values()), "reasons": reasons, "addresses": addresses,
            "addresses_capped": addresses >= _MAX_ADDRESSES})
