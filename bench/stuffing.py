"""Credential stuffing against a running gateway, while legitimate users log in (issue 3 item 7).

One run: a gateway (`sekisho serve`, the default Argon2 profile, default budgets) in front of a
trivial upstream (nginx), SQLite and in-memory state (or PostgreSQL and Redis); ``--accounts``
users; an attacker process replaying a ``--combos`` username:password list (a share of the
pairs valid: reused passwords) from ``--sources`` distinct 127.x.y.z addresses (real TCP peers,
no forwarded headers; the gateway trusts no proxy) as fast as the gateway answers; and a
process of ``--legit`` users logging in again and again from their known devices (a browser
that logged in before), timing each login.

CPU (2 cores, shared): nothing is pinned by default. The gateway may use both cores, as it
would on its own box (Argon2 needs them); its event loop, where refusals are handled, is one
thread and so at most one core. The attacker runs at nice 10: when it contends with the
gateway's threads they win (a real attacker does not take the gateway's CPU), and the legit
users' process (nice 0, mostly asleep) is woken ahead of it, so its clock is not starved.
Each process leads its own session, and with autogroup scheduling the session's niceness is
what counts between sessions, so it is set there too (/proc/PID/autogroup).
``--pin-gateway`` puts the gateway alone on the last core and the clients on the others;
``--boost`` (root) runs the gateway and the legit users at nice -10 and the attacker at -5,
ahead of whatever else shares the machine (the figures otherwise measure that contention).

Reported: attempts/s, accounts taken over, legit logins refused, legit p50/p95, Argon2
hashes spent on attack traffic, gateway CPU per refused attempt, and the bound on takeovers
the budgets imply. JSON to bench/results/stuffing.json, the plot to bench/results/stuffing.svg
(and stuffing.png, rendered with Playwright and the system Chromium when they are there).

    .venv/bin/python bench/stuffing.py               # the issue's sizes, about 3 minutes
    .venv/bin/python bench/stuffing.py --quick       # a smoke test, about 30 seconds
    .venv/bin/python bench/stuffing.py --postgres postgresql://postgres@127.0.0.1/test \\
        --redis redis://127.0.0.1:6379/14 --flush-redis
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _harness as h
import _stuffing_plot as plot
import _stuffing_report as report
import _stuffing_setup as setup
from _stuffing_run import Client, Sampler, set_group_niceness

from sekisho.auth.passwords import DEFAULT_PROFILE
from sekisho.config import load_settings, validate_settings

HERE = Path(__file__).resolve().parent
# Niceness: the attacker yields to the gateway (its CPU is not the gateway's in real life).
# --boost puts all three ahead of other work on a shared machine (negative: root only).
NICE = {"gateway": 0, "legit": 0, "attacker": 10}
NICE_BOOST = {"gateway": -10, "legit": -10, "attacker": -5}
RESULTS = HERE / "results"
# The smoke run: small sizes, and the cheaper Argon2 profile so that the ~300 failures the
# global budget admits are spent in seconds, not minutes.
QUICK = {"combos": 3000, "accounts": 500, "sources": 200, "subnets": 50, "legit": 5,
         "duration": 6.0, "baseline": 4.0, "tail": 2.0, "idle": 1.0, "legit_interval": 2.5,
         "concurrency": 32, "profile": "owasp-minimum", "quiet_budget": 10.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--combos", type=int, default=50_000, help="pairs in the combo list")
    p.add_argument("--accounts", type=int, default=5_000, help="accounts on the gateway")
    p.add_argument("--sources", type=int, default=1_000, help="attacker source addresses")
    p.add_argument("--subnets", type=int, default=250, help="/24s the sources spread over")
    p.add_argument("--legit", type=int, default=50, help="legit users on known devices")
    p.add_argument("--duration", type=float, default=60.0,
                   help="attack at least this long (s), and until the list was sent once")
    p.add_argument("--max-duration", type=float, default=600.0, help="attack at most (s)")
    p.add_argument("--baseline", type=float, default=15.0, help="legit alone before (s)")
    p.add_argument("--tail", type=float, default=5.0, help="legit alone after (s)")
    p.add_argument("--idle", type=float, default=3.0, help="idle gateway before (s)")
    p.add_argument("--legit-interval", type=float, default=20.0,
                   help="mean seconds between one user's logins")
    p.add_argument("--concurrency", type=int, default=64, help="attack requests in flight")
    p.add_argument("--valid-fraction", type=float, default=0.02,
                   help="share of pairs that are the account's password")
    p.add_argument("--unknown-fraction", type=float, default=0.0,
                   help="share of pairs naming no account")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", default=DEFAULT_PROFILE, help="Argon2 profile of the gateway")
    p.add_argument("--postgres", metavar="URL", help="PostgreSQL (admin URL; a fresh database "
                   "is created and dropped) instead of SQLite")
    p.add_argument("--redis", metavar="URL", help="Redis state instead of memory://")
    p.add_argument("--flush-redis", action="store_true", help="FLUSHDB the --redis database")
    p.add_argument("--pin-gateway", action="store_true",
                   help="the gateway alone on the last core, the clients on the others")
    p.add_argument("--boost", action="store_true",
                   help="(root) run the gateway and the legit users at nice -10 and the "
                        "attacker at nice -5, ahead of other work on a shared machine")
    p.add_argument("--max-other-load", type=float, default=0.3, metavar="CORES",
                   help="wait for foreign load to drop below this before starting")
    p.add_argument("--quiet-budget", type=float, default=120, metavar="SECONDS")
    p.add_argument("--quick", action="store_true", help="a small, short smoke run")
    p.add_argument("--output", type=Path, help="results JSON (default bench/results/"
                   "stuffing.json, stuffing-quick.json with --quick)")
    p.add_argument("--recompute", type=Path, metavar="JSON",
                   help="derive the figures and the plot again from a results file's series "
                        "(after a change to their definitions), and rewrite it")
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)
    if args.boost and os.geteuid() != 0:
        p.error("--boost needs root (negative niceness)")
    name = "stuffing-quick" if args.quick else "stuffing"
    args.output = args.output or RESULTS / f"{name}.json"
    return args


def plan_of(args: argparse.Namespace) -> setup.Plan:
    plan = setup.Plan(accounts=args.accounts, combos=args.combos, sources=args.sources,
                      subnets=args.subnets, legit=args.legit, valid_fraction=args.valid_fraction,
                      unknown_fraction=args.unknown_fraction, seed=args.seed)
    plan.check()
    return plan


def gateway_env() -> dict[str, str]:
    # SEKISHO_* variables would override the generated config.
    return {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}


@contextlib.contextmanager
def database(args: argparse.Namespace, ws: h.Workspace) -> Iterator[str]:
    if args.postgres:
        with setup.postgres_database(args.postgres) as url:
            yield url
    else:
        yield f"sqlite:///{ws.dir / 'gateway.sqlite3'}"


def upstream_block(port: int) -> str:
    return (f"  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n"
            f"      default_type text/plain;\n      return 200 \"upstream\\n\";\n    }}\n  }}")


def run(args: argparse.Namespace, ws: h.Workspace, pin: h.Pinning, db_url: str
        ) -> dict[str, Any]:
    plan = plan_of(args)
    state_url = args.redis or "memory://"
    if args.redis:
        setup.check_redis_empty(args.redis, flush=args.flush_redis)
    up_port, port = h.free_port(), h.free_port()
    upstream = h.start_nginx(ws, "upstream", upstream_block(up_port), core=pin.load, pin=pin,
                             port=up_port)
    conf = setup.write_config(ws.dir, port=port, upstream_port=up_port, database_url=db_url,
                              state_url=state_url, profile=args.profile)
    settings = load_settings(str(conf))
    print(f"creating {plan.accounts} accounts, a {plan.combos}-pair combo list", flush=True)
    passwords = setup.create_accounts(db_url, plan, profile=args.profile)
    inputs = setup.write_inputs(ws.dir, plan, passwords)
    nice = NICE_BOOST if args.boost else NICE
    gateway = ws.start("gateway", pin.argv(pin.target, [
        "nice", "-n", str(nice["gateway"]), sys.executable, str(HERE / "_stuffing_gateway.py"),
        "-c", str(conf), "serve"]), env=gateway_env())
    set_group_niceness(gateway.proc.pid, nice["gateway"])
    gateway.wait_for_port(port)
    cookies = settings.session.cookie_name
    spec = {"port": port, "prefix": settings.server.portal_prefix,
            "cookies": {"session": cookies, "pre": f"{cookies}_pre",
                        "device": f"{cookies}_device"},
            "sources": setup.attack_sources(plan), "concurrency": args.concurrency,
            "duration": args.duration, "max_duration": args.max_duration,
            "baseline": args.baseline, "legit_interval": args.legit_interval,
            "seed": args.seed, **{k: v for k, v in inputs.items() if k != "list"}}
    spec_path = setup.write_private(ws.dir / "spec.json", json.dumps(spec))
    clients = {name: Client(name, f"_stuffing_{script}.py", spec_path,
                            ws.dir / f"{name}-out.json",
                            [*pin.argv(pin.load, []), "nice", "-n", str(nice[name])],
                            ws.dir / f"{name}.log")
               for name, script in (("legit", "legit"), ("attacker", "attack"))}
    for name, client in clients.items():
        set_group_niceness(client.proc.pid, nice[name])
    try:
        return _measure(args, plan, settings, inputs, gateway, upstream, port, clients)
    finally:
        for client in clients.values():
            client.stop()


def _measure(args: argparse.Namespace, plan: setup.Plan, settings: Any,
             inputs: dict[str, Any], gateway: h.Server, upstream: h.Server, port: int,
             clients: dict[str, Client]) -> dict[str, Any]:
    legit, attacker = clients["legit"], clients["attacker"]
    print(f"first logins of {plan.legit} legit users; {plan.sources} attacker sources get a "
          "form", flush=True)
    legit.expect("READY", 60 + 2 * plan.legit)
    attacker.expect("READY", 60 + plan.sources / 20)
    other = h.Quiet(args.max_other_load, args.quiet_budget).wait()
    sampler = Sampler(gateway, port, {"attacker": attacker.proc.pid, "legit": legit.proc.pid,
                                      "upstream": upstream.proc.pid})
    t0 = time.time() + args.idle
    sampler.sample(t0)
    for client in (legit, attacker):
        client.send(f"GO {t0}")  # they wait for t0 (the attacker for t0 + baseline)
    sampler.tick_until(t0, lambda: True)  # the idle seconds, up to t0
    print(f"legit alone for {args.baseline:g}s, then the attack (at least {args.duration:g}s "
          f"and the whole list), then {args.tail:g}s of legit alone", flush=True)
    sampler.tick_until(t0, lambda: attacker.proc.poll() is not None, after=args.tail)
    attacker.expect("DONE", 30)
    legit.send("STOP")
    legit.expect("DONE", 60)
    sampler.sample(t0)
    attack, crowd = attacker.result(), legit.result()
    fig = report.figures(attack=attack, legit=crowd, samples=sampler.samples, t0=t0,
                         idle_start=-args.idle, settings=settings, plan=plan,
                         list_stats=inputs["list"])
    title = title_of(plan)
    write_plot(args.output, attack=attack, legit=crowd, samples=sampler.samples, t0=t0,
               title=title)
    return {"t0": t0, "figures": fig, "targets": report.targets(fig), "list": inputs["list"],
            "foreign_load_before_start_cores": round(other, 2), "attack": {
                k: v for k, v in attack.items() if k != "buckets"},
            "series": {"attack_buckets": attack["buckets"], "samples": sampler.samples,
                       "legit_logins": [{**r, "t": round(r["t"] - t0, 3)}
                                        for r in crowd["logins"]]}}


def title_of(plan: setup.Plan) -> str:
    return (f"Credential stuffing: {plan.combos:,} pairs from {plan.sources:,} addresses, "
            f"{plan.legit} legit users")


def write_plot(output: Path, **series: Any) -> None:
    svg = output.with_suffix(".svg")
    svg.write_text(plot.svg(**series))
    plot.png(svg, svg.with_suffix(".png"))


def recompute(path: Path) -> dict[str, Any]:
    """The figures, targets and plot of a results file, derived again from its series."""
    out: dict[str, Any] = json.loads(path.read_text())
    saved = argparse.Namespace(**out["method"]["args"])
    plan = plan_of(saved)
    t0 = out.get("t0", out["attack"]["t0"] - saved.baseline)
    attack = {**out["attack"], "buckets": out["series"]["attack_buckets"]}
    legit = {"logins": [{**r, "t": r["t"] + t0} for r in out["series"]["legit_logins"]]}
    samples = out["series"]["samples"]
    # The run's config set no [ratelimit] key: the defaults of this checkout apply.
    settings = validate_settings({"passwords": {"argon2_profile": saved.profile}})
    fig = report.figures(attack=attack, legit=legit, samples=samples, t0=t0,
                         idle_start=-saved.idle, settings=settings, plan=plan,
                         list_stats=out["list"])
    out.update(figures=fig, targets=report.targets(fig), t0=t0)
    write_plot(path, attack=attack, legit=legit, samples=samples, t0=t0, title=title_of(plan))
    return out


def method(args: argparse.Namespace, pin: h.Pinning) -> dict[str, Any]:
    return {
        "pinning": ("not pinned: the gateway may use both cores, as on its own box"
                    if pin.target is None else
                    f"gateway alone on core {pin.target}; attacker, legit users, "
                    f"nginx upstream and the orchestrator on core {pin.load}"),
        "niceness": {**(NICE_BOOST if args.boost else NICE), "why":
                     "the attacker yields to the gateway; with --boost all three run ahead of "
                     "other work on the shared machine"},
        "gateway": "sekisho serve (bench/_stuffing_gateway.py: the CLI plus a read-out of the "
                   "hash counter), one uvicorn worker, default budgets, Argon2 profile "
                   f"{args.profile}, {'PostgreSQL' if args.postgres else 'SQLite'} + "
                   f"{'Redis' if args.redis else 'memory'} state",
        "attacker": f"{args.concurrency} requests in flight, one keep-alive connection per "
                    "source address, one login form (pre-session cookie + CSRF token) per "
                    "source, reused; no device cookie",
        "legit": f"each user logs in every Exp({args.legit_interval:g}s), GET form + POST, with "
                 "its device cookie, from an address in one of the attacked /24s",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    f = result["figures"]
    b, steady = f["bound"], f["cpu_per_refused_steady"] or {}
    during = f["legit_ms_during_attack"]
    return [
        f"attempts/s                  {f['attempts_per_s']:,.0f} (median second "
        f"{f['attempts_per_s_median_second']:,}; once all are refused: median "
        f"{f['attempts_per_s_refusal_phase']['median']:,}, p10 "
        f"{f['attempts_per_s_refusal_phase']['p10']:,})",
        f"accounts taken over         {f['accounts_taken_over']} (bound {b['takeovers_bound_q999']}"
        f", {b['failures_bound']} failures admitted at most, {b['binding']} budget binds)",
        f"legit logins refused        {f['legit_refused']} of {f['legit_logins']}",
        f"legit POST p50/p95 (attack) {during['post_p50']} / {during['post_p95']} ms "
        f"(baseline {f['legit_ms_baseline']['post_p50']} / {f['legit_ms_baseline']['post_p95']}"
        f"; hash phase {_p(f['legit_by_phase']['hash_phase'])}; refusal phase "
        f"{_p(f['legit_by_phase']['refusal_phase'])})",
        f"Argon2 hashes on attack     {f['argon2_hashes_attack']} (evaluated attack attempts "
        f"{f['attack_attempts_evaluated']}; on refused: {f['argon2_hashes_on_refused_attempts']})",
        f"gateway CPU per refused     {steady.get('process_ms')} ms (event loop "
        f"{steady.get('event_loop_thread_ms')} ms; gateway at {steady.get('cores_used')} cores)",
        f"foreign load                {f['other_load_cores']}",
    ]


def _p(phase: dict[str, Any]) -> str:
    return f"{phase['post_p50']} / {phase['post_p95']}, {phase['refused']} refused"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.recompute:
        out = recompute(args.recompute)
        args.recompute.write_text(json.dumps(out, indent=1) + "\n")
        print("\n".join(summary_lines(out)))
        return 0
    h.exit_on_sigterm()
    pin = h.Pinning.choose(enabled=args.pin_gateway)
    try:
        h.require("nginx", "nice", *(() if pin.target is None else ("taskset",)))
        pin.pin_self()
        out: dict[str, Any] = {"benchmark": "stuffing", "machine": h.machine_info(),
                               "method": method(args, pin), "versions": h.versions(
                                   ("uvicorn", "uvloop", "starlette", "argon2-cffi", "limits"))}
        with h.Workspace("sekisho-stuffing-") as ws, database(args, ws) as db_url:
            out.update(run(args, ws, pin, db_url))
    except (h.BenchError, ValueError) as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    print("\n" + "\n".join(summary_lines(out)))
    print("\ntargets: " + json.dumps(out["targets"], indent=1))
    print(f"written to {args.output} and {args.output.with_suffix('.svg')} (and .png when "
          "Playwright and Chromium are there)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
