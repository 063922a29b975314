"""The attacker of bench/stuffing.py: replays a combo list from many source addresses.

    python bench/_stuffing_attack.py SPEC.json OUT.json

Protocol with the orchestrator (stdin/stdout lines): prints ``READY`` once every source has
a login form (pre-session cookie and CSRF token, one GET per source, as a stuffing tool
does); reads ``GO <t0>``; attacks from ``t0 + baseline`` as fast as the gateway answers, with
``concurrency`` requests in flight, until the whole list was sent once and ``duration``
seconds have passed (or ``max_duration``); writes OUT.json and prints ``DONE``.

Each source address has one keep-alive connection and is used by one worker at a time; pair
``k`` of the list goes out from source ``k % len(sources)``, so the list is spread evenly over
the addresses, and each address works through its pairs in list order. An attempt is a POST
of the login form with the source's token; no device cookie (the attacker has none).

Outcomes: ``taken_over`` (303 with a session cookie, to somewhere other than the login
page or the MFA step), ``mfa_pending`` (303 to the MFA step), ``failed`` (401: evaluated
and wrong), ``throttled`` (429 with Retry-After: a budget or wait), ``challenged`` (429
without: attack mode asks for a proof of work, which this attacker does not solve), ``busy``
(503, the hash queue full), ``server_error`` (500: so far only seen after a verified
password, when recording the success failed), ``other``. Nothing secret is written: counts
and times only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import _stuffing_http as web

OUTCOMES = {303: "taken_over", 401: "failed", 429: "throttled", 500: "server_error",
            503: "busy"}


class Attack:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host = f"127.0.0.1:{spec['port']}"
        self.login_path = spec["prefix"] + "/login"
        self.session_cookie = spec["cookies"]["session"]
        self.pre_cookie = spec["cookies"]["pre"]
        self.sources: list[str] = spec["sources"]
        self.combos = [line.split("\t", 1) for line in
                       Path(spec["combos"]).read_text().splitlines() if line]
        self.conns = [web.Connection("127.0.0.1", spec["port"], s) for s in self.sources]
        self.tokens: list[tuple[str, str]] = []  # per source: (pre cookie, csrf token)
        self.buckets: defaultdict[int, Counter[str]] = defaultdict(Counter)
        self.latencies: list[float] = []
        self.taken: set[str] = set()
        self.sent = 0
        self.passes_done = 0
        self.t0 = 0.0
        self.stop = False

    async def prepare(self) -> None:
        gate = asyncio.Semaphore(50)

        async def one(conn: web.Connection) -> tuple[str, str]:
            async with gate:
                page = await conn.request(web.get(self.login_path, host=self.host))
            pre = page.cookies().get(self.pre_cookie, "")
            token = page.csrf_token()
            if page.status != 200 or not pre or token is None:
                raise web.HttpError(f"login form from {conn.source}: status {page.status}")
            return pre, token

        self.tokens = list(await asyncio.gather(*(one(c) for c in self.conns)))

    async def run(self, start: float) -> None:
        await asyncio.sleep(max(0.0, start - time.time()))
        self.t0 = time.time()
        width = min(self.spec["concurrency"], len(self.sources))
        queues = [[k for k in range(len(self.combos)) if (k % len(self.sources)) % width == w]
                  for w in range(width)]
        await asyncio.gather(*(self.worker(q, width) for q in queues))

    async def worker(self, queue: list[int], width: int) -> None:
        duration, limit = self.spec["duration"], self.spec["max_duration"]
        first_pass = True
        while not self.stop:
            for k in queue:
                await self.attempt(k)
                elapsed = time.time() - self.t0
                if elapsed >= limit or (self.passes_done == width and elapsed >= duration):
                    self.stop = True
                if self.stop:
                    return
            if first_pass:
                first_pass = False
                self.passes_done += 1
                if self.passes_done == width and time.time() - self.t0 >= duration:
                    self.stop = True

    async def attempt(self, k: int) -> None:
        username, password = self.combos[k]
        source = k % len(self.sources)
        pre, token = self.tokens[source]
        raw = web.post_form(
            self.login_path,
            {"csrf_token": token, "username": username, "password": password, "next": "/"},
            host=self.host, cookie=f"{self.pre_cookie}={pre}")
        started = time.time()
        try:
            answer = await self.conns[source].request(raw)
        except (OSError, web.HttpError):
            outcome = "error"
        else:
            outcome = self.classify(answer, username)
        done = time.time()
        self.sent += 1
        self.latencies.append(done - started)
        self.buckets[int(done - self.t0)][outcome] += 1

    def classify(self, answer: web.Response, username: str) -> str:
        outcome = OUTCOMES.get(answer.status, "other")
        if outcome == "throttled" and answer.header("retry-after") is None:
            return "challenged"  # attack mode's proof of work, which this attacker skips
        if outcome == "taken_over":
            location = answer.header("location") or ""
            if not answer.cookies().get(self.session_cookie) or "/login" in location:
                return "other"
            if "/mfa" in location:
                return "mfa_pending"  # the password was right; a second factor stands
            self.taken.add(username)
        return outcome

    def result(self) -> dict[str, Any]:
        elapsed = time.time() - self.t0
        totals: Counter[str] = Counter()
        for counts in self.buckets.values():
            totals.update(counts)
        lat = sorted(self.latencies)
        return {
            "t0": self.t0, "seconds": elapsed, "attempts": self.sent,
            "list_size": len(self.combos), "list_replayed_once": self.passes_done >= min(
                self.spec["concurrency"], len(self.sources)),
            "sources": len(self.sources), "concurrency": self.spec["concurrency"],
            "totals": dict(totals), "accounts_taken_over": len(self.taken),
            "reconnects": sum(c.opened for c in self.conns) - len(self.conns),
            "latency_ms": {q: round(1000 * lat[min(len(lat) - 1, int(len(lat) * f))], 2)
                           for q, f in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
            if lat else {},
            "buckets": {str(t): dict(c) for t, c in sorted(self.buckets.items())},
        }


async def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    attack = Attack(spec)
    await attack.prepare()
    print("READY", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t0 = float(line.split()[1])
    await attack.run(t0 + spec["baseline"])
    for conn in attack.conns:
        conn.close()
    Path(out_path).write_text(json.dumps(attack.result()))
    print("DONE", flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1], sys.argv[2]))
