"""The private PostgreSQL cluster of tests/postgres and its test data.

One throw-away cluster (initdb in a temporary folder owned by the `postgres` user, since
PostgreSQL refuses to run as root) listens on a free TCP port of 127.0.0.1 and on a unix socket
in that folder. The expected data always comes from `psql` on the unix socket, with the session
settings Sluice uses, so PostgreSQL's own text output is the baseline. The PostgreSQL binaries
are taken from $PG_BINDIR, by default /usr/lib/postgresql/15/bin.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
DB_NAME = "sluice_test"

# The session settings Sluice gives every connection, for psql baselines.
SLUICE_PGOPTIONS = ("-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres "
                    "-c extra_float_digits=1 -c bytea_output=hex")

BIG_ROWS = 1_000_000


# --------------------------------------------------------------------------------------------
# The private PostgreSQL cluster
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgCluster:
    """A private cluster in `dir` (owned by postgres): data in dir/data, the unix socket in dir,
    the server log in dir/postgres.log."""

    def __init__(self) -> None:
        assert (PG_BINDIR / "initdb").is_file(), (
            f"PostgreSQL server binaries not found in {PG_BINDIR} (apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="sluice-pgtest-", dir="/tmp"))
        owner = pwd.getpwnam(PG_USER)
        os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self.running = False

    # -- running PostgreSQL's own tools as the postgres user --------------------------------

    def _as_postgres(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        result = subprocess.run(["runuser", "-u", PG_USER, "--", *args], capture_output=True,
                                timeout=timeout, cwd=self.dir, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, (
            f"{' '.join(args)} exited with {result.returncode}\n"
            f"stdout: {result.stdout.decode(errors='replace')}\n"
            f"stderr: {result.stderr.decode(errors='replace')}\n{self.log_tail()}")
        return result

    def initdb(self) -> None:
        self._as_postgres(str(PG_BINDIR / "initdb"), "-D", str(self.data), "-U", PG_USER,
                          "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
                          timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c max_connections=200 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c shared_buffers=128MB")
        self._as_postgres(str(PG_BINDIR / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                          "-w", "-t", "60", "-o", options, "start", timeout=90)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m MODE` (smart, fast or immediate); waits until it is down."""
        self._as_postgres(str(PG_BINDIR / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                          "-t", "60", "stop", timeout=90)
        self.running = False

    def restart(self) -> None:
        """Starts the stopped cluster again, same port and socket folder; returns once it
        accepts connections."""
        self.start()
        deadline = time.monotonic() + 30
        while True:
            ok = subprocess.run([str(PG_BINDIR / "pg_isready"), "-h", str(self.dir), "-p",
                                 str(self.port), "-d", DB_NAME, "-U", PG_USER],
                                capture_output=True).returncode == 0
            if ok:
                return
            assert time.monotonic() < deadline, f"PostgreSQL not ready\n{self.log_tail()}"
            time.sleep(0.05)

    def destroy(self) -> None:
        if self.running:
            try:
                self.stop("immediate")
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text("utf-8", "replace").splitlines()[-lines:]
        except OSError:
            return "(no PostgreSQL log)"
        return f"--- PostgreSQL log ({self.log}) ---\n" + "\n".join(text)

    # -- clients ------------------------------------------------------------------------------

    def conninfo(self, dbname: str = DB_NAME) -> str:
        """The key=value string Sluice gets: the unix socket in our folder."""
        return f"host={self.dir} port={self.port} user={PG_USER} dbname={dbname}"

    def tcp_url(self, dbname: str = DB_NAME) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = DB_NAME, timeout: float = 120.0,
             check: bool = True) -> bytes:
        """Runs SQL with psql on the unix socket, with Sluice's session settings; unaligned,
        tuples only, stdout as bytes (COPY ... TO STDOUT writes its data there)."""
        env = dict(os.environ, PGOPTIONS=SLUICE_PGOPTIONS, PGCLIENTENCODING="UTF8",
                   PGCONNECT_TIMEOUT="5")
        result = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir),
             "-p", str(self.port), "-U", PG_USER, "-d", dbname, "-f", "-"],
            input=sql.encode("utf-8"), capture_output=True, timeout=timeout, env=env)
        if check:
            assert result.returncode == 0, (
                f"psql failed ({result.returncode}) on {sql[:300]!r}\n"
                f"{result.stderr.decode(errors='replace')}")
        return result.stdout

    def scalar(self, sql: str) -> str:
        return self.psql(sql).decode("utf-8").strip()

    def copy_csv(self, select: str) -> bytes:
        """PostgreSQL's own CSV of a query (header included, LF line ends)."""
        return self.psql(f"COPY ({select}) TO STDOUT (FORMAT csv, HEADER)")

    def connect(self, dbname: str = DB_NAME):
        """A psycopg2 connection on the unix socket with Sluice's session settings: an
        independent client for typed values and COPY FROM STDIN (autocommit off: a
        transaction, so temporary tables live until close)."""
        import psycopg2  # Debian's python3-psycopg2 (scripts/install-deps.sh)

        return psycopg2.connect(host=str(self.dir), port=self.port, user=PG_USER,
                                dbname=dbname, options=SLUICE_PGOPTIONS,
                                client_encoding="UTF8", connect_timeout=5)


