"""Proxy overhead: the upstream direct, nginx proxy_pass, and one Sekisho worker (authenticated).

One run, one upstream (nginx answering a fixed 151-byte body), one load generator (wrk):

1. maximum throughput of each target, for each connection count (interleaved, so drift hits
   every target alike), the best count reported;
2. latency at a fixed rate: half of the gateway's measured maximum (and the issue's own
   half-load, 1,500 req/s, when that differs), for all three targets.

Every response must be a 200 (checked per response in wrk's Lua), else the run fails. Results go
to bench/results/proxy.json and a Markdown table to stdout; docs/performance.md explains them.

    .venv/bin/python bench/proxy.py                  # the full run, about 5 minutes
    .venv/bin/python bench/proxy.py --duration 3 --connections 32 --paced-duration 5   # smoke
    .venv/bin/python bench/proxy.py --profile /tmp/sekisho.raw   # also py-spy the gateway
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import _harness as h

RESULTS = Path(__file__).resolve().parent / "results" / "proxy.json"
UPSTREAM_BODY = ("Sekisho benchmark upstream: a small fixed plain-text body, the same bytes for "
                 "every request and every target, so only the path in front of it differs.\n")
TARGETS = ("direct", "nginx", "sekisho")
LABELS = {"direct": "upstream direct", "nginx": "nginx proxy_pass", "sekisho": "sekisho"}
ISSUE_RPS, ISSUE_P50_DELTA_MS = 3000.0, 0.5
COOKIE = "sekisho_session"
USERNAME = "bench"


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    header: str | None  # the session cookie, for sekisho; never printed
    proxy: h.Server  # the process under test (the upstream itself for "direct")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@dataclass(frozen=True)
class Bench:
    targets: dict[str, Target]
    upstream: h.Server
    pin: h.Pinning
    status_lua: Path
    paced_lua: Path
    quiet: h.Quiet
    args: argparse.Namespace


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10, help="seconds per max-throughput run")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up before each run")
    p.add_argument("--connections", default="16,32,64", help="wrk -c values to try")
    p.add_argument("--paced-duration", type=float, default=15, help="seconds per fixed-rate run")
    p.add_argument("--paced-connections", type=int, default=16)
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--max-other-load", type=float, default=0.15, metavar="CORES",
                   help="foreign CPU load above which a run is waited for / retried")
    p.add_argument("--quiet-budget", type=float, default=300, metavar="SECONDS",
                   help="total time to spend waiting for a quiet machine")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--profile", type=Path, metavar="RAW",
                   help="also record the gateway under load with py-spy (raw stacks to RAW)")
    args = p.parse_args(argv)
    args.connections = [int(c) for c in str(args.connections).split(",")]
    return args


# --- the three targets -----------------------------------------------------------------------


def upstream_block(port: int) -> str:
    return (f"  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n"
            f"      default_type text/plain;\n      return 200 \"{UPSTREAM_BODY}\";\n    }}\n  }}")


def proxy_block(port: int, upstream_port: int) -> str:
    return (f"  upstream app {{\n    server 127.0.0.1:{upstream_port};\n    keepalive 32;\n"
            f"    keepalive_requests 1000000;\n  }}\n"
            f"  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n"
            f"      proxy_pass http://app;\n      proxy_http_version 1.1;\n"
            f"      proxy_set_header Connection \"\";\n    }}\n  }}")


def gateway_env() -> dict[str, str]:
    # SEKISHO_* variables would override the generated config.
    return {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}


def sekisho_cli(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "sekisho", *args], input=stdin, text=True,
                          capture_output=True, env=gateway_env(), timeout=60, check=False)
    if proc.returncode != 0:
        raise h.BenchError(f"sekisho {args[2:4] or args}: exit {proc.returncode}: "
                           f"{proc.stderr.strip()[-500:]}")
    return proc.stdout


def write_gateway_config(ws: h.Workspace, port: int, upstream_port: int) -> Path:
    keys = [sekisho_cli("gen-key").strip() for _ in range(2)]
    conf = ws.dir / "gateway.toml"
    conf.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\npublic_origins = ["http://127.0.0.1:{port}"]\n'
        f'[[upstreams]]\nname = "app"\ntarget = "http://127.0.0.1:{upstream_port}"\n'
        f'[database]\nurl = "sqlite:///{ws.dir / "gateway.sqlite3"}"\n'
        f'[passwords]\nargon2_profile = "owasp-minimum"\n'
        f'[secrets]\nsession_key = "{keys[0]}"\ndata_key = "{keys[1]}"\n'
    )
    conf.chmod(0o600)
    return conf


def _cookie(response: http.client.HTTPResponse, name: str) -> str:
    for header in response.headers.get_all("set-cookie") or []:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise h.BenchError(f"login: no {name} cookie in the answer ({response.status})")


def login(port: int, password: str) -> str:
    """The session cookie value, through the real login form (CSRF token, pre-session cookie)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/_sekisho/login")
        page_response = conn.getresponse()
        page = page_response.read().decode()
        pre = _cookie(page_response, f"{COOKIE}_pre")
        field = re.search(r'<input[^>]*name="csrf_token"[^>]*>', page)
        token = re.search(r'value="([^"]*)"', field.group(0)) if field else None
        if page_response.status != 200 or token is None:
            raise h.BenchError(f"login page: status {page_response.status}, no csrf_token")
        form = urlencode({"csrf_token": html.unescape(token.group(1)), "username": USERNAME,
                          "password": password, "next": "/"})
        conn.request("POST", "/_sekisho/login", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"{COOKIE}_pre={pre}",
            "Origin": f"http://127.0.0.1:{port}"})
        answer = conn.getresponse()
        answer.read()
        if answer.status != 303:
            raise h.BenchError(f"login answered {answer.status}, expected 303")
        return _cookie(answer, COOKIE)
    finally:
        conn.close()


