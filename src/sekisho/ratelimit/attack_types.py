"""What attack mode tells the rest of Sekisho: events as they happen, and its status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["AttackEvent", "AttackHook", "AttackStatus", "EventKind", "FlaggedSource",
           "describe_source"]

#: ``start`` and ``end`` of attack mode; ``source_flagged``: an address or subnet tried too
#: many usernames; ``report_only``: a report-only detector would have started attack mode
#: or flagged a source (``would`` says which).
EventKind = Literal["start", "end", "source_flagged", "report_only"]


@dataclass(frozen=True, slots=True)
class AttackEvent:
    """``reason``: the detector, ``failure_ratio`` or ``distinct_usernames``. ``source``:
    the address or subnet as text. ``details``: counts and windows, never a name."""

    kind: EventKind
    reason: str
    since: float | None = None
    until: float | None = None
    source: str | None = None
    source_kind: Literal["ip", "subnet"] | None = None
    would: Literal["start", "flag"] | None = None
    details: Mapping[str, int | float | str] = field(default_factory=dict)


AttackHook = Callable[[AttackEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FlaggedSource:
    """An address (``kind="ip"``) or subnet that meets the tighter budgets and the
    challenge on its own, since ``since`` until ``until`` (epoch seconds)."""

    source: str
    kind: Literal["ip", "subnet"]
    since: float
    until: float


@dataclass(frozen=True, slots=True)
class AttackStatus:
    """Attack mode as the admin page and ``sekisho attack status`` show it."""

    enabled: bool
    active: bool
    since: float | None
    until: float | None
    reason: str | None
    flagged: tuple[FlaggedSource, ...]
    report_only: Mapping[str, bool]
    last_since: float | None = None  # the latest episode, if it is over
    last_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled, "active": self.active, "since": self.since,
            "until": self.until, "reason": self.reason,
            "flagged": [{"source": f.source, "kind": f.kind, "since": f.since,
                         "until": f.until} for f in self.flagged],
            "report_only": dict(self.report_only),
            "last_since": self.last_since, "last_until": self.last_until,
        }


def describe_source(stored: str) -> tuple[str, Literal["ip", "subnet"]]:
    """``ip:192.0.2.7`` → (``192.0.2.7``, ``ip``); ``net:192.0.2.0/24`` → (…, ``subnet``)."""
    kind, _, text = stored.partition(":")
    return text, ("ip" if kind == "ip" else "subnet")
