"""Benchmark the offline breached-password corpus (src/sekisho/auth/breach).

    python bench/breach.py [--sizes 10000000,100000000] [--out bench/results/breach.json]

For each size: writes synthetic sorted HIBP downloader output (``SHA1:COUNT`` CRLF lines),
imports it in a child process (wall time, peak RSS as the child's VmHWM), then measures the
corpus size, warm and cold lookup latency, the memory a worker pays for the mapping
(smaps_rollup of two concurrent child processes), and the false-positive rate with random
non-members. It also imports a shuffled input through the external sort, checks the
false-positive formula on a narrow fingerprint, and extrapolates to 2 billion hashes.
Results go to JSON and a Markdown table on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
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
from collections.abc import Sequence
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
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
        bucket_bits=args.bucket_bits,
        remainder_bytes=args.remainder_bytes,
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
    for _ in range(args.lookups):
        corpus.lookup_sha1(rng.randbytes(20))
    print("ready", flush=True)
    sys.stdin.readline()
    after = smaps_rollup()
    keys = ("Rss", "Pss", "Shared_Clean", "Private_Clean", "Private_Dirty", "Anonymous")
    print(json.dumps({k: after.get(k, 0) - before.get(k, 0) for k in keys}), flush=True)
    corpus.close()


def run_import_child(
    input_path: Path, target: Path, args: argparse.Namespace, run_records: int
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
        str(args.bucket_bits),
        "--remainder-bytes",
        str(args.remainder_bytes),
        "--run-records",
        str(run_records),
    ]
    started = time.monotonic()
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


def time_calls(fn: Any, probes: list[Any]) -> array[int]:
    """Per-call times; preallocated so the harness itself causes no page faults."""
    clock = time.perf_counter_ns
    samples = array("q", bytes(8 * len(probes)))
    for i, probe in enumerate(probes):
        t0 = clock()
        fn(probe)
        samples[i] = clock() - t0
    return samples


def timed_passes(fn: Any, probes: list[Any], passes: int, nice: int = 0) -> dict[str, Any]:
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


def one_pass(fn: Any, probes: list[Any]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_SELF)
    stats: dict[str, Any] = dict(percentiles(time_calls(fn, probes)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    stats["involuntary_switches"] = after.ru_nivcsw - before.ru_nivcsw
    stats["minor_faults"] = after.ru_minflt - before.ru_minflt
    stats["major_faults"] = after.ru_majflt - before.ru_majflt
    return stats


def warm_lookups(
    target: Path, members: list[bytes], rng: random.Random, nice: int = 0
) -> dict[str, Any]:
    misses = [rng.randbytes(20) for _ in range(len(members))]
    probes = members + misses
    rng.shuffle(probes)
    passwords = [f"bench-password-{i}" for i in range(len(probes))]
    with BreachCorpus(target) as corpus:
        assert all(corpus.lookup_sha1(d) is not None for d in members), "member missing"
        for probe in probes:  # warm the pages
            corpus.lookup_sha1(probe)
        started = time.perf_counter()
        for probe in probes:
            corpus.lookup_sha1(probe)
        mean_us = (time.perf_counter() - started) / len(probes) * 1e6
        sha1 = timed_passes(corpus.lookup_sha1, probes, 3)
        boosted = timed_passes(corpus.lookup_sha1, probes, 3, nice) if nice else None
        password = timed_passes(corpus.lookup_password, passwords, 1)["best"]
    holder = CorpusHolder(target, check_interval=30)
    held = timed_passes(holder.lookup_sha1, probes, 1)["best"]
    holder.close()
    return {
        "mean_loop_us": mean_us,
        "lookup_sha1": sha1["best"],
        "lookup_sha1_passes": sha1["passes"],
        "lookup_sha1_boosted": boosted,
        "lookup_password": password,
        "holder_lookup_sha1": held,
        "probes": len(probes),
    }


def cold_lookups(
    target: Path, members: list[bytes], samples: int, rng: random.Random
) -> dict[str, Any]:
    """Evict the file from the page cache before each lookup (this file only)."""
    probes = rng.sample(members, min(samples, len(members)))
    probes += [rng.randbytes(20) for _ in range(samples)]
    rng.shuffle(probes)
    fd = os.open(target, os.O_RDONLY)
    times = []
    with BreachCorpus(target) as corpus:
        for probe in probes:
            corpus._mmap.madvise(mmap.MADV_DONTNEED)  # drop our page-table entries first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # then the cached pages
            t0 = time.perf_counter_ns()
            corpus.lookup_sha1(probe)
            times.append(time.perf_counter_ns() - t0)
    os.close(fd)
    return {
        **percentiles(times),
        "samples": len(times),
        "method": "madvise(MADV_DONTNEED) + posix_fadvise(POSIX_FADV_DONTNEED)",
    }


def false_positives(target: Path, trials: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with BreachCorpus(target) as corpus:
        hits = sum(corpus.lookup_sha1(rng.randbytes(20)) is not None for _ in range(trials))
        expected = corpus.info.false_positive_rate
        bits = corpus.info.layout.fingerprint_bits
    return {
        "trials": trials,
        "hits": hits,
        "measured_rate": hits / trials,
        "expected_rate": expected,
        "fingerprint_bits": bits,
    }


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
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
    }


def bench_size(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    need = n * 46 + n * 6 + (64 << 20)
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
    imported = run_import_child(source, target, args, args.run_records)
    row["import"] = imported
    row["import_lines_per_second"] = n / imported["wall_seconds"]
    row["corpus_bytes"] = target.stat().st_size
    row["bytes_per_hash"] = row["corpus_bytes"] / n
    if not args.keep:
        source.unlink()
    rng = random.Random(n + 1)
    log(f"{n:,}: lookups")
    row["warm"] = warm_lookups(target, members[: args.lookups // 2], rng, args.nice)
    row["cold"] = cold_lookups(target, members, args.cold_samples, rng)
    log(f"{n:,}: worker memory")
    row["worker_memory_kb"] = worker_memory(target, args.worker_lookups)
    log(f"{n:,}: false positives")
    row["false_positives"] = false_positives(target, args.fp_trials, seed=n + 2)
    if not args.keep:
        target.unlink()
    return row


def bench_unsorted(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.unsorted_size
    source, target = workdir / "shuffled.txt", workdir / "shuffled.corpus"
    log(f"unsorted {n:,}: generating shuffled input")
    write_sorted_input(source, n, seed=7, shuffle=True)
    log(f"unsorted {n:,}: importing with run_records={args.unsorted_run_records:,}")
    imported = run_import_child(source, target, args, args.unsorted_run_records)
    source.unlink()
    target.unlink()
    return {
        "hashes": n,
        "run_records": args.unsorted_run_records,
        "import": imported,
        "import_lines_per_second": n / imported["wall_seconds"],
    }


def narrow_fp_check(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A 32-bit fingerprint makes false positives frequent enough to test n / 2**bits."""
    n = args.narrow_size
    source, target = workdir / "narrow.txt", workdir / "narrow.corpus"
    write_sorted_input(source, n, seed=11)
    import_corpus([source], target, bucket_bits=16, remainder_bytes=2)
    result = false_positives(target, args.fp_trials, seed=12)
    source.unlink()
    target.unlink()
    return {"hashes": n, **result}


