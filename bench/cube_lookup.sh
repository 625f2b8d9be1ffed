#!/usr/bin/env bash
# Single-record cube lookups over HTTP against nginx serving a 200-byte Range of a static file:
# the same load generator (wrk -t2 -c64, keep-alive, 5 interleaved rounds of 10 s), both with
# their access log written to a file. The cube is Cetus's sample as bench/cube_storage.py builds
# it (9,000 records of 38 bytes in 72 files); the lookup is one record of a file in the middle.
# Target: sluice >= 0.7x nginx requests/s, p99 < 5 ms.
#   bash bench/cube_lookup.sh [--sluice PATH] [more bench/http_vs_nginx.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
work=/tmp/sluice-bench/cube-storage
sluice=build/release/sluice
if [[ "${1:-}" == "--sluice" ]]; then sluice="$2"; shift 2; fi
SLUICE_BIN="$sluice" /usr/bin/python3 bench/cube_storage.py --work "$work" > /dev/null
exec /usr/bin/python3 bench/http_vs_nginx.py --sluice "$sluice" --sluice-config "$work/sluice.toml" \
  --sluice-path '/v1/cubes/cetus/Jun/Europe?category=Furniture&customer_segment=Home%20Office&sales_channel=Online' \
  --work /tmp/sluice-bench/cube-lookup "$@"