_clusters: list[PgCluster] = []


@atexit.register
def _destroy_leftover_clusters() -> None:  # e.g. after a KeyboardInterrupt in the setup
    for cluster in _clusters:
        cluster.destroy()


@contextlib.contextmanager
def loaded_cluster() -> Iterator[PgCluster]:
    """A new private cluster with the test data loaded (all_types, t, big), destroyed at the end
    whatever happened."""
    cluster = PgCluster()
    _clusters.append(cluster)
    try:
        cluster.initdb()
        cluster.start()
        cluster.psql(f"CREATE DATABASE {DB_NAME}", dbname="postgres")
        cluster.psql(all_types_sql())
        cluster.psql(big_table_sql(), timeout=300)
        yield cluster
    finally:
        # A test may have left the server stopped or a Sluice mid-query: immediate is fine.
        if cluster.running:
            try:
                cluster.stop("fast")
            except AssertionError:
                pass
        cluster.destroy()
        _clusters.remove(cluster)


# --------------------------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------------------------

# Every column of all_types with its SQL type and the values rows take, as SQL literals. Row 1
# is NULL in every column but id; rows 2..N cycle through each list (a column's list plus one
# NULL), each column with its own offset, so every value meets many others.
ALL_TYPES_COLUMNS: list[tuple[str, str, list[str]]] = [
    ("c_int2", "int2", ["-32768", "32767", "0", "-1", "42"]),
    ("c_int4", "int4", ["-2147483648", "2147483647", "0", "7", "-123456"]),
    ("c_int8", "int8", ["-9223372036854775808", "9223372036854775807", "0",
                        "9007199254740993", "-9007199254740993", "1"]),
    ("c_numeric", "numeric", [
        "'NaN'", "'12345678901234567890.123456789'", "'-12345678901234567890.123456789'",
        "'-42.50'", "'Infinity'", "'-Infinity'", "'0'", "'0.000000000000000000000000000001'",
        "'1e100'", "'-0.5'", "'100'", "'3.14159265358979323846264338327950288'"]),
    ("c_float4", "float4", [
        "'NaN'", "'Infinity'", "'-Infinity'", "'1.5'", "'3.4028235e38'", "'1e-45'", "'-0'",
        "'0.1'", "'-123.456'", "'16777217'"]),
    ("c_float8", "float8", [
        "'NaN'", "'Infinity'", "'-Infinity'", "'1e-320'", "'0.1'", "'1e20'",
        "'-1.7976931348623157e308'", "'123456.789'", "'-0'", "'2.2250738585072014e-308'",
        "'5e-324'", "'1'"]),
    ("c_bool", "bool", ["true", "false"]),
    ("c_text", "text", [
        "'plain'", "'comma, inside'", "'say \"hi\" twice \"\"'", "E'cr\\rhere'",
        "E'lf\\nhere'", "E'crlf\\r\\nhere'", "E'tab\\there'", "E'back\\\\slash'",
        "'non-ASCII: äöü ß café Ελληνικά 日本語'", "'emoji 😀🎉👩‍👩‍👧'", "''", "' leading and trailing '",
        "E'\\\\N'", "'NULL'", "E'\\\\x41'", "E'ctl \\x01 \\x7f ' || chr(11) || chr(12) || chr(8)",
        "E'line1\\n\\nline3\\n'", "'\"'", "','", "repeat('long,\"text\" ', 400)", "E'\\\\'",
        "E'trailing backslash\\\\'", "E'\\r'", "E'\\n'", "E'\\t'", "'a\"b,c\r\nd'", "'€'",
        "E'\\\\.'", "'=cmd|'' /C calc''!A0'", "'DE'' OR ''1''=''1'", "'100% _sure_'",
        "'%'", "'_underscore first'"]),
    ("c_varchar", "varchar(20)", ["'short'", "''", "'exactly twenty chars'", "'ünïcödé'",
                                  "'a,b'", "'x\"y'"]),
    ("c_char", "char(5)", ["'ab'", "''", "'abcde'", "'é'", "' x'"]),
    ("c_date", "date", ["'2024-02-29'", "'0044-03-15 BC'", "'infinity'", "'-infinity'",
                        "'1970-01-01'", "'9999-12-31'", "'4713-01-01 BC'", "'5874897-12-31'"]),
    ("c_timestamp", "timestamp", [
        "'2024-01-02 03:04:05.123456'", "'1999-12-31 23:59:59'", "'0001-01-01 00:00:00 BC'",
        "'infinity'", "'-infinity'", "'2000-01-01 00:00:00.5'", "'294276-12-31 23:59:59.999999'",
        "'1900-02-28 12:00:00.000001'"]),
    ("c_timestamptz", "timestamptz", [
        "'2024-06-01 12:00:00+02'", "'2024-12-31 23:59:59.999999-08'",
        "'1900-01-01 00:00:00+05:30'", "'0100-01-01 00:00:00+00 BC'", "'infinity'",
        "'-infinity'", "'2038-01-19 03:14:08.1+00'", "'2024-03-31 02:30:00 Europe/Berlin'",
        "'2024-11-03 01:30:00 America/New_York'", "'1970-01-01 00:00:00+14'"]),
    ("c_interval", "interval", [
        "'-1 years -2 mons +3 days -04:05:06.789'", "'1 mon 2 days 03:04:05'", "'0'",
        "'-00:00:01'", "'178000000 years'", "'1 day -1 second'", "'@ 3 hours'",
        "'0.000001 seconds'", "'-2147483648 days'"]),
    ("c_uuid", "uuid", ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                        "'00000000-0000-0000-0000-000000000000'",
                        "'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'",
                        "'{12345678-1234-1234-1234-123456789abc}'"]),
    ("c_json", "json", [
        """'{"a": 1, "b": [1, 2, {"c": null}]}'""", """'"string with \\u00e9 escape"'""",
        "'[]'", "'123.456e10'", "'null'", """'{"dup": 1, "dup": 2}'""", "'true'",
        """'  {"ws" :  1 ,  "nl": "x" }  '""", """'{"nul": "\\u0000", "q": "\\"", "bs": "\\\\"}'""",
        """'{"big": 12345678901234567890123, "neg": -0.0, "exp": 1E+2}'""",
        """'{"deep": [[[[[[[[[[{"x": "y"}]]]]]]]]]]}'""", """E'{"lf": "a\\\\nb", "t": "\\\\t"}'"""]),
    ("c_jsonb", "jsonb", [
        """'{"nested": {"k": [1, "two", {"three": 3.0}]}, "u": "\\u00e9\\ud83d\\ude00"}'""",
        """'"\\u2028 line sep \\u2029"'""", """'{"tab": "a\\tb", "cr": "\\r", "ctl": "\\u0001"}'""",
        "'[]'", "'{}'", "'null'", "'-0.0'", "'1.000'", """'{"b": 1, "a": 2, "aa": [true, false]}'""",
        """'{"quote": "say \\"hi\\"", "slash": "a\\\\/b", "comma": "x,y"}'""",
        "'12345678901234567890.12345678901234567890'", """'["😀", "日本", "é"]'"""]),
    ("c_bytea", "bytea", [
        "'\\x00010203ff'", "'\\x'", "'\\x5c'", "'\\x000d0a2c22'",
        "decode(repeat('ab00', 500), 'hex')", "'\\xdeadbeef'", "convert_to('héllo', 'UTF8')"]),
    ("c_int4_arr", "int4[]", ["'{1,2,3}'", "'{NULL,1}'", "'{}'", "'{{1,2},{3,4}}'",
                              "'[0:1]={5,6}'", "'{-2147483648,2147483647}'"]),
    ("c_text_arr", "text[]", [
        """'{"a,b","c\\"d",NULL,"NULL",""}'""", """'{"with space","back\\\\slash"}'""",
        "'{é,😀}'", "'{}'", """ARRAY[E'line\\nbreak', E'tab\\t', 'x''y', '{braces}']""",
        """'{{a,b},{c,d}}'"""]),
]
ALL_TYPES_ROWS = 300

