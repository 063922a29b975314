"""Address budgets, known devices, report-only and atomicity (RL-05, RL-07, RL-08)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from tests.ratelimit.helpers import SECRET, FakeClock, MakeRegulator, fail, failures, ip_of

from sekisho.ratelimit import (
    Decision,
    DeviceTokens,
    FailureRecord,
    MemoryFailureStore,
    RateLimitKeys,
    RateLimitSettings,
    Regulator,
    create_limiter,
)

TOKENS = DeviceTokens(SECRET)


async def spray(regulator: Regulator, accounts: list[str], ips: list[str]) -> list[Decision]:
    """One password per account, account i from ips[i % len(ips)]; failures recorded."""
    seen = []
    for n, account in enumerate(accounts):
        ip = ips[n % len(ips)]
        decision = await regulator.check(account=account, client_ip=ip)
        seen.append(decision)
        if decision.allowed:
            await regulator.record_attempt(
                account=account, client_ip=ip, success=False)
    return seen


async def test_rl05_one_address_many_accounts(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-05: one address trying one password on 200 accounts is blocked after 20, no
    victim's counter passes 1, none is disabled, and the block expires."""
    regulator = make_regulator()
    accounts = [f"user{n}" for n in range(200)]
    seen = await spray(regulator, accounts, ["198.51.100.7"])
    assert sum(d.allowed for d in seen) == 20
    assert {d.reason for d in seen[20:]} == {"ip"}
    assert seen[-1].retry_after == 601
    for n, account in enumerate(accounts):
        state = await regulator.state(account=account)
        assert state.factors["password"].failures == (1 if n < 20 else 0)
        assert not state.disabled
    clock.advance(601)
    assert (await regulator.check(account="user0", client_ip="198.51.100.7")).allowed


@pytest.mark.parametrize("net", ["198.51.100.{}", "2001:db8:0:7::{:x}"])
async def test_rl05_subnet_budget(
    make_regulator: MakeRegulator, clock: FakeClock, net: str
) -> None:
    """RL-05: addresses of one /24 (IPv4) or /64 (IPv6) share a budget of 60 failures."""
    regulator = make_regulator()
    ips = [net.format(n) for n in range(1, 201)]
    seen = await spray(regulator, [f"user{n}" for n in range(120)], ips)
    assert sum(d.allowed for d in seen) == 60
    assert {d.reason for d in seen[60:]} == {"subnet"}


