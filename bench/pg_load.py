#!/usr/bin/python3
"""PostgreSQL exports under load: Sluice's CPU and context switches per export, and K exports
at once against K psql COPYs at once.

On the generated `orders` table (10M rows, ~900 MB of CSV; bench/pg_setup.py makes it), in one
run, interleaved (the order rotates every round), after one untimed pass of each:

  solo      one export at a time:
            psql         psql -c "COPY (SELECT * FROM orders) TO STDOUT (FORMAT csv, HEADER)" > /dev/null
            auto         curl -s -o /dev/null .../v1/exports/orders.csv   (copy_format = "auto":
                         binary COPY decoded and encoded by Sluice)
            passthrough  the same through a source with copy_format = "csv" (PostgreSQL's CSV
                         records passed through)
            [auto_base, passthrough_base with --baseline BIN: the same on a second server
             running another build, side by side in the same rounds]
  K at once for each K of --concurrency (default 4,16): K psql at once, then K curl of
            orders.csv at once (auto; with --concurrent-variants auto,passthrough both; with
            --baseline the same on the baseline build too); the wall is from the first start
            to the last end.

Measured per export: wall; Sluice's CPU (utime + stime of the server process, /proc/PID/stat,
before and after); its context switches (voluntary and involuntary, summed over its threads,
/proc/PID/task/*/status); the machine's idle share during a K-at-once group (/proc/stat); the
PostgreSQL backends' CPU (every postmaster child's /proc delta plus
reaped children); the client's CPU (rusage of curl / psql). Memory: VmRSS polled every 50 ms
during each K-at-once group; peak above the idle RSS, per stream, against the stream budget
(`[server] stream_buffer_bytes`, 256 KiB by default).

Targets (issue 15): Sluice CPU per export <= 2.0 s (auto), <= 1.0 s (passthrough) (with
--baseline also: half the baseline build's, measured in the same rounds); K at once >= 1.0 x K
psql at once (K = 4, 16); one export auto >= 1.3 x psql; peak RSS above idle per stream no more
than the baseline build's + 10% (without --baseline: within the 256 KiB stream budget).

    bench/pg_load.py [--rounds 3] [--concurrency 4,16] [--table orders] [--baseline OLD_BINARY]
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

RUN_TIMEOUT = 1800
STREAM_BUDGET = 256 * 1024
TARGET_CPU = {"auto": 2.0, "passthrough": 1.0}
TARGET_SOLO_AUTO = 1.3
TARGET_CONCURRENT = 1.0


def context_switches(pid):
    """(voluntary, involuntary) context switches summed over a process's threads."""
    vol = invol = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except FileNotFoundError:
            pass
    return vol, invol


def cpu_times():
    """(busy, idle) jiffies of the whole machine from /proc/stat (idle counts iowait too)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, idle


def client_cpu():
    t = os.times()
    return t.children_user + t.children_system


class RssPeak(threading.Thread):
    """Polls VmRSS of `pid` every 50 ms until stopped; `peak` in KiB."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            self.peak = max(self.peak, pg.proc_status(self.pid).get("VmRSS", 0))
            self.stop_event.wait(0.05)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.join(2)


def argv_of(kind, cluster, servers, table_name):
    """(argv, env) of one export of `kind`."""
    if kind == "psql":
        sql = f"COPY (SELECT * FROM {table_name}) TO STDOUT (FORMAT csv, HEADER)"
        return cluster.psql_argv(sql), cluster.psql_env()
    base = kind.endswith("_base")
    server = servers["base" if base else "main"]
    dataset = table_name if kind.startswith("auto") else f"{table_name}_copycsv"
    url = f"{server.url}/v1/exports/{dataset}.csv"
    return ["curl", "-s", "-S", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
            url], None


def run_group(kind, count, cluster, servers, table_name):
    """`count` exports of `kind` at once; returns the measurements of the group."""
    server = None if kind == "psql" else servers["base" if kind.endswith("_base") else "main"]
    argv, env = argv_of(kind, cluster, servers, table_name)
    before_pg = cluster.cpu_snapshot()
    before_client = client_cpu()
    before_cpu = server.cpu_seconds() if server else 0.0
    before_cs = context_switches(server.pid) if server else (0, 0)
    idle_rss = pg.proc_status(server.pid)["VmRSS"] if server else 0
    busy0, idle0 = cpu_times()
    out = subprocess.PIPE if server else subprocess.DEVNULL
    with RssPeak(server.pid if server else os.getpid()) as rss:
        start = time.perf_counter()
        procs = [subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env)
                 for _ in range(count)]
        results = [p.communicate(timeout=RUN_TIMEOUT) for p in procs]
        wall = time.perf_counter() - start
    busy1, idle1 = cpu_times()
    for proc, (stdout, stderr) in zip(procs, results):
        if proc.returncode != 0:
            raise RuntimeError(f"{kind}: {argv[0]} exited {proc.returncode}: {stderr[:300]!r}")
        if server and not stdout.startswith(b"200 "):
            raise RuntimeError(f"{kind}: HTTP {stdout[:40]!r}")
    nbytes = sum(int(s.split()[1]) for s, _ in results) if server else None
    if server:
        pg.wait_idle(server)
    time.sleep(0.1)  # psql's backends exit after psql: their CPU lands in the postmaster's
    backend = pg.postgres_cpu(before_pg, cluster.cpu_snapshot())
    cs = context_switches(server.pid) if server else (0, 0)
    return {"wall": wall, "count": count, "bytes": nbytes,
            "client": (client_cpu() - before_client) / count,
            "backend": backend / count,
            "sluice": (server.cpu_seconds() - before_cpu) / count if server else 0.0,
            "vol": (cs[0] - before_cs[0]) / count, "invol": (cs[1] - before_cs[1]) / count,
            "rss_idle": idle_rss, "rss_peak": rss.peak if server else 0,
            "idle": (idle1 - idle0) / max(1, (busy1 - busy0) + (idle1 - idle0))}


