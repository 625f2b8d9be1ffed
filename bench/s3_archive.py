#!/usr/bin/env python3
"""The same stored ZIP archive from two Sluice servers: one on a local folder store, one on S3
(a local s3rver 3.7.1 holding the same objects), downloaded alternately, several rounds.
Target: archive from S3 >= 0.8x the archive from the local folder when the endpoint is not the
bottleneck; s3rver's CPU during each S3 download is printed to tell.

200 objects of 5 MiB of random bytes (`--quick`: 20) are made once with archive_common's
make_objects() in the work folder and uploaded to s3rver by `aws s3 cp --recursive` (Debian's
awscli). Two `sluice serve` processes (a copy of the binary, default settings):
`[storage] kind = "local"` (archive_common.start_sluice) and `kind = "s3"`. On each the same
archive is created (POST /v1/archives, prefix "photos/", method "store"); it is downloaded with
curl into a file (tmpfs) that is read back with Python's zipfile (testzip: every entry's CRC-32,
and the entry count) after curl is done: a bad archive fails the run. Before the timed rounds:
the first download of each (on S3 it includes the CRC-32 pass that reads every object once
more), then one warm-up each; then ROUNDS rounds, local and S3 alternating (the order swaps
every round).

For every download: curl's time_total, the serving Sluice's CPU, s3rver's CPU (all threads, and
its main thread, the one running JavaScript) and every other process's CPU (/proc/stat minus
those). The endpoint floor: one curl process fetching the same objects one after the other
(presigned URLs of `sluice presign`, one kept-alive connection), the S3 reads an archive needs at
the least.

  /usr/bin/python3 bench/s3_archive.py [--sluice PATH] [--work DIR] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import archive_common  # noqa: E402
from archive_common import (MiB, BadArchive, FilePrefix, Process, check_zip, create_archive,  # noqa: E402
                            download_file, fail, log, make_objects, start_sluice)
from support.s3 import BUCKET, KEY_ID, SECRET, S3rver, have_tools, storage_config  # noqa: E402
from s3_transfer import AWS, load, machine_busy, proc_cpu, self_cpu  # noqa: E402

FOLDER = "photos"


@dataclass
class Download:
    size: int
    seconds: float
    server_cpu: float
    s3_cpu: float
    s3_main_cpu: float
    others_cpu: float

    @property
    def mbps(self) -> float:
        return self.size / self.seconds / 1e6

    def cores(self, cpu: float) -> float:
        return cpu / self.seconds


def timed_download(url: str, server_pid: int, s3_pid: int, entries: int, what: str,
                   size_hint: int) -> Download:
    """One curl download into the URL's tmpfs file, with the CPU of the processes involved
    around it; the file is then checked with zipfile (outside the timed region)."""
    fd = download_file(url, size_hint)
    os.lseek(fd, 0, os.SEEK_SET)
    busy0, self0 = machine_busy(), self_cpu()
    server0, s3_0, s3_main0 = proc_cpu(server_pid), proc_cpu(s3_pid), proc_cpu(s3_pid, s3_pid)
    children0 = os.times()
    result = subprocess.run(["curl", "-sS", "--fail", "-w", "%{stderr}\n%{size_download} %{time_total}",
                             url], stdout=fd, stderr=subprocess.PIPE, text=True, timeout=1200)
    children1 = os.times()
    server = proc_cpu(server_pid) - server0
    s3 = proc_cpu(s3_pid) - s3_0
    s3_main = proc_cpu(s3_pid, s3_pid) - s3_main0
    curl_cpu = (children1.children_user - children0.children_user
                + children1.children_system - children0.children_system)
    others = machine_busy() - busy0 - server - s3 - curl_cpu - (self_cpu() - self0)
    lines = result.stderr.strip().splitlines()
    if result.returncode != 0 or not lines:
        fail(f"{what}: curl exited {result.returncode}: {result.stderr.strip()[:300]}")
    size, seconds = lines[-1].split()
    if os.lseek(fd, 0, os.SEEK_CUR) != int(size):
        fail(f"{what}: curl reported {size} bytes but wrote {os.lseek(fd, 0, os.SEEK_CUR)}")
    try:
        check_zip(FilePrefix(fd, int(size)), entries)
    except BadArchive as error:
        fail(f"{what}: bad archive ({int(size)} bytes): {error}")
    return Download(int(size), float(seconds), server, s3, s3_main, max(others, 0.0))


def start_s3_sluice(work: Path, endpoint: str) -> Process:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "sluice.toml"
    config.write_text('[server]\nlisten = "127.0.0.1:0"\nmax_body_bytes = 16777216\n\n'
                      + storage_config(endpoint))
    return Process([archive_common.SLUICE_BIN, "serve", "--config", str(config)], work / "sluice.log")


def hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def endpoint_floor(sluice: str, config: Path, keys: list[str], work: Path, s3_pid: int) -> Download:
    """One curl process GETting every object in turn over one kept-alive connection."""
    urls = []
    for key in keys:
        result = subprocess.run([sluice, "presign", key, "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            fail(f"sluice presign {key}: {result.stderr.strip()[:300]}")
        urls.append(result.stdout.strip())
    listing = work / "floor-urls.txt"
    listing.write_text("".join(f'url = "{url}"\noutput = "/dev/null"\n' for url in urls))
    busy0, self0 = machine_busy(), self_cpu()
    s3_0, s3_main0 = proc_cpu(s3_pid), proc_cpu(s3_pid, s3_pid)
    children0 = os.times()
    wall = time.perf_counter()
    result = subprocess.run(["curl", "-sS", "--fail", "-K", str(listing), "-w",
                             "%{stderr}%{size_download} %{time_total}\n"],
                            stderr=subprocess.PIPE, text=True, timeout=1200)
    wall = time.perf_counter() - wall
    children1 = os.times()
    s3 = proc_cpu(s3_pid) - s3_0
    s3_main = proc_cpu(s3_pid, s3_pid) - s3_main0
    curl_cpu = (children1.children_user - children0.children_user
                + children1.children_system - children0.children_system)
    others = machine_busy() - busy0 - s3 - curl_cpu - (self_cpu() - self0)
    lines = result.stderr.strip().splitlines()
    if result.returncode != 0 or len(lines) != len(urls):
        fail(f"endpoint floor: curl exited {result.returncode}: {result.stderr.strip()[-300:]}")
    size = sum(int(line.split()[0]) for line in lines)
    return Download(size, wall, curl_cpu, s3, s3_main, max(others, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sluice", default=str(HERE.parent / "build" / "release" / "sluice"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-s3-archive-bench"))
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (--quick: 2)")
    parser.add_argument("--quick", action="store_true", help="20 x 5 MiB, 2 rounds")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    count = 20 if args.quick else 200
    missing = have_tools()
    if missing or not os.path.exists(AWS):
        fail(f"missing: {missing or AWS}")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    binary = work / "sluice-bin"
    shutil.copy2(args.sluice, binary)  # a rebuild of build/release during the run changes nothing
    archive_common.SLUICE_BIN = str(binary)
    store = work / "objects"
    folder = FOLDER if not args.quick else FOLDER + "-quick"
    need = 3 * count * 5 * MiB
    if shutil.disk_usage(work).free < need:
        fail(f"{work}: less than {need / 2**30:.1f} GiB free (objects + s3rver's copy)")
    log(f"# s3_archive: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}{' (quick)' if args.quick else ''}; "
        f"{count} x 5 MiB, {rounds} rounds; load average {load()}")
    log(f"# sluice: copy of {args.sluice} (mtime "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(os.stat(args.sluice).st_mtime))}) at {binary}")
    make_objects(store, folder, count, 5 * MiB, seed=1)

    os.environ.update(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    aws_env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    data = work / "s3rver-data"
    shutil.rmtree(data, ignore_errors=True)
    server = S3rver(data)
    local = remote = None
    try:
        server.start()
        s3_pid = server.process.pid
        start = time.perf_counter()
        subprocess.run([AWS, "--endpoint-url", server.endpoint, "s3", "cp", "--recursive",
                        "--only-show-errors", str(store / folder), f"s3://{BUCKET}/{folder}/"],
                       env=aws_env, check=True, timeout=1800)
        log(f"# uploaded {count} objects to s3rver with aws s3 cp --recursive in "
            f"{time.perf_counter() - start:.1f} s")
        remote = start_s3_sluice(work / "s3-server", server.endpoint)
        (work / "local-server").mkdir(exist_ok=True)
        local = start_sluice(work / "local-server", store)
        listed = subprocess.run([str(binary), "store", "ls", f"{folder}/", "--config",
                                 str(work / "s3-server" / "sluice.toml")],
                                capture_output=True, text=True, check=True).stdout.splitlines()
        if len(listed) != count or any(not line.startswith(f"{5 * MiB}\t") for line in listed):
            fail(f"s3rver lists {len(listed)} objects under {folder}/, expected {count} of 5 MiB")

        archives = {name: create_archive(proc, f"{folder}/", "store")
                    for name, proc in (("local", local), ("s3", remote))}
        sizes = {name: created["size"] for name, created in archives.items()}
        log(f"# archive sizes: local {sizes['local']:,} B, s3 {sizes['s3']:,} B")
        peers = {"local": (local, local.url + archives["local"]["url"]),
                 "s3": (remote, remote.url + archives["s3"]["url"])}
        label = {"local": "local folder", "s3": "S3 (s3rver)"}

        def download(name: str, what: str) -> Download:
            proc, url = peers[name]
            return timed_download(url, proc.pid, s3_pid, count, f"{name} {what}", sizes[name])

        for what in ("first download", "warm-up"):
            for name in peers:
                sample = download(name, what)
                log(f"# {what:14s} {label[name]:13s} {sample.seconds:6.2f} s {sample.mbps:7.0f} MB/s"
                    f"  sluice CPU {sample.server_cpu:.2f} s  s3rver {sample.cores(sample.s3_cpu):.2f} cores")

        results: dict[str, list[Download]] = {name: [] for name in peers}
        for round_ in range(rounds):
            order = ["local", "s3"] if round_ % 2 == 0 else ["s3", "local"]
            log(f"# round {round_ + 1}/{rounds}: load average {load()}")
            for name in order:
                sample = download(name, f"round {round_ + 1}/{rounds}")
                results[name].append(sample)
                log(f"  {label[name]:13s} {sample.seconds:6.2f} s {sample.mbps:7.0f} MB/s  sluice "
                    f"{sample.cores(sample.server_cpu):.2f} cores ({sample.server_cpu:.2f} s)  s3rver "
                    f"{sample.cores(sample.s3_cpu):.2f} cores (JS thread {sample.cores(sample.s3_main_cpu):.2f})"
                    f"  others {sample.cores(sample.others_cpu):.2f}")
        log(f"# checked with zipfile.testzip() after timing: {2 * (rounds + 2)} downloads, "
            f"{count} entries each, all CRC-32s right")

        floor = endpoint_floor(str(binary), work / "s3-server" / "sluice.toml",
                               [f"{folder}/IMG_{i:05d}.jpg" for i in range(count)], work, s3_pid)
        log(f"# endpoint floor (one curl, {count} GETs in turn, one connection): {floor.seconds:.2f} s "
            f"{floor.mbps:.0f} MB/s, curl CPU {floor.server_cpu:.2f} s, s3rver "
            f"{floor.cores(floor.s3_cpu):.2f} cores (JS thread {floor.cores(floor.s3_main_cpu):.2f})")

        log(f"\n## one stored archive of {count} x 5 MiB ({sizes['s3'] / 1e6:.1f} MB), {rounds} rounds")
        log(f"{'store':13s} {'MB/s median':>11s} {'(min–max)':>11s} {'s median':>8s} "
            f"{'sluice cores':>12s} {'sluice CPU s':>12s} {'s3rver cores':>12s} {'s3rver JS':>9s} "
            f"{'others':>6s}")
        medians = {}
        for name, samples in results.items():
            rates = [s.mbps for s in samples]
            medians[name] = statistics.median(rates)
            log(f"{label[name]:13s} {medians[name]:11.0f} {min(rates):5.0f}–{max(rates):<5.0f} "
                f"{statistics.median(s.seconds for s in samples):8.2f} "
                f"{statistics.median(s.cores(s.server_cpu) for s in samples):12.2f} "
                f"{statistics.median(s.server_cpu for s in samples):12.2f} "
                f"{statistics.median(s.cores(s.s3_cpu) for s in samples):12.2f} "
                f"{statistics.median(s.cores(s.s3_main_cpu) for s in samples):9.2f} "
                f"{statistics.median(s.cores(s.others_cpu) for s in samples):6.2f}")
            log(f"{'':13s} per round MB/s: {', '.join(f'{r:.0f}' for r in rates)}")
        log(f"{'endpoint floor':13s} {floor.mbps:11.0f} {'':11s} {floor.seconds:8.2f} "
            f"{'':12s} {'':12s} {floor.cores(floor.s3_cpu):12.2f} {floor.cores(floor.s3_main_cpu):9.2f} "
            f"{floor.cores(floor.others_cpu):6.2f}")
        per_round = [l.seconds / s.seconds for l, s in zip(results["local"], results["s3"])]
        ratio = statistics.median(per_round)
        s3_js = statistics.median(s.cores(s.s3_main_cpu) for s in results["s3"])
        log(f"RATIO s3/local (per round: {', '.join(f'{r:.2f}' for r in per_round)}): median "
            f"x{ratio:.2f} (target >= 0.8) {'PASS' if ratio >= 0.8 else 'MISS'}")
        log(f"RATIO s3 archive/endpoint floor: x{medians['s3'] / floor.mbps:.2f}; s3rver's JS thread "
            f"during the S3 downloads: {s3_js:.2f} cores (1.0 = the endpoint is saturated)")
        log(f"RSS peak: local server {hwm_kib(local.pid) / 1024:.1f} MiB, s3 server "
            f"{hwm_kib(remote.pid) / 1024:.1f} MiB")
        log(f"RESULT s3_archive x{ratio:.2f} {'PASS' if ratio >= 0.8 else 'MISS'} (S3/local, "
            f"target >= 0.8); load average {load()}")
    finally:
        for proc in (local, remote):
            if proc is not None:
                proc.stop()
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
