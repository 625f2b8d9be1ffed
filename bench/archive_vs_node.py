#!/usr/bin/env python3
"""Sluice's streaming ZIP against the approach of shared/background/003 (Node's `archiver` /
`zip-stream` piping stored files into the HTTP response), side by side on the same files:

  (a) 200 files of 5 MiB  — throughput (MB/s), target >= 3x Node
  (b) 20,000 files of 10 KiB — files per second, target >= 5x Node

Both store (no compression), both read the same folder, both are checked with `unzip -t`
first. Each download goes to a file (tmpfs when it has room) that is read back with Python's
zipfile after curl is done (testzip: every entry's CRC-32, and the entry count): a bad archive
fails the run. One warm-up each, then RUNS alternating downloads; medians are reported. Sluice's CRC-32s are cached after the warm-up (its first download,
which reads every file twice for the CRC, is reported too).

  /usr/bin/python3 bench/archive_vs_node.py [--work DIR] [--runs N] [--quick]

--quick: 20 files of 5 MiB and 2,000 of 10 KiB (a check that it runs; the targets are for the
full sizes).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from archive_common import (MiB, Process, create_archive, curl_download, log, make_objects,
                            median_rate, start_sluice, timed_runs, verify_zip)

HERE = Path(__file__).resolve().parent


def start_node(work: Path, store: Path) -> Process:
    node_dir = HERE / "node"
    if not (node_dir / "node_modules" / "archiver").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=node_dir,
                       check=True, timeout=600)
    return Process(["node", str(node_dir / "server.js"), str(store)], work / "node.log")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-archive-bench"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="20 x 5 MiB and 2,000 x 10 KiB instead of 200 and 20,000")
    args = parser.parse_args()
    work = args.work
    store = work / "objects"
    big, small = (20, 2_000) if args.quick else (200, 20_000)
    suffix = "-quick" if args.quick else ""  # its own folders: the full ones stay cached
    log(f"# archive_vs_node: {time.strftime('%Y-%m-%d %H:%M:%S')}, objects in {store}"
        f"{' (quick)' if args.quick else ''}")
    make_objects(store, "big" + suffix, big, 5 * MiB, seed=1)
    make_objects(store, "small" + suffix, small, 10 * 1024, seed=2)
    sluice = start_sluice(work, store)
    node = start_node(work, store)
    try:
        for folder, count, unit in (("big" + suffix, big, "MB/s"),
                                    ("small" + suffix, small, "files/s")):
            started = time.monotonic()
            created = create_archive(sluice, f"{folder}/")
            post_ms = (time.monotonic() - started) * 1000
            peers = {"sluice": sluice.url + created["url"], "node": f"{node.url}/archive?dir={folder}"}
            for url in peers.values():
                verify_zip(url, work, count)
            # verify_zip was sluice's first download; measure a cold-CRC one too.
            cold = create_archive(sluice, f"{folder}/")
            first_bytes, first_seconds = curl_download(sluice.url + cold["url"], count,
                                                       "sluice first download", cold["size"])
            results = timed_runs(peers, args.runs, count, cold["size"])
            rates = {name: median_rate(samples) for name, samples in results.items()}
            log(f"\n## {count} files of {'5 MiB' if folder.startswith('big') else '10 KiB'} "
                f"(archive {results['sluice'][0][0] / 1e6:.1f} MB sluice, "
                f"{results['node'][0][0] / 1e6:.1f} MB node)")
            log(f"POST /v1/archives: {post_ms:.0f} ms")
            for name, (mbps, seconds) in rates.items():
                log(f"{name:7s} median {seconds:7.3f} s  {mbps:8.1f} MB/s  {count / seconds:9.0f} files/s"
                    f"   runs: {', '.join(f'{s:.3f}' for _, s in results[name])}")
            log(f"sluice first download (CRC-32s computed on the way): {first_seconds:.3f} s")
            ratio = rates["node"][1] / rates["sluice"][1]
            target = 3 if folder.startswith("big") else 5
            log(f"RATIO sluice/node {unit}: {ratio:.2f}x (target >= {target}x) "
                f"{'OK' if ratio >= target else 'BELOW TARGET'}")
    finally:
        sluice.stop()
        node.stop()


if __name__ == "__main__":
    main()