def spread(values, fmt="{:.2f}"):
    return f"{fmt.format(pg.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    pg.cluster_args(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--table", default="orders")
    parser.add_argument("--concurrency", default="4,16", help="K values of the K-at-once runs")
    parser.add_argument("--big-rounds", type=int, default=None,
                        help="rounds of the K-at-once runs with K > 4 (default: --rounds)")
    parser.add_argument("--concurrent-variants", default="auto",
                        help="Sluice variants of the K-at-once runs (auto, passthrough)")
    parser.add_argument("--solo-variants", default="psql,auto,passthrough")
    parser.add_argument("--baseline", default=None,
                        help="a second sluice binary measured side by side in the solo rounds")
    parser.add_argument("--skip-solo", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    sluice = pg.stage_binary(work, args.bin)
    cluster = pg.Cluster(work).ensure_running()
    rows = cluster.table_rows(args.table)
    if rows is None:
        sys.exit(f"table {args.table} missing: run bench/pg_setup.py --table {args.table} first")
    datasets = {args.table: ("auto", args.table), f"{args.table}_copycsv": ("csv", args.table)}
    max_k = max([1] + [int(x) for x in args.concurrency.split(",") if x])
    config = pg.write_config(work / "load.toml", cluster, datasets,
                             server_extra="threads = 2\nmax_streams = 64", pool_size=max_k + 2)
    solo = [v for v in args.solo_variants.split(",") if v]
    servers = {}
    print(pg.machine_line(sluice))
    print(f"table {args.table}: {rows:,} rows; PostgreSQL {cluster.scalar('SHOW server_version')}, "
          f"unix socket; Sluice: 2 I/O threads, stream budget {STREAM_BUDGET // 1024} KiB")
    with pg.start_sluice(sluice, config, work / "load.sluice.log") as main_server:
        servers["main"] = main_server
        base_server = None
        if args.baseline:
            base_bin = pg.common.stage_copy(Path(args.baseline), work, "sluice-baseline")
            base_server = pg.start_sluice(base_bin, config, work / "load.baseline.log")
            servers["base"] = base_server
            solo += [f"{v}_base" for v in solo if v != "psql"]
            print(f"baseline binary {args.baseline}")
        try:
            solo_results = {v: [] for v in solo}
            if not args.skip_solo:
                for v in solo:
                    pg.log(f"warm-up {v}")
                    run_group(v, 1, cluster, servers, args.table)
                for rnd in range(args.rounds):
                    order = solo[rnd % len(solo):] + solo[:rnd % len(solo)]
                    for v in order:
                        r = run_group(v, 1, cluster, servers, args.table)
                        solo_results[v].append(r)
                        pg.log(f"solo round {rnd + 1} {v:18s} {r['wall']:6.2f} s  sluice "
                               f"{r['sluice']:5.2f} s  backend {r['backend']:5.2f} s  client "
                               f"{r['client']:5.2f} s  cs {r['vol']:,.0f}+{r['invol']:,.0f}")
            conc = {}
            kinds = ["psql"] + [v for v in args.concurrent_variants.split(",") if v]
            if base_server:
                kinds += [f"{v}_base" for v in kinds[1:]]
            for k in [int(x) for x in args.concurrency.split(",") if x]:
                conc[k] = {v: [] for v in kinds}
                rounds = args.rounds if k <= 4 or args.big_rounds is None else args.big_rounds
                for rnd in range(rounds):
                    order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
                    for v in order:
                        r = run_group(v, k, cluster, servers, args.table)
                        conc[k][v].append(r)
                        pg.log(f"{k} at once, round {rnd + 1} {v:12s} {r['wall']:6.2f} s  sluice "
                               f"{r['sluice']:5.2f} s/export  backend {r['backend']:5.2f}  "
                               f"cs {r['vol']:,.0f}+{r['invol']:,.0f}/export  "
                               f"RSS peak {r['rss_peak'] / 1024:.1f} MiB  "
                               f"machine idle {100 * r['idle']:.0f}%")
            load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
        finally:
            if base_server:
                base_server.stop()

    lines = []
    if not args.skip_solo and all(solo_results[v] for v in solo):
        psql_walls = [r["wall"] for r in solo_results.get("psql", [])]
        out = []
        for v in solo:
            rs = solo_results[v]
            walls = [r["wall"] for r in rs]
            ratio = pg.median(psql_walls) / pg.median(walls) if psql_walls else float("nan")
            out.append([v, spread(walls), f"x{ratio:.2f}",
                        spread([r["sluice"] for r in rs]) if v != "psql" else "-",
                        f"{pg.median([r['vol'] for r in rs]):,.0f}" if v != "psql" else "-",
                        f"{pg.median([r['invol'] for r in rs]):,.0f}" if v != "psql" else "-",
                        spread([r["backend"] for r in rs]), spread([r["client"] for r in rs])])
            cpu = pg.median([r["sluice"] for r in rs])
            if v in TARGET_CPU:
                ok = cpu <= TARGET_CPU[v]
                base = solo_results.get(f"{v}_base")
                versus = ""
                if base:
                    base_cpu = pg.median([r["sluice"] for r in base])
                    versus = (f"; baseline build {base_cpu:.2f} s, x{cpu / base_cpu:.2f} "
                              f"({'halved' if cpu <= base_cpu / 2 else 'not halved'})")
                lines.append(f"RESULT pg_load sluice_cpu {v}: {cpu:.2f} s per export "
                             f"(rounds {' '.join(format(r['sluice'], '.2f') for r in rs)}; target <= "
                             f"{TARGET_CPU[v]} s{versus}) {'PASS' if ok else 'MISS'}")
            if v == "auto" and psql_walls:
                per = " ".join(f"{p / r['wall']:.2f}" for p, r in zip(psql_walls, rs))
                lines.append(f"RESULT pg_load solo auto: x{ratio:.2f} of psql (rounds {per}; "
                             f"target >= {TARGET_SOLO_AUTO}) "
                             f"{'PASS' if ratio >= TARGET_SOLO_AUTO else 'MISS'}")
        print()
        print(f"one export at a time, {args.rounds} rounds, median (min-max); ratio = psql wall / wall")
        print(pg.table(["variant", "wall s", "ratio", "sluice CPU s", "voluntary cs",
                        "involuntary cs", "backend CPU s", "client CPU s"], out))
    for k, by_kind in conc.items():
        psql_walls = [r["wall"] for r in by_kind["psql"]]
        out = []
        for v, rs in by_kind.items():
            walls = [r["wall"] for r in rs]
            ratio = pg.median(psql_walls) / pg.median(walls)
            server = v != "psql"
            per_stream = [(r["rss_peak"] - r["rss_idle"]) / k for r in rs]
            out.append([v, spread(walls), f"x{ratio:.2f}",
                        spread([r["sluice"] for r in rs]) if server else "-",
                        f"{pg.median([r['vol'] for r in rs]):,.0f}" if server else "-",
                        f"{pg.median([r['invol'] for r in rs]):,.0f}" if server else "-",
                        spread([r["backend"] for r in rs]), spread([r["client"] for r in rs]),
                        f"{max(r['rss_peak'] for r in rs) / 1024:.1f}" if server else "-",
                        f"{max(per_stream):.0f}" if server else "-",
                        f"{100 * pg.median([r['idle'] for r in rs]):.0f}%"])
            if server and not v.endswith("_base"):
                per = " ".join(f"{p / r['wall']:.2f}" for p, r in zip(psql_walls, rs))
                lines.append(f"RESULT pg_load {k} at once {v}: x{ratio:.2f} of {k} psql at once "
                             f"(rounds {per}; target >= {TARGET_CONCURRENT}) "
                             f"{'PASS' if ratio >= TARGET_CONCURRENT else 'MISS'}")
                worst = max(per_stream)
                base = by_kind.get(f"{v}_base")
                if base:  # today's figure: the baseline build's, measured in the same run
                    limit = max((r["rss_peak"] - r["rss_idle"]) / k for r in base) * 1.1
                    what = f"baseline build {limit / 1.1:.0f} KiB, limit +10%"
                else:
                    limit = STREAM_BUDGET / 1024
                    what = f"stream budget {STREAM_BUDGET // 1024} KiB"
                lines.append(f"RESULT pg_load {k} at once {v} memory: peak RSS "
                             f"{max(r['rss_peak'] for r in rs) / 1024:.1f} MiB, "
                             f"{worst:.0f} KiB per stream above idle ({what}) "
                             f"{'PASS' if worst <= limit else 'MISS'}")
        print()
        print(f"{k} exports at once, {len(by_kind['psql'])} rounds, median (min-max); per-export CPU and "
              f"context switches; ratio = psql wall / wall")
        print(pg.table(["variant", "wall s", "ratio", "sluice CPU s", "voluntary cs",
                        "involuntary cs", "backend CPU s", "client CPU s", "peak RSS MiB",
                        "KiB/stream", "machine idle"], out))
    print(f"\nload average at the end: {load_end}")
    print()
    print("\n".join(lines))
    if args.stop_cluster:
        cluster.stop()


if __name__ == "__main__":
    main()
