"""The regulator's schedule, per account and factor, on memory and Redis (RL-01..RL-09)."""

from __future__ import annotations

import logging

import pytest
from redis import asyncio as aioredis
from tests.ratelimit.helpers import SECRET, FakeClock, MakeRegulator, fail, failures, ip_of

from sekisho.ratelimit import (
    Decision,
    RateLimitError,
    RateLimitSettings,
    Regulator,
    create_regulator,
)


async def test_rl01_disabled_after_50_until_unlock(
    make_regulator: MakeRegulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """RL-01: 50 failures with waits honoured disable the password; the 51st attempt (with
    the correct password) is refused, no timer lifts it, a success does not, unlock does."""
    regulator = make_regulator()
    with caplog.at_level(logging.WARNING, logger="sekisho.ratelimit"):
        for n in range(50):
            last = await fail(regulator, clock, "alice", ip=ip_of(n))
    assert last == Decision(False, 0, "disabled")
    assert [r.msg for r in caplog.records] == ["authn_login_lock:maxretries"]
    clock.advance(40 * 86400)
    decision = await regulator.check(account="alice", client_ip=ip_of(51))
    assert decision == Decision(False, 0, "disabled")
    state = await regulator.state(account="alice")
    assert state.disabled and state.factors["password"].failures == 50
    await regulator.record_attempt(account="alice", client_ip=ip_of(52), success=True)
    assert not (await regulator.check(account="alice", client_ip=ip_of(53))).allowed
    # Other factors are separate (a passkey is not stopped by the password lock).
    assert (await regulator.check(
        account="alice", client_ip=ip_of(54), factor="passkey_options")).allowed
    await regulator.unlock(account="alice")
    assert (await regulator.check(account="alice", client_ip=ip_of(55))).allowed
    assert await failures(regulator, "alice") == 0


async def test_rl01_involved_factors_disabled_together(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-01: when failures involve password and TOTP, both are disabled."""
    regulator = make_regulator(free_failures=5, disable_after=6)
    for n in range(6):
        await regulator.record_attempt(account="alice", client_ip=ip_of(n), factor="totp",
                                       success=False, involved=("password",))
    state = await regulator.state(account="alice")
    assert state.factors["totp"].disabled and state.factors["password"].disabled
    assert not state.factors["recovery"].disabled
    await regulator.unlock(account="alice", factor="totp")
    state = await regulator.state(account="alice")
    assert not state.factors["totp"].disabled and state.factors["password"].disabled


async def test_rl02_wait_window_refuses_without_counting(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-02: after 5 failures an attempt waits 30 s and is not counted; at t+30 it is
    allowed; then the wait doubles up to one hour."""
    regulator = make_regulator()
    for _ in range(4):
        assert await fail(regulator, clock, "alice") == Decision(True, 0, "ok")
    assert await fail(regulator, clock, "alice") == Decision(False, 30, "delay")
    for _ in range(3):  # retries inside the window: refused, not counted
        assert await regulator.check(account="alice", client_ip="192.0.2.1") == Decision(
            False, 30, "delay")
    assert await failures(regulator, "alice") == 5
    clock.advance(29)
    assert await regulator.check(account="alice", client_ip="192.0.2.1") == Decision(
        False, 1, "delay")
    clock.advance(1)
    assert (await regulator.check(account="alice", client_ip=ip_of(1))).allowed
    waits = []
    for n in range(8):
        waits.append((await fail(regulator, clock, "alice", ip=ip_of(n))).retry_after)
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    state = await regulator.state(account="alice")
    assert state.wait_until == clock() + 3600


async def test_rl03_success_restarts_the_schedule(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-03: 3 failures, a success, then 5 failures: the schedule starts from failure 1."""
    regulator = make_regulator()
    for _ in range(3):
        await fail(regulator, clock, "alice")
    ok = await regulator.record_attempt(account="alice", client_ip="192.0.2.1", success=True)
    assert ok == Decision(True, 0, "ok")
    assert await failures(regulator, "alice") == 0
    decisions = [await fail(regulator, clock, "alice") for _ in range(5)]
    assert [d.reason for d in decisions] == ["ok", "ok", "ok", "ok", "delay"]
    assert decisions[-1].retry_after == 30


async def test_rl04_counted_per_account_across_addresses(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-04: 10 failures from 10 addresses give a counter of 10."""
    regulator = make_regulator()
    for n in range(10):
        await fail(regulator, clock, "alice", ip=ip_of(n))
    assert await failures(regulator, "alice") == 10


async def test_rl06_unknown_names_get_the_same_sequence(
    make_regulator: MakeRegulator, clock: FakeClock, state_url: str, prefix: str
) -> None:
    """RL-06: an unknown name gets the same decisions and waits as a real one (the
    regulator never learns which exists), and no name reaches Redis."""
    regulator = make_regulator()

    async def run(name: str, ip: str) -> list[Decision]:
        seen = []
        for _ in range(11):
            decision = await regulator.check(account=name, client_ip=ip)
            seen.append(decision)
            if not decision.allowed:
                clock.advance(decision.retry_after)
                decision = await regulator.check(account=name, client_ip=ip)
            seen.append(await regulator.record_attempt(
                account=name, client_ip=ip, success=False))
        return seen

    real = await run("Alice.Real@example.com", "192.0.2.10")
    ghost = await run("ghost.nobody@example.com", "192.0.2.20")
    assert ghost == real
    assert [d.retry_after for d in real if d.reason == "delay"][:3] == [30, 30, 60]
    if state_url.startswith("redis"):
        client = aioredis.from_url(state_url, decode_responses=True)
        keys = [k async for k in client.scan_iter(f"{prefix}*")]
        await client.aclose()
        assert len(keys) > 5
        for needle in ("alice", "ghost", "real", "nobody", "example"):
            assert not [k for k in keys if needle in k.lower()], needle


async def test_rl08_replicas_share_and_survive_restart(
    redis_url: str, clock: FakeClock, prefix: str
) -> None:
    """RL-08: two regulators on one Redis, 25 failures each: 50, disabled; a restarted
    instance sees the count and the disable."""
    settings = RateLimitSettings()

    def replica() -> Regulator:
        return create_regulator(settings, url=redis_url, secret=SECRET, prefix=prefix,
                                clock=clock)

    a, b = replica(), replica()
    for n in range(25):
        await fail(a, clock, "alice", ip=ip_of(2 * n))
        await fail(b, clock, "alice", ip=ip_of(2 * n + 1))
    for n in range(7):
        await fail(a, clock, "bob", ip=ip_of(n))
    await a.close()
    await b.close()
    c = replica()
    try:
        state = await c.state(account="alice")
        assert state.disabled and state.factors["password"].failures == 50
        decision = await c.check(account="bob", client_ip="192.0.2.1")
        assert decision.reason == "delay"
        assert await failures(c, "bob") == 7
    finally:
        await c.close()


async def test_rl09_factors_are_counted_apart(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-09: TOTP failures do not delay the password, and issuing (checking) a new code
    does not reset the TOTP count."""
    regulator = make_regulator()
    for _ in range(4):
        await fail(regulator, clock, "alice", factor="totp")
    for _ in range(3):  # e.g. "resend code": consulted, never reset
        await regulator.check(account="alice", client_ip="192.0.2.1", factor="totp")
    assert await failures(regulator, "alice", "totp") == 4
    await fail(regulator, clock, "alice", factor="totp")
    assert (await regulator.check(
        account="alice", client_ip="192.0.2.1", factor="totp")).reason == "delay"
    assert (await regulator.check(account="alice", client_ip="192.0.2.1")).allowed
    assert await failures(regulator, "alice", "password") == 0


async def test_rl09_passkey_options_volume(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-09: 100 option requests in one minute for one account get 429 after 20."""
    regulator = make_regulator()
    decisions = []
    for _ in range(100):
        decisions.append(await regulator.check(
            account="alice", client_ip="192.0.2.1", factor="passkey_options"))
        clock.advance(0.5)
    assert all(d.allowed for d in decisions[:20])
    refused = decisions[20:]
    assert all(not d.allowed and d.reason == "account" for d in refused)
    assert 0 < refused[-1].retry_after <= 60


async def test_unknown_factor_refused(make_regulator: MakeRegulator) -> None:
    regulator = make_regulator()
    with pytest.raises(RateLimitError, match="unknown factor"):
        await regulator.check(account="alice", client_ip="192.0.2.1", factor="sms")
