"""The admin JSON API under ``{prefix}/api/v1/`` (docs/admin-api.md describes every call).

Authentication is :meth:`AdminGate.api`: a bearer token, or the admin's portal session, which
must send ``X-CSRF-Token`` (from ``GET csrf``) on POST, from the gateway's own origin. Every
answer is JSON; errors are ``{"error": code, "message": text}`` with 400 (bad parameter or
body), 401 (no or bad credentials), 403 (not an admin, MFA missing, CSRF), 404, 409 (not
active), 422 (reason missing or unusable) or 503 (a store is down).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sekisho.audit.admin_actions import unlock_lockout
from sekisho.errors import BadRequest, NotFound, RateLimitError, StateError, StoreError
from sekisho.gateway.portal.admin_auth import AdminGate, AdminPrincipal, AdminRefused, origin_of
from sekisho.gateway.portal.admin_breaches import breaches_api
from sekisho.gateway.portal.admin_query import (
    FilterError,
    chart_range,
    parse_filters,
    parse_int,
    parse_time,
    text_param,
)
from sekisho.gateway.portal.admin_trail import audit_filters
from sekisho.gateway.portal.forms import check_same_origin
from sekisho.gateway.redirects import origins_for
from sekisho.gateway.services import Services
from sekisho.store.audit_search import search_audit
from sekisho.store.lockout_records import HOUR
from sekisho.store.lockouts import (
    LockoutNotActive,
    LockoutRepository,
    LockoutRequestError,
    UnlockReasonRequired,
)

__all__ = ["AdminApi", "ApiError"]

Handler = Callable[[Request, AdminPrincipal], Awaitable[Response]]
MAX_LIMIT = 1000
_REALM = 'Bearer realm="sekisho-admin"'


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def _error(status: int, code: str, message: str) -> JSONResponse:
    response = JSONResponse({"error": code, "message": message}, status_code=status)
    if status == 401:
        extra = ', error="invalid_token"' if code == "invalid_token" else ""
        response.headers["www-authenticate"] = _REALM + extra
    return response


class AdminApi:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.gate = AdminGate(services)
        self.repo = LockoutRepository(services.database)
        self.base = f"{services.settings.server.portal_prefix}/api/v1"
        self.same_origin = origins_for(services.settings.server.public_origins)

    def routes(self) -> list[BaseRoute]:
        b, wrap = self.base, self._wrap
        known = [
            Route(f"{b}/lockouts", wrap(self.lockouts), methods=["GET"]),
            Route(f"{b}/lockouts/{{id:int}}", wrap(self.lockout), methods=["GET"]),
            Route(f"{b}/lockouts/{{id:int}}/unlock", wrap(self.unlock), methods=["POST"]),
            Route(f"{b}/audit", wrap(self.audit), methods=["GET"]),
            Route(f"{b}/audit/verify", wrap(self.verify), methods=["GET"]),
            Route(f"{b}/stats", wrap(self.stats), methods=["GET"]),
            Route(f"{b}/attack", wrap(self.attack), methods=["GET"]),
            Route(f"{b}/breaches", wrap(breaches_api(self.s)), methods=["GET"]),
            Route(f"{b}/csrf", wrap(self.csrf), methods=["GET"]),
        ]

        async def unknown(request: Request) -> Response:
            path = request.url.path
            if any(route.path_regex.match(path) for route in known if isinstance(route, Route)):
                return _error(405, "method_not_allowed", "this method is not allowed here")
            return _error(404, "not_found", "no such API endpoint")

        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return [*known, Route(b, unknown, methods=methods),
                Route(f"{b}/{{rest:path}}", unknown, methods=methods)]

    def _wrap(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                who = await self.gate.api(request)
                if request.method == "POST":
                    check_same_origin(request, origins=self.same_origin)
                    await self.gate.check_csrf(request, who, request.headers.get("x-csrf-token"))
                return await handler(request, who)
            except AdminRefused as exc:
                return _error(exc.status, exc.code, str(exc))
            except ApiError as exc:
                return _error(exc.status, exc.code, exc.message)
            except FilterError as exc:
                return _error(400, "invalid_parameter", str(exc))
            except BadRequest as exc:  # a cross-site POST (CR-02) is a 403 "cross_site"
                code = "cross_site" if exc.status == 403 else "bad_request"
                return _error(exc.status, code, str(exc))
            except (StoreError, StateError):
                return _error(503, "unavailable", "a store is unavailable; try again")
        return endpoint

    @staticmethod
    def _paging(request: Request) -> tuple[int, int]:
        params = request.query_params
        return (parse_int(params, "limit", default=100, low=1, high=MAX_LIMIT),
                parse_int(params, "offset", default=0, low=0, high=10**9))

    async def lockouts(self, request: Request, who: AdminPrincipal) -> Response:
        limit, offset = self._paging(request)
        filters = parse_filters(request.query_params)
        try:
            records = await self.repo.list(
                **filters.store_args(self.s.keys, now=datetime.now(UTC)),
                limit=limit + 1, offset=offset)
        except LockoutRequestError as exc:
            raise FilterError("filters", str(exc)) from None
        more = len(records) > limit
        return JSONResponse({
            "items": [r.export() for r in records[:limit]], "limit": limit, "offset": offset,
            "next_offset": offset + limit if more else None,
        })

    async def lockout(self, request: Request, who: AdminPrincipal) -> Response:
        record = await self.repo.get(int(request.path_params["id"]))
        if record is None:
            raise ApiError(404, "not_found", "no such lockout record")
        return JSONResponse(record.export())

    async def unlock(self, request: Request, who: AdminPrincipal) -> Response:
        body = await self._json(request)
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ApiError(422, "reason_required", "an unlock needs a reason (AD-02)")
        try:
            done = await unlock_lockout(
                record_id=int(request.path_params["id"]), actor=who.actor, reason=reason,
                recorder=self.s.lockouts, regulator=self.s.regulator, auditor=self.s.auditor,
                origin=origin_of(request))
        except UnlockReasonRequired as exc:
            raise ApiError(422, "reason_required", str(exc)) from None
        except LockoutRequestError as exc:
            raise ApiError(422, "invalid_reason", str(exc)) from None
        except NotFound:
            raise ApiError(404, "not_found", "no such lockout record") from None
        except LockoutNotActive as exc:
            raise ApiError(409, "not_active", str(exc)) from None
        except RateLimitError:
            raise ApiError(503, "unavailable", "the rate-limit state refused") from None
        return JSONResponse({"lockout": done.after.export()})

    async def _json(self, request: Request) -> dict[str, Any]:
        limit = self.s.settings.server.max_body_bytes_portal
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(400, "invalid_body", "send a JSON object (application/json)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ApiError(400, "invalid_body", f"the body exceeds {limit} bytes")
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "invalid_body", "the body is not valid JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "invalid_body", "the body must be a JSON object")
        return value

    async def audit(self, request: Request, who: AdminPrincipal) -> Response:
        limit, offset = self._paging(request)
        params = request.query_params
        filters = await audit_filters(self.s, params)
        since = parse_time("since", text_param(params, "since"))
        until = parse_time("until", text_param(params, "until"))
        records = await search_audit(self.s.database, **filters, since=since, until=until,
                                     limit=limit + 1, offset=offset)
        items = [{"seq": r.seq, "hash": r.hash, "prev_hash": r.prev_hash, **r.data()}
                 for r in records[:limit]]
        return JSONResponse({"items": items, "limit": limit, "offset": offset,
                             "next_offset": offset + limit if len(records) > limit else None})

    async def verify(self, request: Request, who: AdminPrincipal) -> Response:
        result = await self.s.auditor.verify()
        return JSONResponse({"ok": result.ok, "checked": result.checked, "head": result.head,
                             "broken_at": result.broken_at, "problem": result.problem})

    async def attack(self, request: Request, who: AdminPrincipal) -> Response:
        """Attack mode: on or off, since/until, why, flagged sources (docs/attack-mode.md)."""
        return JSONResponse((await self.s.attack.status()).to_dict())

    async def stats(self, request: Request, who: AdminPrincipal) -> Response:
        params, now = request.query_params, datetime.now(UTC)
        name, since, until, bucket = chart_range(text_param(params, "range"), now=now)
        if text_param(params, "since") is not None or text_param(params, "bucket") is not None:
            bucket = parse_int(params, "bucket", default=HOUR, low=HOUR, high=30 * 86400)
            until = parse_time("until", text_param(params, "until")) or now
            since = parse_time("since", text_param(params, "since")) or (
                until - timedelta(hours=24))
            name = "custom"
        try:
            series = await self.repo.counts_by_interval(
                since=since, until=until, bucket_seconds=bucket)
        except LockoutRequestError as exc:
            raise FilterError("bucket", str(exc)) from None
        return JSONResponse({
            "range": name, "since": since.isoformat(), "until": until.isoformat(),
            "bucket_seconds": bucket,
            "series": [{"start": c.start.isoformat(), "failures": c.failures,
                        "refused": c.refused, "lockouts": c.lockouts} for c in series],
        })

    async def csrf(self, request: Request, who: AdminPrincipal) -> Response:
        return JSONResponse({"actor": who.actor, "csrf_token": self.gate.csrf_token(who) or None})
