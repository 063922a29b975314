"""The legitimate users of bench/stuffing.py: log in from their known devices, and time it.

    python bench/_stuffing_legit.py SPEC.json OUT.json

Set-up: each user logs in once (its browser then holds a device cookie: a known device).
Prints ``READY``, reads ``GO <t0>``; from ``t0`` each user logs in again and again, an
exponentially distributed think time (mean ``interval`` seconds) apart, each login a GET of
the form and a POST of the right password, with the device cookie, from the user's own
address, until ``STOP`` arrives on stdin; writes OUT.json and prints ``DONE``.

A login counts as refused unless the POST answers 303 with a session cookie. Times are taken
from the GET's send to the POST's last byte (``total``) and for the POST alone (``post``).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import _stuffing_http as web


class User:
    def __init__(self, spec: dict[str, Any], name: str, password: str, source: str) -> None:
        self.name, self.password = name, password
        self.host = f"127.0.0.1:{spec['port']}"
        self.path = spec["prefix"] + "/login"
        self.names = spec["cookies"]
        self.conn = web.Connection("127.0.0.1", spec["port"], source)
        self.device = ""

    async def login(self) -> dict[str, Any]:
        device = f"{self.names['device']}={self.device}" if self.device else ""
        started = time.time()
        page = await self.conn.request(web.get(self.path, host=self.host, cookie=device))
        pre = page.cookies().get(self.names["pre"], "")
        token = page.csrf_token()
        if page.status != 200 or not pre or token is None:
            return {"t": started, "status": page.status, "ok": False, "evaluated": False,
                    "total": time.time() - started, "post": 0.0}
        cookies = {self.names["pre"]: pre, self.names["device"]: self.device}
        posted = time.time()
        answer = await self.conn.request(web.post_form(
            self.path, {"csrf_token": token, "username": self.name, "password": self.password,
                        "next": "/"}, host=self.host, cookie=web.cookie_header(cookies)))
        done = time.time()
        set_cookies = answer.cookies()
        ok = answer.status == 303 and bool(set_cookies.get(self.names["session"]))
        if ok and set_cookies.get(self.names["device"]):
            self.device = set_cookies[self.names["device"]]
        # Evaluated (hashed): a 303 or 401; a 500 too, which so far only comes after the
        # password was verified (a store error while recording the success).
        return {"t": started, "status": answer.status, "ok": ok,
                "evaluated": answer.status in (303, 401, 500), "total": done - started,
                "post": done - posted}


class Crowd:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        creds = json.loads(Path(spec["legit_credentials"]).read_text())
        self.users = [User(spec, c["username"], c["password"], c["source"]) for c in creds]
        self.records: list[dict[str, Any]] = []
        self.setup_evaluated = 0
        self.stopping = asyncio.Event()

    async def prepare(self) -> None:
        gate = asyncio.Semaphore(2)  # first logins hash; do not queue them all at once

        async def first(user: User) -> None:
            async with gate:
                result = await user.login()
            self.setup_evaluated += result["evaluated"]
            if not result["ok"]:
                raise web.HttpError(f"first login of a legit user: status {result['status']}")

        await asyncio.gather(*(first(u) for u in self.users))

    async def run(self, t0: float) -> None:
        rng = random.Random(self.spec["seed"])
        interval = self.spec["legit_interval"]
        loops = [self.loop(u, t0 + rng.uniform(0, interval), interval, random.Random(rng.random()))
                 for u in self.users]
        await asyncio.gather(*loops)

    async def loop(self, user: User, start: float, interval: float, rng: random.Random) -> None:
        wait = start - time.time()
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, wait))
                return
            except TimeoutError:
                pass
            try:
                record = await user.login()
            except (OSError, web.HttpError) as exc:
                record = {"t": time.time(), "status": 0, "ok": False, "evaluated": False,
                          "total": 0.0, "post": 0.0, "error": type(exc).__name__}
            self.records.append(record)
            wait = rng.expovariate(1.0 / interval)


async def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    crowd = Crowd(spec)
    await crowd.prepare()
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    t0 = float(line.split()[1])
    runner = asyncio.create_task(crowd.run(t0))
    await loop.run_in_executor(None, sys.stdin.readline)  # STOP (or EOF)
    crowd.stopping.set()
    await runner
    for user in crowd.users:
        user.conn.close()
    Path(out_path).write_text(json.dumps({
        "t0": t0, "users": len(crowd.users), "setup_evaluated": crowd.setup_evaluated,
        "logins": crowd.records}))
    print("DONE", flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1], sys.argv[2]))
