#!/usr/bin/env python3
"""Presigned local files (GET /v1/files/{key}?expires=..&sig=..) against nginx serving the very
same file (same path on disk, nginx defaults for static files: sendfile on), over loopback, side
by side in one run. Target: sluice >= 0.8x nginx on both measures.

One file of 1 GiB of random bytes, made once in the work folder (its SHA-256 kept beside it).
The link comes from the real `sluice presign KEY --expires 1h`, with a random
SLUICE_LINK_SECRET in the environment of both the command and the server. The server is a copy
of the binary (--sluice, default build/release/sluice) in the work folder, so a rebuild of
build/release during the run changes nothing.

1. Whole file: `curl -sS --fail -o /dev/null URL`, curl's own time_total, FULL_ROUNDS (5)
   downloads per server after one warm-up, the order alternating (sluice first, then nginx
   first). Why curl and not wrk: a 1 GiB body takes ~0.3-1 s, so `wrk -d10s -c1..4` completes only 10-40
   requests and drops the one in flight at the end (up to 10 % of the bytes uncounted, a
   different share for each server), and with several connections on 2 cores it measures
   mostly how wrk and the servers share the cores. One curl download at a time is one exact
   timing of 2^30 bytes per sample, and its spread over rounds is visible. On loopback the
   receiver does the copy (sendfile hands page-cache pages to the socket; curl's recv() copies
   them out), so the wall time is partly curl's: the server CPU per download, read from
   /proc/PID/stat, is printed beside it and shows what each server itself spends.
2. 200-byte ranges: `wrk -t2 -c32 -d10s` with one Lua script for both servers that sets
   `Range: bytes=A-(A+199)` at a random offset A per request, ROUNDS (3) runs per server,
   alternating. Requests/s, latency p50/p99, server and wrk CPU per run.

What is measured is checked first, and a mismatch ends the run (exit 1, "FAIL: ..."): one full
download from each server is hashed (SHA-256) against the file, and three ranges from each
server (curl -r: at 0, in the middle, at the end) must be 206 with the right Content-Range and
the file's bytes. Every wrk run must have
no non-2xx answer and no socket error, and its bytes per response must be those of a 200-byte
body plus headers (a whole-file 200 would be a GiB).

The host has 2 cores shared with other work, and wrk (-t2) and curl run on the same two cores
as the server. Each line shows the load average before it (which the benchmark's own wrk and
server threads raise: ~3-4 runnable during a wrk run) and "others": the cores busy with
anything else during the measurement (all busy CPU from /proc/stat less the server's and the
client's: other processes, and kernel work charged to no process, such as softirqs), the figure
that says whether something else competed.

  /usr/bin/python3 bench/files_vs_nginx.py [--sluice PATH] [--work DIR] [--rounds ROUNDS]
                                           [--full-rounds FULL_ROUNDS] [--duration SECONDS]

Needs curl, wrk and nginx (scripts/install-deps.sh). Takes ~2 minutes once the file exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import archive_common
from archive_common import MiB, Process, fail, log, start_sluice
from archive_vs_nginx import Nginx

REPO = Path(__file__).resolve().parents[1]
KEY = "bench/big.bin"
SIZE = 1024 * MiB
RANGE_LENGTH = 200
TICKS = os.sysconf("SC_CLK_TCK")

# The Lua done() every wrk benchmark ends its script with: one `WRK key=value ...` line that
# wrk_fields() parses.
WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d bytes=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d\\n",
    summary.requests, summary.bytes, summary.duration, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""

# The same script for both servers: a random 200-byte range per request. wrk gives each thread
# its own Lua state, so each is seeded differently (setup() runs in the main state, once per
# thread). done() prints the summary the benchmark parses.
WRK_SCRIPT = """
local size = tonumber(os.getenv("FILES_BENCH_SIZE"))
local length = tonumber(os.getenv("FILES_BENCH_RANGE"))
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  math.randomseed(7919 * seed + os.time())
end

function request()
  local first = math.random(0, size - length)
  return wrk.format(nil, nil, { ["Range"] = "bytes=" .. string.format("%d-%d", first, first + length - 1) })
