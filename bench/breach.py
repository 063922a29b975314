"""Benchmark the offline breached-password corpus, format version 2 (src/sekisho/auth/breach).

    python bench/breach.py [--sizes 10000000,100000000] [--out bench/results/breach.json]

For each size: writes synthetic sorted HIBP downloader output (``SHA1:COUNT`` CRLF lines),
imports it in a child process (wall time, peak RSS as the child's VmHWM), then measures the
file and resident-tier sizes, the time to open and to verify, lookup latency for members and
non-members (warm; "disk tier cold": the resident tier cached, the rest evicted before each
sample, the deployed case; "fully cold": the whole file evicted before each sample), the memory
a worker pays for the mapping (smaps_rollup of two concurrent child processes), and the
measured false-positive and resident-tier pass rates with random non-members. It also imports
a shuffled input through the external sort, imports at the full corpus's 24-bit geometry (its
134 MB index in memory), checks both rates on a narrow geometry, and extrapolates to 2 billion
hashes. Results go to JSON and a Markdown summary on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import mmap
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from array import array
from binascii import hexlify
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sekisho.auth.breach import BreachCorpus, CorpusHolder, import_corpus  # noqa: E402
from sekisho.auth.breach.format import Layout  # noqa: E402

TARGET_HASHES = 2_000_000_000
PARTITIONS = 1 << 16  # hashes are generated per top-16-bit partition, so output is sorted


def log(message: str) -> None:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {message}", file=sys.stderr, flush=True)


# --- synthetic input -------------------------------------------------------------------------


def count_pool(rng: random.Random) -> list[bytes]:
    """':COUNT\\r\\n' suffixes with a heavy tail, like HIBP's (most counts are small)."""
    return [b":%d\r\n" % int(1 / (1 - rng.random()) ** 1.6) for _ in range(65536)]


def write_sorted_input(path: Path, n: int, *, seed: int, shuffle: bool = False) -> list[bytes]:
    """Write n random SHA-1-like lines; return a sample of member digests."""
    rng = random.Random(seed)
    pool = count_pool(rng)
    sample: list[bytes] = []
    lines_out: list[bytes] = []
    with open(path, "wb", buffering=16 << 20) as out:
        for partition in range(PARTITIONS):
            k = n // PARTITIONS + (partition < n % PARTITIONS)
            head = partition.to_bytes(2, "big")
            raw = rng.randbytes(18 * k)
            digests = sorted(head + raw[i : i + 18] for i in range(0, 18 * k, 18))
            if digests:
                sample.append(digests[len(digests) // 2])
            text = hexlify(b"".join(digests)).upper()
            hexes = [text[i : i + 40] for i in range(0, 40 * k, 40)]
            counts = [pool[i] for i in rng.choices(range(65536), k=k)]
            chunk = b"".join(chain.from_iterable(zip(hexes, counts, strict=True)))
            if shuffle:
                lines_out.append(chunk)
            else:
                out.write(chunk)
        if shuffle:
            everything = b"".join(lines_out).splitlines(keepends=True)
            rng.shuffle(everything)
            out.write(b"".join(everything))
    return sample


# --- child processes -------------------------------------------------------------------------


def child_import(args: argparse.Namespace) -> None:
    result = import_corpus(
        [args.input],
        args.target,
        bucket_bits=args.bucket_bits or None,
        rest_bits=args.rest_bits,
        run_records=args.run_records,
    )
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(result).items()}
    # VmHWM, not wait4's ru_maxrss: that one includes the parent's RSS inherited at fork.
    status = Path("/proc/self/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fields["peak_rss_mb"] = hwm_kb / 1024
    print(json.dumps(fields))


def smaps_rollup() -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])  # kB
    return values


def child_memory(args: argparse.Namespace) -> None:
    """Open the corpus, do lookups, wait until the sibling has too, then report smaps."""
    rng = random.Random(args.seed)
    before = smaps_rollup()
    corpus = BreachCorpus(args.target)
    passed = 0
    for _ in range(args.lookups):
        digest = rng.randbytes(20)
        passed += corpus.passes_resident_tier(digest)
        corpus.lookup_sha1(digest)
    print("ready", flush=True)
    sys.stdin.readline()
    after = smaps_rollup()
    keys = ("Rss", "Pss", "Shared_Clean", "Private_Clean", "Private_Dirty", "Anonymous")
    report: dict[str, int] = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    report["lookups"], report["passed_resident_tier"] = args.lookups, passed
    print(json.dumps(report), flush=True)
    corpus.close()


