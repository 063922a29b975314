"""The alerter: folds alerts into digests, at most one per interval, sent to every sink.

``emit`` is called on the login path: it only appends to a bounded queue and sets an event,
never awaits, never raises. A background task (``start``/``close``) does the rest:

- **The first alert after a quiet period goes out at once** (after ``settle``, a moment that
  lets a burst arrive together), and starts an interval. Whatever arrives during the interval
  waits for its end and goes out as one digest; a flood gives one message per interval.
  A quiet period is one in which no digest was cut for a whole interval.
- **Bounded memory.** At most ``max_pending`` alerts are queued; beyond that the oldest are
  dropped. Counts per kind and the total stay exact, and the digest says how many were dropped.
- **Failures.** A sink that fails is logged (by its safe name, never a URL or a secret) and
  its digest is retried once, merged into the same sink's next digest an interval later; if
  that fails too, the retried part is dropped and counted in ``stats().lost``. Other sinks
  are unaffected; nothing is ever raised into ``emit``.
- **close()** stops the task and flushes what is pending (and pending retries) at once, each
  step bounded by a short timeout, then closes the sinks.

Time comes from an injected :class:`Clock` so tests can drive intervals without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from types import MappingProxyType, TracebackType
from typing import Protocol

from sekisho.audit.alert_sinks import create_sinks
from sekisho.audit.alerts import ALERT_KINDS, Alert, AlertDeliveryError, AlertSink, Digest
from sekisho.config.alerts import AlertSettings

__all__ = ["Alerter", "AlerterStats", "Clock", "MonotonicClock"]

log = logging.getLogger("sekisho.alerts")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class AlerterStats:
    """Volume counters (AU-05: each defence exports volume metrics)."""

    emitted: int  # accepted by emit
    ignored: int  # refused by emit: kind not enabled, alerts disabled, or after close
    dropped: int  # pushed out of a full queue (still counted in their digest)
    pending: int  # queued now
    digests_sent: int  # successful sink deliveries
    send_failures: int
    lost: int  # alerts in digests given up after their retry failed


class Alerter:
    def __init__(
        self,
        *,
        sinks: Sequence[AlertSink],
        interval: float = 300.0,
        max_per_digest: int = 20,
        max_pending: int = 10_000,
        kinds: Collection[str] | None = None,
        enabled: bool = True,
        send_first_immediately: bool = True,
        settle: float | None = None,
        send_timeout: float = 60.0,
        close_timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        if min(interval, max_per_digest, max_pending, send_timeout, close_timeout) <= 0:
            raise ValueError("interval, max_per_digest, max_pending and timeouts must be > 0")
        self._sinks = list(sinks)
        self._interval = interval
        self._max_shown = max_per_digest
        self._kinds = frozenset(ALERT_KINDS if kinds is None else kinds)
        self._enabled = enabled and bool(self._sinks)
        self._immediate = send_first_immediately
        self._settle = min(1.0, interval / 10) if settle is None else settle
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._clock: Clock = clock or MonotonicClock()
        # The current window: the queue, plus exact counts that survive dropping.
        self._pending: deque[Alert] = deque(maxlen=max_pending)
        self._counts: dict[str, int] = {}
        self._total = self._window_dropped = 0
        self._first_at: datetime | None = None
        self._last_at: datetime | None = None
        self._carry: dict[int, Digest] = {}
        self._last_cut: float | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._emitted = self._ignored = self._dropped = 0
        self._sent = self._failures = self._lost = 0

    @classmethod
    def from_settings(cls, settings: AlertSettings, *, clock: Clock | None = None) -> Alerter:
        """Sinks built from ``[alerts]`` (secret files read now; ConfigError names the key)."""
        return cls(
            sinks=create_sinks(settings), interval=settings.digest_interval,
            max_per_digest=settings.max_per_digest, max_pending=settings.max_pending,
            kinds=settings.kinds, enabled=settings.enabled,
            send_first_immediately=settings.send_first_immediately, clock=clock)

    @property
    def sinks(self) -> tuple[AlertSink, ...]:
        return tuple(self._sinks)

    def emit(self, alert: Alert) -> None:
        """Queue ``alert`` for the next digest. Cheap, never blocks, never raises. Call it on
        the event loop's thread."""
        if self._closed or not self._enabled or alert.kind not in self._kinds:
            self._ignored += 1
            return
        if len(self._pending) == self._pending.maxlen:
            self._dropped += 1
            self._window_dropped += 1
        self._pending.append(alert)
        self._emitted += 1
        self._counts[alert.kind] = self._counts.get(alert.kind, 0) + 1
        self._total += 1
        at = alert.occurred_at
        self._first_at = at if self._first_at is None else min(self._first_at, at)
        self._last_at = at if self._last_at is None else max(self._last_at, at)
        self._wake.set()

    def stats(self) -> AlerterStats:
        return AlerterStats(
            emitted=self._emitted, ignored=self._ignored, dropped=self._dropped,
            pending=self._total, digests_sent=self._sent, send_failures=self._failures,
            lost=self._lost)

    async def start(self) -> None:
        if self._task is None and not self._closed and self._enabled:
            self._task = asyncio.create_task(self._run(), name="sekisho-alerts")

    async def close(self) -> None:
        """Stop, flush what is pending (at most ``close_timeout`` for the running send and as
        much again for the flush), close the sinks. Alerts emitted afterwards are ignored."""
        timeout = self._close_timeout
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        try:
            async with asyncio.timeout(timeout):
                await self._flush(final=True)
        except TimeoutError:
            log.warning("alerts: the flush at close did not finish in %gs", timeout)
        unsent = sum(d.total for d in self._carry.values())
        if unsent:
            self._lost += unsent
            log.error("alerts: %d alerts not delivered at close", unsent)
        self._carry.clear()
        for sink in self._sinks:
            try:
                await sink.close()
            except Exception as exc:  # closing must not stop the other sinks closing
                log.warning("alerts: closing %s failed: %s", sink.name, type(exc).__name__)

    async def __aenter__(self) -> Alerter:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self._wake.wait()
            delay = self._delay()
            if self._stop.is_set() or (delay > 0 and await self._stopped_during(delay)):
                return
            self._wake.clear()
            try:
                await self._flush()
            except Exception as exc:  # a bug here must not end alerting for good
                log.error("alerts: digest failed: %s", type(exc).__name__)

    def _delay(self) -> float:
        now = self._clock.now()
        if self._last_cut is not None and now - self._last_cut < self._interval:
            return self._last_cut + self._interval - now
        return self._settle if self._immediate else self._interval

    async def _stopped_during(self, seconds: float) -> bool:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return self._stop.is_set()

    def _reset_window(self) -> None:
        self._pending.clear()
        self._counts = {}
        self._total = self._window_dropped = 0
        self._first_at = self._last_at = None

    def _take(self) -> Digest | None:
        if not self._total or self._first_at is None or self._last_at is None:
            return None
        digest = Digest(
            alerts=tuple(islice(self._pending, self._max_shown)),
            counts=MappingProxyType(dict(self._counts)), total=self._total,
            first_at=self._first_at, last_at=self._last_at, dropped=self._window_dropped)
        self._reset_window()
        return digest

    async def _flush(self, *, final: bool = False) -> None:
        fresh = self._take()
        if fresh is None and not self._carry:
            return
        self._last_cut = self._clock.now()
        await asyncio.gather(*(self._deliver(i, sink, fresh, final=final)
                               for i, sink in enumerate(self._sinks)))
        if self._carry and not final:
            self._wake.set()  # the retry goes out an interval from now, news or not

    async def _deliver(
        self, index: int, sink: AlertSink, fresh: Digest | None, *, final: bool
    ) -> None:
        carried = self._carry.pop(index, None)
        if carried is not None and fresh is not None:
            digest: Digest | None = carried.merge(fresh, limit=self._max_shown)
        else:
            digest = carried or fresh
        if digest is None:
            return
        try:
            async with asyncio.timeout(self._send_timeout):
                await sink.send(digest)
        except asyncio.CancelledError:
            self._carry[index] = digest  # close() counts it as not delivered
            raise
        except Exception as exc:
            self._failures += 1
            if carried is not None:
                self._lost += carried.total
            if fresh is not None:
                self._carry[index] = fresh
            log.warning("alerts: %s failed (%s); %s", sink.name, _describe(exc),
                        _consequence(carried, fresh, final=final))
        else:
            self._sent += 1


def _describe(exc: BaseException) -> str:
    # Only our own messages are known to be free of URLs and secrets.
    if isinstance(exc, AlertDeliveryError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__


def _consequence(carried: Digest | None, fresh: Digest | None, *, final: bool) -> str:
    parts = []
    if carried is not None:
        parts.append(f"{carried.total} alerts dropped after their retry")
    if fresh is not None:
        parts.append(f"{fresh.total} alerts " + (
            "not delivered (closing)" if final else "will be retried next interval"))
    return "; ".join(parts)
