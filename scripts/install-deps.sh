#!/usr/bin/env bash
# Installs every Debian 12 package that Sluice's build, tests, benchmarks and demo need.
# Idempotent: apt-get skips what is already installed. Run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  clang clang-tidy clang-format libclang-rt-14-dev
  # libraries (see README "Dependencies" for why each one is there)
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libtomlplusplus-dev libcli11-dev
  libssl-dev libpugixml-dev zlib1g-dev libzstd-dev libdeflate-dev libisal-dev libpq-dev libcctz-dev tzdata
  libgtest-dev libgmock-dev libbenchmark-dev
  # test and benchmark peers; python3-pytest-timeout: pytest.ini's per-test timeout, so a hung
  # test fails instead of blocking CI
  sqlite3 curl procps python3 python3-pytest python3-pytest-timeout python3-requests gzip zstd
  # wrk: HTTP load generator (requests/s of 200-byte ranges in bench/files_vs_nginx.py)
  wrk
  # PostgreSQL server and psql: the tests start a private cluster; psql is the COPY baseline
  postgresql postgresql-client
  # benchmark peer: the Flask + psycopg2 streaming export under gunicorn (bench/pg_vs_flask.py);
  # psycopg2 is also the tests' independent reader of PostgreSQL (typed values, COPY FROM STDIN)
  python3-flask gunicorn python3-psycopg2
  # archives: the ZIP readers the tests check every archive with (Info-ZIP, 7-Zip, libarchive's
  # bsdtar, Java's ZipInputStream), and the benchmark peers (nginx, Node's archiver from npm)
  unzip p7zip-full libarchive-tools default-jdk-headless nginx-light nodejs
  # S3: AWS's own client (interoperability tests, the transfer benchmark's peer) and botocore,
  # the library it is built on, which recomputes Sluice's signatures independently
  awscli python3-botocore
  # openssl: the S3 tests make a private CA and a certificate for the HTTPS endpoint
  openssl
  # background jobs: a real WebSocket client for the job event stream (tests/jobs)
  python3-websockets
)
# npm comes with some nodejs builds (NodeSource's provides it); Debian's own is a package.
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
