"""The ``[ratelimit]`` settings: budgets, the regulator's schedule, device tokens.

Defaults suit an intranet of a few thousand users (docs/lockout.md explains each number).
A budget window is written like ``limits`` writes one (``"20/10 minutes"``, ``"5 per minute"``)
or as a table ``{count = 20, seconds = 600}``; either way it becomes a :class:`Window`.

Every message names its key, e.g. ``ratelimit.disable_after: must be <= 100``.
"""

from __future__ import annotations

from typing import Any

import limits
from pydantic import Field, field_validator, model_validator

from sekisho.config.attack import AttackSettings
from sekisho.config.base import _Strict

__all__ = ["FACTORS", "AccountBudgets", "Budget", "RateLimitSettings", "Window"]

#: The authenticators with their own counters and budgets (RL-09).
FACTORS = ("password", "totp", "recovery", "passkey_options")

MAX_WINDOW_COUNT = 100_000  # a moving window keeps one timestamp per hit: bound the list
MAX_WINDOW_SECONDS = 31 * 86400
_WINDOW_HINT = 'must be like "20/10 minutes" or {count = 20, seconds = 600}'


class Window(_Strict):
    """At most ``count`` hits in any ``seconds``-long span."""

    count: int = Field(ge=1, le=MAX_WINDOW_COUNT)
    seconds: int = Field(ge=1, le=MAX_WINDOW_SECONDS)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            items = limits.parse_many(value)
        except ValueError:
            raise ValueError(_WINDOW_HINT) from None
        if len(items) != 1:
            raise ValueError("must be one window; give the other one as `long`")
        return {"count": items[0].amount, "seconds": items[0].get_expiry()}

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


class Budget(_Strict):
    """A short (burst) and a long window over one key. ``report_only`` counts and reports,
    never refuses (for tuning)."""

    short: Window
    long: Window
    report_only: bool = False

    @model_validator(mode="after")
    def _order(self) -> Budget:
        if self.long.seconds <= self.short.seconds:
            raise ValueError("long must be a longer window than short")
        return self

    @property
    def windows(self) -> tuple[Window, Window]:
        return (self.short, self.long)


def _budget(short: str, long: str) -> Budget:
    return Budget.model_validate({"short": short, "long": long})


class AccountBudgets(_Strict):
    """Attempts per account (or per known device of it), one budget per factor (RL-09).
    These count every evaluated attempt, successful or not: they bound request volume,
    including bursts that arrive before the regulator has seen a failure."""

    password: Budget = Field(default_factory=lambda: _budget("10/minute", "100/hour"))
    totp: Budget = Field(default_factory=lambda: _budget("10/minute", "60/hour"))
    recovery: Budget = Field(default_factory=lambda: _budget("5/minute", "20/hour"))
    passkey_options: Budget = Field(default_factory=lambda: _budget("20/minute", "200/hour"))


class RateLimitSettings(_Strict):
    # The regulator's schedule (RL-01, RL-02): per account and factor, across all addresses.
    free_failures: int = Field(default=4, ge=0, le=20)
    first_delay: int = Field(default=30, ge=1, le=3600)
    max_delay: int = Field(default=3600, ge=1, le=86400)
    disable_after: int = 50
    forget_after: int = Field(default=30 * 86400, ge=3600, le=366 * 86400)
    delay_report_only: bool = False
    # Device tokens: how long a browser stays "known" after a login.
    device_max_age: int = Field(default=90 * 86400, ge=3600, le=400 * 86400)
    # Admission (gateway/admission.py): login and recovery POSTs from browsers without a
    # device token handled at once; more are answered 503 before their form is read (0: no cap).
    unknown_in_flight: int = Field(default=16, ge=0, le=10_000)
    # ... and the gate's refusals are answered this many seconds late (0: at once), so a tool
    # with a fixed number of connections sends that much slower (at most 4096 held at once).
    refusal_delay: float = Field(default=0.5, ge=0, le=10)
    # Failure budgets (RL-05): what they count is failed attempts.
    ip: Budget = Field(default_factory=lambda: _budget("20/10 minutes", "200/day"))
    subnet: Budget = Field(default_factory=lambda: _budget("60/10 minutes", "600/day"))
    account_ip: Budget = Field(default_factory=lambda: _budget("10/10 minutes", "30/day"))
    global_failures: Budget = Field(
        default_factory=lambda: _budget("300/10 minutes", "1000/hour"))
    # Attempt budgets per account and factor (RL-09).
    account: AccountBudgets = Field(default_factory=AccountBudgets)
    # Attack mode: detectors, tighter address budgets, proof of work (docs/attack-mode.md).
    attack: AttackSettings = Field(default_factory=AttackSettings)

    @field_validator("disable_after")
    @classmethod
    def _disable_after(cls, value: int) -> int:
        if value > 100:
            raise ValueError("must be <= 100")
        if value < 1:
            raise ValueError("must be >= 1")
        return value

    @model_validator(mode="after")
    def _schedule(self) -> RateLimitSettings:
        if self.max_delay < self.first_delay:
            raise ValueError("max_delay must be >= first_delay")
        if self.disable_after <= self.free_failures:
            raise ValueError("disable_after must be greater than free_failures")
        return self

    def delay_after(self, failures: int) -> int:
        """Seconds to wait after ``failures`` consecutive failures: none for the free ones,
        then ``first_delay`` doubling up to ``max_delay`` (RL-02)."""
        over = failures - self.free_failures
        if over <= 0:
            return 0
        # Cap the exponent: 2**63 seconds is as good as max_delay, and stays cheap.
        return min(self.first_delay << min(over - 1, 40), self.max_delay)

    def budgets(self) -> dict[str, Budget]:
        """Every budget by the name the limiter knows it by."""
        acct = self.account
        return {
            "account_ip": self.account_ip,
            "ip": self.ip,
            "subnet": self.subnet,
            "global_failures": self.global_failures,
            "account.password": acct.password,
            "account.totp": acct.totp,
            "account.recovery": acct.recovery,
            "account.passkey_options": acct.passkey_options,
            "attack.ip": _scaled(self.ip, self.attack.ip_factor, self.attack.budgets_report_only),
            "attack.subnet": _scaled(
                self.subnet, self.attack.subnet_factor, self.attack.budgets_report_only),
        }


def _scaled(budget: Budget, factor: float, report_only: bool) -> Budget:
    """``budget`` with every window's count multiplied by ``factor`` (at least 1)."""
    short, long = (
        Window(count=max(1, int(w.count * factor)), seconds=w.seconds) for w in budget.windows)
    return Budget(short=short, long=long, report_only=report_only)