# How each column's values appear in JSON Lines (by the column's SQL type).
JSON_INT_COLUMNS = {"id", "c_int2", "c_int4", "c_int8"}
JSON_NUMBER_COLUMNS = {"c_numeric", "c_float4", "c_float8"}
JSON_BOOL_COLUMNS = {"c_bool"}
JSON_EMBEDDED_COLUMNS = {"c_json", "c_jsonb"}
ALL_TYPES_NAMES = ["id"] + [name for name, _, _ in ALL_TYPES_COLUMNS]


def all_types_sql() -> str:
    columns = ",\n  ".join(f"{name} {sqltype}" for name, sqltype, _ in ALL_TYPES_COLUMNS)
    lines = [f"CREATE TABLE all_types (\n  id int4 PRIMARY KEY,\n  {columns}\n);"]
    names = ", ".join(ALL_TYPES_NAMES)
    values_rows = ["(1, " + ", ".join("NULL" for _ in ALL_TYPES_COLUMNS) + ")"]
    for row_id in range(2, ALL_TYPES_ROWS + 1):
        values = [str(row_id)]
        for index, (_, sqltype, choices) in enumerate(ALL_TYPES_COLUMNS):
            slot = (row_id + index * 7) % (len(choices) + 1)
            values.append("NULL" if slot == len(choices) else f"({choices[slot]})::{sqltype}")
        values_rows.append("(" + ", ".join(values) + ")")
    lines.append(f"INSERT INTO all_types ({names}) VALUES\n" + ",\n".join(values_rows) + ";")
    # A tiny table for runtime errors and a mutable-looking one injection must not touch.
    lines.append("CREATE TABLE t AS SELECT g AS id, 'v' || g AS v FROM generate_series(1, 50) g;")
    lines.append("ANALYZE;")
    return "\n".join(lines)


