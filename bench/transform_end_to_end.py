#!/usr/bin/python3
"""Column transforms end to end: the same SQLite export over loopback HTTP with and without
the three typical transforms of bench/transform_bench.cpp (created_at formatted in
Europe/Berlin, email masked, id renamed), side by side in one run.

  plain  : curl -s -o /dev/null http://127.0.0.1:PORT/v1/exports/orders_plain.csv
  shaped : curl -s -o /dev/null http://127.0.0.1:PORT/v1/exports/orders_shaped.csv

on the 2M-row demo (20M with --big), or with --postgres CONNINFO on the `orders` table that
bench/pg_setup.py makes (10M rows), interleaved (plain, shaped, shaped, plain, ...) after one
untimed pass each. Both datasets run the same query on the same server; the server's CPU per
export is read from /proc/PID/stat. Ratio = median wall of shaped / of plain (1.0 = the
transforms cost nothing end to end); the issue's ≤ 1.25 target is for the encoder
micro-benchmark, this shows what a download sees.

    bench/transform_end_to_end.py [--big] [--runs 5] [--work /tmp/sluice-bench]
    bench/transform_end_to_end.py --postgres "host=/tmp/sluice-pg-bench/pg port=P user=postgres dbname=bench"
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402

DATASETS = """
[[datasets]]
name = "orders_plain"
source = "demo"
query = "{sql}"

[[datasets]]
name = "orders_shaped"
source = "demo"
query = "{sql}"

[datasets.columns.id]
rename = "Order number"

[datasets.columns.created_at]
format = "%d.%m.%Y %H:%M"
time_zone = "Europe/Berlin"

[datasets.columns.email]
mask = "email"
"""


def config_text(folder=None, conninfo=None):
    if conninfo:
        source = f'[sources.demo]\nkind = "postgres"\nurl = "{conninfo}"\n'
    else:
        source = f'[sources.demo]\nkind = "sqlite"\npath = "{folder / "orders.db"}"\n'
    return '[server]\nlisten = "127.0.0.1:0"\n\n' + source + DATASETS.format(sql=common.ORDERS_SQL)


def timed_download(url):
    start = time.perf_counter()
    result = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url],
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        sys.exit(f"curl {url} failed: {result.stderr}")
    return time.perf_counter() - start, int(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", action="store_true", help="20M rows instead of 2M")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", default=str(common.DEFAULT_WORK))
    parser.add_argument("--postgres", metavar="CONNINFO",
                        help="export bench/pg_setup.py's orders table from this server instead")
    parser.add_argument("--pg-rows", type=int, default=10_000_000,
                        help="rows of that table (for the rows/s column)")
    args = parser.parse_args()
    sluice = common.binary()
    config = Path(args.work) / "transform_end_to_end.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    if args.postgres:
        rows = args.pg_rows
        config.write_text(config_text(conninfo=args.postgres), "utf-8")
    else:
        rows = 20_000_000 if args.big else 2_000_000
        folder = common.ensure_demo(sluice, rows, args.work)
        config.write_text(config_text(folder=folder), "utf-8")
    with common.Server(sluice, ["serve", "--config", str(config)],
                       log_file=Path(args.work) / "transform_end_to_end.log") as server:
        kinds = ["plain", "shaped"]
        urls = {k: f"{server.url}/v1/exports/orders_{k}.csv" for k in kinds}
        for kind in kinds:
            timed_download(urls[kind])  # warm-up: page cache, pool threads
        walls = {k: [] for k in kinds}
        cpus = {k: [] for k in kinds}
        sizes = {}
        for run in range(args.runs):
            order = kinds if run % 2 == 0 else kinds[::-1]
            for kind in order:
                cpu_before = server.cpu_seconds()
                wall, size = timed_download(urls[kind])
                cpus[kind].append(server.cpu_seconds() - cpu_before)
                walls[kind].append(wall)
                sizes[kind] = size
                common.log(f"run {run + 1} {kind:6} {wall:6.2f} s  server CPU "
                           f"{cpus[kind][-1]:5.2f} s  {size / 1e6:7.1f} MB")
    print(common.machine_line(sluice))
    rows_table = []
    for kind in kinds:
        wall = statistics.median(walls[kind])
        rows_table.append([kind, f"{wall:.2f}", " ".join(f"{w:.2f}" for w in walls[kind]),
                           f"{statistics.median(cpus[kind]):.2f}", f"{sizes[kind] / 1e6:.1f}",
                           f"{rows / wall / 1e6:.2f}"])
    print(common.table(["dataset", "median s", "runs s", "server CPU s", "MB", "M rows/s"],
                       rows_table))
    ratio = statistics.median(walls["shaped"]) / statistics.median(walls["plain"])
    cpu_ratio = statistics.median(cpus["shaped"]) / statistics.median(cpus["plain"])
    print(f"RESULT transform_end_to_end: shaped/plain wall x{ratio:.2f}, server CPU "
          f"x{cpu_ratio:.2f} ({rows:,} rows, {'PostgreSQL' if args.postgres else 'SQLite'}, "
          f"{args.runs} runs each)")


if __name__ == "__main__":
    main()
