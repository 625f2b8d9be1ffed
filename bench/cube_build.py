#!/usr/bin/python3
"""Cube build rate from SQLite: `sluice cube build` against reading the same rows with Debian's
sqlite3 shell, side by side in one run.

The input is a table of N pre-aggregated cells (default 5,000,000: 50 countries x 12 months x
8 statuses x 1,042 days; metrics orders int64, revenue decimal(2), quantity int64), generated
once with the sqlite3 shell. Rounds are interleaved (sqlite3, sluice, sluice, sqlite3, ...); each
round of sluice is a full build (every file is written: the data is touched between rounds, so
no file is reused). Wall time and the child's CPU time (user + sys, from rusage) are taken around
each process. Printed: median rows/s of wall time and per CPU-second, the spread, and the ratio
of sluice's wall time to sqlite3's (`sqlite3 -batch DB "SELECT * FROM cells" > /dev/null`: what
merely reading the rows costs). Target: >= 1,000,000 input rows/s on one core.

    bench/cube_build.py [--rows 5000000] [--runs 5] [--work /tmp/sluice-bench/cube-build]
"""

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402

CONFIG = """
[sources.cells]
kind = "sqlite"
path = "{db}"
[storage]
path = "{store}"
[[cubes]]
name = "cells"
source = "cells"
query = "SELECT country, month, status, day, orders, revenue, quantity FROM cells"
path = ["country", "month"]
file = ["status", "day"]
metrics = [{{name = "orders", type = "int64"}}, {{name = "revenue", type = "decimal", scale = 2}},
           {{name = "quantity", type = "int64"}}]
keep_versions_s = 0
"""


def generate(db, rows):
    subprocess.run(["sqlite3", str(db),
                    "CREATE TABLE cells(country TEXT, month TEXT, status TEXT, day INTEGER, orders INTEGER,"
                    " revenue REAL, quantity INTEGER);"
                    f" WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1})"
                    " INSERT INTO cells SELECT 'C' || (i % 50), '2026-' || printf('%02d', (i / 50) % 12 + 1),"
                    " 's' || ((i / 600) % 8), i / 4800, i % 97, ((i * 7919) % 1000000) / 100.0, i % 13 FROM n;"],
                   check=True)


def timed(command, stdout=subprocess.DEVNULL):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{command[0]} failed: {result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", default=str(common.DEFAULT_WORK / "cube-build"))
    parser.add_argument("--bin", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sluice = common.stage_copy(common.binary(args.bin), work, "sluice")
    db = work / f"cells-{args.rows}.db"
    if not db.exists():
        common.log(f"generating {args.rows:,} cells into {db}")
        generate(db, args.rows)
    store = work / "store"
    store.mkdir(exist_ok=True)
    config = work / "sluice.toml"
    config.write_text(CONFIG.format(db=db, store=store), "utf-8")
    print(common.machine_line(sluice))

    build = [str(sluice), "cube", "build", "cells", "--config", str(config)]
    peer = ["sqlite3", "-batch", str(db), "SELECT country, month, status, day, orders, revenue, quantity FROM cells"]
    timed(peer)  # warm the page cache
    results = {"sqlite3": [], "sluice": []}
    for run in range(args.runs):
        order = ["sqlite3", "sluice"] if run % 2 == 0 else ["sluice", "sqlite3"]
        for name in order:
            if name == "sluice":
                # An empty store in every round, so that every file is written (none reused).
                subprocess.run(["rm", "-rf", str(store / ".sluice" / "cubes")], check=True)
                wall, cpu, out = timed(build, stdout=subprocess.PIPE)
                common.log(out.strip())
            else:
                wall, cpu, _ = timed(peer)
            results[name].append((wall, cpu))
            common.log(f"round {run + 1} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU")

    rows = []
    for name, runs in results.items():
        walls = [w for w, _ in runs]
        cpus = [c for _, c in runs]
        rows.append([name, f"{common.median(walls):.2f}", f"{min(walls):.2f}-{max(walls):.2f}",
                     f"{args.rows / common.median(walls):,.0f}", f"{common.median(cpus):.2f}",
                     f"{args.rows / common.median(cpus):,.0f}"])
    print(common.table(["", "wall s (median)", "spread", "rows/s (wall)", "CPU s", "rows per CPU-second"], rows))
    sluice_wall = common.median([w for w, _ in results["sluice"]])
    sluice_cpu = common.median([c for _, c in results["sluice"]])
    peer_wall = common.median([w for w, _ in results["sqlite3"]])
    rate = args.rows / sluice_wall
    print(f"\nsluice build / sqlite3 read: x{peer_wall / sluice_wall:.2f} (wall)")
    print(f"RESULT build rate: {rate:,.0f} rows/s wall, {args.rows / sluice_cpu:,.0f} rows per CPU-second "
          f"(target >= 1,000,000): {'PASS' if min(rate, args.rows / sluice_cpu) >= 1_000_000 else 'FAIL'}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
