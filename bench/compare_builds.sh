#!/usr/bin/env bash
# Re-runs the three end-to-end benchmarks whose figures docs/BENCHMARKS.md keeps — SQLite export
# vs the sqlite3 shell, PostgreSQL export vs psql's COPY, archives vs Node's archiver — with two
# sluice binaries, alternating (A, B, A, B ...), in one session, so a change is measured against
# the build before it on the same machine at the same load.
# Usage: bench/compare_builds.sh OLD_BINARY NEW_BINARY [rounds, default 2] [work folder]
# Writes each run's report to WORK/compare-<round>-<old|new>-<benchmark>.txt and prints the
# summary lines of every report. Needs what the three scripts need (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
old="$(realpath "$1")"
new="$(realpath "$2")"
rounds="${3:-2}"
work="${4:-/tmp/sluice-bench}"
mkdir -p "$work"
# Copies: a rebuild during the run must not change what is measured.
cp "$old" "$work/sluice-old"
cp "$new" "$work/sluice-new"

run() {  # label binary benchmark...
  local label=$1 binary=$2 name=$3
  shift 3
  echo "== round $round, $label: $name ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
  SLUICE_BIN="$binary" /usr/bin/python3 "$@" > "$work/compare-$round-$label-$name.txt" 2>&1 ||
    { tail -20 "$work/compare-$round-$label-$name.txt"; exit 1; }
}

for round in $(seq 1 "$rounds"); do
  for label in old new; do
    [ $((round % 2)) = 0 ] && label=$([ "$label" = old ] && echo new || echo old)
    binary="$work/sluice-$label"
    run "$label" "$binary" sqlite bench/export_vs_sqlite3.py --bin "$binary" --work "$work" --runs 3
    run "$label" "$binary" pg bench/pg_throughput.py --bin "$binary" --rounds 3 --ttfb 0 \
      --variants psql_csv,csv_auto,csv_text,jsonl_auto
    run "$label" "$binary" archives bench/archive_vs_node.py --runs 3
  done
done

for report in "$work"/compare-*.txt; do
  echo "---- $(basename "$report")"
  grep -E "ratio|×|psql_csv|csv_auto|csv_text|jsonl_auto|files/s|MB/s" "$report" | tail -12
done
