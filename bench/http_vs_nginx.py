#!/usr/bin/python3
"""Small requests: `sluice serve` answering GET /healthz (or --sluice-path) against nginx answering
a 200-byte Range of a static file, both with their access log written to a file, over loopback,
interleaved in one run. Target: sluice >= 0.7x nginx requests/s, sluice p99 < 5 ms.

Both servers run as they would in production on this machine: nginx with Debian's defaults
(`worker_processes auto`, sendfile on, its combined access log written per request to
WORK/nginx-access.log) except `keepalive_requests` (raised from 1,000: sluice never closes a
keep-alive connection after N requests, and a reconnection every 1,000 requests would charge
nginx for connection setups), sluice with its default threads (one per core) and its access log
(the server log, stderr) in WORK/NAME.log. Each is measured by
`wrk -t2 -c64 -d10s` (keep-alive) with one Lua script: it adds `Range: bytes=1000-1199` for nginx
and prints the requests, errors and latency percentiles that are parsed here. ROUNDS (5) runs
per server after one short warm-up each, the order alternating; per round requests/s, p50, p99
and the server's CPU (cores), then medians with their spread and the ratio sluice/nginx.

`--compare OLD_BINARY` adds a second sluice (another build: the one before a change) measured in
the same rounds, so a change is judged against its predecessor at the same load.

Checked before anything is timed, and the run ends with "FAIL: ..." (exit 1) otherwise: nginx
answers the range with 206, `Content-Range: bytes 1000-1199/SIZE` and the file's bytes; sluice
answers the path with 200. Every wrk run must have no non-2xx answer and no socket error, and
after the servers stopped, each sluice's access log must hold at least one line per response wrk
counted for it (no line lost, at shutdown either).

The host has 2 cores shared with other work, and wrk (-t2) runs on the same two cores as the
server: the figures are relative, and the server's CPU per request (from /proc: the process, and
nginx's workers) is printed beside them as the measure that depends least on how the cores
were shared. Each line shows the load average before it; the load average
is printed at the start and at the end.

  /usr/bin/python3 bench/http_vs_nginx.py [--sluice PATH] [--compare PATH] [--sluice-path PATH]
                                          [--work DIR] [--rounds N] [--duration SECONDS]
                                          [--connections N]

Needs wrk, curl and nginx (scripts/install-deps.sh). Takes ~2 minutes (4 with --compare).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from archive_vs_nginx import free_port
from export_common import DEFAULT_BIN, Server, log, stage_copy
from files_vs_nginx import WRK_DONE, CpuClock, load, spread, wrk_fields

RANGE_FIRST, RANGE_LENGTH = 1000, 200
STATIC_NAME, STATIC_SIZE = "small.bin", 64 * 1024
TARGET_RATIO, TARGET_P99_MS = 0.7, 5.0

# nginx as Debian ships it for static files, its access log on (written per request, unbuffered:
# as sluice writes its own).
NGINX_CONF = """
worker_processes auto;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log {work}/nginx-access.log combined;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path {work}/nginx-tmp;
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
"""

# One script for every server: BENCH_RANGE (when set) becomes a Range header. done() prints the
# summary parsed by wrk_run().
WRK_SCRIPT = """
local range = os.getenv("BENCH_RANGE")
if range ~= nil and range ~= "" then
  wrk.headers["Range"] = range