def big_table_sql() -> str:
    """BIG_ROWS rows, ~86 bytes of CSV each; notes have commas, NULLs and empty strings."""
    return f"""
CREATE TABLE big (
  id int8 PRIMARY KEY, k int4 NOT NULL, payload text NOT NULL, amount numeric(12,2),
  ts timestamptz NOT NULL, note text);
INSERT INTO big
SELECT g, g % 1000, md5(g::text), ((g * 37) % 100000) / 100.0,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second 1 millisecond',
       CASE WHEN g % 7 = 0 THEN 'a,b' WHEN g % 11 = 0 THEN NULL WHEN g % 13 = 0 THEN ''
            ELSE 'n' || g END
FROM generate_series(1, {BIG_ROWS}) g;
ANALYZE big;
"""


# The queries of the datasets the tests use.
ALL_TYPES_QUERY = "SELECT * FROM all_types ORDER BY id"
BIG_QUERY = "SELECT * FROM big ORDER BY id"
# Streams rows as long as it is read (generate_series in the select list does not materialize).
ENDLESS_QUERY = ("SELECT g, repeat('x', 100) AS pad "
                 "FROM (SELECT generate_series(1, 1000000000) AS g) AS s")


@dataclass
class BigBaseline:
    data: bytes            # psql's CSV with header, LF line ends
    header: bytes
    offsets: list[int]     # offsets[i] = start of the line of id i + 1; last = len(data)

    @classmethod
    def from_csv(cls, data: bytes) -> "BigBaseline":
        """Indexes psql's CSV of the whole big table: where each id's line starts."""
        header_end = data.index(b"\n") + 1
        offsets = [header_end]
        find = data.find
        pos = header_end
        while True:
            pos = find(b"\n", pos) + 1
            if pos == 0 or pos >= len(data):
                break
            offsets.append(pos)
        offsets.append(len(data))
        assert len(offsets) == BIG_ROWS + 1, len(offsets)
        return cls(data, data[:header_end], offsets)

    def slice_lf(self, first_id: int, end_id: int) -> bytes:
        """The lines of ids first_id <= id < end_id (LF line ends, no header)."""
        return self.data[self.offsets[first_id - 1]:self.offsets[end_id - 1]]


