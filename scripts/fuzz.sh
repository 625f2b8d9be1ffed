#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for a bounded time on a copy
# of its seed corpus (fuzz/corpus/TARGET), after replaying every saved finding
# (fuzz/regressions/TARGET-*), which must all pass. A crash fails the script and leaves the
# input in build/fuzz/findings/ — copy it to fuzz/regressions/ once fixed.
# Usage: bash scripts/fuzz.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/sluice-ccache}"

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

findings=build/fuzz/findings
mkdir -p "$findings"
for target in fuzz_export_plan fuzz_config fuzz_pg_decoders fuzz_encoders fuzz_compression \
    fuzz_transforms fuzz_request_target fuzz_range fuzz_archive_request fuzz_zip_names \
    fuzz_s3_xml fuzz_cube; do
  binary="build/fuzz/fuzz/$target"
  shopt -s nullglob
  saved=(fuzz/regressions/"$target"-*)
  shopt -u nullglob
  if ((${#saved[@]})); then
    echo "== $target: replaying ${#saved[@]} saved findings"
    "$binary" -runs=0 "${saved[@]}" >/dev/null 2>"$findings/$target.replay.log" || {
      cat "$findings/$target.replay.log"; exit 1; }
  fi
  corpus="build/fuzz/corpus/$target"
  mkdir -p "$corpus"
  cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "== $target: fuzzing for ${seconds}s"
  if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 -artifact_prefix="$findings/$target-" "$corpus" \
      >"$findings/$target.log" 2>&1; then
    tail -n 60 "$findings/$target.log"
    echo "fuzz target $target failed; input saved under $findings/" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$findings/$target.log" || true
done