def run_import_child(
    input_path: Path, target: Path, args: argparse.Namespace, run_records: int, bucket_bits: int
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "import",
        "--input",
        str(input_path),
        "--target",
        str(target),
        "--bucket-bits",
        str(bucket_bits),
        "--rest-bits",
        str(args.rest_bits),
        "--run-records",
        str(run_records),
    ]
    started = time.monotonic()
    load_before = os.getloadavg()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"import child failed with {proc.returncode}")
    result: dict[str, Any] = json.loads(output)
    result["wall_seconds"] = time.monotonic() - started
    result["ru_maxrss_mb"] = usage.ru_maxrss / 1024
    result["loadavg"] = [load_before, os.getloadavg()]
    return result


def worker_memory(target: Path, lookups: int) -> list[dict[str, int]]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "memory",
        "--target",
        str(target),
        "--lookups",
        str(lookups),
    ]
    procs = [
        subprocess.Popen(
            [*command, "--seed", str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:  # both alive and mapped: the page cache is shared between them
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        assert proc.stdout is not None
        reports.append(json.loads(proc.stdout.readline()))
        proc.wait()
    return reports


# --- lookups ---------------------------------------------------------------------------------


def percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return {"p50_us": at(0.50), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": at(1.0)}


def timer_overhead_ns() -> int:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(100_000):
        t0 = clock()
        samples.append(clock() - t0)
    return int(statistics.median(samples))


def time_calls(fn: Callable[[Any], object], probes: list[Any]) -> array[int]:
    """Per-call times; preallocated so the harness itself causes no page faults."""
    clock = time.perf_counter_ns
    samples = array("q", bytes(8 * len(probes)))
    for i, probe in enumerate(probes):
        t0 = clock()
        fn(probe)
        samples[i] = clock() - t0
    return samples


def timed_passes(
    fn: Callable[[Any], object], probes: list[Any], passes: int, nice: int = 0
) -> dict[str, Any]:
    """Several passes; preemptions (nivcsw) by other work on a shared box inflate the tail.

    ``nice`` < 0 (root only) raises this process's priority for the passes, so that other
    tenants of a shared machine preempt it less; it is restored afterwards.
    """
    runs = []
    before_nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    try:
        for _ in range(passes):
            runs.append(one_pass(fn, probes))
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before_nice)
    return {"best": min(runs, key=lambda r: r["p99_us"]), "passes": runs, "nice": nice}


def one_pass(fn: Callable[[Any], object], probes: list[Any]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_SELF)
    load = os.getloadavg()[0]
    stats: dict[str, Any] = dict(percentiles(time_calls(fn, probes)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    stats["involuntary_switches"] = after.ru_nivcsw - before.ru_nivcsw
    stats["minor_faults"] = after.ru_minflt - before.ru_minflt
    stats["major_faults"] = after.ru_majflt - before.ru_majflt
    stats["loadavg_1min"] = load
    return stats


def warm_lookups(
    target: Path, members: list[bytes], rng: random.Random, nice: int = 0
) -> dict[str, Any]:
    misses = [rng.randbytes(20) for _ in range(len(members))]
    mixed = members + misses
    rng.shuffle(mixed)
    passwords = [f"bench-password-{i}" for i in range(len(mixed))]
    with BreachCorpus(target) as corpus:
        assert all(corpus.lookup_sha1(d) is not None for d in members), "member missing"
        for probe in mixed:  # warm the pages
            corpus.lookup_sha1(probe)
        started = time.perf_counter()
        for probe in mixed:
            corpus.lookup_sha1(probe)
        mean_us = (time.perf_counter() - started) / len(mixed) * 1e6
        result: dict[str, Any] = {"mean_loop_us": mean_us, "probes": len(mixed)}
        for name, probes in (("members", members), ("non_members", misses), ("mixed", mixed)):
            passes = timed_passes(corpus.lookup_sha1, probes, 3)
            result[name], result[f"{name}_passes"] = passes["best"], passes["passes"]
        result["mixed_boosted"] = timed_passes(corpus.lookup_sha1, mixed, 3, nice) if nice else None
        result["lookup_password"] = timed_passes(corpus.lookup_password, passwords, 1)["best"]
    holder = CorpusHolder(target, check_interval=30)
    result["holder_lookup_sha1"] = timed_passes(holder.lookup_sha1, mixed, 1)["best"]
    holder.close()
    return result


def touch(view: memoryview) -> None:
    """Read one byte of every page: cached and mapped afterwards."""
    bytes(view[:: mmap.PAGESIZE])


def cold_lookups(
    target: Path, members: list[bytes], samples: int, rng: random.Random, *, flavour: str
) -> dict[str, Any]:
    """Evict before each lookup: the rest section only ("disk_tier") or the whole file.

    Eviction drops this process's page-table entries of the range (madvise MADV_DONTNEED),
    then the cached pages (posix_fadvise POSIX_FADV_DONTNEED), for this file only.
    """
    fd = os.open(target, os.O_RDONLY)
    result: dict[str, Any] = {"flavour": flavour, "samples_per_class": samples}
    with BreachCorpus(target) as corpus:
        lay = corpus.info.layout
        view = memoryview(corpus._mmap)
        if flavour == "disk_tier":
            start, size = lay.rest_offset, lay.rest_size
        else:
            start, size = 0, lay.file_size
        touch(view[lay.index_offset :])  # the resident tier: cached and mapped
        probes = {
            "members": rng.sample(members, min(samples, len(members))),
            "non_members": [rng.randbytes(20) for _ in range(samples)],
        }
        for name, digests in probes.items():
            passed = sum(map(corpus.passes_resident_tier, digests))
            times = []
            before = resource.getrusage(resource.RUSAGE_SELF)
            for digest in digests:
                if size:
                    corpus._mmap.madvise(mmap.MADV_DONTNEED, start, size)
                    os.posix_fadvise(fd, start, size, os.POSIX_FADV_DONTNEED)
                t0 = time.perf_counter_ns()
                corpus.lookup_sha1(digest)
                times.append(time.perf_counter_ns() - t0)
            after = resource.getrusage(resource.RUSAGE_SELF)
            result[name] = {
                **percentiles(times),
                "major_faults": after.ru_majflt - before.ru_majflt,
                "passed_resident_tier": passed,
            }
        del view
    os.close(fd)
    result["loadavg_1min"] = os.getloadavg()[0]
    return result


def rates(target: Path, trials: int, seed: int) -> dict[str, Any]:
    """False positives and resident-tier passes among random non-members."""
    rng = random.Random(seed)
    hits = passes = 0
    with BreachCorpus(target) as corpus:
        for _ in range(trials):
            digest = rng.randbytes(20)
            hits += corpus.lookup_sha1(digest) is not None
            passes += corpus.passes_resident_tier(digest)
        info, lay = corpus.info, corpus.info.layout
    # Distinct resident prefixes among n uniform hashes: 2**r * (1 - exp(-n / 2**r)).
    exact_pass = -math.expm1(-lay.count / 2**lay.resident_bits)
    return {
        "trials": trials,
        "false_positives": hits,
        "fp_measured": hits / trials,
        "fp_expected": info.false_positive_rate,
        "fingerprint_bits": lay.fingerprint_bits,
        "resident_passes": passes,
        "pass_measured": passes / trials,
        "pass_expected": exact_pass,
        "pass_bound_n_over_2_bits": info.resident_pass_rate,
        "resident_bits": lay.resident_bits,
    }


def open_and_verify(target: Path) -> dict[str, Any]:
    """Open time (header, size, index digest, madvise) and verify() time, page cache warm;
    then what WILLNEED alone brings into the page cache after the file was evicted."""
    started = time.perf_counter()
    corpus = BreachCorpus(target)
    opened = time.perf_counter() - started
    started = time.perf_counter()
    corpus.verify()
    verified = time.perf_counter() - started
    lay = corpus.info.layout
    corpus.close()
    result: dict[str, Any] = {"open_seconds": opened, "verify_seconds": verified}
    if shutil.which("fincore"):
        fd = os.open(target, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        corpus = BreachCorpus(target)
        time.sleep(max(2.0, lay.resident_bytes / 200e6))  # let the read-ahead finish
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", str(target)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        corpus.close()
        result["cached_after_cold_open_bytes"] = int(out[0]) if out else None
    result["resident_bytes"] = lay.resident_bytes
    return result


# --- driver ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    disk = Path("/sys/block/vda/queue/read_ahead_kb")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "read_ahead_kb": int(disk.read_text()) if disk.exists() else None,
        "loadavg_start": os.getloadavg(),
    }


def bench_size(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    need = n * 46 + n * 6 + (600 << 20)
    free = shutil.disk_usage(workdir).free
    if free < need * 1.2:
        log(f"skip {n:,}: needs ~{need / 1e9:.1f} GB, {free / 1e9:.1f} GB free")
        return {"hashes": n, "skipped": f"needs ~{need / 1e9:.1f} GB disk, {free / 1e9:.1f} free"}
    source, target = workdir / f"pwned-{n}.txt", workdir / f"pwned-{n}.corpus"
    log(f"{n:,}: generating sorted input")
    started = time.monotonic()
    members = write_sorted_input(source, n, seed=n)
    row: dict[str, Any] = {
        "hashes": n,
        "input_bytes": source.stat().st_size,
        "generate_seconds": time.monotonic() - started,
    }
    log(f"{n:,}: importing ({row['input_bytes'] / 1e9:.1f} GB)")
    imported = run_import_child(source, target, args, args.run_records, args.bucket_bits)
    row["import"] = imported
    row["import_lines_per_second"] = n / imported["wall_seconds"]
    with BreachCorpus(target) as corpus:
        lay = corpus.info.layout
    row["layout"] = {
        "bucket_bits": lay.bucket_bits,
        "rest_bits": lay.rest_bits,
        "records_per_bucket": lay.count / lay.buckets,
        "file_bytes": lay.file_size,
        "resident_bytes": lay.resident_bytes,
        "disk_tier_bytes": lay.disk_tier_bytes,
        "index_bytes": lay.index_size,
        "blocks_bytes": lay.blocks_size,
    }
    row["bytes_per_hash"] = lay.file_size / n
    row["resident_bytes_per_hash"] = lay.resident_bytes / n
    if not args.keep:
        source.unlink()
    log(f"{n:,}: open and verify")
    row["open_verify"] = open_and_verify(target)
    rng = random.Random(n + 1)
    log(f"{n:,}: warm lookups")
    row["warm"] = warm_lookups(target, members[: args.lookups // 2], rng, args.nice)
    for flavour in ("disk_tier", "fully"):
        log(f"{n:,}: cold lookups ({flavour})")
        row[f"cold_{flavour}"] = cold_lookups(
            target, members, args.cold_samples, rng, flavour=flavour
        )
    log(f"{n:,}: worker memory")
    row["worker_memory_kb"] = worker_memory(target, args.worker_lookups)
    log(f"{n:,}: false positives and resident-tier passes")
    row["rates"] = rates(target, args.fp_trials, seed=n + 2)
    if not args.keep:
        target.unlink()
    return row


def bench_geometry(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Import at the full corpus's 24 bucket bits: the import's memory with the 134 MB index
    (and the writer's speed when buckets are nearly empty, the worst case)."""
    n = args.geometry_size
    source, target = workdir / "geometry.txt", workdir / "geometry.corpus"
    write_sorted_input(source, n, seed=13)
    log(f"24-bit geometry {n:,}: importing")
    imported = run_import_child(source, target, args, args.run_records, 24)
    row = {
        "hashes": n,
        "bucket_bits": 24,
        "import": imported,
        "import_lines_per_second": n / imported["wall_seconds"],
        "file_bytes": target.stat().st_size,
        "open_verify": open_and_verify(target),
    }
    source.unlink()
    target.unlink()
    return row


def bench_unsorted(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.unsorted_size
    source, target = workdir / "shuffled.txt", workdir / "shuffled.corpus"
    log(f"unsorted {n:,}: generating shuffled input")
    write_sorted_input(source, n, seed=7, shuffle=True)
    log(f"unsorted {n:,}: importing with run_records={args.unsorted_run_records:,}")
    imported = run_import_child(source, target, args, args.unsorted_run_records, args.bucket_bits)
    source.unlink()
    target.unlink()
    return {
        "hashes": n,
        "run_records": args.unsorted_run_records,
        "import": imported,
        "import_lines_per_second": n / imported["wall_seconds"],
    }


def narrow_check(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A narrow geometry (12 bucket bits, 8 rest bits: a 32-bit fingerprint, a 24-bit
    resident tier) makes both rates large enough to test the formulas."""
    n = args.narrow_size
    source, target = workdir / "narrow.txt", workdir / "narrow.corpus"
    write_sorted_input(source, n, seed=11)
    import_corpus([source], target, bucket_bits=12, rest_bits=8)
    result = rates(target, args.fp_trials, seed=12)
    source.unlink()
    target.unlink()
    return {"hashes": n, **result}


def extrapolate(
    rows: list[dict[str, Any]],
    unsorted: dict[str, Any],
    geometry: dict[str, Any],
) -> dict[str, Any]:
    done = [r for r in rows if "import" in r]
    if not done:
        return {}
    largest = max(done, key=lambda r: r["hashes"])
    rate = largest["import_lines_per_second"]
    layout = Layout(24, 24, TARGET_HASHES)
    verify_rate = largest["layout"]["file_bytes"] / largest["open_verify"]["verify_seconds"]
    return {
        "hashes": TARGET_HASHES,
        "bucket_bits": 24,
        "records_per_bucket": TARGET_HASHES / layout.buckets,
        "file_bytes": layout.file_size,
        "resident_bytes": layout.resident_bytes,
        "disk_tier_bytes": layout.disk_tier_bytes,
        "false_positive_rate": TARGET_HASHES / 2**layout.fingerprint_bits,
        "resident_pass_rate": -math.expm1(-TARGET_HASHES / 2**layout.resident_bits),
        "resident_pass_bound": TARGET_HASHES / 2**layout.resident_bits,
        "import_minutes_sorted": TARGET_HASHES / rate / 60,
        "import_peak_rss_mb_sorted": geometry["import"]["peak_rss_mb"] if geometry else None,
        "import_minutes_unsorted": TARGET_HASHES / unsorted["import_lines_per_second"] / 60
        if unsorted
        else None,
        "unsorted_temp_disk_bytes": TARGET_HASHES * 9,
        "import_temp_disk_bytes": layout.blocks_size,
        "verify_seconds": layout.file_size / verify_rate,
        "open_seconds": geometry["open_verify"]["open_seconds"] if geometry else None,
        "basis": f"rates from the {largest['hashes']:,} run ({largest['layout']['bucket_bits']}"
        f"-bit buckets, {largest['layout']['records_per_bucket']:.0f} records a bucket); "
        "import memory and open time from the 24-bit geometry run; sizes exact from the layout",
    }


def _lat(d: dict[str, Any], digits: int = 2) -> str:
    return f"{d['p50_us']:.{digits}f} / {d['p99_us']:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    out = [
        "| hashes | bucket bits | import s | lines/s | peak RSS MB | file MB | resident MB "
        "| warm member p50/p99 µs | warm non-member | disk-tier cold member | disk-tier cold "
        "non-member | fully cold member | fully cold non-member | FP (expected) "
        "| tier-1 pass (expected) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["sizes"]:
        if "import" not in r:
            out.append(f"| {r['hashes']:,} | skipped: {r['skipped']} |")
            continue
        w, dt, fc, rt = r["warm"], r["cold_disk_tier"], r["cold_fully"], r["rates"]
        out.append(
            f"| {r['hashes']:,} | {r['layout']['bucket_bits']} | "
            f"{r['import']['wall_seconds']:.1f} | {r['import_lines_per_second'] / 1e6:.2f} M | "
            f"{r['import']['peak_rss_mb']:.0f} | {r['layout']['file_bytes'] / 1e6:.1f} | "
            f"{r['layout']['resident_bytes'] / 1e6:.1f} | {_lat(w['members'])} | "
            f"{_lat(w['non_members'])} | {_lat(dt['members'], 0)} | "
            f"{_lat(dt['non_members'], 1)} | {_lat(fc['members'], 0)} | "
            f"{_lat(fc['non_members'], 0)} | "
            f"{rt['false_positives']}/{rt['trials']:,} ({rt['fp_expected']:.1e}) | "
            f"{rt['pass_measured']:.3%} ({rt['pass_expected']:.3%}) |"
        )
    u, narrow, g = results.get("unsorted"), results.get("narrow_check"), results.get("geometry")
    if u:
        out.append(
            f"\nUnsorted {u['hashes']:,} lines (external sort, {u['import']['runs']} runs of "
            f"{u['run_records']:,}): {u['import']['wall_seconds']:.1f} s, "
            f"{u['import_lines_per_second'] / 1e6:.2f} M lines/s, "
            f"peak RSS {u['import']['peak_rss_mb']:.0f} MB"
        )
    if g:
        out.append(
            f"\n24-bit geometry, {g['hashes']:,} hashes: import {g['import']['wall_seconds']:.1f} s"
            f", peak RSS {g['import']['peak_rss_mb']:.0f} MB, file {g['file_bytes'] / 1e6:.0f} MB, "
            f"open {g['open_verify']['open_seconds'] * 1000:.0f} ms"
        )
    if narrow:
        out.append(
            f"\nNarrow geometry ({narrow['fingerprint_bits']}-bit fingerprint, "
            f"{narrow['resident_bits']}-bit resident tier), {narrow['hashes']:,} hashes, "
            f"{narrow['trials']:,} trials: {narrow['false_positives']} false positives "
            f"(expected {narrow['fp_expected'] * narrow['trials']:.0f}), "
            f"{narrow['resident_passes']} passes (expected "
            f"{narrow['pass_expected'] * narrow['trials']:.0f})"
        )
    x = results.get("extrapolated_2e9")
    if x:
        out.append(
            f"\n2e9 hashes (extrapolated): file {x['file_bytes'] / 1e9:.2f} GB, resident tier "
            f"{x['resident_bytes'] / 1e9:.2f} GB, disk tier {x['disk_tier_bytes'] / 1e9:.2f} GB, "
            f"FP {x['false_positive_rate']:.1e}, tier-1 pass {x['resident_pass_rate']:.2%}, "
            f"import ~{x['import_minutes_sorted']:.0f} min sorted"
        )
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000000,100000000")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/breach.json")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/sekisho-breach-bench"))
    p.add_argument("--bucket-bits", type=int, default=0, help="0: chosen from the input size")
    p.add_argument("--rest-bits", type=int, default=24)
    p.add_argument("--run-records", type=int, default=8_000_000)
    p.add_argument("--lookups", type=int, default=131_072, help="warm probes (half members)")
    p.add_argument("--cold-samples", type=int, default=300, help="per class and flavour")
    p.add_argument("--worker-lookups", type=int, default=100_000)
    p.add_argument("--fp-trials", type=int, default=1_000_000)
    p.add_argument("--narrow-size", type=int, default=2_000_000)
    p.add_argument("--geometry-size", type=int, default=10_000_000)
    p.add_argument("--unsorted-size", type=int, default=10_000_000)
    p.add_argument("--unsorted-run-records", type=int, default=8_000_000)
    p.add_argument("--keep", action="store_true", help="keep generated files")
    p.add_argument(
        "--update",
        action="store_true",
        help="re-run the parts asked for (sizes, and the others with a non-zero size) and "
        "replace them in the existing --out file, recording the re-run",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="also time warm lookups at this niceness (e.g. -10, root only) on a shared box",
    )
    p.add_argument("--child", choices=["import", "memory"], help=argparse.SUPPRESS)
    p.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.child == "import":
        return child_import(args)
    if args.child == "memory":
        return child_memory(args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if args.update:  # re-run some parts; keep the others from the existing results
        results: dict[str, Any] = json.loads(args.out.read_text())
        rerun: dict[str, Any] = {"date": now, "machine": machine(), "parts": []}
        results.setdefault("reruns", []).append(rerun)
    else:
        results = {
            "date": now,
            "format_version": 2,
            "machine": machine(),
            "parameters": {
                "bucket_bits": args.bucket_bits or "auto",
                "rest_bits": args.rest_bits,
            },
            "timer_overhead_ns": timer_overhead_ns(),
            "sizes": [],
        }
    for n in (int(s) for s in args.sizes.split(",") if s):
        row = bench_size(n, args, args.workdir)
        if args.update:  # the replaced figures stay on record
            rerun["parts"].append(n)
            rerun.setdefault("replaced", []).extend(r for r in results["sizes"] if r["hashes"] == n)
        results["sizes"] = [r for r in results["sizes"] if r["hashes"] != n] + [row]
        results["sizes"].sort(key=lambda r: r["hashes"])
    parts = (
        ("unsorted", args.unsorted_size, bench_unsorted),
        ("geometry", args.geometry_size, bench_geometry),
        ("narrow_check", args.narrow_size, narrow_check),
    )
    for name, size, run in parts:
        if size:
            if args.update:
                rerun["parts"].append(name)
                rerun.setdefault("replaced_parts", {})[name] = results.get(name)
            results[name] = run(args, args.workdir)
        elif not args.update:
            results[name] = {}
    results["extrapolated_2e9"] = extrapolate(
        results["sizes"], results["unsorted"], results["geometry"]
    )
    if args.update:
        rerun["machine"]["loadavg_end"] = os.getloadavg()
    else:
        results["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
