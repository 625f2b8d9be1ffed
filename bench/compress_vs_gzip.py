#!/usr/bin/python3
"""Sluice's streaming compressors against the command-line tools, on the same bytes, in one run.

1. Makes the input: the demo's `orders` table exported as CSV by `sluice export` (the bytes a
   download compresses), --rows rows (default 500,000: ~42 MB).
2. Runs, interleaved, --rounds times each:
   - `gzip -1 -c FILE > /dev/null` (CPU seconds of the child: user + sys);
   - `zstd -b3 FILE` (libzstd's one-shot benchmark mode, for reference);
   - build/release/sluice_bench on the same FILE ($SLUICE_COMPRESS_INPUT): the export gzip
     (ISA-L igzip level 1), zlib level 1, and the export zstd (level 3, window 128 KiB), each
     fed in 64 KiB writes with a flush after each, as a download does (CPU-time rates).
3. Prints MB/s (10^6 bytes of input per CPU second), compressed/raw ratios and the targets:
   streaming gzip >= 3x `gzip -1` at a comparable ratio; streaming zstd-3 >= 300 MB/s.

    bench/compress_vs_gzip.py [--rows N] [--rounds R] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLUICE = Path(os.environ.get("SLUICE_BIN", REPO / "build/release/sluice"))
BENCH = Path(os.environ.get("SLUICE_BENCH_BIN", REPO / "build/release/sluice_bench"))


def make_input(work: Path, rows: int) -> Path:
    demo, csv = work / f"demo-{rows}", work / f"orders-{rows}.csv"
    if csv.exists():
        return csv
    server = subprocess.Popen([str(SLUICE), "demo", "--rows", str(rows), "--dir", str(demo),
                               "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    for line in server.stdout:  # generated and configured once it listens
        if "listening on" in line:
            break
    server.terminate()
    server.wait(timeout=30)
    subprocess.run([str(SLUICE), "export", "orders", "--config", str(demo / "sluice.toml"),
                    "--format", "csv", "-o", str(csv)], check=True, stderr=subprocess.DEVNULL)
    return csv


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def gzip1(path: Path) -> tuple[float, int]:
    """(CPU seconds, compressed bytes) of `gzip -1`."""
    before = child_cpu()
    out = subprocess.run(["gzip", "-1", "-c", str(path)], stdout=subprocess.PIPE, check=True)
    return child_cpu() - before, len(out.stdout)


def zstd_b3(path: Path) -> tuple[float, float]:
    """(MB/s, ratio compressed/raw) of `zstd -b3`."""
    out = subprocess.run(["zstd", "-b3", "-i3", str(path)], capture_output=True, text=True,
                         check=True)
    text = (out.stdout + out.stderr).replace("\r", "\n")
    match = re.findall(r"\(x([\d.]+)\),\s+([\d.]+) MB/s", text)[-1]
    return float(match[1]), 1 / float(match[0])


def sluice_bench(path: Path) -> dict[str, tuple[float, float]]:
    """{name: (MB/s, ratio)} of the streaming compressors."""
    names = "BM_GzipIgzip1/65536$|BM_GzipZlib1/65536$|BM_ZstdExport/65536$"
    out = subprocess.run([str(BENCH), f"--benchmark_filter={names}", "--benchmark_format=json",
                          "--benchmark_min_time=1"], capture_output=True, text=True, check=True,
                         env={**os.environ, "SLUICE_COMPRESS_INPUT": str(path)})
    result = {}
    for run in json.loads(out.stdout)["benchmarks"]:
        result[run["name"].split("/")[0]] = (run["bytes_per_second"] / 1e6, run["ratio"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = make_input(args.work, args.rows)
    size = path.stat().st_size
    print(f"input {path} {size / 1e6:.1f} MB; load average {os.getloadavg()[0]:.2f}")

    gzip_rates, zstd_cli, ours = [], [], {}
    gzip_ratio = 0.0
    for round_ in range(args.rounds):
        seconds, compressed = gzip1(path)
        gzip_rates.append(size / seconds / 1e6)
        gzip_ratio = compressed / size
        zstd_cli.append(zstd_b3(path))
        for name, figures in sluice_bench(path).items():
            ours.setdefault(name, []).append(figures)
        print(f"round {round_ + 1}: gzip -1 {gzip_rates[-1]:.0f} MB/s, zstd -b3 "
              f"{zstd_cli[-1][0]:.0f} MB/s, " +
              ", ".join(f"{n} {v[-1][0]:.0f} MB/s" for n, v in ours.items()), flush=True)

    def median_rate(runs):
        return statistics.median(r[0] for r in runs)

    gz = median_rate(gzip_rates and [(r, 0) for r in gzip_rates])
    igzip, zlib1, zstd = (median_rate(ours[n]) for n in
                          ("BM_GzipIgzip1", "BM_GzipZlib1", "BM_ZstdExport"))
    print()
    print(f"{'':34} {'MB/s':>7} {'ratio':>7}  vs gzip -1")
    rows = [("gzip -1 (CLI)", gz, gzip_ratio),
            ("sluice gzip (igzip 1, streaming)", igzip, ours["BM_GzipIgzip1"][0][1]),
            ("zlib level 1 (streaming)", zlib1, ours["BM_GzipZlib1"][0][1]),
            ("zstd -b3 (CLI, one-shot)", median_rate(zstd_cli), zstd_cli[0][1]),
            ("sluice zstd 3 (streaming)", zstd, ours["BM_ZstdExport"][0][1])]
    for name, rate, ratio in rows:
        print(f"{name:34} {rate:7.0f} {ratio:7.3f}  x{rate / gz:.2f}")
    size_vs_gzip = ours["BM_GzipIgzip1"][0][1] / gzip_ratio
    print()
    print(f"RESULT gzip: sluice/gzip-1 speed x{igzip / gz:.2f} (target >= 3), size x{size_vs_gzip:.2f}"
          f" -> {'PASS' if igzip >= 3 * gz and size_vs_gzip <= 1.10 else 'MISS'}")
    print(f"RESULT zstd-3: {zstd:.0f} MB/s (target >= 300; zstd -b3 one-shot on this host "
          f"{median_rate(zstd_cli):.0f}) -> {'PASS' if zstd >= 300 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
