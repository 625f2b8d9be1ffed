#!/usr/bin/env bash
# Runs every export benchmark and prints each one's report, then a combined summary.
#
#   bench/run_all.sh [--work DIR] [--quick]
#
#   --work DIR  cache of demo folders and logs (default /tmp/sluice-bench); the 20M-row demo
#               (~2.2 GB, ~2 min to generate) is made once and reused.
#   --quick     2M rows everywhere instead of 20M (TTFB on 2M only, throughput and memory (a)
#               on 2M): a few minutes instead of ~10.
#
# The sluice binary (build/release/sluice, or $SLUICE_BIN) is copied into the work folder
# first, so a rebuild while the benchmarks run cannot mix two binaries into one report.
# Full reports go to stdout and to DIR/run_all-*.txt; the servers' logs stay in DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=/usr/bin/python3
WORK=/tmp/sluice-bench
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --work) WORK="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$WORK"

SRC_BIN="${SLUICE_BIN:-build/release/sluice}"
if [[ ! -x "$SRC_BIN" ]]; then
  echo "$SRC_BIN not found: cmake --preset release && ninja -C build/release sluice" >&2
  exit 1
fi
export SLUICE_BIN="$WORK/sluice-under-test"
cp -p "$SRC_BIN" "$SLUICE_BIN.tmp" && mv "$SLUICE_BIN.tmp" "$SLUICE_BIN"

if [[ $QUICK == 1 ]]; then
  ROWS_TTFB=(2000000); THROUGHPUT=(--quick); MEMORY_ROWS=2000000
else
  ROWS_TTFB=(2000000 20000000); THROUGHPUT=(); MEMORY_ROWS=20000000
fi

echo "# run_all: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, $(uname -r)"
echo "# binary: $SRC_BIN (modified $(date -u -r "$SRC_BIN" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$SRC_BIN" | cut -c1-16)), git HEAD $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

SUMMARY=()
run() {  # run NAME COMMAND...: full report to stdout and DIR/run_all-NAME.txt
  local name="$1"; shift
  local out="$WORK/run_all-$name.txt"
  echo "=================== $name: $*"
  local start=$SECONDS status=0
  "$@" 2> "$WORK/run_all-$name.stderr" | tee "$out" || status=$?
  echo "# ($name took $((SECONDS - start)) s, exit $status; stderr in $WORK/run_all-$name.stderr)"
  echo
  if [[ $status != 0 ]]; then
    SUMMARY+=("FAILED $name (exit $status): see $WORK/run_all-$name.stderr")
    tail -5 "$WORK/run_all-$name.stderr" >&2 || true
  fi
  while IFS= read -r line; do SUMMARY+=("$line"); done < <(grep '^RESULT' "$out" || true)
}

run demos "$PY" bench/export_common.py --work "$WORK" --rows "${ROWS_TTFB[@]}"
run ttfb "$PY" bench/export_ttfb.py --work "$WORK" --rows "${ROWS_TTFB[@]}"
run throughput "$PY" bench/export_vs_sqlite3.py --work "$WORK" "${THROUGHPUT[@]}"
run memory "$PY" bench/export_memory.py --work "$WORK" --rows "$MEMORY_ROWS"

BENCH=build/release/sluice_bench
if [[ -x "$BENCH" ]]; then
  run encoders "$BENCH" --benchmark_min_time=1
  while IFS= read -r line; do SUMMARY+=("$line"); done < <(
    awk '/^BM_/ { rate = ""; for (i = 1; i <= NF; i++) if ($i ~ /^(bytes|items)_per_second=/) rate = rate " " $i
                  print "RESULT encoder " $1 ": " $2 " " $3 " wall, " $4 " " $5 " CPU per 1000-row batch;" rate " (rates per CPU second)" }' \
      "$WORK/run_all-encoders.txt")
else
  SUMMARY+=("SKIPPED encoder bench: $BENCH not built (ninja -C build/release sluice_bench)")
fi

echo "=================== summary (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${SUMMARY[@]}"