end

""" + WRK_DONE


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def make_file(store: Path) -> str:
    """The 1 GiB file of random bytes (kept between runs); returns its SHA-256."""
    path = store / KEY
    marker = store / ".big.bin-sha256"
    if path.exists() and marker.exists():
        size, mtime, digest = marker.read_text().split()
        stat = path.stat()
        if int(size) == stat.st_size == SIZE and int(mtime) == stat.st_mtime_ns:
            return digest
    log(f"# making {path} (1 GiB of random bytes, once)")
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(SIZE // (16 * MiB)):
            block = os.urandom(16 * MiB)
            digest.update(block)
            out.write(block)
    marker.write_text(f"{SIZE} {path.stat().st_mtime_ns} {digest.hexdigest()}\n")
    return digest.hexdigest()


class CpuClock:
    """CPU seconds (user + system) of a server: the process and, for nginx, its workers."""

    def __init__(self, pid: int, children: bool):
        self.pid, self.children = pid, children

    @staticmethod
    def _stat(pid: int) -> list[str] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on

    def seconds(self) -> float:
        pids = [self.pid]
        if self.children:
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    fields = self._stat(int(entry))
                    if fields and int(fields[1]) == self.pid:
                        pids.append(int(entry))
        ticks = 0
        for pid in pids:
            fields = self._stat(pid)
            if fields:
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / TICKS


def machine_cpu() -> float:
    """CPU seconds spent by every core so far, outside idle and iowait (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sha256_of_download(url: str) -> tuple[str, int]:
    """SHA-256 and size of one whole download, hashed as curl writes it to a pipe."""
    curl = subprocess.Popen(["curl", "-sS", "--fail", url], stdout=subprocess.PIPE)
    assert curl.stdout is not None
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: curl.stdout.read(MiB), b""):
        digest.update(block)
        size += len(block)
    if curl.wait(timeout=600) != 0:
        fail(f"{url}: curl exited {curl.returncode}")
    return digest.hexdigest(), size


def check_range(name: str, url: str, path: Path, first: int) -> None:
    """One range with curl -r: 206, the right Content-Range, the file's bytes."""
    last = first + RANGE_LENGTH - 1
    result = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/stdout", "-r", f"{first}-{last}",
                             url], capture_output=True, timeout=60)
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if head else "?"
    content_range = re.search(rb"(?im)^content-range:\s*(.+?)\s*$", head)
    with open(path, "rb") as handle:
        handle.seek(first)
        expected = handle.read(RANGE_LENGTH)
    want_range = f"bytes {first}-{last}/{SIZE}"
    if result.returncode != 0 or status != "206":
        fail(f"{name}: range {first}-{last}: status {status}, curl exit {result.returncode}")
    if content_range is None or content_range.group(1).decode() != want_range:
        fail(f"{name}: range {first}-{last}: Content-Range "
             f"{content_range.group(1).decode() if content_range else None!r}, expected {want_range!r}")
    if body != expected:
        fail(f"{name}: range {first}-{last}: {len(body)} bytes that differ from the file's")


def download(name: str, url: str, clock: CpuClock) -> dict:
    """One whole download into /dev/null: curl's time_total, server and curl CPU."""
    loadavg = load()
    server_before, client_before, all_before = clock.seconds(), child_cpu(), machine_cpu()
    result = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w",
                             "%{http_code} %{size_download} %{time_total}", url],
                            capture_output=True, text=True, timeout=600)
    server, client = clock.seconds() - server_before, child_cpu() - client_before
    others = machine_cpu() - all_before - server - client
    if result.returncode != 0:
        fail(f"{name}: curl exited {result.returncode}: {result.stderr.strip()[:300]}")
    code, size, seconds = result.stdout.split()
    if code != "200" or int(size) != SIZE:
        fail(f"{name}: status {code}, {size} bytes, expected 200 and {SIZE}")
    return {"seconds": float(seconds), "mbps": SIZE / float(seconds) / 1e6, "server": server,
            "client": client, "others": max(others, 0.0) / float(seconds), "load": loadavg}


