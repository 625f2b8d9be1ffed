#!/usr/bin/python3
"""Time to first byte of GET /v1/exports/orders.csv over loopback, on a 2M- and a 20M-row demo.

For every request the client (a raw socket, no HTTP library in the way) takes the time just
before connect() and then:
  first byte  - when the first byte of the response (the status line) arrives;
  first body  - when the first byte of the body arrives (after the header block and the first
                chunk-size line of the chunked body);
then closes the connection (the server aborts that stream). Each request is a fresh connection.

Peers measured in the same run, interleaved with the exports request by request:
  /healthz    - the same server's cheapest route: the HTTP floor (accept, parse, route, write);
  sqlite3 CLI - `sqlite3 -csv orders.db "<the dataset's SELECT>"` started as a process until
                its first stdout byte (includes exec and opening the database).

Target: median time to the first body byte < 10 ms.

    bench/export_ttfb.py [--work /tmp/sluice-bench] [--rows 2000000 20000000] [--requests 50]
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402

TARGET_MS = 10.0
IO_TIMEOUT = 15.0  # seconds; a single request that takes longer is a failure, not a sample


def timed_get(host, port, path):
    """(first response byte, first body byte) in ms from just before connect(); status code."""
    start = time.perf_counter()
    sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: export_ttfb\r\n"
                     "Accept: */*\r\n\r\n".encode())
        data = b""
        first_byte = None
        head_end = -1
        while head_end < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"{path}: connection closed inside the headers")
            if first_byte is None:
                first_byte = time.perf_counter()
            data += chunk
            head_end = data.find(b"\r\n\r\n")
            if len(data) > 65536:
                raise RuntimeError(f"{path}: no end of headers in 64 KiB")
        head = data[:head_end].decode("latin-1")
        status = int(head.split(" ", 2)[1])
        chunked = "transfer-encoding: chunked" in head.lower()
        body = data[head_end + 4:]
        # The first body byte: for a chunked body, the first byte of the first chunk's data.
        deadline = start + IO_TIMEOUT
        while True:
            if chunked:
                line_end = body.find(b"\r\n")
                if line_end >= 0:
                    size = int(body[:line_end].split(b";")[0], 16)
                    if size == 0 or len(body) > line_end + 2:
                        break
            elif body or "content-length: 0" in head.lower():
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{path}: no body byte within {IO_TIMEOUT} s")
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        first_body = time.perf_counter()
    finally:
        sock.close()
    return (first_byte - start) * 1e3, (first_body - start) * 1e3, status


def sqlite3_first_row(db):
    """ms from starting the sqlite3 CLI until its first stdout byte."""
    start = time.perf_counter()
    proc = subprocess.Popen(["sqlite3", "-csv", str(db), common.ORDERS_SQL],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        first = proc.stdout.read(1)
        elapsed = (time.perf_counter() - start) * 1e3
        if not first:
            raise RuntimeError("sqlite3 printed nothing")
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
    return elapsed


def measure(sluice, rows, work, requests, pause):
    folder = common.ensure_demo(sluice, rows, work)
    log_file = Path(work) / f"ttfb-{rows}.server.log"
    export, healthz, sqlite_first = [], [], []
    with common.Server(sluice, ["serve", "--config", str(folder / "sluice.toml")],
                       log_file=log_file) as server:
        # Cold request first (opens the page cache for this file): reported, not in the stats.
        cold = timed_get(server.host, server.port, "/v1/exports/orders.csv")
        for _ in range(3):  # warm-up
            timed_get(server.host, server.port, "/v1/exports/orders.csv")
            timed_get(server.host, server.port, "/healthz")
        time.sleep(pause)
        for _ in range(requests):
            first, body, status = timed_get(server.host, server.port, "/v1/exports/orders.csv")
            if status != 200:
                raise RuntimeError(f"orders.csv answered {status}")
            export.append((first, body))
            time.sleep(pause)  # let the aborted stream wind down before the next one
            first, body, status = timed_get(server.host, server.port, "/healthz")
            healthz.append((first, body))
            sqlite_first.append(sqlite3_first_row(folder / "orders.db"))
            time.sleep(pause)
        # Every stream was closed by its client: the server should be back to 0 active streams.
        deadline = time.monotonic() + 5
        metrics = server.metrics()
        while metrics.get("sluice_active_streams", 0) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            metrics = server.metrics()
    return {
        "rows": rows,
        "cold": cold,
        "export": export,
        "healthz": healthz,
        "sqlite3": sqlite_first,
        "metrics": metrics,
        "log": log_file,
    }


def fmt(value):
    return f"{value:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(common.DEFAULT_WORK),
                        help="cache of demo folders (default /tmp/sluice-bench)")
    parser.add_argument("--bin", default=None, help="sluice binary (default build/release/sluice)")
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 20_000_000])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between requests")
    args = parser.parse_args()
    requests = max(1, min(args.requests, 1000))
    sluice = common.binary(args.bin)

    print(f"# export_ttfb: {requests} requests per demo, fresh loopback connection each, "
          "times in ms from just before connect()")
    print("# " + common.machine_line(sluice))
    results = [measure(sluice, rows, args.work, requests, args.pause) for rows in args.rows]

    rows_out = []
    for r in results:
        export_first = [e[0] for e in r["export"]]
        export_body = [e[1] for e in r["export"]]
        health = [h[1] for h in r["healthz"]]
        label = f"{r['rows'] // 1_000_000}M" if r["rows"] % 1_000_000 == 0 else str(r["rows"])
        for name, values in ((f"orders.csv {label}: first byte (headers)", export_first),
                             (f"orders.csv {label}: first body byte", export_body),
                             (f"/healthz {label} (peer): whole response", health),
                             (f"sqlite3 CLI {label} (peer): first row", r["sqlite3"])):
            rows_out.append([name, len(values), fmt(common.median(values)),
                             fmt(common.percentile(values, 90)), fmt(min(values)),
                             fmt(max(values)), sum(1 for v in values if v >= TARGET_MS)])
        rows_out.append([f"orders.csv {label}: cold first request, first body byte", 1,
                         fmt(r["cold"][1]), "", "", "", ""])
    print()
    print(common.table(["measurement", "n", "median", "p90", "min", "max",
                        f">={TARGET_MS:g}ms"], rows_out))
    print()

    summary = []
    by_rows = {}
    for r in results:
        body_median = common.median([e[1] for e in r["export"]])
        head_median = common.median([e[0] for e in r["export"]])
        health_median = common.median([h[1] for h in r["healthz"]])
        sqlite_median = common.median(r["sqlite3"])
        by_rows[r["rows"]] = body_median
        verdict = "PASS" if body_median < TARGET_MS else "MISS"
        summary.append(
            f"RESULT ttfb {r['rows']} rows: first byte {head_median:.2f} ms, first body byte "
            f"median {body_median:.2f} ms / p90 "
            f"{common.percentile([e[1] for e in r['export']], 90):.2f} ms (target < {TARGET_MS:g}"
            f" ms: {verdict}); x{body_median / health_median:.2f} vs /healthz "
            f"({health_median:.2f} ms), x{body_median / sqlite_median:.2f} vs sqlite3 CLI first "
            f"row ({sqlite_median:.2f} ms)")
        aborted = int(r["metrics"].get("sluice_streams_aborted_total", 0))
        started = int(r["metrics"].get("sluice_streams_started_total", 0))
        active = int(r["metrics"].get("sluice_active_streams", 0))
        print(f"# {r['rows']} rows: server counted {started} streams started, {aborted} aborted "
              f"(expected: all, the client closes after the first chunk), {active} still active "
              f"5 s after the last client closed (expected 0); log {r['log']}")
        if active:
            summary.append(f"RESULT ttfb {r['rows']} rows: {active} of {started} streams still "
                           "active 5 s after their client closed (expected 0: MISS)")
    if len(by_rows) >= 2:
        small, large = min(by_rows), max(by_rows)
        summary.append(f"RESULT ttfb {large} vs {small} rows: first body byte median "
                       f"x{by_rows[large] / by_rows[small]:.2f}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# load average at the end {load}: on a busy host the export's two thread hand-offs "
          "(I/O thread -> SQLite pool -> I/O thread) wait for a core; /healthz has none")
    print()
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
