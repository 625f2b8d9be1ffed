#!/usr/bin/python3
"""The job queue's throughput and enqueue-to-start latency, PostgreSQL and SQLite.

Runs build/release/sluice_queue_bench (bench/queue_bench.cpp; $SLUICE_QUEUE_BENCH or --bench)
for each backend, alternating the order every round (default 3 rounds):

  pg      a private PostgreSQL 15 cluster (bench/pg_common.py: initdb in WORK/pg, owned by the
          postgres user, unix socket, fsync=off and synchronous_commit=off), a fresh database
          per run, reached over the unix socket;
  sqlite  a fresh file per run in a temporary folder (WAL, synchronous=NORMAL).

Each run measures (see queue_bench.cpp): enqueue-only, claim+complete-only and together
(producer + --workers workers, first enqueue to last succeed) rates of --jobs no-op jobs, and
the enqueue-to-claim latency of --latency-jobs single enqueues 20 ms apart, woken by the
on_change callback (PostgreSQL: LISTEN/NOTIFY) and, for scale, by polling every 100 ms.

Prints per metric and backend the median, min-max and spread ((max - min) / median), the load
average before each run, and RESULT lines against the targets: throughput PostgreSQL >= 10,000
jobs/s, SQLite >= 5,000 jobs/s; median notified enqueue-to-start latency < 5 ms.

    bench/queue_throughput.py [--rounds 3] [--jobs 50000] [--backends pg,sqlite] [--quick]
                              [--work /tmp/sluice-queue-bench] [--keep-cluster]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_common as pg  # noqa: E402

DEFAULT_BENCH = pg.REPO / "build" / "release" / "sluice_queue_bench"
DEFAULT_WORK = Path("/tmp/sluice-queue-bench")
BENCH_DB = "queue_bench"
RUN_TIMEOUT = 1800

THROUGHPUT_TARGETS = {"pg": 10_000.0, "sqlite": 5_000.0}
LATENCY_TARGET_MS = 5.0

METRICS = [
    ("throughput_jobs_per_s", "jobs/s"),
    ("enqueue_jobs_per_s", "jobs/s"),
    ("claim_complete_jobs_per_s", "jobs/s"),
    ("together_enqueue_jobs_per_s", "jobs/s"),
    ("notify_latency_ms_p50", "ms"),
    ("notify_latency_ms_p90", "ms"),
    ("notify_latency_ms_p99", "ms"),
    ("poll_latency_ms_p50", "ms"),
    ("poll_latency_ms_p99", "ms"),
]


def stage(source, work):
    """Copies the benchmark binary into WORK (atomically), so a rebuild during the run cannot
    change what is measured."""
    source = Path(source)
    if not source.is_file():
        sys.exit(f"{source}: not found; build it with "
                 "`cmake --preset release && ninja -C build/release sluice_queue_bench`")
    return pg.common.stage_copy(source, work, "sluice_queue_bench")


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_bench(binary, backend_args, args):
    argv = [str(binary), *backend_args, "--jobs", str(args.jobs), "--batch", str(args.batch),
            "--workers", str(args.workers), "--claim", str(args.claim),
            "--latency-jobs", str(args.latency_jobs)]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited with {result.returncode}\n{result.stdout}"
                 f"{result.stderr}")
    values = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            try:
                values[key] = float(value)
            except ValueError:
                values[key] = value
    values["wall_s"] = time.monotonic() - started
    return values


def run_pg(binary, cluster, args):
    cluster.psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)", db="postgres")
    cluster.psql(f"CREATE DATABASE {BENCH_DB}", db="postgres")
    try:
        return run_bench(binary, ["--pg", cluster.conninfo(BENCH_DB)], args)
    finally:
        cluster.psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)", db="postgres")


def run_sqlite(binary, args):
    folder = Path(tempfile.mkdtemp(prefix="queue-sqlite-", dir=args.work))
    try:
        return run_bench(binary, ["--sqlite", str(folder / "queue.db")], args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def summary(values):
    """median, min, max, spread % of a list of numbers."""
    middle = pg.median(values)
    spread = (max(values) - min(values)) / middle * 100 if middle else 0.0
    return middle, min(values), max(values), spread


def fmt(value, unit):
    return f"{value:,.0f}" if unit == "jobs/s" else f"{value:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--claim", type=int, default=100)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--backends", default="pg,sqlite")
    parser.add_argument("--quick", action="store_true",
                        help="1 round, 5,000 jobs, 50 latency jobs (a smoke run)")
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    parser.add_argument("--bench", default=os.environ.get("SLUICE_QUEUE_BENCH", str(DEFAULT_BENCH)))
    parser.add_argument("--keep-cluster", action="store_true",
                        help="leave the PostgreSQL cluster running (reused by the next run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.jobs, args.latency_jobs = 1, 5_000, 50
    backends = [b for b in args.backends.split(",") if b]
    if not backends or any(b not in THROUGHPUT_TARGETS for b in backends):
        sys.exit("--backends: pg and/or sqlite")
    args.work = Path(args.work)
    binary = stage(args.bench, args.work)

    cluster = None
    if "pg" in backends:
        cluster = pg.Cluster(args.work).ensure_running()
    results = {backend: [] for backend in backends}
    loads = []
    try:
        for round_index in range(args.rounds):
            order = backends if round_index % 2 == 0 else list(reversed(backends))
            for backend in order:
                before = load()
                pg.log(f"round {round_index + 1}/{args.rounds} {backend} (load {before})")
                values = (run_pg(binary, cluster, args) if backend == "pg"
                          else run_sqlite(binary, args))
                loads.append(f"{backend}#{round_index + 1}: {before}")
                results[backend].append(values)
                pg.log("  " + " ".join(f"{key}={values[key]:.1f}" for key, _ in METRICS
                                       if isinstance(values.get(key), float)))
    finally:
        if cluster is not None and not args.keep_cluster:
            cluster.stop()

    print(f"sluice_queue_bench {args.bench}; {os.cpu_count()} cores; {args.rounds} rounds; "
          f"{args.jobs:,} jobs, batch {args.batch}, {args.workers} workers, claim {args.claim}, "
          f"{args.latency_jobs} latency jobs")
    print("load average before each run (1, 5, 15 min): " + "; ".join(loads))
    rows = []
    for key, unit in METRICS:
        for backend in backends:
            values = [r[key] for r in results[backend] if isinstance(r.get(key), float)]
            if not values:
                continue
            middle, low, high, spread = summary(values)
            rows.append([key, backend, fmt(middle, unit), f"{fmt(low, unit)}-{fmt(high, unit)}",
                         f"{spread:.0f}%", unit])
    print(pg.table(["metric", "backend", "median", "min-max", "spread", "unit"], rows))
    print()
    for backend in backends:
        throughput = pg.median([r["throughput_jobs_per_s"] for r in results[backend]])
        target = THROUGHPUT_TARGETS[backend]
        verdict = "PASS" if throughput >= target else "MISS"
        print(f"RESULT queue_throughput_{backend}: {throughput:,.0f} jobs/s, target >= "
              f"{target:,.0f} -> x{throughput / target:.2f} {verdict}")
    for backend in backends:
        p50 = pg.median([r["notify_latency_ms_p50"] for r in results[backend]])
        verdict = "PASS" if p50 < LATENCY_TARGET_MS else "MISS"
        print(f"RESULT queue_latency_p50_{backend}: {p50:.2f} ms, target < "
              f"{LATENCY_TARGET_MS:.0f} ms -> x{p50 / LATENCY_TARGET_MS:.2f} of the limit "
              f"{verdict}")


if __name__ == "__main__":
    main()