def wrk_fields(name: str, result: subprocess.CompletedProcess, fail) -> dict:
    """The numbers of the `WRK key=value ...` line a Lua done() printed; `fail` (which ends the
    run) when wrk failed or counted a non-2xx answer or a socket error."""
    match = re.search(r"^WRK (.*)$", result.stdout, re.M)
    if result.returncode != 0 or match is None:
        fail(f"{name}: wrk exited {result.returncode}: {result.stdout[-500:]} {result.stderr[-500:]}")
    fields = {key: int(value) for key, value in (item.split("=") for item in match.group(1).split())}
    errors = {key: fields[key] for key in ("status", "connect", "read", "write", "timeout")
              if fields[key]}
    if errors:
        fail(f"{name}: wrk counted non-2xx answers or socket errors: {errors}")
    return fields


def wrk_ranges(name: str, url: str, script: Path, duration: int, clock: CpuClock) -> dict:
    loadavg = load()
    env = dict(os.environ, FILES_BENCH_SIZE=str(SIZE), FILES_BENCH_RANGE=str(RANGE_LENGTH))
    server_before, client_before, all_before = clock.seconds(), child_cpu(), machine_cpu()
    result = subprocess.run(["wrk", "-t2", "-c32", f"-d{duration}s", "-s", str(script), url],
                            capture_output=True, text=True, env=env, timeout=duration + 60)
    server, client = clock.seconds() - server_before, child_cpu() - client_before
    others = machine_cpu() - all_before - server - client
    fields = wrk_fields(name, result, fail)
    per_response = fields["bytes"] / max(fields["requests"], 1)
    if not RANGE_LENGTH < per_response < RANGE_LENGTH + 2048:
        fail(f"{name}: {per_response:.0f} bytes per response: not a {RANGE_LENGTH}-byte range")
    seconds = fields["duration_us"] / 1e6
    return {"rps": fields["requests"] / seconds, "p50": fields["p50_us"] / 1000,
            "p99": fields["p99_us"] / 1000, "server": server / seconds, "client": client / seconds,
            "per_response": per_response, "others": max(others, 0.0) / seconds, "load": loadavg}


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def presign(binary: Path, work: Path, port: int) -> str:
    config = work / "presign.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\n\n'
                      f'[storage]\nkind = "local"\npath = "{work / "objects"}"\n')
    result = subprocess.run([str(binary), "presign", KEY, "--expires", "1h", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        fail(f"sluice presign exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sluice", type=Path, default=REPO / "build" / "release" / "sluice",
                        help="the binary; a copy of it in the work folder is what runs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-files-bench"))
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server")
    parser.add_argument("--full-rounds", type=int, default=5, help="whole downloads per server")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    for tool in ("curl", "wrk", "nginx"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed (scripts/install-deps.sh)")
    work = args.work
    store = work / "objects"
    work.mkdir(parents=True, exist_ok=True)
    log(f"# files_vs_nginx: {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
        f"load average {load()}")
    digest = make_file(store)
    path = store / KEY

    binary = work / "sluice-bench-bin"
    shutil.copy2(args.sluice, binary)
    archive_common.SLUICE_BIN = str(binary)  # what start_sluice() runs
    log(f"# sluice: copy of {args.sluice} (modified {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(args.sluice.stat().st_mtime))})")
    os.environ.setdefault("SLUICE_LINK_SECRET", secrets.token_hex(32))

    sluice: Process | None = None
    nginx: Nginx | None = None
    try:
        sluice = start_sluice(work, store)
        nginx = Nginx(work, store)
        port = int(sluice.url.rsplit(":", 1)[1])
        peers = {"sluice": presign(binary, work, port), "nginx": f"{nginx.url}/{KEY}"}
        clocks = {"sluice": CpuClock(sluice.pid, children=False),
                  "nginx": CpuClock(nginx.proc.pid, children=True)}
        log(f"# link: {peers['sluice'].split('?')[0]}?expires=...&sig=...")

        # Checks (the full downloads are also the warm-up: the file is in the page cache).
        for name, url in peers.items():
            got, size = sha256_of_download(url)
            if size != SIZE or got != digest:
                fail(f"{name}: full download of {size} bytes has SHA-256 {got}, the file {digest}")
            for first in (0, 123_456_789, SIZE - RANGE_LENGTH):
                check_range(name, url, path, first)
        log(f"# checked: one full download from each server has the file's SHA-256 "
            f"{digest[:16]}...; ranges at 0, 123456789 and the end are 206 with the file's bytes")

        order = list(peers)
        full: dict[str, list[dict]] = {name: [] for name in peers}
        log(f"\n## whole file, 1 GiB, curl -o /dev/null, {args.full_rounds} rounds after a warm-up")
        for name in order:
            download(name, peers[name], clocks[name])
        for i in range(args.full_rounds):
            for name in (order if i % 2 == 0 else order[::-1]):
                sample = download(name, peers[name], clocks[name])
                full[name].append(sample)
                log(f"  round {i + 1} {name:6s} {sample['seconds']:6.3f} s  {sample['mbps']:7.0f} MB/s  "
                    f"server CPU {sample['server']:5.2f} s  curl CPU {sample['client']:5.2f} s  "
                    f"others {sample['others']:4.2f} cores  load {sample['load']}")

        ranges: dict[str, list[dict]] = {name: [] for name in peers}
        script = work / "range.lua"
        script.write_text(WRK_SCRIPT)
        log(f"\n## {RANGE_LENGTH}-byte ranges at random offsets, wrk -t2 -c32 -d{args.duration}s, "
            f"{args.rounds} rounds")
        for i in range(args.rounds):
            for name in (order if i % 2 == 0 else order[::-1]):
                sample = wrk_ranges(name, peers[name], script, args.duration, clocks[name])
                ranges[name].append(sample)
                log(f"  round {i + 1} {name:6s} {sample['rps']:8.0f} req/s  p50 {sample['p50']:6.2f} ms  "
                    f"p99 {sample['p99']:6.2f} ms  server {sample['server']:4.2f} cores  "
                    f"wrk {sample['client']:4.2f} cores  others {sample['others']:4.2f} cores  "
                    f"{sample['per_response']:.0f} B/response  load {sample['load']}")
        log(f"# checked: every wrk run had 0 non-2xx answers and 0 socket errors, "
            f"~{RANGE_LENGTH} body bytes per response")

        log("\n## summary: median (min-max)")
        for name in peers:
            f, r = full[name], ranges[name]
            log(f"{name:6s} whole file {spread([s['mbps'] for s in f], '{:.0f}')} MB/s, "
                f"server CPU {spread([s['server'] for s in f], '{:.2f}')} s/GiB | ranges "
                f"{spread([s['rps'] for s in r], '{:.0f}')} req/s, server "
                f"{spread([s['server'] for s in r], '{:.2f}')} cores, "
                f"p50 {spread([s['p50'] for s in r], '{:.2f}')} ms")
        pair_full = [s["mbps"] / n["mbps"] for s, n in zip(full["sluice"], full["nginx"])]
        pair_ranges = [s["rps"] / n["rps"] for s, n in zip(ranges["sluice"], ranges["nginx"])]
        ratio_full = statistics.median(s["mbps"] for s in full["sluice"]) / \
            statistics.median(s["mbps"] for s in full["nginx"])
        ratio_ranges = statistics.median(s["rps"] for s in ranges["sluice"]) / \
            statistics.median(s["rps"] for s in ranges["nginx"])
        log(f"# load average at the end: {load()}; other processes used "
            f"{spread([x['others'] for f in (full, ranges) for n in f for x in f[n]], '{:.2f}')} "
            f"cores during the measurements")
        for what, ratio, pairs in (("whole file MB/s", ratio_full, pair_full),
                                   ("200-byte ranges req/s", ratio_ranges, pair_ranges)):
            log(f"RESULT files {what}: sluice/nginx x{ratio:.2f} (per round "
                f"{', '.join(f'x{p:.2f}' for p in pairs)}; target >= 0.8) "
                f"{'PASS' if ratio >= 0.8 else 'MISS'}")
    finally:
        if sluice:
            sluice.stop()
        if nginx:
            nginx.stop()


if __name__ == "__main__":
    main()
