"""The audit trail page (AD-06, AU-04): recent events with filters by event and account, and
the hash chain's verification, run on request (it reads the whole table).

An account filter matches events by what they store as ``account``: the user id of a user of
that name, the account key of the name (attempts on names that are no user), or the value
itself when it is an account key or a user id (links from a lockout record use the key).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sekisho.audit.chain import VerifyResult
from sekisho.audit.events import EVENTS
from sekisho.audit.log import audit_log
from sekisho.auth.usernames import canonical_username
from sekisho.errors import InvalidUsername
from sekisho.gateway.portal.admin_auth import AdminPrincipal
from sekisho.gateway.portal.admin_query import FilterError, parse_int, text_param
from sekisho.gateway.portal.admin_view import AdminView
from sekisho.gateway.services import Services
from sekisho.store.audit_log import StoredAuditEvent
from sekisho.store.audit_search import search_audit

__all__ = ["AuditPages", "audit_accounts", "audit_filters", "event_row"]

MAX_PAGE = 10_000
_KEYISH = re.compile(r"[0-9a-f]{32}|[0-9]{1,18}")
_DETAIL_LIMIT = 400


async def audit_accounts(services: Services, name: str | None) -> list[str]:
    """What events store as ``account`` for ``name`` (see the module docstring)."""
    if name is None:
        return []
    values = [services.keys.account(name)]
    if _KEYISH.fullmatch(name):
        values.append(name)
    try:
        user = await services.users.get_by_username(canonical_username(name))
    except InvalidUsername:
        user = None
    if user is not None:
        values.append(str(user.id))
    return sorted(set(values))


async def audit_filters(services: Services, params: Any) -> dict[str, Any]:
    """``event`` and ``account`` as :func:`search_audit` takes them."""
    event = text_param(params, "event")
    if event is not None and event.split(":", 1)[0] not in EVENTS:
        raise FilterError("event", "is not a known audit event name")
    return {"event": event,
            "accounts": await audit_accounts(services, text_param(params, "account"))}


def _short(data: dict[str, Any]) -> str:
    """What changed and the details, on one line: ``state: active → unlocked; count=3``."""
    parts = []
    before, after = data.get("before") or {}, data.get("after") or {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            parts.append(f"{key}: {before.get(key)} → {after.get(key)}")
    for key, value in sorted((data.get("details") or {}).items()):
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        parts.append(f"{key}={shown}")
    return "; ".join(parts)[:_DETAIL_LIMIT]


def event_row(record: StoredAuditEvent) -> dict[str, Any]:
    """One event as the page shows it: its fields, plus ``summary`` (one line) and ``full``
    (before, after and details as indented JSON)."""
    data = record.data()
    extra = {k: data[k] for k in ("before", "after", "details") if data.get(k)}
    return {
        "seq": record.seq, "hash": record.hash, "prev_hash": record.prev_hash, **data,
        "when": record.ts.strftime("%Y-%m-%d %H:%M:%S"), "summary": _short(data),
        "full": json.dumps(extra, ensure_ascii=False, sort_keys=True, indent=1) if extra else "",
    }


class AuditPages(AdminView):
    async def audit(self, request: Request) -> Response:
        return await self._render(request, verification=None)

    async def verify(self, request: Request) -> Response:
        who = await self.principal(request)
        if isinstance(who, Response):
            return who
        return await self._render(request, verification=await self.s.auditor.verify(), who=who)

    async def _render(
        self, request: Request, *, verification: VerifyResult | None,
        who: AdminPrincipal | None = None,
    ) -> Response:
        if who is None:
            found = await self.principal(request)
            if isinstance(found, Response):
                return found
            who = found
        params, size = request.query_params, self.s.settings.admin.page_size
        status, problem, page, records = 200, "", 1, []
        try:
            filters = await audit_filters(self.s, params)
            page = parse_int(params, "page", default=1, low=1, high=MAX_PAGE)
            records = await search_audit(self.s.database, **filters, limit=size + 1,
                                         offset=(page - 1) * size)
        except FilterError as exc:
            status, problem = 400, str(exc)
        keep = {k: params.get(k, "") for k in ("event", "account")}
        path = f"{self.base}/audit"
        return self.page(
            request, "admin_audit.html", who, status=status, nav="audit", problem=problem,
            form=dict(params), rows=[event_row(r) for r in records[:size]], page=page,
            newer=self.link(path, {**keep, "page": str(page - 1)}) if page > 1 else "",
            older=self.link(path, {**keep, "page": str(page + 1)})
            if len(records) > size else "",
            events=sorted(EVENTS), head=await audit_log(self.s.database).head(),
            verification=verification,
        )
