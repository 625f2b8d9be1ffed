#!/usr/bin/python3
"""End-to-end CSV export throughput: sluice over loopback HTTP vs Debian's sqlite3 shell.

  sluice : curl -s http://127.0.0.1:PORT/v1/exports/orders.csv -o /dev/null
  sqlite3: sqlite3 -csv DIR/orders.db "<the dataset's SELECT>" > /dev/null

on the 20M-row demo (2M with --quick), run interleaved (sluice, sqlite3, sqlite3, sluice, ...)
after one untimed warm-up each (so both read the database from the page cache). Wall time is
taken around each client process; MB/s is output bytes / median wall time (MB = 10^6 bytes),
rows/s is table rows / median wall time. The server's CPU time per export is read from
/proc/PID/stat, the clients' from their rusage.

The outputs are not byte-identical, and the script measures by how much (one untimed pass per
side, counted through a pipe): sluice writes RFC 4180 CRLF records plus a header line and quotes
only fields holding , " CR LF (or empty strings); the sqlite3 shell's -csv mode writes LF records,
no header, and also quotes fields holding spaces or other characters below 0x20.

What is timed is checked, and a wrong export fails the run (exit 1, "RESULT correctness: FAIL"):
- before the timed runs, the first --verify-rows rows of both are parsed with Python's csv module
  and compared value by value; sqlite3's values go through the CSV formula guard as docs/API.md
  documents it (a ' before a text cell starting with = + - @ TAB CR; cells of int, decimal and
  float columns exempt unless SQLite stored text in them), unless the served config turns the
  guard off for the dataset (`formula_guard = false` in [datasets.output]);
- every timed sluice download must be HTTP 200 with the byte count of the untimed pass, and the
  server's sluice_rows_sent_total must show every row sent by every export.

Target: throughput ratio sluice/sqlite3 >= 1.0 (median wall time of sqlite3 / of sluice).

    bench/export_vs_sqlite3.py [--quick] [--runs 3] [--work /tmp/sluice-bench]
"""

import argparse
import contextlib
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402

RUN_TIMEOUT = 600  # seconds for one export; 20M rows take ~10-40 s


def run_timed(argv):
    """Runs argv with stdout to /dev/null or a small pipe; (wall s, child CPU s, stdout text)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err.decode()[:300]}")
    return wall, out.decode()


def child_cpu():
    usage = os.times()
    return usage.children_user + usage.children_system


def count_output(argv):
    """Bytes, LF and CR counts of what argv writes to stdout (read through a pipe)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    total = lf = cr = 0
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
        lf += chunk.count(b"\n")
        cr += chunk.count(b"\r")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{argv[0]}: still writing after {RUN_TIMEOUT} s")
    proc.wait(30)
    return total, lf, cr


def first_rows(argv, rows, skip_header, delimiter=","):
    out = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT, check=True).stdout
    parsed = list(csv.reader(io.StringIO(out.decode("utf-8"), newline=""), delimiter=delimiter))
    return parsed[1:] if skip_header else parsed