async def test_rl05_global_failure_budget(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-05: the global failure budget stops a spray spread over many subnets."""
    regulator = make_regulator(global_failures={"short": "30/10 minutes", "long": "99/day"})
    seen = await spray(regulator, [f"user{n}" for n in range(40)], [ip_of(n) for n in range(40)])
    assert sum(d.allowed for d in seen) == 30
    assert {d.reason for d in seen[30:]} == {"global"}


async def test_rl07_known_device_survives_a_lock_from_elsewhere(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-07: the attacker disables alice's password from elsewhere; alice's browser with
    its device token is still let in. A token issued for bob does nothing for alice."""
    regulator = make_regulator()
    token = TOKENS.issue("alice", now=clock())
    for n in range(50):
        await fail(regulator, clock, "alice", ip=ip_of(n))
    device = TOKENS.verify(token, account="alice", now=clock(), max_age=90 * 86400)
    assert device is not None
    decision = await regulator.check(account="alice", client_ip="192.0.2.99", device=device)
    assert decision == Decision(True, 0, "ok", device=True)
    assert await regulator.record_attempt(
        account="alice", client_ip="192.0.2.99", success=True, device=device,
    ) == Decision(True, 0, "ok", device=True)
    assert (await regulator.state(account="alice")).disabled  # the lock is not lifted
    bob_token = TOKENS.issue("bob", now=clock())
    assert TOKENS.verify(bob_token, account="alice", now=clock(), max_age=86400) is None
    assert (await regulator.check(account="alice", client_ip="192.0.2.99")).reason == "disabled"


async def test_rl07_known_device_passes_an_address_block(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-07: an address spent by an attacker still lets a known device through."""
    regulator = make_regulator()
    device = TOKENS.verify(TOKENS.issue("alice", now=clock()), account="alice", now=clock(),
                           max_age=86400)
    assert device is not None
    await spray(regulator, [f"user{n}" for n in range(20)], ["203.0.113.5"])
    assert (await regulator.check(account="alice", client_ip="203.0.113.5")).reason == "ip"
    decision = await regulator.check(account="alice", client_ip="203.0.113.5", device=device)
    assert decision.allowed and decision.device


async def test_device_has_its_own_schedule(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """A stolen device token meets the same delays and disable; a burned one is no token."""
    regulator = make_regulator(free_failures=2, disable_after=6)
    device = "d" * 32
    decisions = [await fail(regulator, clock, "alice", device=device) for _ in range(3)]
    assert decisions[-1] == Decision(False, 30, "delay", device=True)
    assert (await regulator.check(account="alice", client_ip="192.0.2.1")).allowed
    assert await failures(regulator, "alice") == 0  # the account-wide count is untouched
    for _ in range(3):
        last = await fail(regulator, clock, "alice", device=device)
    assert last == Decision(False, 0, "disabled", device=True)
    burned = await regulator.check(account="alice", client_ip="192.0.2.1", device=device)
    assert burned == Decision(True, 0, "ok", device=False)
    await fail(regulator, clock, "alice", device=device)
    assert await failures(regulator, "alice") == 1


async def test_report_only_budget_allows_and_flags(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """A report-only budget counts and reports what it would have refused, never refuses."""
    regulator = make_regulator(
        ip={"short": "3/minute", "long": "50/day", "report_only": True})
    await spray(regulator, ["a", "b", "c"], ["192.0.2.8"])
    decision = await regulator.check(account="d", client_ip="192.0.2.8")
    assert decision == Decision(True, 61, "ip", report_only=True)


async def test_report_only_delay_but_disable_enforced(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """The delay rule can be report-only; the disable (RL-01) cannot."""
    regulator = make_regulator(delay_report_only=True, free_failures=2, disable_after=5)
    for _ in range(3):
        last = await regulator.record_attempt(
            account="alice", client_ip="192.0.2.1", success=False)
    assert last == Decision(True, 30, "delay", report_only=True)
    assert await regulator.check(account="alice", client_ip="192.0.2.1") == last
    for _ in range(2):
        last = await regulator.record_attempt(
            account="alice", client_ip="192.0.2.1", success=False)
    assert last == Decision(False, 0, "disabled")


async def test_concurrent_failures_counted_exactly(
    make_regulator: MakeRegulator, state_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Invariant 6 / RL-08: concurrent failures (two instances on Redis) are each counted
    once, and exactly one of them reports the disable."""
    regulators = [make_regulator()]
    if state_url.startswith("redis"):
        regulators.append(make_regulator())

    async def one(n: int) -> Decision:
        return await regulators[n % len(regulators)].record_attempt(
            account="alice", client_ip=ip_of(n), success=False)

    await asyncio.gather(*(one(n) for n in range(20)))
    assert await failures(regulators[0], "alice") == 20
    with caplog.at_level(logging.WARNING, logger="sekisho.ratelimit"):
        await asyncio.gather(*(one(n) for n in range(20, 60)))
    assert await failures(regulators[-1], "alice") == 60
    assert [r.msg for r in caplog.records] == ["authn_login_lock:maxretries"]


async def test_unlock_restores_all_factors(make_regulator: MakeRegulator) -> None:
    settings = RateLimitSettings(free_failures=0, disable_after=1)
    regulator = make_regulator(settings)
    for factor in ("password", "totp", "recovery"):
        await regulator.record_attempt(
            account="alice", client_ip="192.0.2.1", factor=factor, success=False)
    state = await regulator.state(account="alice")
    assert all(state.factors[f].disabled for f in ("password", "totp", "recovery"))
    await regulator.unlock(account="ALICE")
    assert not (await regulator.state(account="alice")).disabled


class CountingStore(MemoryFailureStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.gets = 0

    async def get(self, key: str) -> FailureRecord:
        self.gets += 1
        return await super().get(key)


async def test_flood_from_a_blocked_address_costs_no_store_call(
    state_url: str, clock: FakeClock, prefix: str
) -> None:
    """Once a process knows an address is spent, its refusals touch neither store."""
    settings = RateLimitSettings()
    store = CountingStore(clock)
    limiter = create_limiter(settings, url=state_url, prefix=prefix, clock=clock)
    regulator = Regulator(settings, store=store, limiter=limiter,
                          keys=RateLimitKeys(SECRET), clock=clock)
    try:
        await spray(regulator, [f"user{n}" for n in range(21)], ["198.51.100.7"])
        gets = store.gets
        for n in range(100):
            decision = await regulator.check(account=f"v{n}", client_ip="198.51.100.7")
            assert decision.reason == "ip"
        assert store.gets == gets
    finally:
        await regulator.close()


async def test_known_address_refusal_from_memory_without_the_account(
    make_regulator: MakeRegulator, clock: FakeClock
) -> None:
    """RL-05 at the admission gate: once a check has found the address budget spent, the
    refusal is known from memory for any account, with the same wait; a report-only budget
    and the account+address budget never answer there."""
    regulator = make_regulator(ip={"short": "3/10 minutes", "long": "99/day"},
                               account_ip={"short": "1/10 minutes", "long": "9/day"})
    assert regulator.known_address_refusal(client_ip="198.51.100.7") is None
    await spray(regulator, [f"user{n}" for n in range(3)], ["198.51.100.7"])
    assert regulator.known_address_refusal(client_ip="198.51.100.7") is None  # not yet seen
    seen = await regulator.check(account="someone", client_ip="198.51.100.7")
    known = regulator.known_address_refusal(client_ip="198.51.100.7")
    assert known is not None and not known.allowed
    assert (known.reason, known.retry_after) == ("ip", seen.retry_after) == ("ip", 601)
    assert regulator.known_address_refusal(client_ip="198.51.100.8") is None
    clock.advance(601)
    assert regulator.known_address_refusal(client_ip="198.51.100.7") is None

    tuning = make_regulator(ip={"short": "1/10 minutes", "long": "99/day", "report_only": True})
    await spray(tuning, ["a", "b"], ["198.51.100.9"])
    assert (await tuning.check(account="c", client_ip="198.51.100.9")).report_only
    assert tuning.known_address_refusal(client_ip="198.51.100.9") is None
