"""The admin pages for lockouts (AD-01, AD-02, AD-06): list with filters, paging and the chart,
one record, unlock with a mandatory reason, CSV/JSON export. Server-rendered, no script.

Routes under ``{prefix}/admin/`` (:func:`admin_routes` also mounts the audit trail page and the
JSON API). Every request is checked by :class:`AdminView` (admin group, MFA rule); every post
by origin and the admin CSRF token before anything is read or changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sekisho.audit.admin_actions import record_export, unlock_lockout
from sekisho.errors import NotFound, RateLimitError, StateError, StoreError
from sekisho.gateway.i18n import translate
from sekisho.gateway.portal.admin_api import AdminApi
from sekisho.gateway.portal.admin_auth import origin_of
from sekisho.gateway.portal.admin_chart import render_chart
from sekisho.gateway.portal.admin_query import (
    CHART_RANGES,
    FilterError,
    LockoutFilters,
    chart_range,
    parse_filters,
    parse_int,
)
from sekisho.gateway.portal.admin_trail import AuditPages
from sekisho.gateway.portal.admin_view import AdminView
from sekisho.gateway.services import Services
from sekisho.store.lockout_export import export_text
from sekisho.store.lockouts import (
    LockoutNotActive,
    LockoutRecord,
    LockoutRequestError,
    UnlockReasonRequired,
)
from sekisho.store.tables import LOCKOUT_STATES

__all__ = ["LockoutPages", "admin_routes"]

MAX_PAGE = 10_000
_MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def admin_routes(services: Services) -> list[BaseRoute]:
    """Every admin route: these pages, the audit trail page, the JSON API."""
    pages, trail = LockoutPages(services), AuditPages(services)
    base = pages.base

    async def to_list(request: Request) -> Response:
        return RedirectResponse(f"{base}/", status_code=308)

    return [
        Route(base, to_list, methods=["GET", "HEAD"]),
        Route(f"{base}/", pages.lockouts, methods=["GET", "HEAD"]),
        Route(f"{base}/lockouts", pages.lockouts, methods=["GET", "HEAD"]),
        Route(f"{base}/lockouts/export", pages.export, methods=["POST"]),
        Route(f"{base}/lockouts/{{id:int}}", pages.lockout, methods=["GET", "HEAD"]),
        Route(f"{base}/lockouts/{{id:int}}/unlock", pages.unlock, methods=["POST"]),
        Route(f"{base}/audit", trail.audit, methods=["GET", "HEAD"]),
        Route(f"{base}/audit/verify", trail.verify, methods=["GET", "HEAD"]),
        *AdminApi(services).routes(),
    ]


class LockoutPages(AdminView):
    def _chart_labels(self, lang: str) -> dict[str, str]:
        return {name: translate(lang, f"admin.chart.{name}")
                for name in ("title", "failed", "refused", "lockouts", "attempts", "time")}

    async def lockouts(self, request: Request) -> Response:
        who = await self.principal(request)
        if isinstance(who, Response):
            return who
        params, now, size = request.query_params, datetime.now(UTC), self.s.settings.admin.page_size
        lang, status, problem = self.lang(request), 200, ""
        filters, page, chart = LockoutFilters(), 1, "24h"
        records: list[LockoutRecord] = []
        try:
            filters = parse_filters(params)
            page = parse_int(params, "page", default=1, low=1, high=MAX_PAGE)
            chart, since, until, bucket = chart_range(params.get("chart"), now=now)
            records = await self.repo.list(**filters.store_args(self.s.keys, now=now),
                                           limit=size + 1, offset=(page - 1) * size)
        except (FilterError, LockoutRequestError) as exc:
            status, problem = 400, str(exc)
            chart, since, until, bucket = chart_range(None, now=now)
        series = await self.repo.counts_by_interval(
            since=since, until=until, bucket_seconds=bucket)
        keep = {**filters.params(), "chart": chart}
        path = f"{self.base}/lockouts"
        return self.page(
            request, "admin_lockouts.html", who, status=status, nav="lockouts",
            attack=await self.s.attack.status(), problem=problem, form=dict(params),
            records=records[:size], page=page,
            newer=self.link(path, {**keep, "page": str(page - 1)}) if page > 1 else "",
            older=self.link(path, {**keep, "page": str(page + 1)})
            if len(records) > size else "",
            chart_links={name: self.link(path, {**filters.params(), "chart": name})
                         for name in CHART_RANGES},
            chart_name=chart, series=series, export_fields=filters.params(),
            chart=render_chart(series, bucket_seconds=bucket,
                               labels=self._chart_labels(lang)),
            states=LOCKOUT_STATES,
        )

    async def lockout(self, request: Request) -> Response:
        who = await self.principal(request)
        if isinstance(who, Response):
            return who
        return await self._detail(request, who, int(request.path_params["id"]))

    async def _detail(
        self, request: Request, who: Any, record_id: int, *, status: int = 200,
        problem: str = "", reason: str = "",
    ) -> Response:
        record = await self.repo.get(record_id)
        if record is None:
            return self.error(request, 404, "admin.error.not_found", who=who)
        lang = self.lang(request)
        notice = ""
        if request.method == "GET" and request.query_params.get("done") == "unlocked":
            notice = translate(lang, "admin.unlock.done")
        return self.page(
            request, "admin_lockout.html", who, status=status, nav="lockouts", record=record,
            problem=problem, notice=notice, reason=reason,
            audit_link=self.link(f"{self.base}/audit", {"account": record.account_key}),
        )

    async def unlock(self, request: Request) -> Response:
        """AD-02: lift the lock (regulator and record) with a mandatory reason, audited."""
        posted = await self.form_post(request)
        if isinstance(posted, Response):
            return posted
        who, form = posted
        record_id = int(request.path_params["id"])
        reason = form.get("reason", "")
        try:
            await unlock_lockout(
                record_id=record_id, actor=who.actor, reason=reason,
                recorder=self.s.lockouts, regulator=self.s.regulator, auditor=self.s.auditor,
                origin=origin_of(request))
        except UnlockReasonRequired:
            return await self._refused(request, who, record_id, 422,
                                       "admin.unlock.reason_required", reason)
        except LockoutRequestError:
            return await self._refused(request, who, record_id, 422,
                                       "admin.unlock.reason_invalid", reason)
        except NotFound:
            return self.error(request, 404, "admin.error.not_found", who=who)
        except LockoutNotActive:
            return await self._refused(request, who, record_id, 409, "admin.unlock.not_active")
        except (StateError, StoreError, RateLimitError):
            return await self._refused(request, who, record_id, 503,
                                       "admin.unlock.unavailable", reason)
        return RedirectResponse(f"{self.base}/lockouts/{record_id}?done=unlocked",
                                status_code=303)

    async def _refused(
        self, request: Request, who: Any, record_id: int, status: int, key: str,
        reason: str = "",
    ) -> Response:
        return await self._detail(request, who, record_id, status=status, reason=reason[:1000],
                                  problem=translate(self.lang(request), key))

    async def export(self, request: Request) -> Response:
        """AD-01: the filtered list as a CSV or JSON download; audited (AD-06)."""
        posted = await self.form_post(request)
        if isinstance(posted, Response):
            return posted
        who, form = posted
        now = datetime.now(UTC)
        fmt = form.get("format", "")
        try:
            if fmt not in _MEDIA:
                raise FilterError("format", "must be csv or json")
            args = parse_filters(form).store_args(self.s.keys, now=now)
            rows = await self.repo.export(**args)
        except (FilterError, LockoutRequestError) as exc:
            lang = self.lang(request)
            return self.page(request, "error.html", who, status=400,
                             message=translate(lang, "admin.filter.invalid").format(
                                 problem=str(exc)))
        await record_export(auditor=self.s.auditor, actor=who.actor, fmt=fmt,
                            count=len(rows), filters=args, origin=origin_of(request))
        body = export_text(rows, fmt)
        if fmt == "csv":
            body = "\ufeff" + body  # a BOM, so spreadsheet apps read UTF-8 (Japanese names)
        name = f"sekisho-lockouts-{now:%Y%m%dT%H%M%SZ}.{fmt}"
        return Response(body, media_type=_MEDIA[fmt], headers={
            "content-disposition": f'attachment; filename="{name}"'})