NUMERIC_TYPES = {"int", "decimal", "float"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def dataset_output(config, name):
    """The [datasets.output] table of dataset `name` in the served config ({} when none)."""
    with open(config, "rb") as handle:
        document = tomllib.load(handle)
    for dataset in document.get("datasets", []):
        if dataset.get("name") == name:
            return dataset.get("output", {})
    return {}


def column_types(url, name):
    """The dataset's output columns and their types, as the server describes them."""
    with urllib.request.urlopen(f"{url}/v1/datasets", timeout=30) as response:
        datasets = json.loads(response.read())["datasets"]
    for dataset in datasets:
        if dataset["name"] == name:
            return [(column["name"], column["type"]) for column in dataset["columns"]]
    raise RuntimeError(f"/v1/datasets lists no dataset {name!r}")


def storage_classes(db, rows):
    """typeof() of every cell of the first `rows` rows of ORDERS_SQL, with each row's first value
    (to check that the rows line up with the sqlite3 shell's: both scan the table in rowid
    order)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        names = [d[0] for d in conn.execute(f"SELECT * FROM ({common.ORDERS_SQL}) LIMIT 0").description]
        typeofs = ", ".join(f'typeof("{n}")' for n in names)
        return [(str(row[0]), row[1:]) for row in conn.execute(
            f'SELECT "{names[0]}", {typeofs} FROM ({common.ORDERS_SQL}) LIMIT {int(rows)}')]


def guarded(value, numeric_column, stored_class, guard):
    """A value as sluice's CSV writes it under the formula guard (docs/API.md, "The CSV formula
    guard"): a ' before a text cell that starts with = + - @ TAB CR; cells of numeric columns are
    exempt unless SQLite stored text in them. NULL and '' are never guarded."""
    if not guard or not value or not value.startswith(FORMULA_STARTS):
        return value
    if numeric_column and stored_class != "text":
        return value
    return "'" + value


def expected_rows(theirs, types, classes, guard):
    """sqlite3's parsed rows as sluice must write them (the oracle)."""
    if len(classes) != len(theirs):
        raise RuntimeError(f"typeof() query gave {len(classes)} rows, sqlite3 -csv {len(theirs)}")
    expected = []
    for number, (row, (first, stored)) in enumerate(zip(theirs, classes), 1):
        if not row or row[0] != first:
            raise RuntimeError(f"row {number}: sqlite3 -csv and the typeof() query disagree on "
                               f"the first column ({row[:1]} vs {first!r}): rows do not line up")
        if len(row) != len(types):
            expected.append(row)  # reported as a difference below
            continue
        expected.append([guarded(value, kind in NUMERIC_TYPES, stored_class, guard)
                         for value, (_, kind), stored_class in zip(row, types, stored)])
    return expected


def compare_rows(mine, expected):
    """(number of differing rows, description of the first difference or None)."""
    differing = abs(len(mine) - len(expected))
    first = None
    if len(mine) != len(expected):
        first = f"sluice sent {len(mine)} rows, expected {len(expected)}"
    for number, (a, b) in enumerate(zip(mine, expected), 1):
        if a == b:
            continue
        differing += 1
        if first is None:
            if len(a) != len(b):
                first = f"row {number}: {len(a)} fields from sluice, {len(b)} expected"
            else:
                column = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
                first = (f"row {number}, column {column + 1}: sluice {a[column]!r}, "
                         f"expected {b[column]!r}")
    return differing, first


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="use the 2M-row demo")
    parser.add_argument("--rows", type=int, default=None, help="demo size (default 20M, 2M quick)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (>= 3)")
    parser.add_argument("--work", default=str(common.DEFAULT_WORK))
    parser.add_argument("--bin", default=None, help="sluice binary (default build/release/sluice)")
    parser.add_argument("--verify-rows", type=int, default=20000,
                        help="rows compared value by value with the sqlite3 oracle (>= 1)")
    parser.add_argument("--config", default=None,
                        help="serve this config instead of the demo's own (experiments, e.g. a "
                        "copy with another [server] stream_buffer_bytes; its source must point "
                        "at the same demo database)")
    args = parser.parse_args()
    rows = args.rows or (2_000_000 if args.quick else 20_000_000)
    runs = max(3, min(args.runs, 20))
    if args.verify_rows < 1:
        parser.error("--verify-rows must be at least 1")
    sluice = common.binary(args.bin)
    folder = common.ensure_demo(sluice, rows, args.work)
    db = folder / "orders.db"
    config = args.config or str(folder / "sluice.toml")

    print(f"# export_vs_sqlite3: {rows} rows, {runs} interleaved runs each, orders.db "
          f"{db.stat().st_size / common.MIB:.0f} MiB")
    print("# " + common.machine_line(sluice))
    if args.config:
        print(f"# config override: {args.config}")
    sqlite_version = subprocess.run(["sqlite3", "--version"], capture_output=True,
                                    text=True).stdout.split()[0]
    curl_version = subprocess.run(["curl", "--version"], capture_output=True,
                                  text=True).stdout.split()[1]

    log_file = Path(args.work) / f"throughput-{rows}.server.log"

    # Correctness first (untimed, its own server so the timed one's counters stay clean): the
    # first rows of both, parsed as CSV, against the oracle. A wrong export fails the run here,
    # before minutes of timing.
    verify_n = args.verify_rows
    output = dataset_output(config, "orders")
    guard = output.get("formula_guard", True)
    delimiter = output.get("delimiter", ",")
    with common.Server(sluice, ["serve", "--config", config],
                       log_file=log_file.with_suffix(".verify.log")) as server:
        types = column_types(server.url, "orders")
        mine = first_rows(["curl", "-s", "-S", "--fail",
                           f"{server.url}/v1/exports/orders.csv?limit={verify_n}"], verify_n,
                          output.get("header", True), delimiter)
    theirs = first_rows(["sqlite3", "-csv", str(db), f"{common.ORDERS_SQL} LIMIT {verify_n}"],
                        verify_n, False)
    expected = expected_rows(theirs, types, storage_classes(db, verify_n), guard)
    differing, first_difference = compare_rows(mine, expected)
    if len(expected) != min(verify_n, rows):
        differing, first_difference = max(differing, 1), (
            f"sqlite3 gave {len(expected)} rows, expected {min(verify_n, rows)}")
    guarded_cells = sum(1 for a, b in zip(theirs, expected) for x, y in zip(a, b) if x != y)
    common.log(f"verified the first {verify_n} rows: {differing} differ "
               f"({guarded_cells} cells guarded by the oracle)")
    if differing:
        print(f"RESULT correctness: FAIL: {differing} of the first {verify_n} rows differ from the "
              f"sqlite3 oracle (formula guard {'on' if guard else 'off'}); first: "
              f"{first_difference}")
        sys.exit(1)

    with common.Server(sluice, ["serve", "--config", config],
                       log_file=log_file) as server:
        url = server.url + "/v1/exports/orders.csv"
        curl = ["curl", "-s", "-S", "--fail", url, "-o", "/dev/null",
                "-w", "%{size_download} %{http_code}"]
        sqlite = ["sh", "-c", 'exec sqlite3 -csv "$1" "$2" > /dev/null', "sh", str(db),
                  common.ORDERS_SQL]
        print(f"# sluice : {' '.join(curl[:6])}   (curl {curl_version})")
        print(f"# sqlite3: sqlite3 -csv {db} \"{common.ORDERS_SQL}\" > /dev/null   "
              f"(sqlite3 {sqlite_version})")
        print(f"# server log: {log_file}")

        # Byte counts (untimed, through a pipe); they also warm the page cache for both.
        common.log("counting output bytes (untimed)...")
        s_bytes, s_lf, s_cr = count_output(["curl", "-s", "-S", "--fail", url])
        q_bytes, q_lf, q_cr = count_output(["sqlite3", "-csv", str(db), common.ORDERS_SQL])

        times = {"sluice": [], "sqlite3": []}
        server_cpu, server_switches, client_cpu = [], [], {"sluice": [], "sqlite3": []}
        order = []
        for i in range(runs):
            order += (["sluice", "sqlite3"] if i % 2 == 0 else ["sqlite3", "sluice"])
        for n, name in enumerate(order, 1):
            cpu_before, server_before = child_cpu(), server.cpu_seconds()
            switches_before = server.context_switches()
            if name == "sluice":
                wall, out = run_timed(curl)
                size, code = out.split()
                if code != "200" or int(size) != s_bytes:
                    raise RuntimeError(f"curl got HTTP {code}, {size} bytes (expected {s_bytes})")
                server_cpu.append(server.cpu_seconds() - server_before)
                server_switches.append(server.context_switches() - switches_before)
            else:
                wall, _ = run_timed(sqlite)
            client_cpu[name].append(child_cpu() - cpu_before)
            times[name].append(wall)
            common.log(f"run {n}/{len(order)} {name}: {wall:.2f} s")
        metrics = server.metrics()

    # Every export of the timed server sent every row: the untimed count, then each timed run.
    rows_sent = int(metrics["sluice_rows_sent_total"])
    sluice_runs = len(times["sluice"])
    if rows_sent != rows * (1 + sluice_runs):
        print(f"RESULT correctness: FAIL: the server sent {rows_sent} rows over "
              f"{1 + sluice_runs} exports of {rows} rows (expected {rows * (1 + sluice_runs)})")
        sys.exit(1)

    med = {name: common.median(values) for name, values in times.items()}
    table_rows = []
    for name, size in (("sluice", s_bytes), ("sqlite3", q_bytes)):
        values = times[name]
        table_rows.append([
            name, " ".join(f"{v:.2f}" for v in values), f"{med[name]:.2f}",
            f"{min(values):.2f}", f"{max(values):.2f}", f"{size / med[name] / 1e6:.1f}",
            f"{rows / med[name] / 1e6:.2f}", f"{common.median(client_cpu[name]):.2f}",
            f"{common.median(server_cpu):.2f}" if name == "sluice" else "-",
        ])
    print()
    print(common.table(["", "wall s (run order)", "median", "min", "max", "MB/s", "Mrows/s",
                        "client CPU s", "server CPU s"], table_rows))
    print()
    print(common.table(["output", "bytes", "LF", "CR", "header"], [
        ["sluice", s_bytes, s_lf, s_cr, "yes (1 line)"],
        ["sqlite3 -csv", q_bytes, q_lf, q_cr, "no"],
    ]))
    line_end = "CRLF" if q_cr >= rows else "LF"
    print(f"# sqlite3 -csv writes {line_end} record ends ({q_cr} CR for {rows} rows); sluice "
          f"writes CRLF ({s_cr} CR). Byte ratio sluice/sqlite3 = {s_bytes / q_bytes:.4f}")
    print(f"# first {verify_n} rows parsed as CSV: {differing} differ from sqlite3's through the "
          f"formula-guard oracle ({len(mine)} sluice rows vs {len(theirs)} sqlite3 rows; "
          f"{guarded_cells} cells guarded)")
    print(f"# server context switches per export (all threads): "
          f"{' '.join(str(n) for n in server_switches)}; server CPU s per export: "
          f"{' '.join(f'{c:.2f}' for c in server_cpu)}")
    print(f"# server counters: rows_sent_total {int(metrics['sluice_rows_sent_total'])}, "
          f"bytes_sent_total {int(metrics['sluice_bytes_sent_total'])}")

    # Pair by pair (each round ran both back to back), so a drift in machine speed between
    # rounds (other work on the host) moves both sides of a pair together.
    pairs = [q / s for s, q in zip(times["sluice"], times["sqlite3"])]
    print(f"# per-round ratio sqlite3/sluice wall time: {' '.join(f'{r:.2f}' for r in pairs)} "
          f"(median x{common.median(pairs):.2f}); load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratio = med["sqlite3"] / med["sluice"]
    byte_ratio = (s_bytes / med["sluice"]) / (q_bytes / med["sqlite3"])
    verdict = "PASS" if ratio >= 1.0 else "MISS"
    print()
    print(f"RESULT throughput {rows} rows: sluice {med['sluice']:.2f} s "
          f"({s_bytes / med['sluice'] / 1e6:.1f} MB/s, {rows / med['sluice'] / 1e6:.2f} Mrows/s) vs "
          f"sqlite3 {med['sqlite3']:.2f} s ({q_bytes / med['sqlite3'] / 1e6:.1f} MB/s, "
          f"{rows / med['sqlite3'] / 1e6:.2f} Mrows/s): ratio sluice/sqlite3 x{ratio:.3f} rows/s, "
          f"x{byte_ratio:.3f} MB/s, per-round median x{common.median(pairs):.3f} "
          f"(target >= 1.0: {verdict})")
    print(f"RESULT throughput {rows} rows: bytes sluice {s_bytes} vs sqlite3 {q_bytes} "
          f"(x{s_bytes / q_bytes:.4f}); sqlite3 line ends {line_end}; first {verify_n} rows "
          f"identical once parsed (formula guard {'applied to sqlite3' if guard else 'off'})")
    print(f"RESULT correctness: PASS: first {verify_n} rows equal the oracle; every timed export "
          f"HTTP 200 with {s_bytes} bytes; rows sent {rows_sent} = {1 + sluice_runs} x {rows}")


if __name__ == "__main__":
    main()