end
""" + WRK_DONE


def fail(message: str) -> None:
    log(f"FAIL: {message}")
    sys.exit(1)


class Nginx:
    """nginx on a free loopback port serving `root`, its access log in WORK/nginx-access.log."""

    def __init__(self, work: Path, root: Path):
        self.port = free_port()
        self.access_log = work / "nginx-access.log"
        self.access_log.unlink(missing_ok=True)
        (work / "nginx-tmp").mkdir(exist_ok=True)
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, port=self.port, root=root))
        self.stderr = open(work / "nginx.stderr", "wb")
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-c", str(conf), "-p", str(work)],
                                     stderr=self.stderr)
        self.pid = self.proc.pid
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
            except urllib.error.HTTPError:
                return  # (403 for the folder: it answers)
            except OSError:
                if self.proc.poll() is not None:
                    fail(f"nginx exited {self.proc.returncode}; see {work / 'nginx-error.log'}")
                time.sleep(0.05)
            else:
                return
        fail("nginx did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.stderr.close()


def start_sluice(binary: Path, work: Path, name: str, config_text: str) -> Server:
    """`sluice serve` of `binary` with the config `config_text` (its [server] listen is replaced
    by a free port), its server log (access log included) in WORK/NAME.log. Reusable for any
    URL the config serves: the caller measures the path it wants."""
    config = work / f"{name}.toml"
    config.write_text(config_text)
    return Server(binary, ["serve", "--config", str(config)], log_file=work / f"{name}.log")


# The least a sluice needs to answer /healthz: no datasets, no storage.
DEFAULT_SLUICE_CONFIG = '[server]\nlisten = "127.0.0.1:0"\n'


def make_static(root: Path) -> bytes:
    root.mkdir(parents=True, exist_ok=True)
    data = bytes((i * 7 + 3) % 251 for i in range(STATIC_SIZE))
    path = root / STATIC_NAME
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return data


def check_nginx_range(url: str, data: bytes) -> None:
    last = RANGE_FIRST + RANGE_LENGTH - 1
    request = urllib.request.Request(url, headers={"Range": f"bytes={RANGE_FIRST}-{last}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body, status = response.read(), response.status
        content_range = response.headers.get("Content-Range")
    want = f"bytes {RANGE_FIRST}-{last}/{len(data)}"
    if status != 206 or content_range != want or body != data[RANGE_FIRST:last + 1]:
        fail(f"nginx {url}: status {status}, Content-Range {content_range!r} (expected {want!r}), "
             f"{len(body)} body bytes{'' if body == data[RANGE_FIRST:last + 1] else ' that differ'}")


def check_sluice(name: str, url: str) -> int:
    """GET once: 200 expected. Returns the body size (what a wrk response should carry)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        fail(f"{name} {url}: status {error.code}")
    if status != 200:
        fail(f"{name} {url}: status {status}")
    return len(body)


def wrk_run(name: str, url: str, script: Path, args, clock: CpuClock, range_header: str,
            duration: int) -> dict:
    loadavg = load()
    env = dict(os.environ, BENCH_RANGE=range_header)
    before = clock.seconds()
    result = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{duration}s", "-s",
                             str(script), url],
                            capture_output=True, text=True, env=env, timeout=duration + 60)
    server = clock.seconds() - before
    fields = wrk_fields(name, result, fail)
    seconds = fields["duration_us"] / 1e6
    return {"requests": fields["requests"], "rps": fields["requests"] / seconds,
            "p50": fields["p50_us"] / 1000, "p90": fields["p90_us"] / 1000,
            "p99": fields["p99_us"] / 1000, "server": server / seconds,
            "cpu_us": server / max(fields["requests"], 1) * 1e6,
            "per_response": fields["bytes"] / max(fields["requests"], 1), "load": loadavg}


