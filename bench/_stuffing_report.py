"""The figures of bench/stuffing.py, from what the clients and the sampler recorded.

Definitions (docs/_stuffing_section.md repeats them):

- *attempts/s*: attack POSTs answered per second, over the whole attack; per-second values
  give the sustained (median) and worst second.
- *accounts taken over*: distinct accounts an attack pair got a session for (303 + cookie).
- *legit refused*: legit logins (known device, right password) not answered 303 + session.
- *Argon2 hashes on attack traffic*: the gateway's own counter over the run minus the legit
  logins it evaluated; compared with the attack answers that were evaluated (401 or 303): the
  difference is hashes spent on refused attempts (target 0).
- *gateway CPU per refused attempt*: over the seconds after the last evaluated attack
  attempt (only refusals then), gateway CPU minus its idle CPU minus the legit logins' CPU
  (measured per login in the baseline), divided by the refusals. Also over the whole attack,
  where evaluated attack attempts are costed like a legit login.
- *bound*: failures the address budgets admit during the attack (the least of the per-address,
  per-subnet and global sums) plus the attempts in flight when the binding budget fills (the
  attack's concurrency; see :func:`bound`); takeovers are the valid pairs among evaluated
  attempts, so with a share ``p`` of valid pairs they are about ``F * p / (1 - p)`` (mean of
  a negative binomial), and the 99.9 % quantile is reported as the bound.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from itertools import pairwise
from statistics import median
from typing import Any

from sekisho.config import Settings
from sekisho.config.ratelimit import Budget

REFUSED = ("throttled", "challenged", "busy")
# A 500 comes (so far) only after the password was verified: it ran a hash.
EVALUATED = ("failed", "taken_over", "mfa_pending", "server_error")


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def interpolate(samples: list[dict[str, Any]], key: str, t: float) -> float:
    times = [s["t"] for s in samples]
    i = min(max(bisect_left(times, t), 1), len(times) - 1)
    a, b = samples[i - 1], samples[i]
    share = (t - a["t"]) / max(b["t"] - a["t"], 1e-9)
    return float(a[key] + (b[key] - a[key]) * min(max(share, 0.0), 1.0))


def spent(samples: list[dict[str, Any]], key: str, start: float, end: float) -> float:
    return interpolate(samples, key, end) - interpolate(samples, key, start)


# --- the bound -------------------------------------------------------------------------------


def window_cap(budget: Budget, seconds: float) -> int:
    """Most hits a budget admits in ``seconds`` (a moving window: ``count`` per any span)."""
    return min(w.count * math.ceil(seconds / w.seconds) for w in budget.windows)


def bound(settings: Settings, *, seconds: float, sources: int, subnets: int,
          valid_share: float, concurrency: int) -> dict[str, Any]:
    """The address budgets are tested before the hash and hit after it, so every attempt in
    flight when the binding budget fills (passed the test, not yet recorded) may still be
    evaluated. The admission gate handles at most ``ratelimit.unknown_in_flight`` attempts
    from unknown browsers at once (0: no cap), so the overshoot is at most that, or the
    attack's own concurrency if smaller."""
    rl, pw = settings.ratelimit, settings.passwords
    caps = {
        "per_address": sources * window_cap(rl.ip, seconds),
        "per_subnet": subnets * window_cap(rl.subnet, seconds),
        "global": window_cap(rl.global_failures, seconds),
    }
    if rl.unknown_in_flight:
        concurrency = min(concurrency, rl.unknown_in_flight)
    failures = min(caps.values()) + concurrency
    mean = failures * valid_share / (1 - valid_share)
    try:
        from scipy.stats import nbinom

        q999 = int(nbinom.ppf(0.999, failures, 1 - valid_share))
    except ImportError:  # scipy is in the dev extra; a normal approximation otherwise
        q999 = math.ceil(mean + 3.1 * math.sqrt(mean / (1 - valid_share)))
    return {
        "budgets": {"ip": str_budget(rl.ip), "subnet": str_budget(rl.subnet),
                    "global_failures": str_budget(rl.global_failures)},
        "caps_over_attack": caps, "binding": min(caps, key=lambda k: caps[k]),
        "in_flight_overshoot": concurrency,
        "hash_capacity": (pw.hash_workers or os.cpu_count() or 1) + pw.hash_queue,
        "failures_bound": failures,
        "valid_share": round(valid_share, 4), "takeovers_expected_at_bound": round(mean, 1),
        "takeovers_bound_q999": q999,
    }


