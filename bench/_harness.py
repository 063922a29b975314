"""Plumbing shared by the benchmarks: a workspace that owns temp files and server processes,
CPU pinning and accounting, nginx instances, and wrk as the load generator.

Every server is started in its own process group with a parent-death signal, so it goes away
when the workspace closes, when the benchmark fails, and even when the benchmark is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class BenchError(RuntimeError):
    """The run cannot give a trustworthy figure: stop, clean up, and say why."""


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        names = " ".join(missing)
        raise BenchError(f"missing tools: {names} (apt-get install {names})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_info() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cores": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def versions(packages: Sequence[str]) -> dict[str, str]:
    """Versions of the tools and of the Python packages on the measured path."""
    out: dict[str, str] = {}
    for tool, flag in (("nginx", "-v"), ("wrk", "-v")):
        if shutil.which(tool):
            proc = subprocess.run([tool, flag], capture_output=True, text=True, check=False)
            text = (proc.stderr or proc.stdout).strip().splitlines()
            out[tool] = text[0] if text else "?"
    for package in packages:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


# --- pinning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    """``load``: core of the load generator, the upstream and this script; ``target``: core of
    the proxy under test. Both None when pinning is off or there are fewer than two cores."""

    load: int | None
    target: int | None

    @classmethod
    def choose(cls, *, enabled: bool) -> Pinning:
        cores = sorted(os.sched_getaffinity(0))
        if not enabled or len(cores) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(cores[0], cores[1])

    def argv(self, core: int | None, argv: Sequence[str]) -> list[str]:
        return list(argv) if core is None else ["taskset", "-c", str(core), *argv]

    def pin_self(self) -> None:
        if self.load is not None:
            os.sched_setaffinity(0, {self.load})

    def describe(self) -> str:
        if self.load is None:
            return "not pinned"
        return (f"core {self.load}: load generator (wrk), upstream nginx, bench script; "
                f"core {self.target}: the proxy under test (nginx proxy_pass or sekisho)")


# --- processes -------------------------------------------------------------------------------


def _die_with_parent() -> None:
    # Runs in the child before exec; survives taskset's exec into the real server.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Server:
    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None):
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None, start_new_session=True,
                preexec_fn=_die_with_parent,  # safe: this process runs no threads
            )

    def pids(self) -> list[int]:
        """The process and all its descendants (an nginx master and its worker)."""
        found, queue = [], [self.proc.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    queue.extend(int(c) for c in task.read_text().split())
                except OSError:
                    continue
        return found

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_port(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise BenchError(f"{self.name} did not listen on {port} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        else:
            with contextlib.suppress(ProcessLookupError):  # what the dead leader left behind
                os.killpg(self.proc.pid, signal.SIGKILL)


class Workspace:
    """A temp dir and the servers started in it; closing stops them and removes the dir."""

    def __init__(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self._servers: list[Server] = []

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> Server:
        server = Server(name, argv, self.dir / f"{name}.log", env)
        self._servers.append(server)
        return server

    def close(self) -> None:
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- nginx -----------------------------------------------------------------------------------


def start_nginx(ws: Workspace, name: str, http_body: str, *, core: int | None, pin: Pinning,
                port: int) -> Server:
    """One nginx instance (one worker, no access log) with its own prefix inside ``ws``."""
    prefix = ws.dir / name
    prefix.mkdir()
    temps = "\n".join(
        f"  {kind}_temp_path {prefix / kind};" for kind in
        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n  access_log off;\n{temps}\n  keepalive_timeout 75s;\n"
        f"  keepalive_requests 1000000;\n{http_body}\n}}\n"
    )
    argv = ["nginx", "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(conf),
            "-g", "daemon off;"]
    server = ws.start(name, pin.argv(core, argv))
    server.wait_for_port(port)
    return server


# --- CPU accounting --------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float
    cores: dict[int, tuple[int, int, int, int]]  # core -> (task, irq, steal, total) ticks
    procs: dict[str, tuple[float, float]]  # group -> (user, system) seconds
    children: float  # reaped children (the load generator), seconds
    itself: float


def _proc_times(pids: Sequence[int]) -> tuple[float, float]:
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user / _CLK_TCK, system / _CLK_TCK


def _core_ticks() -> dict[int, tuple[int, int, int, int]]:
    out: dict[int, tuple[int, int, int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in values[:8])
            total = sum(int(v) for v in values[:8])
            out[int(name[3:])] = (user + nice + system, irq + softirq, steal, total)
    return out


def cpu_snapshot(groups: Mapping[str, Sequence[int]]) -> CpuSnapshot:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSnapshot(
        wall=time.monotonic(), cores=_core_ticks(),
        procs={name: _proc_times(pids) for name, pids in groups.items()},
        children=kids.ru_utime + kids.ru_stime, itself=me.ru_utime + me.ru_stime,
    )


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Cores used by each group, the load generator, and everything else on the machine."""
    wall = after.wall - before.wall
    usage: dict[str, float] = {}
    ours = 0.0
    for name, (user, system) in after.procs.items():
        user0, system0 = before.procs[name]
        spent = user - user0 + system - system0
        usage[name] = spent / wall
        usage[f"{name}_kernel_share"] = (system - system0) / max(spent, 1e-9)
        ours += usage[name]
    usage["load_generator"] = (after.children - before.children) / wall
    ours += usage["load_generator"] + (after.itself - before.itself) / wall
    tasks = 0.0
    for core, now in after.cores.items():
        task, irq, steal, total = (a - b for a, b in zip(now, before.cores[core], strict=True))
        usage[f"core{core}_busy"] = (task + irq) / max(total, 1)
        usage["softirq"] = usage.get("softirq", 0.0) + irq / max(total, 1)
        usage["steal"] = usage.get("steal", 0.0) + steal / max(total, 1)
        tasks += task / max(total, 1)
    # Foreign load (other users of the machine) makes a run suspect; it is reported per run.
    # Interrupt time (loopback TCP is delivered in softirq) is ours but nobody's process time.
    usage["other"] = max(0.0, tasks - ours)
    return {k: round(v, 3) for k, v in usage.items()}


