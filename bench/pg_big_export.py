#!/usr/bin/python3
"""The blog recipe's scenario once: a ~10 GB CSV download of a ~100M-row PostgreSQL table.

    bench/pg_big_export.py [--rows 100000000] [--table orders_100m] [--drop-after] [--with-psql]

Generates the table when it is missing (bench/pg_setup.py's generator, no primary key: ~11 GiB
on disk, 15-25 min on 2 busy cores) - only when the work folder's file system has >= 40 GB free,
otherwise it stops with an explanation. Then one `curl -s -S -o /dev/null` of
/v1/exports/TABLE.csv: time to first byte (curl's time_starttransfer: the status line; Sluice
sends its headers once PostgreSQL delivered the first rows), duration, bytes, throughput; the
server's VmRSS every --interval s (2) with the bytes sent so far, VmHWM at the end; Sluice's and
the PostgreSQL backend's CPU. --with-psql also times `psql -c "COPY (...) TO STDOUT (FORMAT
csv)" > /dev/null` on the same table for scale. --drop-after drops the table at the end.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_common as pg  # noqa: E402
from pg_memory import RssSampler  # noqa: E402
from pg_throughput import BackendWatcher, wait_gone  # noqa: E402

MIN_FREE_GB = 40
RUN_TIMEOUT = 3600


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    pg.cluster_args(parser)
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--table", default="orders_100m")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--with-psql", action="store_true")
    parser.add_argument("--drop-after", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    sluice = pg.stage_binary(work, args.bin)
    cluster = pg.Cluster(work).ensure_running()
    free_gb = shutil.disk_usage(work).free / 1e9
    print(pg.machine_line(sluice))
    print(f"free disk on {work}: {free_gb:.0f} GB")
    if cluster.table_rows(args.table) != args.rows:
        if free_gb < MIN_FREE_GB:
            print(f"SKIP: {args.table} needs ~{args.rows / 1e8 * 15:.0f} GB for PostgreSQL plus "
                  f"headroom; only {free_gb:.0f} GB free (< {MIN_FREE_GB} GB)")
            return
        pg.ensure_orders(cluster, args.table, args.rows, primary_key=False)
    rows = cluster.table_rows(args.table)
    print(f"table {args.table}: {rows:,} rows, {cluster.table_bytes(args.table) / 1e9:.1f} GB")
    config = pg.write_config(work / "big.toml", cluster, {args.table: ("auto", args.table)})
    lines = []
    with pg.start_sluice(sluice, config, work / "big.sluice.log") as server:
        time.sleep(0.5)
        idle = pg.proc_status(server.pid)["VmRSS"]
        watcher = BackendWatcher(cluster)
        sampler = RssSampler(server, args.interval)
        before_pg, before_cpu = cluster.cpu_snapshot(), server.cpu_seconds()
        sampler.start()
        with watcher:
            start = time.perf_counter()
            proc = subprocess.run(
                ["curl", "-s", "-S", "-o", "/dev/null", "-w",
                 "%{http_code} %{size_download} %{time_starttransfer} %{time_total}",
                 f"{server.url}/v1/exports/{args.table}.csv"],
                capture_output=True, text=True, timeout=RUN_TIMEOUT)
            wall = time.perf_counter() - start
        time.sleep(args.interval)
        sampler.stop_event.set()
        sampler.join(5)
        sluice_cpu = server.cpu_seconds() - before_cpu
        backend = pg.backend_cpu(before_pg, cluster.cpu_snapshot(), sorted(watcher.pids))
        final = pg.proc_status(server.pid)
    code, size, ttfb, total = proc.stdout.split()
    size, ttfb, total = int(size), float(ttfb), float(total)
    print(f"\nSluice: HTTP {code}, curl exit {proc.returncode} {proc.stderr.strip()}")
    print(f"  time to first byte {ttfb * 1000:.1f} ms; duration {total:.1f} s (wall {wall:.1f} s);"
          f" {size:,} bytes = {size / 1e9:.2f} GB; {size / 1e6 / total:.0f} MB/s; "
          f"{rows / total / 1e6:.2f} M rows/s")
    print(f"  CPU: sluice {sluice_cpu:.1f} s, PostgreSQL backend {backend:.1f} s; "
          f"idle VmRSS {idle / 1024:.1f} MiB, VmHWM {final['VmHWM'] / 1024:.1f} MiB")
    curve = " ".join(f"{rss / 1024:.1f}" for _, rss, _ in sampler.curve)
    rss_values = [rss for _, rss, _ in sampler.curve]
    print(f"  VmRSS MiB every {args.interval:.0f} s ({len(rss_values)} samples): {curve}")
    print(f"  VmRSS min/median/max {min(rss_values) / 1024:.1f} / "
          f"{pg.median(rss_values) / 1024:.1f} / {max(rss_values) / 1024:.1f} MiB")
    lines.append(f"RESULT pg_big_export: {rows:,} rows, {size / 1e9:.2f} GB, TTFB "
                 f"{ttfb * 1000:.1f} ms, {total:.0f} s, {size / 1e6 / total:.0f} MB/s, VmHWM "
                 f"{final['VmHWM'] / 1024:.1f} MiB, curl exit {proc.returncode}")
    if args.with_psql:
        before_pg = cluster.cpu_snapshot()
        watcher = BackendWatcher(cluster)
        with watcher:
            start = time.perf_counter()
            psql = subprocess.run(cluster.psql_argv(
                f"COPY (SELECT * FROM {args.table}) TO STDOUT (FORMAT csv)"),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cluster.psql_env(),
                timeout=RUN_TIMEOUT)
            psql_wall = time.perf_counter() - start
        wait_gone(sorted(watcher.pids))
        time.sleep(0.05)
        psql_backend = pg.backend_cpu(before_pg, cluster.cpu_snapshot(), sorted(watcher.pids))
        print(f"\npsql COPY csv: exit {psql.returncode}, {psql_wall:.1f} s, "
              f"{rows / psql_wall / 1e6:.2f} M rows/s, backend CPU {psql_backend:.1f} s "
              f"(Sluice x{psql_wall / total:.2f} of psql's speed)")
        lines.append(f"RESULT pg_big_export psql: {psql_wall:.0f} s; Sluice x{psql_wall / total:.2f}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.drop_after:
        cluster.psql(f"DROP TABLE {args.table}")
        print(f"dropped {args.table}; free disk now {shutil.disk_usage(work).free / 1e9:.0f} GB")
    print()
    print("\n".join(lines))
    if args.stop_cluster:
        cluster.stop()


if __name__ == "__main__":
    main()