def str_budget(budget: Budget) -> str:
    short, long = budget.short, budget.long
    return f"{short.count}/{short.seconds}s + {long.count}/{long.seconds}s"


# --- the figures -----------------------------------------------------------------------------


def _window_logins(logins: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [r for r in logins if start <= r["rel"] < end]


def _cpu_per_refused(ctx: dict[str, Any], start: float, end: float, refused: int,
                     evaluated: int) -> dict[str, float] | None:
    if refused <= 0 or end <= start:
        return None
    samples, legit = ctx["samples"], len(_window_logins(ctx["logins"], start, end))
    out: dict[str, float] = {}
    for key, name in (("gw_cpu", "process"), ("gw_main", "event_loop_thread")):
        cost = (spent(samples, key, start, end) - ctx["idle"][key] * (end - start)
                - ctx["per_login"][key] * (legit + evaluated))
        out[f"{name}_ms"] = round(1000 * cost / refused, 4)
    out["cores_used"] = round(spent(samples, "gw_cpu", start, end) / (end - start), 3)
    out["seconds"] = round(end - start, 1)
    out["refused"] = refused
    return out


def figures(*, attack: dict[str, Any], legit: dict[str, Any], samples: list[dict[str, Any]],
            t0: float, idle_start: float, settings: Settings, plan: Any,
            list_stats: dict[str, int]) -> dict[str, Any]:
    ta0 = attack["t0"] - t0
    seconds = attack["seconds"]
    buckets = {int(k): v for k, v in attack["buckets"].items()}
    totals = attack["totals"]
    logins = [{**r, "rel": r["t"] - t0} for r in legit["logins"]]
    during = _window_logins(logins, ta0, ta0 + seconds)
    base = _window_logins(logins, 0.0, ta0)

    idle = {k: spent(samples, k, idle_start, 0.0) / -idle_start for k in ("gw_cpu", "gw_main")}
    per_login = {k: max(0.0, (spent(samples, k, 0.0, ta0) - idle[k] * ta0) / max(len(base), 1))
                 for k in ("gw_cpu", "gw_main")}
    ctx = {"samples": samples, "logins": logins, "idle": idle, "per_login": per_login}

    evaluated = sum(totals.get(k, 0) for k in EVALUATED)
    refused = sum(totals.get(k, 0) for k in REFUSED)
    last_eval = max((s for s, c in buckets.items() if any(c.get(k) for k in EVALUATED)),
                    default=-1)
    whole = int(seconds)
    steady_refused = sum(sum(buckets.get(s, {}).get(k, 0) for k in REFUSED)
                         for s in range(last_eval + 1, whole))
    hashes = samples[-1]["hashes_computed"] - interpolate(samples, "hashes_computed", 0.0)
    legit_hashes = sum(1 for r in logins if r["evaluated"])
    attack_hashes = round(hashes - legit_hashes)
    per_second = [sum(buckets.get(s, {}).values()) for s in range(whole)]
    valid_share = list_stats["valid_pairs"] / max(list_stats["pairs"], 1)
    return {
        "attack_seconds": round(seconds, 1),
        "attempts": attack["attempts"],
        "attempts_per_s": round(attack["attempts"] / seconds, 1),
        "attempts_per_s_median_second": median(per_second) if per_second else 0,
        # Once every attack attempt is refused: the rate the gateway sustains.
        "attempts_per_s_refusal_phase": {
            "median": median(per_second[last_eval + 1:] or [0]),
            "p10": quantile([float(v) for v in per_second[last_eval + 1:]], 0.1)},
        "list_replayed_once": attack["list_replayed_once"],
        "outcomes": totals,
        "accounts_taken_over": attack["accounts_taken_over"],
        "attack_failures_evaluated": totals.get("failed", 0),
        "legit_logins": len(logins), "legit_logins_during_attack": len(during),
        "legit_refused": sum(1 for r in logins if not r["ok"]),
        "legit_refused_statuses": sorted({r["status"] for r in logins if not r["ok"]}),
        "legit_ms_during_attack": _latency(during),
        "legit_ms_baseline": _latency(base),
        "legit_by_phase": {
            "hash_phase": _phase(_window_logins(logins, ta0, ta0 + last_eval + 1)),
            "refusal_phase": _phase(_window_logins(logins, ta0 + last_eval + 1, ta0 + seconds)),
        },
        "argon2_hashes_run": round(hashes), "argon2_hashes_legit": legit_hashes,
        "argon2_hashes_attack": attack_hashes,
        "attack_attempts_evaluated": evaluated,
        "argon2_hashes_on_refused_attempts": attack_hashes - evaluated,
        "attack_refused": refused,
        "gateway_idle_cores": {k: round(v, 4) for k, v in idle.items()},
        "gateway_cpu_per_legit_login_ms": {k: round(1000 * v, 2) for k, v in per_login.items()},
        "cpu_per_refused_steady": _cpu_per_refused(
            ctx, ta0 + last_eval + 1, ta0 + whole, steady_refused, 0),
        "cpu_per_refused_whole_attack": _cpu_per_refused(
            ctx, ta0, ta0 + whole,
            sum(sum(buckets.get(s, {}).get(k, 0) for k in REFUSED) for s in range(whole)),
            sum(sum(buckets.get(s, {}).get(k, 0) for k in EVALUATED) for s in range(whole))),
        "steady_from_second": last_eval + 1,
        "bound": bound(settings, seconds=seconds, sources=plan.sources, subnets=plan.subnets,
                       valid_share=valid_share, concurrency=attack["concurrency"]),
        "other_load_cores": _other_load(samples),
    }


def _latency(records: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {"n": len(records)}
    for key in ("post", "total"):
        values = [1000 * r[key] for r in records if r["ok"]]
        out[f"{key}_p50"] = round(quantile(values, 0.5), 1)
        out[f"{key}_p95"] = round(quantile(values, 0.95), 1)
        out[f"{key}_max"] = round(max(values, default=float("nan")), 1)
    return out


def _phase(records: list[dict[str, Any]]) -> dict[str, Any]:
    refused = [r["status"] for r in records if not r["ok"]]
    return {**_latency(records), "refused": len(refused), "refused_statuses": sorted(set(refused))}


def _other_load(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Cores busy with processes other than ours (other helpers on a shared machine)."""
    rows = [s for s in samples if s["t"] >= 0]
    if len(rows) < 2:
        return {}
    ours = ("gw_cpu", "attacker_cpu", "legit_cpu", "upstream_cpu", "self_cpu")
    per_second = []
    for a, b in pairwise(rows):
        dt = max(b["t"] - a["t"], 1e-9)
        mine = sum(b.get(k, 0.0) - a.get(k, 0.0) for k in ours)
        per_second.append(max(0.0, (b["machine"] - a["machine"] - mine) / dt))
    return {"mean": round(sum(per_second) / len(per_second), 3),
            "max": round(max(per_second), 3)}


def targets(fig: dict[str, Any]) -> dict[str, bool]:
    steady = fig["cpu_per_refused_steady"] or {}
    return {
        "legit refused = 0": fig["legit_refused"] == 0,
        "legit p95 <= 500 ms during the attack": fig["legit_ms_during_attack"]["post_p95"] <= 500,
        "refused attempt <= 0.5 ms gateway CPU": steady.get("process_ms", 1e9) <= 0.5,
        "no hash on a refused attempt": fig["argon2_hashes_on_refused_attempts"] <= 0,
        "takeovers within the bound":
            fig["accounts_taken_over"] <= fig["bound"]["takeovers_bound_q999"],
        "failures within the bound":
            fig["attack_failures_evaluated"] <= fig["bound"]["failures_bound"],
    }
