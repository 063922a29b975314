"""Attack mode: detectors fed by every password outcome, and the state they switch.

**Detectors** (fed by :meth:`AttackMonitor.observe`, which the regulator calls after each
evaluated password attempt):

(a) ``failure_ratio``: of the password attempts in the last ``window`` seconds (at least
    ``min_attempts``), ``threshold`` or more failed → attack mode;
(b) ``distinct_usernames``: one address failed on more than ``max_per_ip`` distinct usernames
    (HMAC account keys) in the last ``window`` seconds, or one /24 or /64 on more than
    ``max_per_subnet`` → that source is *flagged*, and (``starts_attack_mode``) attack mode.

Neither counts attempts from a known device of the account: employees signing in as usual
would dilute the ratio and hide a slow, hash-bound attack (docs/attack-mode.md).

**While attack mode is on**, or for a flagged source, the tighter ``attack.ip`` and
``attack.subnet`` budgets apply and an unknown device must solve a proof of work (pow_gate.py).

**State.** One episode in the store (on Redis one key, shared by replicas): the first replica
to detect starts it, later detections extend ``until`` to ``now + quiet_period``; it ends by
itself when ``until`` passes, and exactly one replica announces the end. Each replica trusts
its copy of the episode and of each source's flag for ``cache_seconds``, and extends at most
once a second, so a flood costs one store round trip per attempt (the detectors' tally).

**Report-only.** A report-only detector starts and flags nothing; it reports what it would
have done, once per ``quiet_period`` per detector and source. Events go to ``on_event``
(audit and alerts) and to this module's log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from sekisho.config.attack import AttackSettings
from sekisho.errors import SekishoError
from sekisho.ratelimit.attack_pow import Challenges
from sekisho.ratelimit.attack_store import AttackStore, Episode, MemoryAttackStore
from sekisho.ratelimit.attack_types import (
    AttackEvent,
    AttackHook,
    AttackStatus,
    FlaggedSource,
    describe_source,
)
from sekisho.ratelimit.keys import RateLimitKeys

__all__ = ["AttackMonitor", "create_attack_monitor"]

log = logging.getLogger(__name__)

_NEVER = float("-inf")
_MAX_REMEMBERED = 50_000  # per-source caches and throttles, per process
_STATUS_LIMIT = 200
T = TypeVar("T")


class AttackMonitor:
    def __init__(
        self, settings: AttackSettings, *, store: AttackStore, keys: RateLimitKeys,
        secret: bytes, clock: Callable[[], float] = time.time,
        on_event: AttackHook | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._keys = keys
        self._clock = clock
        self._on_event = on_event
        self.challenges = Challenges(settings.challenge, secret=secret, store=store, clock=clock)
        self._episode: Episode | None = None
        self._fetched = _NEVER
        self._announced_until: float | None = None
        self._flag_cache: dict[str, tuple[float, float]] = {}  # source -> (until, fetched)
        self._extended: dict[str, float] = {}  # "mode" or a source -> when extended here
        self._reported: dict[str, float] = {}  # report-only notices -> when reported here
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> AttackSettings:
        return self._settings

    # -- the detectors -----------------------------------------------------------------------

    async def observe(
        self, *, account_key: str, client_ip: str, success: bool, device: bool
    ) -> None:
        """One evaluated password attempt and its outcome (``device``: from a known device)."""
        settings = self._settings
        if not settings.enabled or device:
            return  # neither detector counts a known device's attempts
        now = self._clock()
        ratio, names = settings.failure_ratio, settings.distinct_usernames
        sources = self._sources(client_ip) if names.enabled and not success else []
        tally = await self._store.tally(
            now=now, failed=not success, window=ratio.window, sources=[s for s, _ in sources],
            account_key=account_key, name_window=names.window, cap=names.max_per_subnet + 1)
        if (ratio.enabled and tally.attempts >= ratio.min_attempts
                and tally.failures >= ratio.threshold * tally.attempts):
            details = {"failures": tally.failures, "attempts": tally.attempts,
                       "window": ratio.window}
            if ratio.report_only:
                await self._report_once("failure_ratio", now, AttackEvent(
                    "report_only", "failure_ratio", would="start", details=details))
            else:
                await self._activate("failure_ratio", now, details)
        for (source, limit), count in zip(sources, tally.names, strict=True):
            if count > limit:
                await self._source_fired(source, count, now)

    def _sources(self, client_ip: str) -> list[tuple[str, int]]:
        names = self._settings.distinct_usernames
        return [(f"ip:{self._keys.ip(client_ip)}", names.max_per_ip),
                (f"net:{self._keys.subnet(client_ip)}", names.max_per_subnet)]

    async def _source_fired(self, source: str, count: int, now: float) -> None:
        names = self._settings.distinct_usernames
        text, kind = describe_source(source)
        details: dict[str, int | float | str] = {"usernames": count, "window": names.window}
        if names.report_only:
            await self._report_once(f"distinct_usernames|{source}", now, AttackEvent(
                "report_only", "distinct_usernames", source=text, source_kind=kind,
                would="flag", details=details))
            return
        if self._due(source, now):
            until = now + self._settings.quiet_period
            fresh = await self._store.flag(
                source, now=now, until=until, max_flagged=self._settings.max_flagged)
            _remember(self._flag_cache, source, (until, now))
            if fresh:
                await self._emit(AttackEvent(
                    "source_flagged", "distinct_usernames", since=now, until=until,
                    source=text, source_kind=kind, details=details))
        if names.starts_attack_mode:
            await self._activate("distinct_usernames", now, {**details, "source": text})

    async def _activate(
        self, reason: str, now: float, details: Mapping[str, int | float | str]
    ) -> None:
        if self._active(self._episode, now) and not self._due("mode", now):
            return
        self._extended["mode"] = now
        done = await self._store.activate(
            now=now, until=now + self._settings.quiet_period, reason=reason)
        self._episode, self._fetched = done.episode, now
        if done.ended is not None:
            await self._announce_end(done.ended)
        if done.started:
            await self._emit(AttackEvent(
                "start", reason, since=done.episode.since, until=done.episode.until,
                details=details))

    def _due(self, what: str, now: float) -> bool:
        """Extend ``what`` in the store at most once a second per replica."""
        last = self._extended.get(what, _NEVER)
        if now - last < 1.0:
            return False
        _remember(self._extended, what, now)
        return True

    # -- what the regulator and the login page ask -------------------------------------------

    async def tight_for(self, client_ip: str) -> bool:
        """Do the tighter budgets and the challenge apply to this client: attack mode is on,
        or its address or subnet is flagged?"""
        if not self._settings.enabled:
            return False
        now = self._clock()
        if self._active(await self._current(now), now):
            return True
        return any(until > now for until in await self._flags_of(self._sources(client_ip), now))

    def known_tight(self, client_ip: str) -> bool:
        """:meth:`tight_for` from this process's cache alone, without a store round trip:
        True only if attack mode is known to be on, or the client's address or subnet known
        to be flagged (the admission gate asks before the request body is read)."""
        if not self._settings.enabled:
            return False
        now = self._clock()
        if self._active(self._episode, now):
            return True
        return any((hit := self._flag_cache.get(source)) is not None and hit[0] > now
                   for source, _ in self._sources(client_ip))

    async def status(self) -> AttackStatus:
        """The shared state now, read afresh (for the admin page and the CLI)."""
        now = self._clock()
        self._fetched = _NEVER
        episode = await self._current(now)
        flags = await self._store.flags(now=now, limit=_STATUS_LIMIT)
        settings = self._settings
        active = self._active(episode, now)
        return AttackStatus(
            enabled=settings.enabled, active=active,
            since=episode.since if active and episode else None,
            until=episode.until if active and episode else None,
            reason=episode.reason if active and episode else None,
            flagged=tuple(FlaggedSource(*describe_source(f.source), f.since, f.until)
                          for f in flags),
            report_only={
                "failure_ratio": settings.failure_ratio.report_only,
                "distinct_usernames": settings.distinct_usernames.report_only,
                "budgets": settings.budgets_report_only,
                "challenge": settings.challenge.report_only,
            },
            last_since=episode.since if episode and not active else None,
            last_until=episode.until if episode and not active else None,
        )

    async def tick(self) -> None:
        """Refresh the cached state (and announce an end that has come)."""
        await self._current(self._clock())

    async def start(self) -> None:
        if self._task is None and self._settings.enabled:
            self._task = asyncio.create_task(self._run(), name="sekisho-attack-mode")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._store.close()

    # -- internals ---------------------------------------------------------------------------

    async def _run(self) -> None:
        every = max(1.0, self._settings.cache_seconds)
        while True:
            await asyncio.sleep(every)
            try:
                await self.tick()
            except SekishoError as exc:  # the store is down: try again next time
                log.warning("attack mode: state refresh failed: %s", type(exc).__name__)

    @staticmethod
    def _active(episode: Episode | None, now: float) -> bool:
        return episode is not None and episode.until > now

    async def _current(self, now: float) -> Episode | None:
        if now - self._fetched < self._settings.cache_seconds:
            return self._episode
        episode = await self._store.episode()
        self._episode, self._fetched = episode, now
        if (episode is not None and episode.until <= now
                and episode.until != self._announced_until):
            self._announced_until = episode.until  # claimed here or elsewhere: ask once
            ended = await self._store.claim_end(now=now)
            if ended is not None:
                await self._announce_end(ended)
        return episode

    async def _announce_end(self, ended: Episode) -> None:
        await self._emit(AttackEvent("end", ended.reason, since=ended.since, until=ended.until))

    async def _flags_of(self, sources: list[tuple[str, int]], now: float) -> list[float]:
        ttl = self._settings.cache_seconds
        cached = {s: self._flag_cache.get(s) for s, _ in sources}
        stale = [s for s, hit in cached.items() if hit is None or now - hit[1] >= ttl]
        if stale:
            for source, until in zip(stale, await self._store.flagged_until(stale), strict=True):
                cached[source] = (until, now)
                _remember(self._flag_cache, source, (until, now))
        return [hit[0] for hit in cached.values() if hit is not None]

    async def _report_once(self, key: str, now: float, event: AttackEvent) -> None:
        if now - self._reported.get(key, _NEVER) < self._settings.quiet_period:
            return
        _remember(self._reported, key, now)
        await self._emit(event)

    async def _emit(self, event: AttackEvent) -> None:
        name = f"attack_mode_{event.kind}"
        log.warning(name, extra={
            "event": name, "reason": event.reason, "since": event.since,
            "until": event.until, "source": event.source, "would": event.would,
            "details": dict(event.details)})
        if self._on_event is None:
            return
        try:
            await self._on_event(event)
        except Exception as exc:  # reporting must never fail the login that triggered it
            log.error("attack mode: reporting %s failed: %s", name, type(exc).__name__)


def _remember(table: dict[str, T], key: str, value: T) -> None:
    if len(table) >= _MAX_REMEMBERED and key not in table:
        table.clear()  # forgetting costs only round trips (and a repeated report)
    table[key] = value


def create_attack_monitor(
    settings: AttackSettings, *, url: str, secret: bytes, prefix: str = "sekisho:",
    clock: Callable[[], float] = time.time, on_event: AttackHook | None = None,
) -> AttackMonitor:
    """``url`` is ``state.url`` (``memory://`` or Redis); ``secret`` the session key."""
    store: AttackStore
    if url.startswith("memory://"):
        store = MemoryAttackStore()
    else:
        from sekisho.ratelimit.attack_store_redis import RedisAttackStore

        store = RedisAttackStore(url, prefix=prefix)
    return AttackMonitor(settings, store=store, keys=RateLimitKeys(secret), secret=secret,
                         clock=clock, on_event=on_event)
