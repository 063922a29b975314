"""Attack mode through the regulator: the tighter address budgets apply only while attack
mode is on (or to a flagged source), the detectors are fed by record_attempt, and a bad proof
of work costs the address budgets (issue 3 item 4; RL-05)."""

# ruff: noqa: F811  (fixtures imported from attack_helpers are named by the tests' arguments)
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tests.ratelimit.attack_helpers import (  # noqa: F401  (fixtures)
    MakeMonitor,
    clock,
    make_monitor,
)
from tests.ratelimit.helpers import SECRET, FakeClock, fail

from sekisho.config.ratelimit import RateLimitSettings
from sekisho.ratelimit import DeviceTokens, Regulator, create_regulator
from sekisho.ratelimit.attack import AttackMonitor

ATTACKER, USER = "203.0.113.9", "192.0.2.7"
# Distinct usernames trip at 2 names from one address; the ratio detector is off, so that
# only what a test does switches attack mode on.
ATTACK = {"quiet_period": 60, "failure_ratio": {"enabled": False},
          "distinct_usernames": {"max_per_ip": 1, "max_per_subnet": 1}}

Pair = Callable[..., tuple[Regulator, AttackMonitor]]


@pytest.fixture
async def pair(
    make_monitor: MakeMonitor, state_url: str, clock: FakeClock, prefix: str
) -> AsyncIterator[Pair]:
    """``pair(**attack_overrides)``: a regulator wired to a monitor, as the app wires them."""
    made: list[Regulator] = []

    def make(**overrides: Any) -> tuple[Regulator, AttackMonitor]:
        settings = RateLimitSettings.model_validate({"attack": {**ATTACK, **overrides}})
        monitor = make_monitor(settings.attack)
        regulator = create_regulator(settings, url=state_url, secret=SECRET, prefix=prefix,
                                     clock=clock, attack=monitor)
        made.append(regulator)
        return regulator, monitor

    yield make
    for regulator in made:
        await regulator.close()


async def spray_from(regulator: Regulator, clock: FakeClock, ip: str, names: int) -> None:
    for n in range(names):
        await fail(regulator, clock, f"victim-{ip}-{n}", ip=ip)


async def allowed_failures(regulator: Regulator, clock: FakeClock, ip: str) -> int:
    """How many failures on fresh names the address gets before a refusal."""
    for n in range(100):
        decision = await regulator.check(account=f"probe-{ip}-{n}", client_ip=ip)
        if not decision.allowed:
            return n
        await regulator.record_attempt(account=f"probe-{ip}-{n}", client_ip=ip, success=False)
    return 100


async def test_tighter_address_budget_only_while_attack_mode_is_on(
    pair: Pair, clock: FakeClock
) -> None:
    """Issue 3 item 4: ratelimit.ip allows 20 failures per 10 minutes; in attack mode the
    address gets a quarter of that (attack.ip, 5), and the normal budget again once the mode
    has ended by itself."""
    regulator, monitor = pair(distinct_usernames={"enabled": False})
    assert await allowed_failures(regulator, clock, "198.51.100.1") == 20

    regulator, monitor = pair()
    await spray_from(regulator, clock, ATTACKER, 2)  # the detector trips
    assert (await monitor.status()).active
    decisions = []
    for n in range(6):
        decisions.append(await regulator.check(account=f"alice{n}", client_ip=USER))
        await regulator.record_attempt(account=f"alice{n}", client_ip=USER, success=False)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].reason == "attack_ip" and decisions[-1].retry_after > 0
    clock.advance(61)  # the quiet period: attack mode is over
    assert not (await monitor.status()).active
    assert (await regulator.check(account="alice9", client_ip=USER)).allowed


async def test_attack_budgets_count_before_the_mode_starts(
    pair: Pair, clock: FakeClock
) -> None:
    """Failures from before attack mode count against the tighter budget at once."""
    regulator, _ = pair()
    for _ in range(8):  # one name (not a spray), its waits honoured: 8 < 20 are allowed
        await fail(regulator, clock, "alice", ip=USER)
    await spray_from(regulator, clock, ATTACKER, 2)
    decision = await regulator.check(account="bob", client_ip=USER)
    assert (decision.allowed, decision.reason) == (False, "attack_ip")


async def test_flagged_source_gets_the_tighter_budget_outside_attack_mode(
    pair: Pair, clock: FakeClock
) -> None:
    regulator, monitor = pair(distinct_usernames={
        "max_per_ip": 3, "max_per_subnet": 30, "starts_attack_mode": False})
    await spray_from(regulator, clock, ATTACKER, 5)  # flagged after the 4th name
    assert not (await monitor.status()).active
    decision = await regulator.check(account="x", client_ip=ATTACKER)
    assert (decision.allowed, decision.reason) == (False, "attack_ip")
    assert not await monitor.tight_for(USER)  # elsewhere: the normal budgets
    assert (await regulator.check(account="x", client_ip=USER)).allowed


async def test_report_only_attack_budgets_allow_and_flag(pair: Pair, clock: FakeClock) -> None:
    """Issue 3 item 4: budgets_report_only counts and reports, refuses nothing."""
    regulator, _ = pair(budgets_report_only=True)
    await spray_from(regulator, clock, ATTACKER, 2)
    for n in range(5):
        await fail(regulator, clock, f"alice{n}", ip=USER)
    decision = await regulator.check(account="alice5", client_ip=USER)
    assert (decision.allowed, decision.report_only, decision.reason) == (
        True, True, "attack_ip")


async def test_known_device_is_not_held_by_attack_budgets(pair: Pair, clock: FakeClock) -> None:
    """The real user on a browser that signed in before keeps a way in."""
    regulator, _ = pair()
    device = DeviceTokens(SECRET).verify(
        DeviceTokens(SECRET).issue("alice", now=clock()), account="alice", now=clock(),
        max_age=3600)
    await spray_from(regulator, clock, ATTACKER, 2)
    for n in range(5):
        await fail(regulator, clock, f"other{n}", ip=USER)
    assert not (await regulator.check(account="alice", client_ip=USER)).allowed
    assert (await regulator.check(account="alice", client_ip=USER, device=device)).allowed


async def test_detectors_are_fed_by_password_outcomes_only(pair: Pair, clock: FakeClock) -> None:
    """TOTP failures on many accounts are not password spraying for the detectors."""
    regulator, monitor = pair()
    for n in range(5):
        await regulator.record_attempt(account=f"u{n}", client_ip=ATTACKER, factor="totp",
                                       success=False)
    assert not await monitor.tight_for(ATTACKER)


async def test_count_refusal_costs_the_address_not_the_account_nor_everyone(
    pair: Pair, clock: FakeClock
) -> None:
    """A refused proof of work costs its address a failure (so garbage is not free), but
    never the victim's counter nor the global budget shared by every unknown browser."""
    regulator, _ = pair(enabled=False)
    for _ in range(20):
        await regulator.count_refusal(account="alice", client_ip=ATTACKER)
    decision = await regulator.check(account="bob", client_ip=ATTACKER)
    assert (decision.allowed, decision.reason) == (False, "ip")
    assert (await regulator.state(account="alice")).factors["password"].failures == 0
    assert (await regulator.check(account="bob", client_ip=USER)).allowed
