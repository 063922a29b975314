"""The admin page of accounts caught with a breached password (PW-08a, PW-12, AD-01, AD-06).

``{prefix}/admin/breaches`` lists the ``authn_password_breached`` catches through
:func:`sekisho.audit.breach_report.breach_report`, the function behind
``sekisho breach report``, newest first: who, when, where (at sign-in, or a new password
refused), which source listed it, and whether the password has been changed since; each row
links to the account's lockouts and audit events. Filters: a period (``hours``, or
``since``/``until``, read as the lockout filters read them) and ``pending`` (only accounts
that have not changed the password since); ``admin.page_size`` rows a page.

``POST .../breaches/export`` downloads the filtered catches as CSV or JSON (the CLI's
columns; CSV cells defused against formulas like the lockout export) and is audited first
(``authz_admin``, action ``breach.export``): no audit, no export. :func:`breaches_api`
answers ``GET {prefix}/api/v1/breaches`` with the same filters plus ``limit``/``offset``.

Paging reads the newest ``offset + limit + 1`` catches of the period (with ``pending``, the
newest :data:`MAX_CATCHES`, filtered first), so it reaches at most 10,000 catches back.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sekisho.audit.admin_actions import record_export
from sekisho.audit.breach_report import REPORT_FIELDS, BreachCatch, breach_report
from sekisho.gateway.i18n import translate
from sekisho.gateway.portal.admin_auth import AdminPrincipal, origin_of
from sekisho.gateway.portal.admin_query import (
    FilterError,
    LockoutFilters,
    parse_filters,
    parse_int,
    text_param,
)
from sekisho.gateway.portal.admin_view import AdminView
from sekisho.gateway.services import Services
from sekisho.store.db import Database
from sekisho.store.lockout_export import csv_cell

__all__ = [
    "MAX_CATCHES", "BreachFilters", "BreachPages", "breaches_api",
    "export_catches", "find_catches", "parse_breach_filters",
]

MAX_CATCHES = 10_000  # the audit trail's list cap
API_MAX_LIMIT = 1000
_PERIOD = ("hours", "since", "until")
_YES, _NO = frozenset({"1", "true", "on", "yes"}), frozenset({"0", "false", "off", "no"})
_MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


@dataclass(frozen=True, slots=True)
class BreachFilters:
    period: LockoutFilters  # only hours, since and until are set
    pending: bool = False

    def window(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        return self.period.start(now), self.period.until

    def params(self) -> dict[str, str]:
        """The filters as query parameters (paging links, the export form)."""
        return {**self.period.params(), **({"pending": "1"} if self.pending else {})}

    def audited(self, now: datetime) -> dict[str, Any]:
        """The query that was run, as the export's audit event records it."""
        since, until = self.window(now)
        out: dict[str, Any] = {"pending_only": self.pending}
        if since is not None:
            out["since"] = since.isoformat()
        if until is not None:
            out["until"] = until.isoformat()
        return out


def parse_breach_filters(params: Mapping[str, str]) -> BreachFilters:
    """``hours``/``since``/``until`` as for lockouts; ``pending`` 1/0 (true/false, on/off)."""
    period = parse_filters({name: params[name] for name in _PERIOD if name in params})
    flag = text_param(params, "pending")
    if flag is not None and flag.lower() not in _YES | _NO:
        raise FilterError("pending", "must be 1 or 0")
    return BreachFilters(period=period, pending=flag is not None and flag.lower() in _YES)


async def find_catches(
    db: Database, filters: BreachFilters, *, now: datetime, offset: int, limit: int,
) -> tuple[list[BreachCatch], bool]:
    """``limit`` catches from ``offset``, newest first, and whether more follow."""
    end = offset + limit
    if offset < 0 or limit < 1 or end > MAX_CATCHES:
        raise FilterError("offset", f"offset + limit must be at most {MAX_CATCHES}")
    since, until = filters.window(now)
    scan = MAX_CATCHES if filters.pending else min(end + 1, MAX_CATCHES)
    found = await breach_report(db, since=since, until=until, limit=scan,
                                pending_only=filters.pending)
    return found[offset:end], len(found) > end


