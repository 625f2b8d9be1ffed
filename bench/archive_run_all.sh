#!/usr/bin/env bash
# Runs every archive benchmark, side by side with its peers, and prints the ratios:
#   CRC-32 and deflate libraries (zlib, libdeflate, ISA-L) — Google Benchmark
#   sluice vs Node's archiver (200 x 5 MiB, 20,000 x 10 KiB)
#   sluice vs nginx serving the same bytes as one static file
#   1,000 concurrent slow clients: correctness and RSS
#
#   bench/archive_run_all.sh [--work DIR]
# The sluice binary is build/release/sluice or $SLUICE_BIN; sluice_bench sits beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=/tmp/sluice-archive-bench
if [[ "${1:-}" == "--work" ]]; then WORK="$2"; fi
mkdir -p "$WORK"
BIN="${SLUICE_BIN:-build/release/sluice}"
export SLUICE_BIN="$WORK/sluice-under-test"
cp "$BIN" "$SLUICE_BIN.tmp" && mv "$SLUICE_BIN.tmp" "$SLUICE_BIN"
echo "# archive benchmarks: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, git $(git rev-parse --short HEAD)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$(dirname "$BIN")/sluice_bench" --benchmark_filter='Crc32|Deflate' --benchmark_min_time=0.3 2>/dev/null \
  | grep -E '^BM_|^Benchmark'
/usr/bin/python3 bench/archive_vs_node.py --work "$WORK"
/usr/bin/python3 bench/archive_vs_nginx.py --work "$WORK"
/usr/bin/python3 bench/archive_slow_clients.py --work "$WORK"
