"""Reading the admin filters (lockouts, audit trail, chart) from query strings and forms.

Pages and API share these rules, so a filter means the same everywhere; every refusal is a
:class:`FilterError` naming the parameter (``ip: must be an address or a subnet ...``).

- ``since``/``until``: ISO-8601 (``2025-11-01T09:00``, a ``datetime-local`` value); without
  an offset the time is UTC. ``hours``: the last N hours (excludes ``since``).
- ``account``: a username or an attempted name, matched by its account key (finds names that
  are no user too); ``ip``: an address, or a /24 (/64) subnet as recorded; ``state``:
  ``active``, ``expired`` or ``unlocked``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sekisho.errors import SekishoError
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.store.tables import LOCKOUT_STATES

__all__ = [
    "CHART_RANGES", "FilterError", "LockoutFilters", "chart_range", "parse_filters",
    "parse_int", "parse_time", "text_param",
]

MAX_HOURS = 24 * 400
_TEXT_LIMIT = 256
#: The chart's ranges: name -> (hours shown, seconds per bar).
CHART_RANGES: dict[str, tuple[int, int]] = {
    "24h": (24, 3600), "7d": (7 * 24, 6 * 3600), "30d": (30 * 24, 24 * 3600),
}


class FilterError(SekishoError, ValueError):
    """A filter or paging parameter that cannot be used; the message names it."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


def text_param(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    if len(value) > _TEXT_LIMIT or not value.isprintable():
        raise FilterError(name, f"must be printable text of at most {_TEXT_LIMIT} characters")
    return value


def parse_time(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(name, "must be an ISO-8601 time like 2025-11-01T09:00") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_int(
    params: Mapping[str, str], name: str, *, default: int, low: int, high: int
) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise FilterError(name, f"must be a whole number from {low} to {high}")
    return int(text)


def _hours(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not 0 < hours <= MAX_HOURS:  # also refuses nan
        raise FilterError("hours", f"must be a number of hours above 0 and up to {MAX_HOURS}")
    return hours


def _ip(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        ipaddress.ip_address(text)
    except ValueError:
        raise FilterError("ip", "must be an address or a subnet like 192.0.2.0/24") from None
    return text


@dataclass(frozen=True, slots=True)
class LockoutFilters:
    hours: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    account: str | None = None
    ip: str | None = None
    state: str | None = None

    def start(self, now: datetime) -> datetime | None:
        if self.hours is not None:
            return now - timedelta(hours=self.hours)
        return self.since

    def store_args(self, keys: RateLimitKeys, *, now: datetime) -> dict[str, Any]:
        """The arguments of ``LockoutRepository.list``/``export`` (account as its key)."""
        return {
            "since": self.start(now), "until": self.until,
            "account": None if self.account is None else keys.account(self.account),
            "ip": self.ip, "state": self.state,
        }

    def params(self) -> dict[str, str]:
        """The filters as query parameters (for paging links and export forms)."""
        out: dict[str, str] = {}
        for name, value in asdict(self).items():
            if value is None:
                continue
            if isinstance(value, datetime):
                value = value.strftime("%Y-%m-%dT%H:%M")
            elif isinstance(value, float):
                value = f"{value:g}"
            out[name] = str(value)
        return out


def parse_filters(params: Mapping[str, str]) -> LockoutFilters:
    hours = _hours(text_param(params, "hours"))
    since = parse_time("since", text_param(params, "since"))
    until = parse_time("until", text_param(params, "until"))
    if hours is not None and since is not None:
        raise FilterError("hours", "give either hours or since, not both")
    if since is not None and until is not None and until <= since:
        raise FilterError("until", "must be later than since")
    state = text_param(params, "state")
    if state is not None and state not in LOCKOUT_STATES:
        raise FilterError("state", f"must be one of {', '.join(LOCKOUT_STATES)}")
    return LockoutFilters(
        hours=hours, since=since, until=until, account=text_param(params, "account"),
        ip=_ip(text_param(params, "ip")), state=state,
    )


def chart_range(name: str | None, *, now: datetime) -> tuple[str, datetime, datetime, int]:
    """(range name, since, until, bucket seconds) of a chart range (default ``24h``)."""
    if name is None or name == "":
        name = "24h"
    if name not in CHART_RANGES:
        raise FilterError("chart", f"must be one of {', '.join(CHART_RANGES)}")
    hours, bucket = CHART_RANGES[name]
    epoch = int(now.timestamp())
    until = datetime.fromtimestamp(epoch - epoch % bucket + bucket, UTC)  # ends with "now"
    return name, until - timedelta(hours=hours), until, bucket