def machine_busy(window: float = 1.0) -> float:
    """Cores busy with tasks (not interrupts) over ``window`` seconds, all users together."""
    before = _core_ticks()
    time.sleep(window)
    after = _core_ticks()
    return sum(
        (now[0] - then[0]) / max(now[3] - then[3], 1)
        for now, then in ((after[c], before[c]) for c in after)
    )


class Quiet:
    """Other people's work on a shared machine skews a run. Before a run, wait until the
    machine is idle (our servers idle too); after it, allow a retry if it was disturbed. All
    waiting comes out of one budget, so the benchmark still ends in bounded time."""

    def __init__(self, threshold: float, budget: float) -> None:
        self.threshold = threshold
        self._deadline = time.monotonic() + budget

    def can_wait(self) -> bool:
        return time.monotonic() < self._deadline

    def wait(self) -> float:
        load = machine_busy(0.5)
        told = False
        while load > self.threshold and self.can_wait():
            if not told:
                print(f"    (other load {load:.2f} cores: waiting for it to settle)", flush=True)
                told = True
            time.sleep(1.5)
            load = machine_busy(0.5)
        return load


# --- wrk -------------------------------------------------------------------------------------

# Every response is checked in Lua: wrk's own "Non-2xx or 3xx" count lets a 302 to the login
# page pass as success. The summary comes back as one JSON line, latencies in microseconds.
_LUA_REPORT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 then non200 = (non200 or 0) + 1; bad_status = status end
end
function done(summary, latency, requests)
  local bad, last = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non200") or 0)
    last = t:get("bad_status") or last
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"non200":%.0f,' ..
    '"bad_status":%.0f,"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,' ..
    '"timeout":%.0f},"latency_us":{"mean":%.1f,"p50":%.1f,"p90":%.1f,"p99":%.1f,' ..
    '"p999":%.1f,"max":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, bad, last, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""
# Paced: each connection thinks for an exponentially distributed time between requests, so
# the merged arrivals are close to Poisson (hey's per-worker tickers fire in phase instead:
# bursts of -c requests at once). wrk's timers have 1 ms resolution; the random rounding keeps
# the mean exact.
_LUA_PACE = """
local think_ms = 10
function init(args)
  think_ms = tonumber(args[1])
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function delay()
  local d = -think_ms * math.log(1 - math.random())
  local whole = math.floor(d)
  if math.random() < d - whole then whole = whole + 1 end
  return whole
end
"""


