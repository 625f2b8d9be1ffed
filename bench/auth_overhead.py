#!/usr/bin/python3
"""What [auth] and [limits] cost: the same binary serving the same demo folder twice, once with
no access control ("open") and once with [auth] + [limits] ("auth": every request carries a
bearer token, looked up by its SHA-256, and passes a per-address and a per-token bucket and
streams count, with limits high enough never to refuse). Target: auth >= 0.95x open, both for
GET /healthz requests/s and for export throughput (MB/s of GET /v1/exports/orders.csv).

Both servers run at once; each measurement is `wrk` (keep-alive; -c64 for /healthz, -c4 for the
export) with a Lua script that adds the Authorization header for the auth server and prints the
summary parsed here (files_vs_nginx.wrk_fields: the run fails on any non-2xx answer or socket
error). ROUNDS runs per server and workload after one short warm-up each, the order alternating
every round; per round the rate, p50/p99 and the server's CPU per request, then medians with
their spread (min-max) and the ratio auth/open.

The host has 2 cores shared with other work and wrk runs on them too: compare the ratio, and
the CPU per request, not absolute figures. The load average is printed with every line.

  /usr/bin/python3 bench/auth_overhead.py [--sluice PATH] [--work DIR] [--rounds N]
                                          [--duration SECONDS] [--rows N]

Needs wrk (scripts/install-deps.sh). Takes ~4 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from export_common import DEFAULT_BIN, Server, log, stage_copy
from files_vs_nginx import WRK_DONE, CpuClock, load, spread, wrk_fields

TOKEN = "slu_bench-token-not-a-secret-0123456789abcdefgh"
TARGET_RATIO = 0.95

WRK_SCRIPT = """
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
""" + WRK_DONE

AUTH_SECTION = f"""
[auth]
anonymous_scopes = []

[[auth.tokens]]
name = "bench"
sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
scopes = ["datasets:*"]

[limits]
per_address_requests_per_second = 1000000000
per_address_burst = 1000000000
per_address_max_streams = 100000
per_token_requests_per_second = 1000000000
per_token_burst = 1000000000
per_token_max_streams = 100000
"""


def fail(message: str) -> None:
    log(f"FAIL: {message}")
    sys.exit(1)


def make_demo(binary: Path, work: Path, rows: int) -> Path:
    """A `sluice demo` folder with `rows` orders (kept between runs); returns its config."""
    folder = work / f"demo-{rows}"
    config = folder / "sluice.toml"
    if not config.exists():
        log(f"# generating the demo folder ({rows} orders)")
        with Server(binary, ["demo", "--rows", str(rows), "--dir", str(folder)],
                    work / "demo.log", start_timeout=600):
            pass
    return config


def wrk_run(name: str, url: str, script: Path, clock: CpuClock, token: str, connections: int,
            duration: int) -> dict:
    loadavg = load()
    env = dict(os.environ, BENCH_TOKEN=token)
    before = clock.seconds()
    result = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "-s",
                             str(script), url],
                            capture_output=True, text=True, env=env, timeout=duration + 120)
    server = clock.seconds() - before
    fields = wrk_fields(name, result, fail)
    seconds = fields["duration_us"] / 1e6
    return {"rps": fields["requests"] / seconds, "mbps": fields["bytes"] / seconds / 1e6,
            "p50": fields["p50_us"] / 1000, "p99": fields["p99_us"] / 1000,
            "cpu_us": server / max(fields["requests"], 1) * 1e6, "load": loadavg}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sluice", type=Path, default=DEFAULT_BIN)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-auth-bench"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rows", type=int, default=200_000, help="orders in the demo database")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    log(f"# auth_overhead: {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
        f"load average at the start {load()}")
    binary = stage_copy(args.sluice, work, "sluice-bin")
    demo_config = make_demo(binary, work, args.rows)
    text = demo_config.read_text()
    configs = {"open": text, "auth": text + AUTH_SECTION}
    tokens = {"open": "", "auth": TOKEN}
    servers: dict[str, Server] = {}
    try:
        for name, config_text in configs.items():
            path = demo_config.parent / f"bench-{name}.toml"  # beside the demo: relative paths
            path.write_text(config_text)
            servers[name] = Server(binary, ["serve", "--config", str(path)], work / f"{name}.log")
        clocks = {name: CpuClock(server.pid, children=False) for name, server in servers.items()}
        script = work / "bench.lua"
        script.write_text(WRK_SCRIPT)
        # The auth server refuses a request without its token: the header is really checked.
        check = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                servers["auth"].url + "/v1/exports/orders.csv?limit=1"],
                               capture_output=True, text=True)
        if check.stdout != "401":
            fail(f"the auth server answered {check.stdout} without a token, not 401")
        workloads = {"healthz": ("/healthz", 64), "export": ("/v1/exports/orders.csv", 4)}
        results: dict[tuple[str, str], list[dict]] = {}
        for workload, (path, connections) in workloads.items():
            for name, server in servers.items():  # warm-up
                wrk_run(name, server.url + path, script, clocks[name], tokens[name], connections, 2)
            log(f"\n## {workload}: wrk -t2 -c{connections} -d{args.duration}s GET {path}, "
                f"{args.rounds} rounds")
            order = list(servers)
            for i in range(args.rounds):
                for name in (order if i % 2 == 0 else order[::-1]):
                    sample = wrk_run(name, servers[name].url + path, script, clocks[name],
                                     tokens[name], connections, args.duration)
                    results.setdefault((workload, name), []).append(sample)
                    log(f"  round {i + 1} {name:5s} {sample['rps']:8.0f} req/s "
                        f"{sample['mbps']:8.1f} MB/s  p50 {sample['p50']:6.2f} ms  "
                        f"p99 {sample['p99']:6.2f} ms  {sample['cpu_us']:7.1f} us CPU/request  "
                        f"load {sample['load']}")
    finally:
        for server in servers.values():
            server.stop()

    log("\n## medians (min-max)")
    verdicts = []
    for workload, metric, unit in (("healthz", "rps", "req/s"), ("export", "mbps", "MB/s")):
        values = {name: [s[metric] for s in results[(workload, name)]] for name in servers}
        cpu = {name: [s["cpu_us"] for s in results[(workload, name)]] for name in servers}
        ratio = statistics.median(values["auth"]) / statistics.median(values["open"])
        verdicts.append(ratio >= TARGET_RATIO)
        log(f"  {workload:8s} open {spread(values['open'], '{:.1f}')} {unit}, "
            f"auth {spread(values['auth'], '{:.1f}')} {unit}; ratio auth/open {ratio:.3f} "
            f"(target >= {TARGET_RATIO}); CPU/request open {statistics.median(cpu['open']):.1f} us, "
            f"auth {statistics.median(cpu['auth']):.1f} us")
    log(f"# load average at the end {load()}")
    log("PASS" if all(verdicts) else "FAIL: auth costs more than 5% (see the ratios)")
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
