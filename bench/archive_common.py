"""Shared parts of the archive benchmarks: sample objects, the servers, timing a download.

Every benchmark runs the peers side by side in one run on the same objects and prints ratios.
The sluice binary is build/release/sluice or $SLUICE_BIN.

What is timed is checked: each timed download is written to a file (in /dev/shm when it has
room, else the system's temporary folder; one file per URL, overwritten in place; the same for
every peer) and, once curl is done and outside the timed region, read back with Python's zipfile
(testzip(): every entry decompressed and its CRC-32 checked) and counted. A bad archive ends the benchmark with exit 1 and a line saying which
download of which peer failed and why.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
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


class BadArchive(Exception):
    pass


def fail(message: str) -> None:
    """Ends the benchmark: a wrong archive must not be timed as if it were right."""
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


_download_dirs: dict[Path | None, Path] = {}
_download_files: dict[str, int] = {}  # URL → descriptor of the file its downloads go to


def download_dir(room: int = 0) -> Path:
    """A private folder for downloads under test: tmpfs (/dev/shm) when it has twice `room`
    bytes free, else the system's temporary folder. Removed at exit."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and shutil.disk_usage(shm).free > 2 * room else None
    if base not in _download_dirs:
        folder = Path(tempfile.mkdtemp(prefix="sluice-archive-bench-", dir=base))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _download_dirs[base] = folder
    return _download_dirs[base]


def download_file(url: str, room: int = 0) -> int:
    """The descriptor of the file the downloads of `url` are written to. One file per URL,
    overwritten in place by each download (never truncated): its pages are allocated by the
    first download only, so the timed ones pay a copy into the page cache, not tmpfs page
    allocation as well (measured on 100 MB: curl -o /dev/null 0.045 s, a new tmpfs file
    0.114 s, this 0.077 s)."""
    if url not in _download_files:
        path = download_dir(room) / f"download-{len(_download_files)}.zip"
        _download_files[url] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    return _download_files[url]


class FilePrefix(io.RawIOBase):
    """The first `size` bytes of the file at descriptor `fd`, as a seekable binary file."""

    def __init__(self, fd: int, size: int):
        super().__init__()
        self._fd, self._size, self._at = fd, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._at, 2: self._size}[whence]
        self._at = max(0, min(self._size, base + offset))
        return self._at

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._size - self._at)
        if count <= 0:
            return 0
        data = os.pread(self._fd, count, self._at)
        buffer[:len(data)] = data
        self._at += len(data)
        return len(data)


def check_zip(path, expected_entries: int) -> None:
    """Reads the archive at `path` (or in a binary file object) with Python's zipfile: every
    entry's data must decompress and match its CRC-32 (testzip), and there must be
    `expected_entries` of them. Raises BadArchive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        raise BadArchive(f"not a readable ZIP: {type(error).__name__}: {error}") from error
    if bad is not None:
        raise BadArchive(f"entry {bad!r} does not match its CRC-32")
    if len(names) != expected_entries:
        raise BadArchive(f"{len(names)} entries, expected {expected_entries}")
    if len(set(names)) != len(names):
        raise BadArchive("two entries with the same name")


def curl_download(url: str, expected_entries: int, what: str = "", size_hint: int = 0
                  ) -> tuple[int, float]:
    """(bytes, seconds) of one download with curl (its own time_total). The body goes to the
    URL's file (download_file), which is read back with check_zip() after curl is done, outside
    the time curl reports; a bad archive fails the benchmark."""
    fd = download_file(url, size_hint)
    os.lseek(fd, 0, os.SEEK_SET)
    result = subprocess.run(["curl", "-sS", "--fail", "-w", "%{stderr}\n%{size_download} %{time_total}",
                             url], stdout=fd, stderr=subprocess.PIPE, text=True, timeout=600)
    lines = result.stderr.strip().splitlines()
    if result.returncode != 0 or not lines:
        fail(f"{what or url}: curl exited {result.returncode}: {result.stderr.strip()[:300]}")
    size, seconds = lines[-1].split()
    if os.lseek(fd, 0, os.SEEK_CUR) != int(size):
        fail(f"{what or url}: curl reported {size} bytes but wrote {os.lseek(fd, 0, os.SEEK_CUR)}")
    try:
        check_zip(FilePrefix(fd, int(size)), expected_entries)
    except BadArchive as error:
        fail(f"{what or url}: bad archive ({int(size)} bytes): {error}")
    return int(size), float(seconds)


def verify_zip(url: str, work: Path, expected_entries: int) -> None:
    """The archive must test clean in Info-ZIP unzip with the expected number of entries."""
    target = work / "verify.zip"
    subprocess.run(["curl", "-sS", "--fail", "-o", str(target), url], check=True, timeout=600)
    result = subprocess.run(["unzip", "-t", "-q", str(target)], capture_output=True, text=True)
    listed = subprocess.run(["unzip", "-Z1", str(target)], capture_output=True, text=True)
    target.unlink()
    if result.returncode != 0:
        fail(f"{url}: unzip -t exited {result.returncode}: {result.stdout[-500:]}")
    if len(listed.stdout.splitlines()) != expected_entries:
        fail(f"{url}: unzip lists {len(listed.stdout.splitlines())} entries, "
             f"expected {expected_entries}")


def timed_runs(peers: dict[str, str], runs: int, expected_entries: int, size_hint: int = 0
               ) -> dict[str, list[tuple[int, float]]]:
    """Downloads each peer's URL `runs` times, alternating peers; one warm-up each first. Every
    download (warm-ups too) is checked as a ZIP of `expected_entries` entries after it is timed."""
    for name, url in peers.items():
        curl_download(url, expected_entries, f"{name} warm-up", size_hint)
    results: dict[str, list[tuple[int, float]]] = {name: [] for name in peers}
    for run in range(runs):
        for name, url in peers.items():
            results[name].append(curl_download(url, expected_entries,
                                               f"{name} timed run {run + 1}/{runs}", size_hint))
    log(f"# checked with zipfile.testzip() after timing: {(runs + 1) * len(peers)} downloads "
        f"({', '.join(peers)}), {expected_entries} entries each, all CRC-32s right")
    return results


def median_rate(samples: list[tuple[int, float]]) -> tuple[float, float]:
    """(median MB/s, median seconds)."""
    seconds = statistics.median(s for _, s in samples)
    return samples[0][0] / seconds / 1e6, seconds