def extrapolate(
    rows: list[dict[str, Any]], unsorted: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    done = [r for r in rows if "import" in r]
    if not done:
        return {}
    largest = max(done, key=lambda r: r["hashes"])
    rate = largest["import_lines_per_second"]
    layout = Layout(args.bucket_bits, args.remainder_bytes, TARGET_HASHES)
    return {
        "hashes": TARGET_HASHES,
        "corpus_bytes": layout.file_size,
        "bytes_per_hash": layout.file_size / TARGET_HASHES,
        "false_positive_rate": TARGET_HASHES / 2**layout.fingerprint_bits,
        "import_minutes_sorted": TARGET_HASHES / rate / 60,
        "import_peak_rss_mb_sorted": largest["import"]["peak_rss_mb"],
        "import_minutes_unsorted": TARGET_HASHES / unsorted["import_lines_per_second"] / 60
        if unsorted
        else None,
        "unsorted_temp_disk_bytes": TARGET_HASHES * ((layout.fingerprint_bits // 4 + 3) // 2),
        "basis": f"rates from the {largest['hashes']:,} run; sizes exact from the layout",
    }


def markdown(results: dict[str, Any]) -> str:
    out = [
        "| hashes | input GB | import s | lines/s | peak RSS MB | corpus MB | B/hash "
        "| warm p50/p99 µs | warm at nice p50/p99 µs | cold p50/p99 µs "
        "| worker Private_Dirty kB | FP measured (expected) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["sizes"]:
        if "import" not in r:
            out.append(f"| {r['hashes']:,} | skipped: {r['skipped']} |")
            continue
        w, c, fp = r["warm"]["lookup_sha1"], r["cold"], r["false_positives"]
        dirty = max(m["Private_Dirty"] for m in r["worker_memory_kb"])
        boosted = r["warm"].get("lookup_sha1_boosted")
        b = boosted["best"] if boosted else None
        nice = f"{b['p50_us']:.2f} / {b['p99_us']:.2f} ({boosted['nice']})" if b else "–"
        out.append(
            f"| {r['hashes']:,} | {r['input_bytes'] / 1e9:.2f} | "
            f"{r['import']['wall_seconds']:.1f} | {r['import_lines_per_second'] / 1e6:.2f} M | "
            f"{r['import']['peak_rss_mb']:.0f} | {r['corpus_bytes'] / 1e6:.0f} | "
            f"{r['bytes_per_hash']:.2f} | {w['p50_us']:.2f} / {w['p99_us']:.2f} | {nice} | "
            f"{c['p50_us']:.0f} / {c['p99_us']:.0f} | {dirty} | "
            f"{fp['hits']}/{fp['trials']:,} ({fp['expected_rate']:.1e}) |"
        )
    u, narrow = results.get("unsorted"), results.get("narrow_fp_check")
    if u:
        out.append(
            f"\nUnsorted {u['hashes']:,} lines (external sort, {u['import']['runs']} runs of "
            f"{u['run_records']:,}): {u['import']['wall_seconds']:.1f} s, "
            f"{u['import_lines_per_second'] / 1e6:.2f} M lines/s, "
            f"peak RSS {u['import']['peak_rss_mb']:.0f} MB"
        )
    if narrow:
        out.append(
            f"\nFalse positives with a {narrow['fingerprint_bits']}-bit fingerprint over "
            f"{narrow['hashes']:,} hashes: {narrow['hits']} in {narrow['trials']:,} "
            f"(measured {narrow['measured_rate']:.2e}, n/2^bits = {narrow['expected_rate']:.2e})"
        )
    x = results.get("extrapolated_2e9")
    if x:
        out.append(
            f"\n2e9 hashes (extrapolated): {x['corpus_bytes'] / 1e9:.2f} GB "
            f"({x['bytes_per_hash']:.3f} B/hash), FP {x['false_positive_rate']:.1e}, "
            f"import ~{x['import_minutes_sorted']:.0f} min sorted at "
            f"{x['import_peak_rss_mb_sorted']:.0f} MB peak RSS"
        )
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000000,100000000")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/breach.json")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/sekisho-breach-bench"))
    p.add_argument("--bucket-bits", type=int, default=20)
    p.add_argument("--remainder-bytes", type=int, default=4)
    p.add_argument("--run-records", type=int, default=8_000_000)
    p.add_argument("--lookups", type=int, default=200_000, help="warm probes (half hits)")
    p.add_argument("--cold-samples", type=int, default=300)
    p.add_argument("--worker-lookups", type=int, default=100_000)
    p.add_argument("--fp-trials", type=int, default=1_000_000)
    p.add_argument("--narrow-size", type=int, default=2_000_000)
    p.add_argument("--unsorted-size", type=int, default=10_000_000)
    p.add_argument("--unsorted-run-records", type=int, default=8_000_000)
    p.add_argument("--keep", action="store_true", help="keep generated files")
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
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "parameters": {"bucket_bits": args.bucket_bits, "remainder_bytes": args.remainder_bytes},
        "timer_overhead_ns": timer_overhead_ns(),
        "sizes": [],
    }
    for n in (int(s) for s in args.sizes.split(",") if s):
        results["sizes"].append(bench_size(n, args, args.workdir))
    results["unsorted"] = bench_unsorted(args, args.workdir) if args.unsorted_size else {}
    results["narrow_fp_check"] = narrow_fp_check(args, args.workdir) if args.narrow_size else {}
    results["extrapolated_2e9"] = extrapolate(results["sizes"], results["unsorted"], args)
    results["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
