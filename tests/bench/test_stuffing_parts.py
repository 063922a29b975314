"""The pieces of bench/stuffing.py that its figures rest on: the hash counter, the combo list,
the address plan, the bound on takeovers, the plot."""

from __future__ import annotations

import asyncio
import ipaddress
import math
from collections import Counter

import pytest

from bench import _stuffing_plot as plot
from bench import _stuffing_report as report
from bench import _stuffing_setup as setup
from sekisho.auth.passwords import Passwords
from sekisho.config import validate_settings
from sekisho.errors import HasherBusy

PLAN = setup.Plan(accounts=500, combos=5000, sources=200, subnets=50, legit=10,
                  valid_fraction=0.02, unknown_fraction=0.1, seed=7)


async def test_hash_counter_counts_every_argon2_run_and_nothing_else(
    fast_passwords: Passwords,
) -> None:
    """ST-06: the counter the bench reads; a password refused before hashing is not counted."""
    assert fast_passwords.hashes_computed == 0
    stored = await fast_passwords.hash("correct horse battery staple")
    assert await fast_passwords.verify(stored, "correct horse battery staple")
    assert not await fast_passwords.verify(None, "anything")  # the dummy verify is a run too
    assert not await fast_passwords.verify(stored, "x" * 10_000)  # over the cap: no run
    assert fast_passwords.hashes_computed == 3


async def test_a_busy_hasher_refusal_is_not_counted() -> None:
    passwords = Passwords(profile="owasp-minimum", workers=1, queue=0)
    try:
        task = asyncio.ensure_future(passwords.hash("one password to keep the worker busy"))
        await asyncio.sleep(0)
        with pytest.raises(HasherBusy):
            await passwords.hash("a second one, refused")
        await task
        assert passwords.hashes_computed == 1
    finally:
        passwords.close()


def test_combo_list_has_the_planned_shape() -> None:
    pairs, stats = setup.combo_list(PLAN, ["pw-a", "pw-b", "pw-c"])
    assert len(pairs) == stats["pairs"] == PLAN.combos
    valid = [(u, p) for u, p in pairs if p.startswith("pw-")]
    assert len(valid) == stats["valid_pairs"] == round(PLAN.combos * PLAN.valid_fraction)
    assert len({u for u, _ in valid}) == len(valid)  # one valid pair per account at most
    for user, password in valid:
        assert password == ["pw-a", "pw-b", "pw-c"][int(user[4:]) % 3]
    names = Counter(u for u, _ in pairs)
    assert sum(n for u, n in names.items() if u.startswith("ghost")) == stats[
        "unknown_name_pairs"] == 500
    assert len([u for u in names if u.startswith("user")]) == PLAN.accounts
    assert setup.combo_list(PLAN, ["pw-a", "pw-b", "pw-c"])[0] == pairs  # seeded


def test_sources_are_distinct_loopback_peers_spread_over_subnets() -> None:
    sources = setup.attack_sources(PLAN)
    legit = setup.legit_sources(PLAN)
    everyone = sources + legit
    assert len(set(everyone)) == len(everyone) == PLAN.sources + PLAN.legit
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in everyone)
    assert "127.0.0.1" not in everyone
    subnets = Counter(str(ipaddress.ip_network(f"{a}/24", strict=False)) for a in sources)
    assert len(subnets) == PLAN.subnets and set(subnets.values()) == {4}
    legit_nets = {str(ipaddress.ip_network(f"{a}/24", strict=False)) for a in legit}
    assert legit_nets <= set(subnets)  # legit users share /24s with attackers


def test_plan_check_names_the_problem() -> None:
    with pytest.raises(ValueError, match="--subnets"):
        setup.Plan(**{**PLAN.__dict__, "subnets": 1}).check()
    with pytest.raises(ValueError, match="--legit"):
        setup.Plan(**{**PLAN.__dict__, "legit": 501}).check()


def test_bound_takes_the_tightest_budget_over_the_attack() -> None:
    settings = validate_settings({})
    rl = settings.ratelimit
    assert report.window_cap(rl.global_failures, 60) == rl.global_failures.short.count
    assert report.window_cap(rl.global_failures, 1200) == min(
        2 * rl.global_failures.short.count, rl.global_failures.long.count)
    out = report.bound(settings, seconds=60, sources=1000, subnets=250, valid_share=0.02,
                       concurrency=64)
    assert out["binding"] == "global"
    # In flight beyond the budget: the admission gate's cap, not the attack's 64.
    assert out["failures_bound"] == rl.global_failures.short.count + rl.unknown_in_flight
    uncapped = validate_settings({"ratelimit": {"unknown_in_flight": 0}})
    assert report.bound(uncapped, seconds=60, sources=1000, subnets=250, valid_share=0.02,
                        concurrency=64)["failures_bound"] == rl.global_failures.short.count + 64
    mean = out["failures_bound"] * 0.02 / 0.98
    assert out["takeovers_expected_at_bound"] == pytest.approx(mean, abs=0.1)
    assert math.ceil(mean) <= out["takeovers_bound_q999"] <= 3 * math.ceil(mean)
    few = report.bound(settings, seconds=60, sources=3, subnets=1, valid_share=0.02,
                       concurrency=8)
    assert few["binding"] == "per_address"


def test_plot_is_an_svg_with_the_three_panels() -> None:
    attack = {"t0": 105.0, "seconds": 3.5, "buckets": {
        "0": {"failed": 5, "busy": 3}, "1": {"throttled": 50}, "2": {"challenged": 70}}}
    legit = {"logins": [{"t": 101.0, "post": 0.05, "ok": True},
                        {"t": 106.0, "post": 0.2, "ok": False}]}
    samples = [{"t": float(t), "gw_cpu": t * 0.5, "gw_main": t * 0.3} for t in range(10)]
    svg = plot.svg(attack=attack, legit=legit, samples=samples, t0=100.0, title="t <&>")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<polyline") >= 5
    assert "t &lt;&amp;&gt;" in svg
