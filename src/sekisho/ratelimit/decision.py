"""What the regulator answers: a decision per attempt, and an account's state for admins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["AccountState", "Decision", "FactorState", "Reason"]

#: ``ok``; ``delay`` (consecutive-failure wait, RL-02); ``disabled`` (RL-01); ``account``
#: (attempt budget of the account or device, RL-09); ``account_ip``, ``ip``, ``subnet``,
#: ``global`` (failure budgets, RL-05); ``attack_ip``, ``attack_subnet`` (attack mode's).
Reason = Literal["ok", "delay", "disabled", "account", "account_ip", "ip", "subnet", "global",
                 "attack_ip", "attack_subnet"]


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed`` False: answer 429 with ``Retry-After: retry_after`` (0 = no timer,
    ``disabled``) and evaluate nothing. ``report_only``: a report-only rule would have
    refused (``reason``, ``retry_after`` say how). ``device``: counted on a device budget."""

    allowed: bool
    retry_after: int
    reason: Reason
    report_only: bool = False
    device: bool = False


@dataclass(frozen=True, slots=True)
class FactorState:
    failures: int
    last_failure: float | None
    wait_until: float | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class AccountState:
    """The account-wide counters by factor (device counters are not listed)."""

    account_key: str
    factors: Mapping[str, FactorState]

    @property
    def disabled(self) -> bool:
        return any(f.disabled for f in self.factors.values())

    @property
    def wait_until(self) -> float | None:
        waits = [f.wait_until for f in self.factors.values() if f.wait_until is not None]
        return max(waits, default=None)
