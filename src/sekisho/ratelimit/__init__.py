"""Rate limiting and lockout: budgets over ``limits``, the regulator, device tokens.

Pure domain and storage; the gateway calls :meth:`Regulator.check` before evaluating any
credential and :meth:`Regulator.record_attempt` after. docs/lockout.md is the operator's view.
"""

from __future__ import annotations

from sekisho.config.ratelimit import FACTORS, RateLimitSettings
from sekisho.errors import RateLimitError
from sekisho.ratelimit.decision import AccountState, Decision, FactorState
from sekisho.ratelimit.device import DeviceTokens
from sekisho.ratelimit.factory import create_limiter, create_regulator
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.ratelimit.limiter import Limiter
from sekisho.ratelimit.regulator import Regulator
from sekisho.ratelimit.store import FailureRecord, FailureStore, MemoryFailureStore

__all__ = [
    "FACTORS",
    "AccountState",
    "Decision",
    "DeviceTokens",
    "FactorState",
    "FailureRecord",
    "FailureStore",
    "Limiter",
    "MemoryFailureStore",
    "RateLimitError",
    "RateLimitKeys",
    "RateLimitSettings",
    "Regulator",
    "create_limiter",
    "create_regulator",
]