def logged_requests(log_file: Path, path: str) -> int:
    """Access log lines of `GET path` in a sluice log (text format)."""
    needle = f'"GET {path}" '.encode()
    with open(log_file, "rb") as handle:
        return sum(1 for line in handle if needle in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sluice", type=Path, default=DEFAULT_BIN,
                        help="the binary; a copy of it in the work folder is what runs")
    parser.add_argument("--compare", type=Path, default=None,
                        help="a second sluice binary (e.g. the build before a change), measured "
                             "in the same rounds")
    parser.add_argument("--sluice-path", default="/healthz",
                        help="what sluice is asked for (default /healthz)")
    parser.add_argument("--sluice-config", type=Path, default=None,
                        help="config file for sluice (default: [server] only, for /healthz); its "
                             "listen is replaced by a free port, relative paths resolve from its folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-http-bench"))
    parser.add_argument("--rounds", type=int, default=5, help="wrk runs per server")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    args = parser.parse_args()
    config_text = DEFAULT_SLUICE_CONFIG
    if args.sluice_config is not None:  # absolute paths: the copy of the config lives in WORK
        base = args.sluice_config.resolve().parent
        config_text = re.sub(r'(?m)^(path\s*=\s*")(?!/)([^"]*)"', lambda m: f'{m.group(1)}{base / m.group(2)}"',
                             args.sluice_config.read_text())
    for tool in ("wrk", "curl"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed (scripts/install-deps.sh)")
    if not Path("/usr/sbin/nginx").exists():
        fail("/usr/sbin/nginx is not installed (scripts/install-deps.sh)")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    log(f"# http_vs_nginx: {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
        f"load average at the start {load()}")
    data = make_static(work / "static")
    binaries = {"sluice": args.sluice}
    if args.compare:
        binaries["compare"] = args.compare
    for name, path in binaries.items():
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime))
        log(f"# {name}: copy of {path} (modified {built})")

    servers: dict[str, Server] = {}
    nginx: Nginx | None = None
    try:
        for name, path in binaries.items():
            copy = stage_copy(path, work, f"{name}-bin")
            (work / f"{name}.log").unlink(missing_ok=True)
            servers[name] = start_sluice(copy, work, name, config_text)
        nginx = Nginx(work, work / "static")
        urls = {"nginx": f"{nginx.url}/{STATIC_NAME}"}
        urls.update({name: server.url + args.sluice_path for name, server in servers.items()})
        clocks = {"nginx": CpuClock(nginx.pid, children=True)}
        clocks.update({name: CpuClock(server.pid, children=False)
                       for name, server in servers.items()})
        ranges = {name: "" for name in servers}
        ranges["nginx"] = f"bytes={RANGE_FIRST}-{RANGE_FIRST + RANGE_LENGTH - 1}"

        check_nginx_range(urls["nginx"], data)
        sizes = {name: check_sluice(name, urls[name]) for name in servers}
        log(f"# checked: nginx answers the range with 206 and the file's {RANGE_LENGTH} bytes; "
            + ", ".join(f"{name} answers {args.sluice_path} with 200 ({size} bytes)"
                        for name, size in sizes.items()))

        script = work / "bench.lua"
        script.write_text(WRK_SCRIPT)
        order = list(urls)
        for name in order:  # warm-up: connections, caches, the CPU governor
            wrk_run(name, urls[name], script, args, clocks[name], ranges[name], 2)
        samples: dict[str, list[dict]] = {name: [] for name in order}
        log(f"\n## wrk -t2 -c{args.connections} -d{args.duration}s keep-alive, {args.rounds} rounds: "
            f"nginx {RANGE_LENGTH}-byte Range of a static file, sluice GET {args.sluice_path}")
        for i in range(args.rounds):
            for name in (order if i % 2 == 0 else order[::-1]):
                sample = wrk_run(name, urls[name], script, args, clocks[name], ranges[name],
                                 args.duration)
                samples[name].append(sample)
                log(f"  round {i + 1} {name:7s} {sample['rps']:8.0f} req/s  p50 {sample['p50']:6.2f} ms  "
                    f"p99 {sample['p99']:6.2f} ms  server {sample['server']:4.2f} cores "
                    f"({sample['cpu_us']:5.1f} us CPU/request)  {sample['per_response']:.0f} B/response  "
                    f"load {sample['load']}")
        log("# checked: every wrk run had 0 non-2xx answers and 0 socket errors")
    finally:
        for server in servers.values():
            server.stop()
        if nginx:
            nginx.stop()

    # Every response wrk counted has its access log line (written at the latest at shutdown).
    for name in servers:
        answered = sum(s["requests"] for s in samples[name])
        logged = logged_requests(work / f"{name}.log", args.sluice_path)
        if logged < answered:
            fail(f"{name}: {logged} access log lines for {answered} responses counted by wrk")
        log(f"# checked: {name}'s access log has {logged} lines for the {answered} responses wrk "
            f"counted in the rounds (the rest: warm-up, checks, requests cut at the end of a run)")

    log("\n## summary: median (min-max)")
    for name in order:
        s = samples[name]
        log(f"{name:7s} {spread([x['rps'] for x in s], '{:.0f}')} req/s, "
            f"p50 {spread([x['p50'] for x in s], '{:.2f}')} ms, "
            f"p99 {spread([x['p99'] for x in s], '{:.2f}')} ms, "
            f"server {spread([x['server'] for x in s], '{:.2f}')} cores, "
            f"{spread([x['cpu_us'] for x in s], '{:.1f}')} us CPU/request")
    log(f"# load average at the end: {load()}")
    nginx_rps = statistics.median(x["rps"] for x in samples["nginx"])
    for name in servers:
        pairs = [s["rps"] / n["rps"] for s, n in zip(samples[name], samples["nginx"])]
        ratio = statistics.median(x["rps"] for x in samples[name]) / nginx_rps
        p99 = statistics.median(x["p99"] for x in samples[name])
        ok = ratio >= TARGET_RATIO and p99 < TARGET_P99_MS
        log(f"RESULT {name} GET {args.sluice_path} req/s: {name}/nginx x{ratio:.2f} (per round "
            f"{', '.join(f'x{p:.2f}' for p in pairs)}; target >= {TARGET_RATIO}), p99 {p99:.2f} ms "
            f"(target < {TARGET_P99_MS:g}) {'PASS' if ok else 'MISS'}")
    if "compare" in servers:
        ratio = statistics.median(x["rps"] for x in samples["sluice"]) / \
            statistics.median(x["rps"] for x in samples["compare"])
        log(f"RESULT sluice/compare req/s: x{ratio:.2f}")


if __name__ == "__main__":
    main()