def export_catches(catches: Sequence[BreachCatch], fmt: str) -> str:
    """The catches as ``json`` (an array of rows) or ``csv`` (REPORT_FIELDS, defused)."""
    rows = [c.row() for c in catches]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    if fmt != "csv":
        raise FilterError("format", "must be csv or json")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(REPORT_FIELDS)
    for row in rows:
        writer.writerow([csv_cell(row[name]) for name in REPORT_FIELDS])
    return buffer.getvalue()


Handler = Callable[[Request, AdminPrincipal], Awaitable[Response]]


def breaches_api(services: Services) -> Handler:
    """``GET {prefix}/api/v1/breaches``: the catches as JSON (AdminApi wraps the auth)."""

    async def breaches(request: Request, who: AdminPrincipal) -> Response:
        params = request.query_params
        limit = parse_int(params, "limit", default=100, low=1, high=API_MAX_LIMIT)
        offset = parse_int(params, "offset", default=0, low=0, high=MAX_CATCHES)
        filters = parse_breach_filters(params)
        catches, more = await find_catches(services.database, filters, now=datetime.now(UTC),
                                           offset=offset, limit=limit)
        return JSONResponse({
            "items": [c.row() for c in catches], "limit": limit, "offset": offset,
            "next_offset": offset + limit if more else None,
        })

    return breaches


class BreachPages(AdminView):
    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{self.base}/breaches", self.breaches, methods=["GET", "HEAD"]),
            Route(f"{self.base}/breaches/export", self.export, methods=["POST"]),
        ]

    def _row(self, catch: BreachCatch) -> dict[str, Any]:
        return {
            "c": catch,
            "lockouts": self.link(f"{self.base}/lockouts", {"account": catch.username})
            if catch.username else "",
            "audit": self.link(f"{self.base}/audit", {"account": str(catch.user_id)})
            if catch.user_id is not None else "",
        }

    async def breaches(self, request: Request) -> Response:
        who = await self.principal(request)
        if isinstance(who, Response):
            return who
        params, size = request.query_params, self.s.settings.admin.page_size
        status, problem, page = 200, "", 1
        filters = BreachFilters(period=LockoutFilters())
        catches: list[BreachCatch] = []
        more = False
        try:
            filters = parse_breach_filters(params)
            page = parse_int(params, "page", default=1, low=1, high=MAX_CATCHES // size)
            catches, more = await find_catches(
                self.s.database, filters, now=datetime.now(UTC), offset=(page - 1) * size,
                limit=size)
        except FilterError as exc:
            status, problem = 400, str(exc)
        keep, path = filters.params(), f"{self.base}/breaches"
        return self.page(
            request, "admin_breaches.html", who, status=status, nav="breaches",
            problem=problem, form=dict(params), pending=filters.pending,
            rows=[self._row(c) for c in catches], page=page,
            not_changed=sum(1 for c in catches if not c.changed_since),
            newer=self.link(path, {**keep, "page": str(page - 1)}) if page > 1 else "",
            older=self.link(path, {**keep, "page": str(page + 1)}) if more else "",
            export_fields=keep,
        )

    async def export(self, request: Request) -> Response:
        """The filtered catches (up to 10,000) as a CSV or JSON download; audited (AD-06)."""
        posted = await self.form_post(request)
        if isinstance(posted, Response):
            return posted
        who, form = posted
        now, fmt = datetime.now(UTC), form.get("format", "")
        try:
            if fmt not in _MEDIA:
                raise FilterError("format", "must be csv or json")
            filters = parse_breach_filters(form)
            catches, _ = await find_catches(self.s.database, filters, now=now, offset=0,
                                            limit=MAX_CATCHES)
        except FilterError as exc:
            message = translate(self.lang(request), "admin.filter.invalid")
            return self.page(request, "error.html", who, status=400,
                             message=message.format(problem=str(exc)))
        await record_export(
            auditor=self.s.auditor, actor=who.actor, fmt=fmt, count=len(catches),
            filters=filters.audited(now), origin=origin_of(request), target="breaches",
            action="breach.export")
        body = export_catches(catches, fmt)
        if fmt == "csv":
            body = "\ufeff" + body  # a BOM, so spreadsheet apps read UTF-8 (Japanese names)
        name = f"sekisho-breaches-{now:%Y%m%dT%H%M%SZ}.{fmt}"
        return Response(body, media_type=_MEDIA[fmt], headers={
            "content-disposition": f'attachment; filename="{name}"'})
