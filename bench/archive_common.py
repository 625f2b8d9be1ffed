"""Shared parts of the archive benchmarks: sample objects, the servers, timing a download.

Every benchmark runs the peers side by side in one run on the same objects and prints ratios.
The sluice binary is build/release/sluice or $SLUICE_BIN.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLUICE_BIN = os.environ.get("SLUICE_BIN", str(REPO / "build" / "release" / "sluice"))
MiB = 1 << 20


def log(message: str) -> None:
    print(message, flush=True)


def make_objects(root: Path, folder: str, count: int, size: int, seed: int) -> Path:
    """`count` incompressible files of `size` bytes under root/folder (kept between runs)."""
    target = root / folder
    marker = root / f".{folder}-complete-{count}-{size}"
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    rng = random.Random(seed)
    for i in range(count):
        (target / f"IMG_{i:05d}.jpg").write_bytes(rng.randbytes(size))
    marker.write_text("ok")
    return target


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Process:
    """A server process that prints 'listening on http://HOST:PORT' when ready."""

    PATTERN = re.compile(r"listening on (http://\S+)")

    def __init__(self, args: list[str], log_file: Path, cwd: Path | None = None):
        self.log_file = open(log_file, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log_file, cwd=cwd,
                                     preexec_fn=raise_fd_limit)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while True:
            line = self.proc.stdout.readline().decode()
            match = self.PATTERN.search(line)
            if match:
                self.url = match.group(1).rstrip("/")
                break
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start; see {log_file}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log_file.close()


def start_sluice(work: Path, store: Path) -> Process:
    config = work / "sluice.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:0"\nmax_body_bytes = 16777216\n\n'
                      f'[storage]\nkind = "local"\npath = "{store}"\n')
    return Process([SLUICE_BIN, "serve", "--config", str(config)], work / "sluice.log")


def create_archive(sluice: Process, prefix: str, method: str = "store") -> dict:
    request = urllib.request.Request(
        f"{sluice.url}/v1/archives", method="POST",
        data=json.dumps({"name": "bench", "prefix": prefix, "method": method}).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def curl_download(url: str) -> tuple[int, float]:
    """(bytes, seconds) of one download with curl into /dev/null."""
    result = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w",
                             "%{size_download} %{time_total}", url],
                            capture_output=True, text=True, check=True, timeout=600)
    size, seconds = result.stdout.split()
    return int(size), float(seconds)


def verify_zip(url: str, work: Path, expected_entries: int) -> None:
    """The archive must test clean in Info-ZIP unzip with the expected number of entries."""
    target = work / "verify.zip"
    subprocess.run(["curl", "-sS", "--fail", "-o", str(target), url], check=True, timeout=600)
    result = subprocess.run(["unzip", "-t", "-q", str(target)], capture_output=True, text=True)
    listed = subprocess.run(["unzip", "-Z1", str(target)], capture_output=True, text=True)
    target.unlink()
    assert result.returncode == 0, result.stdout[-500:]
    assert len(listed.stdout.splitlines()) == expected_entries, url


def timed_runs(peers: dict[str, str], runs: int) -> dict[str, list[tuple[int, float]]]:
    """Downloads each peer's URL `runs` times, alternating peers; one warm-up each first."""
    for url in peers.values():
        curl_download(url)
    results: dict[str, list[tuple[int, float]]] = {name: [] for name in peers}
    for _ in range(runs):
        for name, url in peers.items():
            results[name].append(curl_download(url))
    return results


def median_rate(samples: list[tuple[int, float]]) -> tuple[float, float]:
    """(median MB/s, median seconds)."""
    seconds = statistics.median(s for _, s in samples)
    return samples[0][0] / seconds / 1e6, seconds
