#!/usr/bin/env bash
# Builds Sluice and runs every test: unit tests (optimised, then under AddressSanitizer+UBSan),
# clang-tidy, functional suites against the sanitizer binary, bounded libFuzzer runs, and the
# functional tests that drive the real binary with real clients.
# Usage (as root on Debian 12): bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/sluice-ccache}"

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "dependencies"
bash scripts/install-deps.sh

step "npm test tools (tests/s3)"
# The versions package-lock.json pins: s3rver, the S3 endpoint the functional tests start, and
# AWS's SigV4 test suite, which the unit tests read (src/s3/s3_signing_suite_test.cpp fails without
# it). npm ci installs exactly the lock file, so a run cannot pick up a newer release.
npm ci --prefix tests/s3 --no-audit --no-fund

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

step "functional tests against the AddressSanitizer + UBSan binary (a named subset)"
# The paths where memory goes wrong only under real traffic: clients that leave, stall or
# trickle, shutdown and its grace, timeouts, connection shedding, PostgreSQL pool replacement and
# failures mid-stream, 200 and 500 concurrent downloads, archives and presigned files with sendfile
# and Range, PostgreSQL COPYs read both ways (off the socket and through libpq), and the S3 client against a real endpoint (multipart uploads aborted, answers cut,
# retries, TLS), HTTPS (the session over TLS streams, handshakes refused, certificates reloaded),
# and background jobs (workers killed, paused, cancelled, shut down; SSE and
# WebSocket subscribers). Every server's teardown fails on a sanitizer report in its log
# (tests/support/server.py).
sanitized_subset=(
  tests/functional/test_server_machinery.py tests/functional/test_streaming.py
  tests/functional/test_errors.py tests/functional/test_timeouts_and_signals.py
  tests/functional/test_operations.py tests/functional/test_tls.py
  tests/postgres/test_pg_streaming.py tests/postgres/test_pg_errors.py
  tests/postgres/test_pg_hardening.py tests/postgres/test_pg_copy_reader.py
  tests/archives/test_archive_flow.py tests/archives/test_archive_hardening.py
  tests/archives/test_archive_http.py tests/archives/test_presigned_files.py
  tests/s3/test_s3_store.py tests/s3/test_s3_cubes.py
  tests/jobs/test_jobs_local.py tests/jobs/test_jobs_postgres.py
  tests/cubes/test_cubes.py tests/cubes/test_cubes_postgres.py
)
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 SLUICE_SANITIZED=1 \
  SLUICE_BIN="$PWD/build/asan/sluice" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=15 "${sanitized_subset[@]}"

step "fuzzing (libFuzzer, clang; saved findings replayed, then 20 s per target, one target per core)"
bash scripts/fuzz.sh 20

step "functional tests"
# One pytest session for tests/functional, tests/postgres and tests/archives (pytest.ini): the
# shared helpers are the package tests/support, each suite's fixtures are in its conftest.py,
# and a session fixture (the demo's 2,000,000 rows, the PostgreSQL cluster) starts once, when a
# test first needs it. The files of the sanitizer subset above passed already (against a binary
# that checks more); of them only the tests marked `release_rss` run again: their memory checks
# need the release binary (tests/conftest.py).
SLUICE_ALREADY_RAN_SANITIZED="${sanitized_subset[*]}" SLUICE_BIN="$PWD/build/release/sluice" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=15 tests