@dataclass(frozen=True)
class LoadResult:
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    think_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def write_lua(directory: Path) -> tuple[Path, Path]:
    """(status-checking script, paced status-checking script)."""
    plain, paced = directory / "status.lua", directory / "paced.lua"
    plain.write_text(_LUA_REPORT)
    paced.write_text(_LUA_REPORT + _LUA_PACE)
    return plain, paced


def run_wrk(
    url: str, *, name: str, script: Path, connections: int, seconds: float, pin: Pinning,
    header: str | None = None, think_ms: float | None = None,
) -> LoadResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
            "-s", str(script)]
    if header:
        argv += ["-H", header]
    argv.append(url)
    if think_ms is not None:
        argv += ["--", f"{think_ms:.4f}"]
    proc = subprocess.run(pin.argv(pin.load, argv), capture_output=True, text=True,
                          timeout=seconds + 60, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk against {name} failed ({proc.returncode}): {proc.stderr.strip()}")
    return _checked(name, json.loads(line.removeprefix("WRK_JSON ")), connections, think_ms)


def _checked(name: str, raw: dict[str, Any], connections: int, think: float | None) -> LoadResult:
    requests = int(raw["requests"])
    if requests == 0:
        raise BenchError(f"{name}: no request completed")
    if raw["non200"]:
        raise BenchError(
            f"{name}: {raw['non200']} of {requests} responses were not 200 (e.g. "
            f"{raw['bad_status']}); the run would measure refusals, not proxying")
    errors = {k: int(v) for k, v in raw["errors"].items() if v}
    if errors:
        raise BenchError(f"{name}: socket errors {errors} in {requests} requests")
    seconds = raw["duration_us"] / 1e6
    lat = {k: v / 1000 for k, v in raw["latency_us"].items()}
    return LoadResult(
        connections=connections, seconds=seconds, requests=requests, rps=requests / seconds,
        p50_ms=lat["p50"], p90_ms=lat["p90"], p99_ms=lat["p99"], p999_ms=lat["p999"],
        mean_ms=lat["mean"], max_ms=lat["max"], think_ms=think,
    )


# --- py-spy ----------------------------------------------------------------------------------

_PACKAGES = ("sekisho", "aiohttp", "uvicorn", "starlette", "asyncio", "yarl", "multidict",
             "httptools", "uvloop")


def _package(frame: str) -> str:
    path = frame.rpartition("(")[2]
    top = path.split("/", 1)[0]
    if frame.startswith("Runner.run ("):
        return "event loop (uvloop, C)"  # the loop's own C code shows as its Python caller
    return top if top in _PACKAGES else "other"


def summarise_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self time by frame and by package, inclusive time of Sekisho's own functions; the main
    thread only (the others, the hashing pool and the SQLite thread, sit idle while proxying,
    and a blocking py-spy samples them anyway)."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    sekisho: Counter[str] = Counter()
    total = side = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        if frames[0].startswith("Thread._bootstrap "):
            side += n
            continue
        total += n
        own[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for func in {f.rpartition(":")[0] + ")" for f in frames if "(sekisho/" in f
                     and "(sekisho/cli" not in f and not f.startswith("<module>")}:
            sekisho[func] += n

    def share(counter: Counter[str], limit: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(total, 1), 1)) for k, v in counter.most_common(limit)]

    return {"samples": total, "other_thread_samples": side,
            "self_percent_by_package": dict(share(packages, 20)),
            "self_percent_top_frames": share(own, top),
            "sekisho_inclusive_percent": share(sekisho, top)}


def profile_process(
    pid: int, raw: Path, load: Callable[[], object], *, seconds: float
) -> dict[str, Any]:
    """py-spy (250 Hz) on ``pid`` while ``load`` runs; a summary of the stacks. Self time goes
    to the Python frame on top: C calls and syscalls count to the frame that made them."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise BenchError("--profile needs py-spy (pip install py-spy, not a project dependency)")
    argv = [spy, "record", "-r", "250", "-d", f"{seconds:g}", "-f", "raw",
            "-o", str(raw), "-p", str(pid)]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        load()
        _, err = proc.communicate(timeout=seconds + 60)
    if proc.returncode != 0 or not raw.exists():
        raise BenchError(f"py-spy failed: {err.decode(errors='replace').strip()}")
    return {"raw_stacks": str(raw), **summarise_profile(raw)}


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so context managers clean up."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
