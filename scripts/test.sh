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
# One pytest session for tests/functional, tests/postgres and tests/archives (pytest.ini): the
# shared helpers are the package tests/support, each suite's fixtures are in its conftest.py,
# and a session fixture (the demo's 2,000,000 rows, the PostgreSQL cluster) starts once, when a
# test first needs it.
SLUICE_BIN="$PWD/build/release/sluice" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests
