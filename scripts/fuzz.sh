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

# One target: replay its saved findings, then fuzz a copy of its corpus. Targets run
# $(nproc) at a time: each is one single-threaded process, so on 2 cores two of them get the
# same fuzzing time per target in half the wall time.
fuzz_one() {
  local target="$1" seconds="$2" findings="$3"
  local binary="build/fuzz/fuzz/$target"
  shopt -s nullglob
  local saved=(fuzz/regressions/"$target"-*)
  shopt -u nullglob
  if ((${#saved[@]})); then
    if ! "$binary" -runs=0 "${saved[@]}" >/dev/null 2>"$findings/$target.replay.log"; then
      cat "$findings/$target.replay.log"
      echo "== $target: a saved finding fails again" >&2
      return 1
    fi
  fi
  local corpus="build/fuzz/corpus/$target"
  mkdir -p "$corpus"
  cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 -artifact_prefix="$findings/$target-" "$corpus" \
      >"$findings/$target.log" 2>&1; then
    tail -n 60 "$findings/$target.log"
    echo "fuzz target $target failed; input saved under $findings/" >&2
    return 1
  fi
  echo "== $target: ${#saved[@]} saved findings replayed, fuzzed ${seconds}s:" \
    "$(grep -h -o -E "stat::(number_of_executed_units|peak_rss_mb): *[0-9]+" "$findings/$target.log" | tr -s ' \n' ' ')"
}
export -f fuzz_one

printf '%s\n' fuzz_export_plan fuzz_config fuzz_pg_decoders fuzz_pg_copy_stream fuzz_encoders fuzz_compression \
    fuzz_transforms fuzz_request_target fuzz_range fuzz_archive_request fuzz_zip_names \
    fuzz_s3_xml fuzz_cube |
  xargs -P "$(nproc)" -I{} bash -c 'fuzz_one "$@"' _ {} "$seconds" "$findings"
