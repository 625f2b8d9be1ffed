#!/usr/bin/env python3
"""Sluice's streaming ZIP (store) against nginx serving the very same bytes as one static file,
over loopback, side by side in one run. Target: sluice >= 0.8x nginx.

The archive of 200 files of 5 MiB is downloaded from sluice once into nginx's root, so both
send identical bytes; nginx runs with its defaults for static files (sendfile on). Each
download goes to a file (tmpfs when it has room) that is read back with Python's zipfile after
curl is done (testzip: every entry's CRC-32, and the entry count): a bad archive fails the run.
One warm-up each, then RUNS alternating downloads, medians.

  /usr/bin/python3 bench/archive_vs_nginx.py [--work DIR] [--runs N] [--quick]

--quick: 20 files of 5 MiB (a check that it runs; the target is for the full size).
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import subprocess
import time
from pathlib import Path

from archive_common import (MiB, Process, create_archive, fail, log, make_objects, median_rate,
                            start_sluice, timed_runs)

NGINX_CONF = """
worker_processes auto;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  types {{ application/zip zip; }}
  client_body_temp_path {work}/nginx-tmp;
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    def __init__(self, work: Path, root: Path):
        self.port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, port=self.port, root=root))
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)],
                                     stderr=open(work / "nginx.stderr", "wb"))
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-archive-bench"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20 x 5 MiB instead of 200")
    args = parser.parse_args()
    work = args.work
    store = work / "objects"
    count = 20 if args.quick else 200
    folder = "big-quick" if args.quick else "big"  # its own folder: the full one stays cached
    log(f"# archive_vs_nginx: {time.strftime('%Y-%m-%d %H:%M:%S')}"
        f"{' (quick)' if args.quick else ''}")
    make_objects(store, folder, count, 5 * MiB, seed=1)
    static = work / "static"
    static.mkdir(parents=True, exist_ok=True)
    sluice = start_sluice(work, store)
    nginx = None
    try:
        created = create_archive(sluice, f"{folder}/")
        url = sluice.url + created["url"]
        subprocess.run(["curl", "-sS", "--fail", "-o", str(static / "album.zip"), url], check=True)
        nginx = Nginx(work, static)
        peers = {"sluice": url, "nginx": f"{nginx.url}/album.zip"}
        got = {}
        for name, peer_url in peers.items():
            target = work / f"check-{name}.zip"
            subprocess.run(["curl", "-sS", "--fail", "-o", str(target), peer_url], check=True)
            got[name] = sha256_of(target)
            target.unlink()
        if got["sluice"] != got["nginx"]:
            fail("the two peers sent different bytes")
        results = timed_runs(peers, args.runs, count, created["size"])
        rates = {name: median_rate(samples) for name, samples in results.items()}
        log(f"\n## one archive of {count} x 5 MiB, {created['size'] / 1e6:.1f} MB, identical bytes")
        for name, (mbps, seconds) in rates.items():
            log(f"{name:7s} median {seconds:6.3f} s  {mbps:8.1f} MB/s   runs: "
                f"{', '.join(f'{s:.3f}' for _, s in results[name])}")
        ratio = rates["nginx"][1] / rates["sluice"][1]
        log(f"RATIO sluice/nginx: {ratio:.2f}x (target >= 0.8x) {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")
    finally:
        sluice.stop()
        if nginx:
            nginx.stop()


if __name__ == "__main__":
    main()