def start_gateway(ws: h.Workspace, pin: h.Pinning, upstream_port: int) -> Target:
    port = h.free_port()
    conf = write_gateway_config(ws, port, upstream_port)
    password = secrets.token_urlsafe(18)
    sekisho_cli("-c", str(conf), "user", "add", USERNAME, "--password-stdin", stdin=password + "\n")
    argv = [sys.executable, "-m", "sekisho", "-c", str(conf), "serve"]
    server = ws.start("sekisho", pin.argv(pin.target, argv), env=gateway_env())
    server.wait_for_port(port)
    header = f"Cookie: {COOKIE}={login(port, password)}"
    return Target("sekisho", port, header, server)


def start_targets(ws: h.Workspace, pin: h.Pinning) -> tuple[dict[str, Target], h.Server]:
    up_port, nginx_port = h.free_port(), h.free_port()
    upstream = h.start_nginx(ws, "upstream", upstream_block(up_port), core=pin.load, pin=pin,
                             port=up_port)
    proxy = h.start_nginx(ws, "nginx-proxy", proxy_block(nginx_port, up_port), core=pin.target,
                          pin=pin, port=nginx_port)
    targets = {
        "direct": Target("direct", up_port, None, upstream),
        "nginx": Target("nginx", nginx_port, None, proxy),
        "sekisho": start_gateway(ws, pin, up_port),
    }
    for target in targets.values():
        verify(target)
    return targets, upstream


def _get(port: int, header: str | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = dict([header.split(": ", 1)]) if header else {}
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def verify(target: Target) -> None:
    status, body = _get(target.port, target.header)
    if status != 200 or body != UPSTREAM_BODY.encode():
        raise h.BenchError(f"{target.name}: GET / gave {status} and not the upstream's body")
    if target.header and _get(target.port, None)[0] != 401:
        raise h.BenchError(f"{target.name}: answers without a session; auth is not in the path")


# --- measurements ----------------------------------------------------------------------------


Prepare = Callable[[], Callable[[], h.LoadResult]]  # warms up, returns the measured run


def measured(bench: Bench, target: Target, prepare: Prepare) -> dict[str, Any]:
    """The run with its CPU accounting; retried (up to 3 tries, the quietest kept) when other
    work on the machine took more than --max-other-load cores during it."""
    groups = {"proxy": target.proxy.pids()}
    if target.proxy is not bench.upstream:
        groups["upstream"] = bench.upstream.pids()
    kept: dict[str, Any] | None = None
    for attempt in range(1, 4):
        bench.quiet.wait()
        run = prepare()
        before = h.cpu_snapshot(groups)
        result = run()
        usage = h.cpu_usage(before, h.cpu_snapshot(groups))
        target.proxy.check_alive()
        if kept is None or usage["other"] < kept["cpu_cores"]["other"]:
            kept = {**result.as_dict(), "cpu_cores": usage, "attempts": attempt}
        if usage["other"] <= bench.quiet.threshold or not bench.quiet.can_wait():
            break
        print(f"    (other load {usage['other']:.2f} cores during the run: again)", flush=True)
    assert kept is not None
    kept["attempts"] = attempt
    kept["disturbed"] = kept["cpu_cores"]["other"] > bench.quiet.threshold
    return kept


def wrk(bench: Bench, target: Target, conns: int, seconds: float,
        think_ms: float | None = None) -> h.LoadResult:
    script = bench.status_lua if think_ms is None else bench.paced_lua
    return h.run_wrk(target.url, name=target.name, script=script, connections=conns,
                     seconds=seconds, pin=bench.pin, header=target.header, think_ms=think_ms)


def max_throughput(bench: Bench) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in TARGETS}
    for conns in bench.args.connections:
        for name in TARGETS:
            run = measured(bench, bench.targets[name], partial(_max_run, bench, name, conns))
            runs[name].append(run)
            print(f"  max  {name:8} c={conns:<3} {run['rps']:9.0f} req/s  p50 {run['p50_ms']:.3f} "
                  f"ms  p99 {run['p99_ms']:.3f} ms{_load_note(run)}", flush=True)
    return runs


