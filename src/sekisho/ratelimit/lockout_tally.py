"""The lockout recorder's types: its hook and unlock result, and what it keeps in memory
between writes (per-record batches of failures, the records it knows are open)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sekisho.store.lockouts import LockoutRecord, Sighting

TALLY_VALUES = 20  # per list, before a lock


class LockHook(Protocol):
    """Called once per newly opened record (audit ``authn_login_lock``, alerts)."""

    async def __call__(
        self, record: LockoutRecord, *, client_ip: str, user_agent: str
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Unlocked:
    before: LockoutRecord
    after: LockoutRecord


@dataclass(slots=True)
class _Batch:
    failures: int = 0
    first: float = 0.0
    last: float = 0.0
    ips: dict[str, int] = field(default_factory=dict)
    subnets: dict[str, int] = field(default_factory=dict)
    agents: dict[str, int] = field(default_factory=dict)

    def add(self, now: float, sample: tuple[str, str, str], *, cap: int, n: int = 1) -> bool:
        """Count ``n`` failures from (ip, subnet, agent); True once a list holds ``cap``."""
        self.first = min(self.first, now) if self.failures else now
        self.last = max(self.last, now)
        self.failures += n
        for counts, value in zip((self.ips, self.subnets, self.agents), sample, strict=True):
            if value in counts or len(counts) < cap:
                counts[value] = counts.get(value, 0) + 1
        return max(len(self.ips), len(self.subnets), len(self.agents)) >= cap

    def merge(self, other: _Batch) -> None:
        if not other.failures:
            return
        self.first = min(self.first, other.first) if self.failures else other.first
        self.last = max(self.last, other.last)
        self.failures += other.failures
        for mine, theirs in ((self.ips, other.ips), (self.subnets, other.subnets),
                             (self.agents, other.agents)):
            for value, n in theirs.items():
                mine[value] = mine.get(value, 0) + n

    def most_seen(self) -> tuple[str, str, str]:
        def top(counts: dict[str, int]) -> str:
            return max(counts, key=counts.__getitem__) if counts else ""

        return top(self.ips), top(self.subnets), top(self.agents)

    def sighting(self, failures: int | None = None) -> Sighting:
        return Sighting(
            failures=self.failures if failures is None else failures,
            first_seen=_when(self.first), last_seen=_when(self.last),
            ips=dict(self.ips), subnets=dict(self.subnets), user_agents=dict(self.agents))


@dataclass(slots=True)
class _Open:
    """A record this process knows is active, and failures not yet written to it."""

    pending: _Batch = field(default_factory=_Batch)
    create: bool = False  # a ``disabled`` decision is in the batch: reopen if unlocked
    dirty_since: float | None = None


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
