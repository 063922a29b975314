"""Attack mode's detectors and state, on memory and Redis, with a controllable clock (issue 3
item 4; RL-05, AU-05).

The detectors are fed as the regulator feeds them (``observe`` after each evaluated password
attempt); the clock is a fake that the tests advance.
"""

# ruff: noqa: F811  (fixtures imported from attack_helpers are named by the tests' arguments)
from __future__ import annotations

import pytest
from pydantic import ValidationError
from tests.ratelimit.attack_helpers import (  # noqa: F401  (fixtures)
    MakeMonitor,
    clock,
    kinds,
    make_monitor,
)
from tests.ratelimit.helpers import SECRET, FakeClock

from sekisho.config.attack import AttackSettings
from sekisho.ratelimit.attack import AttackMonitor
from sekisho.ratelimit.attack_store import MemoryAttackStore
from sekisho.ratelimit.attack_types import AttackEvent
from sekisho.ratelimit.keys import RateLimitKeys

KEYS = RateLimitKeys(SECRET)
RATIO_ONLY = {"distinct_usernames": {"enabled": False},
              "failure_ratio": {"min_attempts": 10, "threshold": 0.5, "window": 600}}
NAMES_ONLY = {"failure_ratio": {"enabled": False},
              "distinct_usernames": {"max_per_ip": 3, "max_per_subnet": 5, "window": 600}}


async def outcome(monitor: AttackMonitor, name: str, ip: str = "192.0.2.7", *,
                  success: bool = False, device: bool = False) -> None:
    await monitor.observe(account_key=KEYS.account(name), client_ip=ip, success=success,
                          device=device)


async def test_failure_ratio_trips_at_volume_and_threshold(make_monitor: MakeMonitor) -> None:
    """AU-05 (global failure rate): 9 failures are below the minimum volume; the 10th trips
    attack mode; the start is reported once, with its evidence and no name."""
    events: list[AttackEvent] = []
    monitor = make_monitor(events=events, **RATIO_ONLY)
    for n in range(9):
        await outcome(monitor, f"user{n}", f"198.51.100.{n}")
    assert not await monitor.tight_for("203.0.113.1")
    await outcome(monitor, "user9", "198.51.100.9")
    assert await monitor.tight_for("203.0.113.1")  # any address: the mode is global
    status = await monitor.status()
    assert (status.active, status.reason) == (True, "failure_ratio")
    assert kinds(events) == [("start", "failure_ratio")]
    assert events[0].details == {"failures": 10, "attempts": 10, "window": 600}
    for n in range(20):
        await outcome(monitor, f"more{n}")
    assert kinds(events) == [("start", "failure_ratio")]


