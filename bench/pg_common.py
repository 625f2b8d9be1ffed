#!/usr/bin/python3
"""Shared helpers for the PostgreSQL benchmarks (bench/pg_*.py).

A private PostgreSQL 15 cluster lives in WORK/pg (owned by the `postgres` user, since PostgreSQL
refuses to run as root): data in WORK/pg/data, the unix socket in WORK/pg, the server log in
WORK/pg/postgres.log, a free TCP port of 127.0.0.1 (kept in WORK/pg/port so a later run reuses
the same cluster and port). Benchmark tables live in the database `bench`; a table is complete
when its comment says `sluice-bench orders rows=N complete` (set as the last step of
bench/pg_setup.py), anything else is regenerated.

Clients (psql, Sluice) reach the cluster over the unix socket with Sluice's session settings
(TimeZone=UTC, ISO dates, ...), so both produce PostgreSQL's text output for the same session.
"""

import contextlib
import os
import pwd
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402  (Server, /proc readers, table, median)

REPO = common.REPO
PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
DB_NAME = "bench"
DEFAULT_WORK = Path("/tmp/sluice-pg-bench")
MIB = 1024 * 1024
# The session settings Sluice gives its connections; psql gets the same through PGOPTIONS.
SLUICE_PGOPTIONS = ("-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres "
                    "-c extra_float_digits=1 -c bytea_output=hex")
ORDERS_COLUMNS = "id, created_at, email, country, status, amount, quantity, note"

log = common.log
median = common.median
table = common.table
percentile = common.percentile
proc_status = common.proc_status
proc_cpu_seconds = common.proc_cpu_seconds


