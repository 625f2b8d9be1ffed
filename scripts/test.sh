#!/usr/bin/env bash
# Builds Sluice and runs every test: unit tests (optimised, then under AddressSanitizer+UBSan),
# clang-tidy, bounded libFuzzer runs, and the functional tests that drive the real binary with real clients.
# Usage (as root on Debian 12): bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/sluice-ccache}"

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "dependencies"
bash scripts/install-deps.sh

step "release build"
cmake --preset release >/dev/null
cmake --build --preset release

step "unit tests"
ctest --preset release -j "$(nproc)"

step "clang-tidy"
bash scripts/clang-tidy.sh

step "AddressSanitizer + UBSan build and unit tests"
cmake --preset asan >/dev/null
cmake --build --preset asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -j "$(nproc)"

step "fuzzing (libFuzzer, clang; saved findings replayed, then 20 s per target)"
bash scripts/fuzz.sh 20

step "functional tests"
# One pytest session per folder: each folder has its own conftest.py, and the test modules
# import helpers from it by name, which one session could not tell apart (tests/support holds
# helpers, no tests).
for suite in tests/functional/ tests/postgres/ tests/archives/; do
  step "functional tests: ${suite}"
  SLUICE_BIN="$PWD/build/release/sluice" /usr/bin/python3 -m pytest -q -p no:cacheprovider "$suite"
done
