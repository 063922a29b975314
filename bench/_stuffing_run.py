"""The run of bench/stuffing.py: client processes, the clock, and the samples taken each second.

Timeline (t0 = GO): the gateway idles for ``idle`` seconds before t0 (its idle CPU), the legit
users log in alone for ``baseline`` seconds (the cost of a legit login, and its latency with
no attack), then the attacker runs, then ``tail`` seconds of legit users alone again.
Every second the orchestrator records the gateway's CPU (whole process, and its main thread,
the event loop, where refusals are handled; Argon2 runs on other threads), the hasher's
counter, the clients' CPU and the whole machine's busy time (to report foreign load).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import _harness as h

HERE = Path(__file__).resolve().parent
_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, tid: int | None = None) -> float | None:
    """CPU seconds of a process (its exited threads included) or of one of its threads;
    None once it has exited."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds spent on tasks (not interrupts) by the whole machine, all cores."""
    return sum(task for task, _irq, _steal, _total in h._core_ticks().values()) / _TICK


def set_group_niceness(pid: int, nice: int) -> bool:
    """Give the session of ``pid`` the niceness ``nice``. With autogroup scheduling (on here:
    /proc/sys/kernel/sched_autogroup_enabled) CPU is shared between sessions first, and every
    process this benchmark starts leads a session of its own, so a process's own niceness
    only counts inside it; the group's does between them. False where there is no autogroup."""
    path = Path(f"/proc/{pid}/autogroup")
    if not path.exists():
        return False
    try:
        path.write_text(str(nice))
    except OSError as exc:
        raise h.BenchError(f"cannot set the niceness of pid {pid}'s session: {exc}") from exc
    return True


class Client:
    """A client process speaking the READY / GO / STOP / DONE line protocol."""

    def __init__(self, name: str, script: str, spec: Path, out: Path, argv_prefix: list[str],
                 log: Path) -> None:
        self.name, self.out = name, out
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [*argv_prefix, sys.executable, str(HERE / script), str(spec), str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            start_new_session=True, preexec_fn=h._die_with_parent, cwd=HERE)

    def expect(self, word: str, timeout: float) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.strip() == word:
                    return
                if not line:
                    break
            elif self.proc.poll() is not None:
                break
        raise h.BenchError(f"{self.name}: no {word} within {timeout:.0f}s "
                           f"(exit {self.proc.poll()}):\n{self.log_tail()}")

    def send(self, line: str) -> None:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data

    def log_tail(self) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-15:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@dataclass
class Sampler:
    gateway: h.Server
    port: int
    clients: dict[str, int]  # name -> pid
    samples: list[dict[str, Any]] = field(default_factory=list)
    _conn: http.client.HTTPConnection | None = None

    def stats(self) -> dict[str, int]:
        for _ in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self._conn.request("GET", "/__bench/stats")
                answer = self._conn.getresponse()
                data: dict[str, int] = json.loads(answer.read())
                return data
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
        raise h.BenchError("gateway stats endpoint unreachable")

    def sample(self, t0: float) -> dict[str, Any]:
        pid = self.gateway.proc.pid
        last = self.samples[-1] if self.samples else {}
        cpu = {"gw_cpu": proc_cpu(pid), "gw_main": proc_cpu(pid, pid),
               **{f"{name}_cpu": proc_cpu(p) for name, p in self.clients.items()}}
        row: dict[str, Any] = {
            "t": round(time.time() - t0, 3), "machine": machine_busy_seconds(),
            "self_cpu": time.process_time(),
            # An exited client keeps its last reading.
            **{k: v if v is not None else last.get(k, 0.0) for k, v in cpu.items()},
        }
        row.update(self.stats())
        self.samples.append(row)
        return row

    def tick_until(self, t0: float, done: Any, *, after: float = 0.0) -> None:
        """Sample at t0 + k seconds until ``done()`` holds, then ``after`` seconds more."""
        k = max(0, math.floor(time.time() - t0) + 1)
        finish: float | None = None
        while True:
            time.sleep(max(0.0, t0 + k - time.time()))
            self.sample(t0)
            self.gateway.check_alive()
            k += 1
            if finish is None and done():
                finish = time.time() + after
            if finish is not None and time.time() >= finish:
                return
