#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) on every library and binary source; fails on any finding.
# REQUIRES: build/release/compile_commands.json (cmake --preset release).
set -euo pipefail
cd "$(dirname "$0")/.."
# asio_impl.cpp, beast_impl.cpp and asio_ssl_impl.cpp only instantiate Boost's own sources; tests and benchmarks are not linted.
find src -name '*.cpp' ! -name '*_test.cpp' ! -name asio_impl.cpp ! -name beast_impl.cpp ! -name asio_ssl_impl.cpp -print0 |
  { xargs -0 -n 2 -P "$(nproc)" clang-tidy -p build/release --quiet 2>&1 || true; } |
  { grep -v -E '^[0-9]+ warnings generated|^Suppressed|^Use -header-filter|^$' || true; } > build/clang-tidy.log
if grep -q -E 'error:|warning:' build/clang-tidy.log; then
  cat build/clang-tidy.log
  echo "clang-tidy: findings above" >&2
  exit 1
fi
echo "clang-tidy: clean ($(find src -name '*.cpp' ! -name '*_test.cpp' ! -name asio_impl.cpp ! -name beast_impl.cpp ! -name asio_ssl_impl.cpp | wc -l) files)"
