#!/usr/bin/python3
"""Memory per compressed stream: N clients that read nothing hold N downloads of orders_big
open (each stalls on backpressure with its buffers and compressor state allocated); the server's
RSS growth over its idle RSS, divided by N, for plain CSV, .csv.gz and .csv.zst, in one run.

    bench/compress_memory.py [--streams 200] [--rows 500000] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLUICE = Path(os.environ.get("SLUICE_BIN", REPO / "build/release/sluice"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def hold(port: int, target: str, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(sock)
    return socks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-bench"))
    args = parser.parse_args()
    demo = args.work / f"demo-{args.rows}"
    server = subprocess.Popen([str(SLUICE), "demo", "--rows", str(args.rows), "--dir", str(demo),
                               "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    port = None
    for line in server.stdout:
        if "listening on" in line:
            port = int(line.rsplit(":", 1)[1])
            break
    try:
        time.sleep(1)
        idle = rss_kib(server.pid)
        print(f"idle RSS {idle} KiB; {args.streams} streams each")
        for target in ("/v1/exports/orders_big.csv", "/v1/exports/orders_big.csv.gz",
                       "/v1/exports/orders_big.csv.zst"):
            socks = hold(port, target, args.streams)
            time.sleep(4)
            held = rss_kib(server.pid)
            for sock in socks:
                sock.close()
            print(f"RESULT {target:34} RSS {held} KiB, +{(held - idle) / args.streams:.0f} KiB "
                  f"per stream over idle", flush=True)
            time.sleep(3)
            idle = min(idle, rss_kib(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