def stage_binary(work, source=None):
    """Copies the sluice binary into WORK (common.stage_copy), so a rebuild of build/release
    during the run cannot change or break what is measured."""
    return common.stage_copy(common.binary(source), work, "sluice")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """The private cluster in WORK/pg; `ensure_running()` creates or reuses it."""

    def __init__(self, work=DEFAULT_WORK):
        self.work = Path(work)
        self.dir = self.work / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port_file = self.dir / "port"
        self.port = None

    # -- PostgreSQL's own tools, as the postgres user ------------------------------------------

    def _as_postgres(self, *args, timeout=120.0, check=True):
        result = subprocess.run(["runuser", "-u", PG_USER, "--", *map(str, args)],
                                capture_output=True, timeout=timeout, cwd=self.dir,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            sys.exit(f"{' '.join(map(str, args))} exited with {result.returncode}\n"
                     f"{result.stdout.decode(errors='replace')}"
                     f"{result.stderr.decode(errors='replace')}\n{self.log_tail()}")
        return result

    def log_tail(self, lines=20):
        try:
            text = self.log.read_text("utf-8", "replace").splitlines()[-lines:]
        except OSError:
            return "(no PostgreSQL log)"
        return f"--- {self.log} ---\n" + "\n".join(text)

    def running(self):
        if not (self.data / "PG_VERSION").is_file():
            return False
        return self._as_postgres(PG_BINDIR / "pg_ctl", "-D", self.data, "status",
                                 check=False, timeout=30).returncode == 0

    def postmaster_pid(self):
        with open(self.data / "postmaster.pid") as pid_file:
            return int(pid_file.readline())

    def ensure_running(self):
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work, 0o755)
        self.dir.mkdir(exist_ok=True)
        owner = pwd.getpwnam(PG_USER)
        os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        os.chmod(self.dir, 0o755)
        if not (self.data / "PG_VERSION").is_file():
            log(f"initdb {self.data}")
            self._as_postgres(PG_BINDIR / "initdb", "-D", self.data, "-U", PG_USER,
                              "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        if self.running():
            # postmaster.pid line 4 is the port the running server listens on
            self.port = int((self.data / "postmaster.pid").read_text().splitlines()[3])
            return self
        self.port = free_port()
        # Benchmark settings: durability off (the data is regenerated at will), WAL skipped for
        # tables created in the loading transaction, room for big loads without checkpoints.
        options = (f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c max_connections=100 "
                   "-c shared_buffers=256MB -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 "
                   "-c max_wal_size=8GB -c checkpoint_timeout=30min "
                   "-c maintenance_work_mem=512MB -c work_mem=64MB")
        log(f"starting PostgreSQL on 127.0.0.1:{self.port} and {self.dir}")
        self._as_postgres(PG_BINDIR / "pg_ctl", "-D", self.data, "-l", self.log, "-w",
                          "-t", "60", "-o", options, "start", timeout=90)
        self.port_file.write_text(f"{self.port}\n")
        if self.scalar(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'",
                       db="postgres") != "1":
            self.psql(f"CREATE DATABASE {DB_NAME}", db="postgres")
        return self

    def stop(self):
        if self.running():
            log("stopping PostgreSQL")
            self._as_postgres(PG_BINDIR / "pg_ctl", "-D", self.data, "-m", "fast", "-w",
                              "-t", "60", "stop", timeout=90)

    # -- clients --------------------------------------------------------------------------------

    def conninfo(self, db=DB_NAME):
        """The key=value string for Sluice and psycopg2: the unix socket in WORK/pg."""
        return f"host={self.dir} port={self.port} user={PG_USER} dbname={db}"

    def psql_env(self, appname="pg_bench_psql"):
        return dict(os.environ, PGOPTIONS=SLUICE_PGOPTIONS, PGCLIENTENCODING="UTF8",
                    PGHOST=str(self.dir), PGPORT=str(self.port), PGUSER=PG_USER,
                    PGDATABASE=DB_NAME, PGAPPNAME=appname, PGCONNECT_TIMEOUT="10")

    def psql_argv(self, sql):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]

    def psql(self, sql, db=DB_NAME, timeout=600.0):
        env = self.psql_env()
        env["PGDATABASE"] = db
        result = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                 "-f", "-"], input=sql.encode(), capture_output=True,
                                timeout=timeout, env=env)
        if result.returncode != 0:
            sys.exit(f"psql failed ({result.returncode}) on {sql[:300]!r}\n"
                     f"{result.stderr.decode(errors='replace')}")
        return result.stdout

    def scalar(self, sql, db=DB_NAME):
        return self.psql(sql, db=db).decode().strip()

    def table_rows(self, name):
        """Row count of a complete benchmark table `name` (from its comment), or None."""
        comment = self.scalar(
            f"SELECT obj_description(to_regclass('{name}'), 'pg_class')")
        prefix = "sluice-bench orders rows="
        if comment.startswith(prefix) and comment.endswith(" complete"):
            return int(comment[len(prefix):-len(" complete")])
        return None

    def table_bytes(self, name):
        return int(self.scalar(f"SELECT pg_total_relation_size('{name}')"))

    # -- CPU of the server processes ----------------------------------------------------------

    def cpu_snapshot(self):
        """(CPU s of every live child of the postmaster by pid, CPU s of the postmaster's
        reaped children): a backend that exits between two snapshots shows up in the second."""
        postmaster = self.postmaster_pid()
        live = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                live[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{postmaster}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        return live, reaped


def backend_cpu(before, after, pids):
    """CPU seconds the backends `pids` used between two cpu_snapshot()s: the /proc delta of
    a backend still alive, else (it exited: psql's backend) the growth of the postmaster's
    reaped-children time."""
    (live0, reaped0), (live1, reaped1) = before, after
    total = 0.0
    gone = False
    for pid in pids:
        if pid in live1:
            total += live1[pid] - live0.get(pid, 0.0)
        else:
            gone = True
    if gone:
        total += reaped1 - reaped0
    return total


def postgres_cpu(before, after):
    """CPU seconds all PostgreSQL server processes used between two cpu_snapshot()s: live
    children's /proc deltas plus the reaped children's growth (a backend of a connection that
    closed in between, e.g. one per request)."""
    (live0, reaped0), (live1, reaped1) = before, after
    return sum(cpu - live0.get(pid, 0.0) for pid, cpu in live1.items()) + (reaped1 - reaped0)


def ensure_orders(cluster, name, rows, primary_key=True, timeout=7200):
    """Creates (or reuses) the table `name` with `rows` generated orders; returns seconds spent
    (0 when reused)."""
    if cluster.table_rows(name) == rows:
        return 0.0
    log(f"generating {name}: {rows:,} rows (roughly 1-2 min per 10M rows on 2 busy cores)...")
    start = time.monotonic()
    cluster.psql(orders_sql(name, rows, primary_key), timeout=timeout)
    log(f"{name}: VACUUM ANALYZE")
    cluster.psql(f"VACUUM ANALYZE {name}", timeout=timeout)
    cluster.psql(f"COMMENT ON TABLE {name} IS 'sluice-bench orders rows={rows} complete'")
    spent = time.monotonic() - start
    log(f"{name}: {rows:,} rows, {cluster.table_bytes(name) / MIB:,.0f} MiB, {spent:.0f} s")
    return spent


def orders_sql(name, rows, primary_key=True):
    """One transaction: CREATE TABLE + INSERT ... generate_series (WAL skipped under
    wal_level=minimal). The values follow `sluice demo`'s orders: 2% NULL emails, ~45% notes,
    every 211th note one of the values that break naive CSV writers (quotes, commas, CR, LF,
    CRLF, tabs, '' vs NULL, the text 'NULL', non-ASCII, a 2 KB note, ...). Deterministic: the
    pseudo-random parts come from hashint8extended(id, k)."""
    long_note = ("repeat('Part of a very long delivery note that goes on and on so a single "
                 "cell is big. ', 27)")
    hard = ", ".join([
        "'Ring twice, then leave it with the neighbour'", "'He said \"hi\"'",
        "E'First line\\nsecond line'", "E'First line\\r\\nsecond line'",
        "E'Before a lone CR\\rafter it'", "E'Tab\\tseparated\\tnote'",
        "'  leading and trailing spaces  '", "''", "'Müller · Łódź · 東京 · Привет'",
        "'📦🚚 on its way'", "E'C:\\\\orders\\\\inbox'", "'00123'", "'=SUM(A1:A9)'", long_note,
        "E'Fragile, \"glass\"\\r\\nhandle with care'", "'NULL'", "'{\"gift\": true}'",
        "'+49 30 1234567'"])
    plain = ", ".join(f"'{n}'" for n in [
        "Leave at the door", "Gift wrap please", "Call before delivery", "Deliver after 5 pm",
        "Use the back entrance", "No plastic please", "Fragile", "Express shipping",
        "Leave with the neighbour", "Invoice to the company address", "Regular customer",
        "Replacement order", "Second delivery attempt", "Hand to Frau Müller at reception",
        "Ask for José", "Zoë will pick it up", "Deliver to Søren", "Attn: Łukasz Wąsik",
        "Birthday present", "Do not bend"])
    first = ", ".join(f"'{n}'" for n in [
        "anna", "ben", "carla", "david", "emma", "felix", "greta", "hannah", "ivan", "julia",
        "karl", "lena", "marco", "nina", "oscar", "paula", "rosa", "sven", "tanja", "umar",
        "vera", "xenia", "yusuf", "zoe", "liam", "olivia", "noah", "sofia", "lucas", "mia",
        "jan", "ingrid"])
    last = ", ".join(f"'{n}'" for n in [
        "mueller", "schmidt", "dubois", "martin", "smith", "jones", "vandijk", "garcia",
        "rossi", "kowalski", "nowak", "andersson", "tanaka", "sato", "silva", "santos",
        "sharma", "patel", "brown", "wilson", "keller", "huber", "peeters", "jensen", "hansen",
        "virtanen", "moreau", "bianchi", "lopez", "taylor", "novak", "fischer"])
    # weights of `sluice demo` divided by 5 (countries) / 2 (statuses), expanded into arrays
    countries = [("DE", 30), ("US", 30), ("FR", 22), ("GB", 20), ("NL", 12), ("ES", 11),
                 ("IT", 11), ("PL", 9), ("SE", 6), ("JP", 7), ("BR", 6), ("IN", 6), ("CA", 6),
                 ("AU", 5), ("CH", 5), ("AT", 4), ("BE", 4), ("DK", 2), ("NO", 2), ("FI", 2)]
    statuses = [("delivered", 25), ("shipped", 6), ("paid", 5), ("pending", 4),
                ("cancelled", 6), ("refunded", 4)]
    country_array = ", ".join(f"'{c}'" for c, w in countries for _ in range(w))
    status_array = ", ".join(f"'{s}'" for s, w in statuses for _ in range(w))
    n_country = sum(w for _, w in countries)
    n_status = sum(w for _, w in statuses)
    step = max(1, 730 * 86400 // max(rows, 1))
    pk = f"ALTER TABLE {name} ADD PRIMARY KEY (id);" if primary_key else ""
    return f"""
SET client_min_messages = warning;
BEGIN;
DROP TABLE IF EXISTS {name};
CREATE TABLE {name} (
  id bigint NOT NULL,
  created_at timestamptz NOT NULL,
  email text,
  country text NOT NULL,
  status text NOT NULL,
  amount numeric(12,2) NOT NULL,
  quantity int NOT NULL,
  note text
);
INSERT INTO {name}
SELECT g,
  timestamptz '2023-07-01 00:00:00+00'
    + make_interval(secs => (g - 1) * {step} + h1 % {step}),
  CASE WHEN g % 50 = 17 THEN NULL ELSE
    (CASE WHEN h2 % 10 < 6 THEN fn || '.' || ln || CASE WHEN h2 % 10 >= 3
                                                        THEN (1 + h3 % 99)::text ELSE '' END
          WHEN h2 % 10 = 6 THEN left(fn, 1) || '.' || ln
          WHEN h2 % 10 = 7 THEN ln || '.' || fn
          ELSE fn || (1 + h3 % 999)::text END)
    || CASE WHEN g % 23 = 5 THEN '+' || (ARRAY['shop', 'orders', 'newsletter', '2024'])[1 + h3 % 4]
            ELSE '' END
    || CASE WHEN h4 % 10 < 7 THEN '@example.com' WHEN h4 % 10 < 9 THEN '@example.org'
            ELSE '@example.net' END
  END,
  (ARRAY[{country_array}])[1 + h4 % {n_country}],
  (ARRAY[{status_array}])[1 + h5 % {n_status}],
  ((1234 + (f * f / 1000000 * f / 1000000) * (499999 - 1234) / 1000000) / 100.0)::numeric(12,2),
  CASE WHEN h6 % 100 < 50 THEN 1 WHEN h6 % 100 < 70 THEN 2 WHEN h6 % 100 < 80 THEN 3
       ELSE 4 + h7 % 17 END,
  CASE WHEN g <= 100 AND g % 4 = 2 AND g / 4 < 18 THEN (ARRAY[{hard}])[1 + g / 4]
       WHEN g > 100 AND g % 211 = 0 THEN (ARRAY[{hard}])[1 + (g / 211) % 18]
       WHEN h7 % 100 >= 55 THEN (ARRAY[{plain}])[1 + h8 % 20]
       ELSE NULL END
FROM generate_series(1, {rows}::bigint) AS g
CROSS JOIN LATERAL (SELECT
  hashint8extended(g, 1) & 2147483647 AS h1, hashint8extended(g, 2) & 2147483647 AS h2,
  hashint8extended(g, 3) & 2147483647 AS h3, hashint8extended(g, 4) & 2147483647 AS h4,
  hashint8extended(g, 5) & 2147483647 AS h5, hashint8extended(g, 6) & 2147483647 AS h6,
  hashint8extended(g, 7) & 2147483647 AS h7, hashint8extended(g, 8) & 2147483647 AS h8,
  (hashint8extended(g, 9) & 2147483647) % 1000000 AS f) AS h
CROSS JOIN LATERAL (SELECT (ARRAY[{first}])[1 + h.h2 / 10 % 32] AS fn,
                           (ARRAY[{last}])[1 + h.h3 / 1000 % 32] AS ln) AS names;
{pk}
COMMIT;
"""


def write_config(path, cluster, datasets, server_extra="", pool_size=8):
    """A sluice.toml with a source per copy_format the datasets use (auto, text, csv) on the
    cluster and the given datasets: {dataset name: (copy_format, table)}."""
    lines = ["[server]", 'listen = "127.0.0.1:0"', server_extra, ""]
    for fmt in sorted({"auto"} | {f for f, _ in datasets.values()}):
        lines += [f"[sources.pg_{fmt}]", 'kind = "postgres"', f'url = "{cluster.conninfo()}"',
                  f"pool_size = {pool_size}", f'copy_format = "{fmt}"', ""]
    for name, (fmt, tbl) in datasets.items():
        lines += ["[[datasets]]", f'name = "{name}"', f'source = "pg_{fmt}"',
                  f'query = "SELECT {ORDERS_COLUMNS} FROM {tbl}"', ""]
    Path(path).write_text("\n".join(lines))
    return Path(path)


def start_sluice(binary, config, log_file):
    return common.Server(binary, ["serve", "--config", str(config)], log_file=log_file)


def wait_idle(server, timeout=15.0):
    """Waits until the server reports no active stream (a cancelled COPY has ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if server.metrics().get("sluice_active_streams", 0) == 0:
                return True
        time.sleep(0.05)
    return False


def machine_line(sluice):
    return common.machine_line(sluice)


def cluster_args(parser):
    parser.add_argument("--work", default=str(DEFAULT_WORK),
                        help=f"cluster, binary copy and logs (default {DEFAULT_WORK})")
    parser.add_argument("--bin", default=None, help="sluice binary (default build/release/sluice)")
    parser.add_argument("--stop-cluster", action="store_true",
                        help="stop the PostgreSQL cluster at the end")
