"""The alerter's digesting: pacing, folding, bounded memory, retries, close. Time is a manual
clock, so intervals pass when the test says so; nothing here waits on the wall clock except
as a safety net against hangs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from sekisho.audit.alerter import Alerter
from sekisho.audit.alerts import Alert, Digest

INTERVAL = 60.0


class ManualClock:
    """A :class:`sekisho.audit.alerter.Clock` whose sleeps end only when ``advance`` says."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        entry = (self.t + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for deadline, fut in self._sleepers:
            if deadline <= self.t and not fut.done():
                fut.set_result(None)


async def until(condition: Callable[[], object], what: str = "condition") -> None:
    """Let the loop run until ``condition()`` holds (a hang guard, not a timing assertion)."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)
    try:
        await asyncio.wait_for(poll(), 10)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


class RecordingSink:
    def __init__(self, name: str = "recording", fail: int = 0,
                 error: Exception | None = None) -> None:
        self.name = name
        self.digests: list[Digest] = []
        self.attempts = 0
        self.fail = fail  # how many sends fail before they succeed
        self.error = error or RuntimeError("sink down")
        self.closed = False

    async def send(self, digest: Digest) -> None:
        self.attempts += 1
        if self.attempts <= self.fail:
            raise self.error
        self.digests.append(digest)

    async def close(self) -> None:
        self.closed = True


def alert(n: int = 0, kind: str = "lockout", **fields: str | int) -> Alert:
    return Alert(kind=kind, severity="warning", title=f"alert {n}",
                 summary="an account reached its wait window",
                 fields={"account": f"user{n}", "client_ip": "192.0.2.7", **fields})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(clock: ManualClock, *sinks: RecordingSink, **options: object) -> Alerter:
    options.setdefault("settle", 0)
    options.setdefault("interval", INTERVAL)
    return Alerter(sinks=list(sinks), clock=clock, **options)  # type: ignore[arg-type]


async def test_first_alert_at_once_then_one_digest_per_interval(clock: ManualClock) -> None:
    sink = RecordingSink()
    alerter = make(clock, sink)
    await alerter.start()
    alerter.emit(alert(0))
    await until(lambda: len(sink.digests) == 1, "the immediate digest")
    assert sink.digests[0].total == 1
    for n in range(5):
        alerter.emit(alert(n))
        await asyncio.sleep(0)
    alerter.emit(alert(9, kind="attack_mode"))
    alerter.emit(alert(10, kind="attack_mode"))
    await until(lambda: clock.sleeping, "the interval wait")
    clock.advance(INTERVAL - 1)
    await asyncio.sleep(0.01)
    assert len(sink.digests) == 1  # still inside the interval
    clock.advance(1)
    await until(lambda: len(sink.digests) == 2, "the interval digest")
    second = sink.digests[1]
    assert second.total == 7
    assert dict(second.counts) == {"lockout": 5, "attack_mode": 2}
    # Quiet for a whole interval: the next alert goes out at once again.
    clock.advance(INTERVAL)
    alerter.emit(alert(11))
    await until(lambda: len(sink.digests) == 3, "the digest after a quiet period")
    await alerter.close()
    assert len(sink.digests) == 3
    assert sink.closed


async def test_without_immediate_first_the_first_alert_waits(clock: ManualClock) -> None:
    sink = RecordingSink()
    alerter = make(clock, sink, send_first_immediately=False)
    await alerter.start()
    alerter.emit(alert(0))
    await until(lambda: clock.sleeping, "the interval wait")
    assert sink.digests == []
    clock.advance(INTERVAL)
    await until(lambda: len(sink.digests) == 1)
    await alerter.close()


async def test_flood_gives_one_digest_with_counts_and_the_first_n(clock: ManualClock) -> None:
    sink = RecordingSink()
    alerter = make(clock, sink, max_per_digest=20)
    await alerter.start()
    for n in range(1000):
        alerter.emit(alert(n, kind="lockout" if n % 10 else "distinct_usernames"))
    await until(lambda: sink.digests)
    await alerter.close()
    assert len(sink.digests) == 1
    digest = sink.digests[0]
    assert (digest.total, digest.more, digest.dropped) == (1000, 980, 0)
    assert dict(digest.counts) == {"lockout": 900, "distinct_usernames": 100}
    assert [a.title for a in digest.alerts] == [f"alert {n}" for n in range(20)]
    assert alerter.stats().emitted == 1000


async def test_a_full_queue_drops_the_oldest_but_counts_them(clock: ManualClock) -> None:
    sink = RecordingSink()
    alerter = make(clock, sink, max_pending=10, max_per_digest=5)
    for n in range(25):
        alerter.emit(alert(n))
    assert alerter.stats().pending == 25
    await alerter.start()
    await until(lambda: sink.digests)
    await alerter.close()
    digest = sink.digests[0]
    assert (digest.total, digest.dropped, digest.counts["lockout"]) == (25, 15, 25)
    assert [a.title for a in digest.alerts] == [f"alert {n}" for n in range(15, 20)]
    assert alerter.stats().dropped == 15


async def test_kinds_filter_and_disabled(clock: ManualClock) -> None:
    sink = RecordingSink()
    alerter = make(clock, sink, kinds=["attack_mode"])
    await alerter.start()
    alerter.emit(alert(0, kind="lockout"))
    alerter.emit(alert(1, kind="attack_mode"))
    await until(lambda: sink.digests)
    await alerter.close()
    assert dict(sink.digests[0].counts) == {"attack_mode": 1}
    assert alerter.stats().ignored == 1

    off = make(clock, sink, enabled=False)
    await off.start()
    off.emit(alert(2))
    await off.close()
    assert len(sink.digests) == 1
    assert off.stats().ignored == 1


async def test_failed_sink_is_retried_once_at_the_next_interval(
    clock: ManualClock, caplog: pytest.LogCaptureFixture,
) -> None:
    flaky, healthy = RecordingSink("flaky", fail=1), RecordingSink("healthy")
    alerter = make(clock, flaky, healthy)
    await alerter.start()
    with caplog.at_level(logging.WARNING, logger="sekisho.alerts"):
        alerter.emit(alert(0))  # never raises, whatever the sinks do
        await until(lambda: flaky.attempts == 1 and healthy.digests)
        alerter.emit(alert(1))
        await until(lambda: clock.sleeping)
        clock.advance(INTERVAL)
        await until(lambda: flaky.digests and len(healthy.digests) == 2)
    await alerter.close()
    # The retry carries the failed digest and what came since; the healthy sink saw each once.
    assert [a.title for a in flaky.digests[0].alerts] == ["alert 0", "alert 1"]
    assert [d.total for d in healthy.digests] == [1, 1]
    assert "flaky failed (RuntimeError)" in caplog.text
    assert "will be retried next interval" in caplog.text
    assert alerter.stats().send_failures == 1
    assert alerter.stats().lost == 0


async def test_a_retry_that_fails_again_is_dropped(
    clock: ManualClock, caplog: pytest.LogCaptureFixture,
) -> None:
    down = RecordingSink("down", fail=10**6)
    alerter = make(clock, down)
    await alerter.start()
    alerter.emit(alert(0))
    await until(lambda: down.attempts == 1)
    await until(lambda: clock.sleeping)
    clock.advance(INTERVAL)
    await until(lambda: alerter.stats().lost == 1, "the retry to be given up")
    clock.advance(INTERVAL * 3)
    await alerter.close()
    assert down.attempts == 2
    assert "1 alerts dropped after their retry" in caplog.text


async def test_sink_errors_are_logged_without_their_message(
    clock: ManualClock, caplog: pytest.LogCaptureFixture,
) -> None:
    canary = "CANARY-hunter2-in-an-exception"
    sink = RecordingSink("odd", fail=1, error=ValueError(f"https://x/hook/{canary}"))
    alerter = make(clock, sink)
    await alerter.start()
    alerter.emit(alert(0))
    await until(lambda: sink.attempts == 1)
    await alerter.close()
    assert "odd failed (ValueError)" in caplog.text
    assert canary not in caplog.text


async def test_close_flushes_pending_without_waiting(clock: ManualClock) -> None:
    sink = RecordingSink()
    alerter = make(clock, sink)
    await alerter.start()
    alerter.emit(alert(0))
    await until(lambda: sink.digests)
    alerter.emit(alert(1))
    alerter.emit(alert(2))
    await until(lambda: clock.sleeping)
    await alerter.close()  # the clock never advanced
    assert [d.total for d in sink.digests] == [1, 2]
    alerter.emit(alert(3))
    assert alerter.stats().ignored == 1


async def test_close_delivers_a_pending_retry(clock: ManualClock) -> None:
    sink = RecordingSink(fail=1)
    alerter = make(clock, sink)
    await alerter.start()
    alerter.emit(alert(0))
    await until(lambda: sink.attempts == 1)
    await alerter.close()
    assert [d.total for d in sink.digests] == [1]


async def test_close_gives_up_on_a_hanging_sink(clock: ManualClock) -> None:
    class Hanging(RecordingSink):
        async def send(self, digest: Digest) -> None:
            self.attempts += 1
            await asyncio.Event().wait()

    sink = Hanging("hanging")
    alerter = make(clock, sink, close_timeout=0.05)
    alerter.emit(alert(0))
    await alerter.start()
    await until(lambda: sink.attempts == 1)
    await alerter.close()
    assert alerter.stats().lost == 1
    assert sink.closed


async def test_emit_before_start_is_kept(clock: ManualClock) -> None:
    sink = RecordingSink()
    alerter = make(clock, sink)
    alerter.emit(alert(0))
    async with alerter:
        await until(lambda: sink.digests)
    assert sink.digests[0].total == 1


def test_emit_is_synchronous_and_cheap() -> None:
    """No event loop needed to queue (it never awaits)."""
    alerter = Alerter(sinks=[RecordingSink()], max_pending=100)
    for n in range(1000):
        alerter.emit(alert(n))
    stats = alerter.stats()
    assert (stats.emitted, stats.pending, stats.dropped) == (1000, 1000, 900)
