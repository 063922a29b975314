"""Build a regulator from settings: the one call the composition root makes."""

from __future__ import annotations

import time
from collections.abc import Callable

from sekisho.config.ratelimit import RateLimitSettings
from sekisho.ratelimit.attack import AttackMonitor
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.ratelimit.limiter import Limiter
from sekisho.ratelimit.regulator import Regulator
from sekisho.ratelimit.store import FailureStore, MemoryFailureStore

__all__ = ["create_limiter", "create_regulator"]


def create_limiter(
    settings: RateLimitSettings, *, url: str, prefix: str = "sekisho:",
    clock: Callable[[], float] = time.time,
) -> Limiter:
    budgets = {name: budget.windows for name, budget in settings.budgets().items()}
    return Limiter(url, budgets, prefix=prefix, clock=clock)


def create_regulator(
    settings: RateLimitSettings, *, url: str, secret: bytes, prefix: str = "sekisho:",
    clock: Callable[[], float] = time.time, attack: AttackMonitor | None = None,
) -> Regulator:
    """``url`` is ``state.url`` (``memory://`` or Redis); ``secret`` the session key;
    ``attack`` the attack-mode monitor (attack.py) that the regulator feeds and consults."""
    store: FailureStore
    if url.startswith("memory://"):
        store = MemoryFailureStore(clock=clock)
    else:
        from sekisho.ratelimit.store_redis import RedisFailureStore

        store = RedisFailureStore(url, prefix=prefix)
    return Regulator(
        settings,
        store=store,
        limiter=create_limiter(settings, url=url, prefix=prefix, clock=clock),
        keys=RateLimitKeys(secret),
        clock=clock,
        attack=attack,
    )
