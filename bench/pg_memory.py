#!/usr/bin/python3
"""Sluice's memory during one full PostgreSQL export: peak RSS (VmHWM) and the RSS curve.

For each variant a fresh `sluice serve` (so VmHWM covers that export only) serves the 10M-row
`orders` table (bench/pg_setup.py); one `curl -s -o /dev/null` downloads it whole while VmRSS
is read every 50 ms (for the peak) and reported every --interval s together with the bytes sent
so far (`sluice_bytes_sent_total`). VmHWM is read at the end. Peer: psql's own peak RSS for
`COPY (SELECT * FROM orders) TO STDOUT (FORMAT csv)` (GNU time).

Variants: csv_auto (binary COPY decoded), csv_text (copy_format text), jsonl_auto.
Target: peak RSS <= 64 MiB.

    bench/pg_memory.py [--variants csv_auto,csv_text,jsonl_auto] [--interval 1] [--table orders]
"""

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_common as pg  # noqa: E402

TARGET_MIB = 64
RUN_TIMEOUT = 900


class RssSampler(threading.Thread):
    """Polls VmRSS every 50 ms; every `interval` s appends (s, VmRSS KiB, bytes sent)."""

    def __init__(self, server, interval):
        super().__init__(daemon=True)
        self.server, self.interval = server, interval
        self.curve, self.peak_polled = [], 0
        self.stop_event = threading.Event()

    def run(self):
        start = time.monotonic()
        next_report = start
        while not self.stop_event.is_set():
            try:
                rss = pg.proc_status(self.server.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.peak_polled = max(self.peak_polled, rss)
            now = time.monotonic()
            if now >= next_report:
                try:
                    sent = self.server.metrics().get("sluice_bytes_sent_total", 0)
                except OSError:
                    sent = float("nan")
                self.curve.append((now - start, rss, sent))
                next_report += self.interval
            self.stop_event.wait(0.05)


def measure(sluice, cluster, work, table_name, variant, interval):
    fmt = "text" if variant == "csv_text" else "auto"
    ext = "jsonl" if variant.startswith("jsonl") else "csv"
    config = pg.write_config(work / f"memory-{variant}.toml", cluster,
                             {table_name: (fmt, table_name)})
    with pg.start_sluice(sluice, config, work / f"memory-{variant}.sluice.log") as server:
        time.sleep(0.5)
        idle = pg.proc_status(server.pid)
        sampler = RssSampler(server, interval)
        sampler.start()
        start = time.perf_counter()
        proc = subprocess.run(["curl", "-s", "-S", "-o", "/dev/null", "-w",
                               "%{http_code} %{size_download}",
                               f"{server.url}/v1/exports/{table_name}.{ext}"],
                              capture_output=True, timeout=RUN_TIMEOUT, text=True)
        wall = time.perf_counter() - start
        time.sleep(interval)  # one sample after the end
        sampler.stop_event.set()
        sampler.join(5)
        final = pg.proc_status(server.pid)
        code, size = (proc.stdout.split() + ["?", "0"])[:2]
        if proc.returncode != 0 or code != "200":
            sys.exit(f"{variant}: curl exit {proc.returncode}, HTTP {code}: {proc.stderr}")
    return {"variant": variant, "idle": idle, "final": final, "curve": sampler.curve,
            "peak_polled": sampler.peak_polled, "wall": wall, "bytes": int(size)}


def psql_peak(cluster, table_name):
    argv = ["/usr/bin/time", "-f", "%M"] + cluster.psql_argv(
        f"COPY (SELECT * FROM {table_name}) TO STDOUT (FORMAT csv)")
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=cluster.psql_env(), timeout=RUN_TIMEOUT, text=True)
    return int(proc.stderr.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    pg.cluster_args(parser)
    parser.add_argument("--table", default="orders")
    parser.add_argument("--variants", default="csv_auto,csv_text,jsonl_auto")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(args.work)
    sluice = pg.stage_binary(work, args.bin)
    cluster = pg.Cluster(work).ensure_running()
    rows = cluster.table_rows(args.table)
    if rows is None:
        sys.exit(f"table {args.table} missing: run bench/pg_setup.py --table {args.table} first")
    print(pg.machine_line(sluice))
    results = []
    for variant in [v for v in args.variants.split(",") if v]:
        pg.log(f"{variant}: one full export of {args.table}")
        results.append(measure(sluice, cluster, work, args.table, variant, args.interval))
    psql_kib = psql_peak(cluster, args.table)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    lines = []
    for r in results:
        print(f"\n{r['variant']}: {rows:,} rows, {r['bytes'] / 1e6:,.0f} MB in {r['wall']:.1f} s;"
              f" idle VmRSS {r['idle']['VmRSS'] / 1024:.1f} MiB")
        print(pg.table(["t s", "VmRSS MiB", "MB sent"],
                       [[f"{t:.0f}", f"{rss / 1024:.1f}", f"{sent / 1e6:,.0f}"]
                        for t, rss, sent in r["curve"]]))
        hwm = r["final"]["VmHWM"] / 1024
        print(f"VmHWM {hwm:.1f} MiB (50 ms polling saw {r['peak_polled'] / 1024:.1f} MiB); "
              f"RssAnon at the end {r['final'].get('RssAnon', 0) / 1024:.1f} MiB")
        lines.append(f"RESULT pg_memory {r['variant']}: peak RSS (VmHWM) {hwm:.1f} MiB, idle "
                     f"{r['idle']['VmRSS'] / 1024:.1f} MiB (target <= {TARGET_MIB} MiB) "
                     f"{'PASS' if hwm <= TARGET_MIB else 'MISS'}")
    print(f"\npsql COPY csv of the same table: peak RSS {psql_kib / 1024:.1f} MiB (GNU time)")
    print()
    print("\n".join(lines))
    if args.stop_cluster:
        cluster.stop()


if __name__ == "__main__":
    main()
