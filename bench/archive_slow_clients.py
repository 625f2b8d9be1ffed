#!/usr/bin/env python3
"""1,000 concurrent archive downloads by slow clients: every body must be byte-identical to a
reference download, and the server's RSS must stay under 256 MiB.

The two reference downloads are read back with Python's zipfile (the chunked one de-chunked
first; testzip: every entry's CRC-32, and the entry count), so every timed body that equals its
reference is a good archive. A bad reference, a body that differs or an RSS over the limit ends
the run with exit 1.

Half the clients fetch an all-stored archive (Content-Length; large photos go by sendfile,
small files through the read-ahead buffers), half an archive with deflated text (chunked).
Each client has a 32 KiB receive buffer and reads 16 KiB every 100 ms (~160 KB/s), so the
server holds 1,000 streams at once for the whole run. RSS is sampled every 100 ms.

  /usr/bin/python3 bench/archive_slow_clients.py [--work DIR] [--clients N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import random
import socket
import threading
import time
import urllib.request
from pathlib import Path

from archive_common import (BadArchive, Process, check_zip, create_archive, fail, log,
                            raise_fd_limit, start_sluice)

READ_BYTES = 16 * 1024
READ_EVERY_S = 0.1
RSS_LIMIT_MIB = 256


def make_store(root: Path) -> None:
    rng = random.Random(3)
    slow = root / "slow"
    if (root / ".slow-complete").exists():
        return
    slow.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        (slow / f"IMG_{i}.jpg").write_bytes(rng.randbytes(400_000))
    for i in range(40):
        (slow / f"small_{i:02d}.jpg").write_bytes(rng.randbytes(10_000))
    for i in range(4):
        text = "".join(f"line {n} {rng.choice(['alpha', 'beta', 'gamma'])}\n" for n in range(20_000))
        (slow / f"notes_{i}.txt").write_text(text)
    (root / ".slow-complete").write_text("ok")


async def slow_download(port: int, target: str) -> tuple[str, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=READ_BYTES * 4)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    raw = hashlib.sha256()
    size = 0
    while True:
        chunk = await reader.read(READ_BYTES)
        if not chunk:
            break
        raw.update(chunk)
        size += len(chunk)
        await asyncio.sleep(READ_EVERY_S)
    writer.close()
    return (raw.hexdigest() if status == 200 else f"status {status}"), size


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked body (RFC 9112 7.1); raises ValueError when it is cut short."""
    payload = bytearray()
    at = 0
    while True:
        line_end = body.index(b"\r\n", at)
        size = int(body[at:line_end].split(b";", 1)[0], 16)
        at = line_end + 2
        if size == 0:
            return bytes(payload)
        if at + size + 2 > len(body):
            raise ValueError("a chunk is cut short")
        payload += body[at:at + size]
        at += size + 2


def reference(url: str, expected_entries: int) -> tuple[str, int]:
    """sha256 and size of the raw body bytes as a client reads them (chunk framing included);
    the archive in it is checked with zipfile first (a bad one fails the run)."""
    host, port_path = url.split("//", 1)[1].split(":", 1)
    port, path = port_path.split("/", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(1 << 20):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status = head.split(b" ", 2)[1]
    if status != b"200":
        fail(f"reference download {url}: HTTP {status.decode()}")
    chunked = b"\r\ntransfer-encoding: chunked" in head.lower()
    try:
        check_zip(io.BytesIO(dechunk(body) if chunked else body), expected_entries)
    except (BadArchive, ValueError) as error:
        fail(f"reference download {url} ({'chunked' if chunked else 'Content-Length'}): "
             f"bad archive: {error}")
    return hashlib.sha256(body).hexdigest(), len(body)


async def run_clients(port: int, targets: list[str]) -> list[tuple[str, int]]:
    return await asyncio.gather(*(slow_download(port, t) for t in targets))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-archive-bench"))
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    raise_fd_limit()
    store = args.work / "objects"
    make_store(store)
    sluice = start_sluice(args.work, store)
    try:
        stored = create_archive(sluice, "slow/", "store")
        deflated = create_archive(sluice, "slow/", "auto")
        entries = sum(1 for _ in (store / "slow").iterdir())
        expected = {a["url"]: reference(sluice.url + a["url"], entries) for a in (stored, deflated)}
        rss_idle = sluice.rss_kib()
        targets = [(stored if i % 2 else deflated)["url"] for i in range(args.clients)]
        peak = {"rss": 0, "active": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak["rss"] = max(peak["rss"], sluice.rss_kib())
                try:
                    text = urllib.request.urlopen(f"{sluice.url}/metrics", timeout=5).read().decode()
                    active = [l for l in text.splitlines() if l.startswith("sluice_active_archives ")]
                    peak["active"] = max(peak["active"], int(float(active[0].split()[1])))
                except OSError:
                    pass
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        results = asyncio.run(run_clients(int(sluice.url.rsplit(":", 1)[1]), targets))
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
        correct = sum(1 for target, got in zip(targets, results) if got == expected[target])
        log(f"# archive_slow_clients: {time.strftime('%Y-%m-%d %H:%M:%S')}")
        log(f"{args.clients} clients ({READ_BYTES // 1024} KiB every {READ_EVERY_S * 1000:.0f} ms each),"
            f" archives of {expected[stored['url']][1] / 1e6:.2f} MB (stored) and "
            f"{expected[deflated['url']][1] / 1e6:.2f} MB (deflated, chunked)")
        log(f"correct bodies: {correct}/{args.clients} in {seconds:.1f} s; "
            f"peak concurrent archives: {peak['active']}")
        passed = peak["rss"] < RSS_LIMIT_MIB * 1024 and correct == args.clients
        log(f"RSS idle {rss_idle / 1024:.1f} MiB, peak {peak['rss'] / 1024:.1f} MiB "
            f"(limit {RSS_LIMIT_MIB} MiB) {'OK' if passed else 'FAILED'}")
    finally:
        sluice.stop()
    if correct != args.clients:
        wrong = [got for target, got in zip(targets, results) if got != expected[target]]
        fail(f"{args.clients - correct} of {args.clients} bodies differ from their checked "
             f"reference (first: {wrong[0][0]}, {wrong[0][1]} bytes)")
    if not passed:
        fail(f"peak RSS {peak['rss'] / 1024:.1f} MiB over the limit of {RSS_LIMIT_MIB} MiB")


if __name__ == "__main__":
    main()