# --------------------------------------------------------------------------------------------
# Sluice configs on the cluster
# --------------------------------------------------------------------------------------------

def source_toml(name: str, pg: PgCluster, pool_size: int = 20, pool_timeout_ms: int = 5000,
                statement_timeout_ms: int = 0, url: str | None = None) -> str:
    return (f'[sources.{name}]\nkind = "postgres"\nurl = "{url or pg.conninfo()}"\n'
            f"pool_size = {pool_size}\npool_timeout_ms = {pool_timeout_ms}\n"
            f"statement_timeout_ms = {statement_timeout_ms}\n\n")


def dataset_toml(name: str, source: str, query: str, filters: str = "") -> str:
    escaped = query.replace("\\", "\\\\").replace('"', '\\"')
    return f'[[datasets]]\nname = "{name}"\nsource = "{source}"\nquery = "{escaped}"\n{filters}\n'


ALL_TYPES_FILTERS = """
[datasets.filters.id]
type = "int"
operators = ["eq", "in", "lt", "lte", "gt", "gte", "ne"]

[datasets.filters.c_text]
type = "text"
operators = ["eq", "in", "ne", "prefix", "is_null"]

[datasets.filters.c_varchar]
type = "text"

[datasets.filters.c_timestamptz]
type = "timestamp"
operators = ["lt", "gte"]

[datasets.filters.c_date]
type = "date"
operators = ["eq", "lt", "gte"]

[datasets.filters.c_numeric]
type = "decimal"
operators = ["lt", "gte"]

[datasets.filters.c_bool]
type = "bool"
"""

BIG_FILTERS = """
[datasets.filters.id]
type = "int"
operators = ["eq", "in", "lt", "lte", "gt", "gte"]
"""


def standard_config(pg: PgCluster, server: str = "", pool_size: int = 20,
                    pool_timeout_ms: int = 5000, extra: str = "") -> str:
    """The usual datasets on one source `pg`: all_types, big, endless."""
    return (f"[server]\n{server}\n\n" + source_toml("pg", pg, pool_size, pool_timeout_ms)
            + dataset_toml("types", "pg", ALL_TYPES_QUERY, ALL_TYPES_FILTERS)
            + dataset_toml("big", "pg", BIG_QUERY, BIG_FILTERS)
            + dataset_toml("endless", "pg", ENDLESS_QUERY) + extra)