def _load_note(run: dict[str, Any]) -> str:
    cpu = run["cpu_cores"]
    note = f"  proxy CPU {cpu['proxy']:.2f}  other load {cpu['other']:.2f}"
    return note + ("  DISTURBED" if run["disturbed"] else "")


def _max_run(bench: Bench, name: str, conns: int) -> Callable[[], h.LoadResult]:
    target = bench.targets[name]
    wrk(bench, target, conns, bench.args.warmup)
    return partial(wrk, bench, target, conns, bench.args.duration)


def _paced_run(bench: Bench, target: Target, rate: float) -> Callable[[], h.LoadResult]:
    """Two warm-ups calibrate the think time so the achieved rate is ``rate`` whatever the
    target's own latency (wrk's pacing is closed-loop per connection)."""
    conns = bench.args.paced_connections
    cycle_ms = conns * 1000 / rate
    think = cycle_ms
    for _ in range(2):
        warm = wrk(bench, target, conns, bench.args.warmup, think_ms=think)
        think = max(0.0, think + cycle_ms - conns * 1000 / warm.rps)
    return partial(wrk, bench, target, conns, bench.args.paced_duration, think)


def paced(bench: Bench, target: Target, rate: float) -> dict[str, Any]:
    run = measured(bench, target, partial(_paced_run, bench, target, rate))
    run["target_rps"] = round(rate, 1)
    print(f"  rate {target.name:8} {rate:6.0f}/s -> {run['rps']:7.0f}/s  p50 {run['p50_ms']:.3f} "
          f"ms  p99 {run['p99_ms']:.3f} ms{_load_note(run)}", flush=True)
    return run


def half_load_rates(gateway_rps: float) -> list[float]:
    rates = [float(round(gateway_rps / 2))]
    if abs(ISSUE_RPS / 2 - rates[0]) > 0.05 * rates[0]:
        rates.append(ISSUE_RPS / 2)
    return rates


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return max(runs, key=lambda r: float(r["rps"]))


def summarise(maxima: dict[str, list[dict[str, Any]]],
              half: list[dict[str, Any]]) -> dict[str, Any]:
    top = {name: best(runs) for name, runs in maxima.items()}
    first = half[0]["results"]
    delta = first["sekisho"]["p50_ms"] - first["direct"]["p50_ms"]
    disturbed = [f"{name} c={r['connections']}" for name, runs in maxima.items() for r in runs
                 if r["disturbed"]]
    disturbed += [f"{name} at {block['rate']:.0f}/s" for block in half
                  for name, r in block["results"].items() if r["disturbed"]]
    return {
        "gateway_rps": round(top["sekisho"]["rps"]),
        "gateway_best_connections": top["sekisho"]["connections"],
        "ratio_vs_direct": round(top["sekisho"]["rps"] / top["direct"]["rps"], 3),
        "ratio_vs_nginx": round(top["sekisho"]["rps"] / top["nginx"]["rps"], 3),
        "half_load_rps": half[0]["rate"],
        "half_load_p50_delta_ms": round(delta, 3),
        "targets": {
            f"rps >= {ISSUE_RPS:.0f}": top["sekisho"]["rps"] >= ISSUE_RPS,
            f"p50 delta <= {ISSUE_P50_DELTA_MS} ms at half load": delta <= ISSUE_P50_DELTA_MS,
        },
        "disturbed_runs": disturbed,
    }