async def test_failure_ratio_below_threshold_does_not_trip(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor(**RATIO_ONLY)
    for n in range(40):
        await outcome(monitor, f"user{n}", success=n % 20 < 11)  # never over 45 % failed
    assert not (await monitor.status()).active


async def test_failure_ratio_leaves_known_devices_out(make_monitor: MakeMonitor) -> None:
    """AU-05: employees signing in from their known devices do not dilute the ratio. Ten
    failures from unknown browsers among forty known-device successes still trip it."""
    monitor = make_monitor(**RATIO_ONLY)
    for n in range(40):
        await outcome(monitor, f"user{n}", success=True, device=True)
    for n in range(9):
        await outcome(monitor, f"user{n}", f"198.51.100.{n}")
        await outcome(monitor, f"user{n}", device=True)  # a known device's typo: not counted
    assert not (await monitor.status()).active
    await outcome(monitor, "user9", "198.51.100.9")
    assert (await monitor.status()).active


async def test_failure_ratio_forgets_outside_its_window(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    """The detector resets: failures older than the window no longer count."""
    monitor = make_monitor(**RATIO_ONLY)
    for n in range(9):
        await outcome(monitor, f"user{n}")
    clock.advance(661)  # the window, plus the span of one of its counters
    for n in range(9):
        await outcome(monitor, f"user{n}", success=n > 2)  # 3 failures + 0 remembered
    assert not (await monitor.status()).active


async def test_mode_ends_by_itself_and_the_end_is_announced_once(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    """Issue 3 item 4: attack mode ends after the quiet period, by itself, with one
    announcement; while a detector keeps firing it is extended."""
    events: list[AttackEvent] = []
    monitor = make_monitor(events=events, quiet_period=900, **RATIO_ONLY)
    for n in range(10):
        await outcome(monitor, f"user{n}")
    started = (await monitor.status()).since
    clock.advance(800)
    for n in range(10):  # the detector fires again: extends to now + 900
        await outcome(monitor, f"late{n}")
    clock.advance(800)  # 1600 s after the start: only the extension keeps it on
    assert await monitor.tight_for("203.0.113.1")
    clock.advance(101)
    assert not await monitor.tight_for("203.0.113.1")
    await monitor.tick()
    await monitor.tick()
    assert kinds(events) == [("start", "failure_ratio"), ("end", "failure_ratio")]
    assert events[1].since == started
    status = await monitor.status()
    assert not status.active and status.last_since == started


async def test_distinct_usernames_flag_the_address_and_start_the_mode(
    make_monitor: MakeMonitor,
) -> None:
    """RL-05, AU-05: one address failing on more than max_per_ip distinct names is flagged
    and switches attack mode on; the same name again and again is not a spray."""
    events: list[AttackEvent] = []
    monitor = make_monitor(events=events, **NAMES_ONLY)
    for _ in range(10):
        await outcome(monitor, "alice")
    for n in range(2):
        await outcome(monitor, f"user{n}")
    assert not await monitor.tight_for("192.0.2.7")
    await outcome(monitor, "user2")
    assert kinds(events) == [("source_flagged", "distinct_usernames"),
                             ("start", "distinct_usernames")]
    assert (events[0].source, events[0].source_kind) == ("192.0.2.7", "ip")
    assert events[0].details == {"usernames": 4, "window": 600}
    status = await monitor.status()
    assert status.active
    assert [(f.source, f.kind) for f in status.flagged] == [("192.0.2.7", "ip")]


async def test_flagged_address_alone_when_the_mode_is_not_started(
    make_monitor: MakeMonitor,
) -> None:
    """A flagged source meets the tighter rules on its own, outside attack mode."""
    settings = AttackSettings.model_validate(
        {**NAMES_ONLY, "distinct_usernames": {**NAMES_ONLY["distinct_usernames"],
                                              "starts_attack_mode": False}})
    monitor = make_monitor(settings)
    for n in range(4):
        await outcome(monitor, f"user{n}", "192.0.2.7")
    assert await monitor.tight_for("192.0.2.7")
    assert await monitor.tight_for("::ffff:192.0.2.7")  # the same address, IPv4-mapped
    assert not await monitor.tight_for("192.0.2.8")  # same /24, but only the address tripped
    assert not await monitor.tight_for("198.51.100.1")
    assert not (await monitor.status()).active


@pytest.mark.parametrize("net", ["192.0.2.{}", "2001:db8:0:7::{:x}"])
async def test_distinct_usernames_per_subnet(make_monitor: MakeMonitor, net: str) -> None:
    """Addresses of one /24 (IPv4) or /64 (IPv6) share the subnet's count."""
    monitor = make_monitor(**{**NAMES_ONLY, "distinct_usernames": {
        **NAMES_ONLY["distinct_usernames"], "starts_attack_mode": False}})
    for n in range(6):  # two names from each of three addresses: no address trips
        await outcome(monitor, f"user{n}", net.format(1 + n // 2))
    assert await monitor.tight_for(net.format(200))
    flagged = (await monitor.status()).flagged
    assert [f.kind for f in flagged] == ["subnet"]


async def test_successes_and_known_devices_are_not_counted_as_names(
    make_monitor: MakeMonitor,
) -> None:
    """An office behind one address: its users' successes, and failures from browsers that
    signed in before, never make it look like a spray."""
    monitor = make_monitor(**NAMES_ONLY)
    for n in range(20):
        await outcome(monitor, f"user{n}", success=True)
        await outcome(monitor, f"user{n}", device=True)
    assert not await monitor.tight_for("192.0.2.7")


async def test_distinct_usernames_forget_outside_the_window(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor(**NAMES_ONLY)
    for n in range(3):
        await outcome(monitor, f"user{n}")
    clock.advance(601)
    for n in range(3, 6):
        await outcome(monitor, f"user{n}")
    assert not await monitor.tight_for("192.0.2.7")


async def test_flag_ends_after_the_quiet_period(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor(quiet_period=300, **NAMES_ONLY)
    for n in range(4):
        await outcome(monitor, f"user{n}")
    clock.advance(299)
    assert await monitor.tight_for("192.0.2.7")
    clock.advance(2)
    assert not await monitor.tight_for("192.0.2.7")
    assert (await monitor.status()).flagged == ()


async def test_report_only_detectors_enforce_nothing_and_report_once(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    """Issue 3 item 4: report-only detectors record what they would have done, for tuning,
    and change nothing."""
    events: list[AttackEvent] = []
    monitor = make_monitor(events=events, failure_ratio={
        "min_attempts": 10, "report_only": True}, distinct_usernames={
        "max_per_ip": 3, "report_only": True})
    for n in range(30):
        await outcome(monitor, f"user{n}")
    assert not await monitor.tight_for("192.0.2.7")
    status = await monitor.status()
    assert not status.active and status.flagged == ()
    assert status.report_only["failure_ratio"] and status.report_only["distinct_usernames"]
    assert sorted((e.kind, e.reason, e.would, e.source) for e in events) == [
        ("report_only", "distinct_usernames", "flag", "192.0.2.7"),
        ("report_only", "failure_ratio", "start", None),
    ]
    clock.advance(901)  # a quiet period later, a detector that still fires reports again
    for n in range(10):
        await outcome(monitor, f"again{n}")
    assert len(events) == 4


async def test_disabled_attack_mode_does_nothing(make_monitor: MakeMonitor) -> None:
    events: list[AttackEvent] = []
    monitor = make_monitor(events=events, enabled=False, **NAMES_ONLY)
    for n in range(30):
        await outcome(monitor, f"user{n}")
    assert not await monitor.tight_for("192.0.2.7")
    assert events == []


async def test_memory_store_keeps_at_most_cap_names_and_max_sources() -> None:
    """Bounded memory: a source keeps its `cap` most recent names; sources beyond
    `max_sources` push out the least recently seen."""
    store = MemoryAttackStore(max_sources=3)
    for n in range(50):
        tally = await store.tally(now=1000.0 + n, failed=True, window=600, sources=["ip:a"],
                                  account_key=f"k{n}", name_window=600, cap=5)
    assert tally.names == (5,)
    for source in ("ip:b", "ip:c", "ip:d"):
        await store.tally(now=2000.0, failed=True, window=600, sources=[source],
                          account_key="k", name_window=600, cap=5)
    assert len(store._names) == 3 and "ip:a" not in store._names


def test_settings_messages_name_the_key() -> None:
    with pytest.raises(ValidationError) as info:
        AttackSettings.model_validate({"distinct_usernames": {"max_per_ip": 20,
                                                              "max_per_subnet": 10}})
    assert "max_per_subnet must be >= max_per_ip" in str(info.value)
    with pytest.raises(ValidationError) as info:
        AttackSettings.model_validate({"failure_ratio": {"threshold": 1.5}})
    assert info.value.errors()[0]["loc"] == ("failure_ratio", "threshold")
    with pytest.raises(ValidationError):
        AttackSettings.model_validate({"ip_factor": 2})
    with pytest.raises(ValidationError):
        AttackSettings.model_validate({"challenge": {"max_number": 10}})


async def test_replicas_share_attack_mode_within_the_cache_time(
    redis_url: str, clock: FakeClock, prefix: str
) -> None:
    """RL-08, invariant 6: the first replica to detect starts attack mode in Redis; another
    sees it once its one-second copy is stale; exactly one of them announces the end."""
    from sekisho.ratelimit.attack_store_redis import RedisAttackStore

    events: list[AttackEvent] = []

    async def record(event: AttackEvent) -> None:
        events.append(event)

    settings = AttackSettings.model_validate({**NAMES_ONLY, "cache_seconds": 1})
    first, second = (AttackMonitor(settings, store=RedisAttackStore(redis_url, prefix=prefix),
                                   keys=KEYS, secret=SECRET, clock=clock, on_event=record)
                     for _ in range(2))
    try:
        assert not await second.tight_for("198.51.100.1")  # cached for a second
        for n in range(4):
            await outcome(first, f"user{n}", "192.0.2.7")
        assert await first.tight_for("198.51.100.1")
        assert not await second.tight_for("198.51.100.1")
        clock.advance(1)
        assert await second.tight_for("198.51.100.1")
        assert await second.tight_for("192.0.2.7")
        assert [f.source for f in (await second.status()).flagged] == ["192.0.2.7"]
        clock.advance(settings.quiet_period)
        for monitor in (first, second, first, second):
            await monitor.tick()
        assert kinds(events) == [("source_flagged", "distinct_usernames"),
                                 ("start", "distinct_usernames"),
                                 ("end", "distinct_usernames")]
    finally:
        await first.close()
        await second.close()


async def test_a_new_episode_announces_an_unannounced_end_first(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    """If no replica looked while an episode ran out, the next start reports its end first."""
    events: list[AttackEvent] = []
    monitor = make_monitor(events=events, **RATIO_ONLY)
    for n in range(10):
        await outcome(monitor, f"a{n}")
    clock.advance(2000)
    for n in range(10):
        await outcome(monitor, f"b{n}")
    assert kinds(events) == [("start", "failure_ratio"), ("end", "failure_ratio"),
                             ("start", "failure_ratio")]


async def test_known_tight_answers_from_the_cache_alone(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    """The admission gate's question, without a store round trip: True only once this
    process has seen attack mode on (any address) or the source flagged; False when it is
    off or not known, and again once the episode has ended."""
    monitor = make_monitor(quiet_period=900, **NAMES_ONLY)
    assert not monitor.known_tight("192.0.2.7")
    for n in range(4):
        await outcome(monitor, f"user{n}")
    assert await monitor.tight_for("203.0.113.1")
    assert monitor.known_tight("192.0.2.7") and monitor.known_tight("203.0.113.1")
    clock.advance(901)
    assert not monitor.known_tight("203.0.113.1")
