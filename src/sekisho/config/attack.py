"""The ``[ratelimit.attack]`` settings: attack mode's detectors, its tighter budgets, and the
proof-of-work challenge (docs/attack-mode.md explains each number).

Every rule has its own ``report_only``: it then logs and audits what it would have done and
enforces nothing, for tuning against real traffic. Messages name the key, e.g.
``ratelimit.attack.failure_ratio.threshold: Input should be less than or equal to 1``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from sekisho.config.base import _Strict

__all__ = ["AttackSettings", "ChallengeSettings", "DistinctUsernames", "FailureRatio"]


class FailureRatio(_Strict):
    """Detector (a): of the password attempts evaluated in the last ``window`` seconds (at
    least ``min_attempts`` of them), the share that failed is ``threshold`` or more."""

    enabled: bool = True
    window: int = Field(default=600, ge=60, le=86400)
    min_attempts: int = Field(default=50, ge=1, le=1_000_000)
    threshold: float = Field(default=0.5, gt=0, le=1)
    report_only: bool = False


class DistinctUsernames(_Strict):
    """Detector (b): one address tried more than ``max_per_ip`` distinct usernames with a
    failed password in the last ``window`` seconds, or one /24 (IPv4) or /64 (IPv6) more than
    ``max_per_subnet``. The address or subnet is flagged (tighter budgets and the challenge
    for it alone); with ``starts_attack_mode`` the whole gateway goes into attack mode too."""

    enabled: bool = True
    window: int = Field(default=600, ge=60, le=86400)
    max_per_ip: int = Field(default=10, ge=1, le=10_000)
    max_per_subnet: int = Field(default=30, ge=1, le=10_000)
    starts_attack_mode: bool = True
    report_only: bool = False

    @model_validator(mode="after")
    def _order(self) -> DistinctUsernames:
        if self.max_per_subnet < self.max_per_ip:
            raise ValueError("max_per_subnet must be >= max_per_ip (a subnet holds the address)")
        return self


class ChallengeSettings(_Strict):
    """The ALTCHA proof of work asked, in attack mode, before a password from a browser that
    is not a known device of the account is evaluated. The browser tries counters up to
    ``max_number`` (about half of them on average); ``ttl`` is how long a challenge stays
    valid. Each solution is accepted once."""

    enabled: bool = True
    max_number: int = Field(default=100_000, ge=1_000, le=10_000_000)
    ttl: int = Field(default=600, ge=30, le=3600)
    report_only: bool = False


class AttackSettings(_Strict):
    enabled: bool = True
    # Attack mode (and a source's flag) ends this long after the last time a detector fired.
    quiet_period: int = Field(default=900, ge=60, le=7 * 86400)
    # How long a replica trusts its own copy of the shared attack state.
    cache_seconds: float = Field(default=1.0, ge=0, le=10)
    # At most this many flagged addresses and subnets are kept (those ending soonest go first).
    max_flagged: int = Field(default=10_000, ge=10, le=1_000_000)
    failure_ratio: FailureRatio = Field(default_factory=FailureRatio)
    distinct_usernames: DistinctUsernames = Field(default_factory=DistinctUsernames)
    # While active, the address budgets become ratelimit.ip / ratelimit.subnet with every
    # window's count multiplied by these (at least 1).
    ip_factor: float = Field(default=0.25, gt=0, le=1)
    subnet_factor: float = Field(default=0.25, gt=0, le=1)
    budgets_report_only: bool = False
    challenge: ChallengeSettings = Field(default_factory=ChallengeSettings)
