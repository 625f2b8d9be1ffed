#!/usr/bin/python3
"""PostgreSQL export throughput and time to first byte: Sluice over loopback HTTP vs psql's COPY.

On the generated `orders` table (10M rows; bench/pg_setup.py makes it), side by side in one
run, interleaved (the order rotates every round), after one untimed pass each:

  (a) psql_csv    psql -c "COPY (SELECT * FROM orders) TO STDOUT (FORMAT csv)" > /dev/null
  (b) psql_binary psql -c "COPY (SELECT * FROM orders) TO STDOUT (FORMAT binary)" > /dev/null
  (c) csv_auto    curl -s -o /dev/null http://127.0.0.1:PORT/v1/exports/orders.csv
                  (source copy_format = "auto": binary COPY decoded by Sluice)
  (d) csv_text    the same table through a source with copy_format = "text"
  (e) jsonl_auto  curl -s -o /dev/null .../v1/exports/orders.jsonl (copy_format auto)
  (f) csv_copycsv only with --variants ...,csv_copycsv: a source with copy_format = "csv"
                  (PostgreSQL's own CSV records passed through)

psql and Sluice both use the unix socket of the private cluster and the same session settings
(TimeZone=UTC, DateStyle=ISO, ...). Wall time is taken around each client process. MB/s is the
variant's own output bytes / median wall time (MB = 10^6 bytes), rows/s table rows / median
wall. Ratios are wall(a) / wall(x): > 1 means faster than psql's CSV.

CPU per run: the client's (curl / psql) from rusage; Sluice's from /proc/PID/stat; the
PostgreSQL backend's: its pid is read from pg_stat_activity while the COPY runs (a psycopg2
connection polls every 100 ms), its CPU from /proc/PID/stat, or, for psql's backend which exits
with psql, from the growth of the postmaster's reaped-children CPU time.

TTFB: --ttfb N requests per kind, interleaved, fresh TCP connection each, ms from just before
connect() to the first byte of the first chunk's data; the client then closes (Sluice cancels the
COPY) and the next request waits until `sluice_active_streams` is 0. Kinds: /healthz (the HTTP
floor), orders.csv with copy_format auto and text, and psql's first stdout byte (process start
to first COPY byte, for scale).

Targets: csv_auto >= 1.2 x psql_csv; jsonl_auto >= 0.7 x; csv_text >= 0.95 x (reported);
median TTFB of orders.csv < 20 ms.

    bench/pg_throughput.py [--rounds 3] [--ttfb 30] [--table orders] [--work DIR]
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_common as pg  # noqa: E402

RUN_TIMEOUT = 900  # seconds for one export of the table

VARIANTS = ["psql_csv", "psql_binary", "csv_auto", "csv_text", "jsonl_auto"]
TARGETS = {"csv_auto": 1.2, "jsonl_auto": 0.7, "csv_text": 0.95}


class BackendWatcher:
    """Collects the pids of backends running a COPY (other than its own) while it runs."""

    def __init__(self, cluster):
        self.conn = psycopg2.connect(cluster.conninfo())
        self.conn.autocommit = True
        self.pids = set()
        self.queries = {}
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self.pids = set()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _poll(self):
        with self.conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute("SELECT pid, query FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                            " AND state = 'active' AND query ILIKE 'COPY%'")
                for pid, query in cur.fetchall():
                    self.pids.add(pid)
                    self.queries[pid] = query
                self._stop.wait(0.1)


def wait_gone(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.02)


def client_cpu():
    t = os.times()
    return t.children_user + t.children_system


def run_variant(name, cluster, server, table_name, watcher, count_bytes=False):
    """One export; returns dict(wall, bytes, client, sluice, backend, pids)."""
    sql = f"COPY (SELECT * FROM {table_name}) TO STDOUT"
    if name.startswith("psql"):
        fmt = "csv" if name == "psql_csv" else "binary"
        argv = cluster.psql_argv(f"{sql} (FORMAT {fmt})")
        env = cluster.psql_env()
        url = None
    else:
        dataset = {"csv_text": f"{table_name}_text",
                   "csv_copycsv": f"{table_name}_copycsv"}.get(name, table_name)
        ext = "jsonl" if name.startswith("jsonl") else "csv"
        url = f"{server.url}/v1/exports/{dataset}.{ext}"
        argv = ["curl", "-s", "-S", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url]
        env = None
    stdout = subprocess.PIPE if (url or count_bytes) else subprocess.DEVNULL
    before_pg = cluster.cpu_snapshot()
    before_sluice = server.cpu_seconds()
    before_client = client_cpu()
    with watcher:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=env)
        nbytes = None
        if url is None and count_bytes:
            nbytes = 0
            while chunk := proc.stdout.read(1 << 20):
                nbytes += len(chunk)
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        wall = time.perf_counter() - start
    client = client_cpu() - before_client
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: {argv[0]} exited {proc.returncode}: {err.decode()[:300]}")
    if url:
        code, size = out.decode().split()
        if code != "200":
            raise RuntimeError(f"{name}: HTTP {code}")
        nbytes = int(size)
    pids = sorted(watcher.pids)
    wait_gone(pids)  # psql's backend exits after psql; its CPU lands in the postmaster's
    time.sleep(0.05)
    backend = pg.backend_cpu(before_pg, cluster.cpu_snapshot(), pids)
    return {"wall": wall, "bytes": nbytes, "client": client,
            "sluice": server.cpu_seconds() - before_sluice, "backend": backend, "pids": pids}


# -- TTFB -----------------------------------------------------------------------------------------

def http_first_body_byte(host, port, path, timeout=10.0):
    """ms from before connect() to the first data byte of the first chunk (or of the body)."""
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        buffered = b""
        while b"\r\n\r\n" not in buffered:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"{path}: connection closed before the headers")
            buffered += data
        head, body = buffered.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status:
            raise RuntimeError(f"{path}: {status.decode()}")
        chunked = b"transfer-encoding: chunked" in head.lower()
        while True:
            if not chunked and body:
                break
            if chunked and b"\r\n" in body:
                size_line, rest = body.split(b"\r\n", 1)
                if int(size_line.split(b";")[0], 16) > 0 and rest:
                    break
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"{path}: connection closed before the first body byte")
            body += data
        return (time.perf_counter() - start) * 1000.0


def psql_first_byte(cluster, table_name, timeout=10.0):
    """ms from starting psql to the first byte of COPY ... (FORMAT csv) on its stdout."""
    argv = cluster.psql_argv(f"COPY (SELECT * FROM {table_name}) TO STDOUT (FORMAT csv)")
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=cluster.psql_env("pg_bench_ttfb"))
    try:
        first = proc.stdout.read(1)
        elapsed = (time.perf_counter() - start) * 1000.0
        if not first:
            raise RuntimeError("psql wrote nothing")
        return elapsed
    finally:
        proc.kill()
        proc.wait(timeout)
        proc.stdout.close()


def run_ttfb(cluster, server, table_name, requests):
    kinds = {"healthz": "/healthz", "csv_auto": f"/v1/exports/{table_name}.csv",
             "csv_text": f"/v1/exports/{table_name}_text.csv", "psql_csv": None}
    results = {k: [] for k in kinds}
    deadline = time.monotonic() + 600
    for i in range(requests):
        for kind, path in kinds.items():
            if time.monotonic() > deadline:
                pg.log("TTFB: 600 s budget used up; stopping early")
                return results
            if path is None:
                results[kind].append(psql_first_byte(cluster, table_name))
                time.sleep(0.05)  # let the killed psql's backend go
            else:
                results[kind].append(http_first_body_byte(server.host, server.port, path))
                if not pg.wait_idle(server):
                    pg.log(f"TTFB: {kind} #{i}: stream still active 15 s after close")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    pg.cluster_args(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttfb", type=int, default=30, help="requests per TTFB kind (0: skip)")
    parser.add_argument("--table", default="orders")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    work = Path(args.work)
    sluice = pg.stage_binary(work, args.bin)
    cluster = pg.Cluster(work).ensure_running()
    rows = cluster.table_rows(args.table)
    if rows is None:
        sys.exit(f"table {args.table} missing: run bench/pg_setup.py --table {args.table} first")
    variants = [v for v in args.variants.split(",") if v]
    datasets = {args.table: ("auto", args.table), f"{args.table}_text": ("text", args.table)}
    if "csv_copycsv" in variants:  # copy_format = "csv" (builds from 2026-11-22 04:2x on)
        datasets[f"{args.table}_copycsv"] = ("csv", args.table)
    config = pg.write_config(work / "throughput.toml", cluster, datasets)
    print(pg.machine_line(sluice))
    print(f"table {args.table}: {rows:,} rows, {cluster.table_bytes(args.table) / pg.MIB:,.0f} MiB;"
          f" PostgreSQL {cluster.scalar('SHOW server_version')}, unix socket {cluster.dir}")
    results = {v: [] for v in variants}
    sizes = {}
    ttfb = None
    with pg.start_sluice(sluice, config, work / "throughput.sluice.log") as server:
        watcher = BackendWatcher(cluster)
        if not args.skip_throughput:
            for v in variants:  # untimed pass: page cache, connection pool, output size
                pg.log(f"warm-up {v}")
                r = run_variant(v, cluster, server, args.table, watcher, count_bytes=True)
                sizes[v] = r["bytes"]
                if v == "csv_auto":
                    sql = {watcher.queries[p] for p in r["pids"]}
                    print(f"Sluice's COPY: {' | '.join(sorted(sql))}")
            for rnd in range(args.rounds):
                order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
                for v in order:
                    r = run_variant(v, cluster, server, args.table, watcher)
                    results[v].append(r)
                    pg.log(f"round {rnd + 1} {v:12s} {r['wall']:7.2f} s  client {r['client']:5.2f}"
                           f"  sluice {r['sluice']:5.2f}  backend {r['backend']:5.2f} s"
                           f"  (backend pids {r['pids']})")
        if args.ttfb > 0:
            pg.log(f"TTFB: {args.ttfb} requests per kind")
            ttfb = run_ttfb(cluster, server, args.table, args.ttfb)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    lines = []
    if results and all(results[v] for v in variants):
        base = "psql_csv" if "psql_csv" in variants else variants[0]
        base_walls = [r["wall"] for r in results[base]]
        rows_out = []
        for v in variants:
            walls = [r["wall"] for r in results[v]]
            w = pg.median(walls)
            ratio = pg.median(base_walls) / w
            per_round = " ".join(f"{b / x:.2f}" for b, x in zip(base_walls, walls))
            rows_out.append([
                v, f"{w:.2f}", " ".join(f"{x:.1f}" for x in walls),
                f"{sizes[v] / 1e6:,.0f}", f"{sizes[v] / 1e6 / w:.0f}", f"{rows / w / 1e6:.2f}",
                f"x{ratio:.2f}", per_round,
                f"{pg.median([r['client'] for r in results[v]]):.2f}",
                f"{pg.median([r['sluice'] for r in results[v]]):.2f}",
                f"{pg.median([r['backend'] for r in results[v]]):.2f}"])
            if v == "csv_copycsv":
                lines.append(f"RESULT pg_throughput {v}: x{ratio:.2f} of psql COPY csv "
                             f"(rounds {per_round}; no target)")
            if v in TARGETS:
                ok = ratio >= TARGETS[v]
                lines.append(f"RESULT pg_throughput {v}: x{ratio:.2f} of psql COPY csv "
                             f"(rounds {per_round}; target >= {TARGETS[v]}) "
                             f"{'PASS' if ok else 'MISS'}")
        print()
        print(f"{rows:,} rows, {args.rounds} rounds; ratio = median wall of psql_csv / median wall")
        print(pg.table(["variant", "median s", "runs s", "MB out", "MB/s", "Mrows/s", "ratio",
                        "per round", "client CPU s", "sluice CPU s", "backend CPU s"], rows_out))
    if ttfb:
        print()
        trows = []
        for kind, values in ttfb.items():
            if values:
                trows.append([kind, len(values), f"{pg.percentile(values, 50):.2f}",
                              f"{pg.percentile(values, 90):.2f}", f"{min(values):.2f}",
                              f"{max(values):.2f}"])
        print("time to first body byte, ms (fresh connection; psql: process start to first byte)")
        print(pg.table(["kind", "n", "median", "p90", "min", "max"], trows))
        for kind in ("csv_auto", "csv_text"):
            if ttfb.get(kind):
                m = pg.percentile(ttfb[kind], 50)
                lines.append(f"RESULT pg_ttfb {kind}: median {m:.2f} ms, p90 "
                             f"{pg.percentile(ttfb[kind], 90):.2f} ms (target < 20 ms) "
                             f"{'PASS' if m < 20 else 'MISS'}")
    print()
    print("\n".join(lines))
    if args.stop_cluster:
        cluster.stop()


if __name__ == "__main__":
    main()