def markdown(maxima: dict[str, list[dict[str, Any]]], half: list[dict[str, Any]]) -> str:
    top = {name: best(runs) for name, runs in maxima.items()}
    lines = ["| target | max req/s (wrk -c) | p50 ms | p99 ms | sekisho / this |",
             "|---|---:|---:|---:|---:|"]
    for name in TARGETS:
        r = top[name]
        ratio = top["sekisho"]["rps"] / r["rps"]
        lines.append(f"| {LABELS[name]} | {r['rps']:,.0f} ({r['connections']}) | "
                     f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {ratio:.2f} |")
    for block in half:
        lines += ["", f"Fixed rate {block['rate']:,.0f} req/s ({block['why']}), "
                  f"wrk -c{block['connections']} paced:", "",
                  "| target | achieved req/s | p50 ms | p99 ms | p50 delta vs direct ms |",
                  "|---|---:|---:|---:|---:|"]
        res = block["results"]
        for name in TARGETS:
            r = res[name]
            lines.append(f"| {LABELS[name]} | {r['rps']:,.0f} | {r['p50_ms']:.3f} | "
                         f"{r['p99_ms']:.3f} | {r['p50_ms'] - res['direct']['p50_ms']:+.3f} |")
    return "\n".join(lines)


def gateway_source() -> str:
    out = subprocess.run([sys.executable, "-c", "import sekisho; print(sekisho.__file__)"],
                         capture_output=True, text=True, env=gateway_env(), check=False)
    return out.stdout.strip()


def run_all(bench: Bench) -> dict[str, Any]:
    maxima = max_throughput(bench)
    gateway_rps = best(maxima["sekisho"])["rps"]
    half = []
    for i, rate in enumerate(half_load_rates(gateway_rps)):
        why = "half the gateway's measured max" if i == 0 else "half the issue's 3,000 req/s"
        results = {name: paced(bench, bench.targets[name], rate) for name in TARGETS}
        half.append({"rate": rate, "why": why, "connections": bench.args.paced_connections,
                     "results": results})
    out: dict[str, Any] = {"max_throughput": maxima, "half_load": half,
                           "summary": summarise(maxima, half), "table": markdown(maxima, half)}
    if bench.args.profile:
        target = bench.targets["sekisho"]
        out["profile"] = h.profile_process(
            target.proxy.proc.pid, bench.args.profile,
            lambda: wrk(bench, target, best(maxima["sekisho"])["connections"],
                        bench.args.duration + 2),
            seconds=bench.args.duration)
    return out


def method(args: argparse.Namespace, pin: h.Pinning) -> dict[str, Any]:
    return {
        "pinning": pin.describe(),
        "upstream": f"nginx, worker_processes 1, return 200 with a {len(UPSTREAM_BODY)}-byte "
                    "text/plain body, keep-alive, no access log",
        "nginx_proxy": "nginx, worker_processes 1, proxy_pass with upstream keepalive 32, "
                       "proxy_http_version 1.1, Connection \"\"",
        "sekisho": "sekisho serve: one uvicorn worker (uvloop, httptools), memory session store, "
                   "requests carry a session cookie from a real login",
        "max_throughput": f"wrk -t1 -c{{{','.join(map(str, args.connections))}}} "
                          f"-d{args.duration:g}s --latency --timeout 10s, {args.warmup:g}s warm-up "
                          "each, every response checked to be 200",
        "fixed_rate": f"wrk -t1 -c{args.paced_connections} -d{args.paced_duration:g}s, each "
                      "connection waits an exponential think time between requests (near-"
                      "Poisson arrivals), calibrated in two warm-ups to hit the rate",
        "noise_control": f"before each run, wait until other processes use <= "
                         f"{args.max_other_load:g} cores; a run during which they used more is "
                         f"repeated (3 tries, the quietest kept, flagged 'disturbed' if still "
                         f"over); at most {args.quiet_budget:g}s of waiting in all",
        "gateway_source": gateway_source(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    h.exit_on_sigterm()
    pin = h.Pinning.choose(enabled=not args.no_pin)
    try:
        h.require("nginx", "wrk")
        pin.pin_self()
        report: dict[str, Any] = {
            "benchmark": "proxy", "machine": h.machine_info(), "method": method(args, pin),
            "versions": h.versions(("uvicorn", "uvloop", "httptools", "aiohttp", "starlette")),
        }
        with h.Workspace("sekisho-bench-") as ws:
            targets, upstream = start_targets(ws, pin)
            status_lua, paced_lua = h.write_lua(ws.dir)
            quiet = h.Quiet(args.max_other_load, args.quiet_budget)
            bench = Bench(targets, upstream, pin, status_lua, paced_lua, quiet, args)
            print(f"proxy benchmark ({pin.describe()})", flush=True)
            report.update(run_all(bench))
    except h.BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{report['table']}\n\n{json.dumps(report['summary'], indent=2)}\n"
          f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
