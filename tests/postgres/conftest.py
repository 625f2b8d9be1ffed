"""Fixtures for the PostgreSQL tests: a private PostgreSQL 15 cluster, the real `sluice`
binary, real clients and sockets.

The session starts one throw-away cluster (initdb in a temporary folder owned by the `postgres`
user, since PostgreSQL refuses to run as root), listening on a free TCP port of 127.0.0.1 and on
a unix socket in that folder, loads the test data once and stops the cluster at the end of the
session, whatever happened. Tests may stop it (immediate mode) and start it again on the same
port and folder.

Every test starts its own `sluice serve` with its own config (written to the test's tmp folder;
the server's stderr is kept next to it). The expected data always comes from `psql` on the unix
socket, with the session settings Sluice uses, so PostgreSQL's own text output is the baseline.

Run with Debian's Python (it has pytest and requests):

    /usr/bin/python3 -m pytest -q tests/postgres

The binary is $SLUICE_BIN, by default build/release/sluice. The PostgreSQL binaries are taken
from $PG_BINDIR, by default /usr/lib/postgresql/15/bin.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import io
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SLUICE_BIN = Path(os.environ.get("SLUICE_BIN", REPO / "build" / "release" / "sluice"))
PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
DB_NAME = "sluice_test"

# The session settings Sluice gives every connection, for psql baselines.
SLUICE_PGOPTIONS = ("-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres "
                    "-c extra_float_digits=1 -c bytea_output=hex")

STOP_TIMEOUT_S = 15.0
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


_clusters: list[PgCluster] = []


@atexit.register
def _destroy_leftover_clusters() -> None:  # e.g. after a KeyboardInterrupt in the setup
    for cluster in _clusters:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """The session's private cluster with the test data loaded (all_types, t, big)."""
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


@pytest.fixture
def pg_up(pg) -> PgCluster:
    """The session cluster, started again if an earlier test left it stopped."""
    if not pg.running:
        pg.restart()
    return pg


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


@pytest.fixture(scope="session")
def all_types_baseline(pg) -> "CsvTable":
    """psql's CSV of all_types, parsed: header and rows with None for NULL."""
    return parse_csv(pg.copy_csv(ALL_TYPES_QUERY), line_end=b"\n")


@pytest.fixture(scope="session")
def big_baseline(pg) -> "BigBaseline":
    """psql's CSV of the whole big table, with an index of where each id's line starts."""
    data = pg.copy_csv(BIG_QUERY)
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
    return BigBaseline(data, data[:header_end], offsets)


@dataclass
class BigBaseline:
    data: bytes            # psql's CSV with header, LF line ends
    header: bytes
    offsets: list[int]     # offsets[i] = start of the line of id i + 1; last = len(data)

    def slice_lf(self, first_id: int, end_id: int) -> bytes:
        """The lines of ids first_id <= id < end_id (LF line ends, no header)."""
        return self.data[self.offsets[first_id - 1]:self.offsets[end_id - 1]]


# --------------------------------------------------------------------------------------------
# CSV parsing that keeps NULL (empty unquoted field) apart from "" (quoted empty field)
# --------------------------------------------------------------------------------------------

@dataclass
class CsvTable:
    header: list[str]
    rows: list[list[str | None]]


# First characters a spreadsheet evaluates: sluice's CSV formula guard (on by default) writes a
# "'" before text cells that start with one (numeric columns are exempt).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_unguard(field: str | None) -> str | None:
    """Undoes the formula guard. Exact for these tests' data: no stored value itself starts with
    "'" followed by a formula character (and psql's output never has the guard)."""
    if field is not None and field.startswith("'") and field[1:].startswith(FORMULA_START):
        return field[1:]
    return field


def parse_csv(data: bytes, line_end: bytes, unguard: bool = True) -> CsvTable:
    """Parses a whole CSV body twice: with the csv module (values) and with a strict state
    machine (raw bytes: an empty unquoted field is NULL, a quoted one is ''; every record must
    end with `line_end`, and no bare CR/LF may appear outside quotes). The two must agree.
    With `unguard`, the formula guard's "'" is removed so values compare with psql's."""
    text = data.decode("utf-8")
    strict = strict_csv_records(text, line_end.decode())
    module = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    assert len(module) == len(strict), (len(module), len(strict))
    for index, (fields, record) in enumerate(zip(module, strict)):
        assert [f if f is not None else "" for f in record] == fields, (
            f"record {index}: csv module {fields!r} vs strict parse {record!r}")
    assert strict, "no header"
    header = strict[0]
    assert all(name is not None for name in header), header
    for index, record in enumerate(strict[1:], 1):
        assert len(record) == len(header), f"record {index} has {len(record)} fields: {record!r}"
    records = [[csv_unguard(f) for f in r] for r in strict[1:]] if unguard else strict[1:]
    return CsvTable(list(header), records)


def strict_csv_records(text: str, line_end: str) -> list[list[str | None]]:
    records: list[list[str | None]] = []
    fields: list[str | None] = []
    i, n = 0, len(text)
    if n == 0:
        return records
    assert text.endswith(line_end), f"body does not end with {line_end!r}: {text[-40:]!r}"
    while i < n:
        if text[i] == '"':
            value = []
            i += 1
            while True:
                j = text.find('"', i)
                assert j >= 0, f"unterminated quoted field at {i}"
                value.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    value.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            fields.append("".join(value))
        else:
            j = i
            while j < n and text[j] not in ',\r\n"':
                j += 1
            assert j == n or text[j] != '"', f"quote inside an unquoted field at {j}"
            fields.append(text[i:j] if j > i else None)
            i = j
        if text.startswith(line_end, i):
            records.append(fields)
            fields = []
            i += len(line_end)
        elif i < n and text[i] == ",":
            i += 1
            if text.startswith(line_end, i):  # an empty unquoted last field
                fields.append(None)
                records.append(fields)
                fields = []
                i += len(line_end)
        else:
            raise AssertionError(
                f"after a field at {i}: expected ',' or {line_end!r}, got {text[i:i + 20]!r}")
    assert not fields
    return records


# --------------------------------------------------------------------------------------------
# Sluice
# --------------------------------------------------------------------------------------------

def sluice_bin() -> str:
    assert SLUICE_BIN.is_file() and os.access(SLUICE_BIN, os.X_OK), (
        f"sluice binary not found at {SLUICE_BIN}: build it with "
        "`cmake --preset release && ninja -C build/release sluice` or set SLUICE_BIN")
    return str(SLUICE_BIN)


def run_sluice(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sluice_bin(), *args], capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class SluiceServer:
    """One running `sluice serve`; stdout is read by a thread for the banner, stderr goes to a
    file shown when something goes wrong."""

    LISTENING = re.compile(r"listening on http://(\S+):(\d+)")

    def __init__(self, config: Path, log_path: Path, startup_timeout: float = 30.0):
        self.config = config
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sluice_bin(), "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL)
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.host, self.port = self._await_listening(startup_timeout)
        self.url = f"http://{self.host}:{self.port}"
        self.returncode: int | None = None

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _await_listening(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError(f"sluice did not listen within {timeout} s\n"
                                     f"{self.log_tail()}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                rc = self.proc.wait(timeout=5)
                raise AssertionError(f"sluice exited with {rc} before listening\n"
                                     f"stdout: {''.join(self.stdout_lines)}\n{self.log_tail()}")
            match = self.LISTENING.search(line)
            if match:
                return match.group(1), int(match.group(2))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            text = self.log_path.read_text("utf-8", "replace").splitlines()[-lines:]
        except OSError:
            text = []
        return f"--- stderr of sluice ({self.log_path}) ---\n" + "\n".join(text)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"sluice did not exit within {timeout} s of SIGTERM\n"
                                 f"{self.log_tail()}")
        self.returncode = rc
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def metrics(self) -> dict[str, float]:
        return metrics(self.url)

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, (
            f"sluice exited with {self.proc.returncode}\n{self.log_tail()}")


def metrics(url: str) -> dict[str, float]:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text[:300]
    values = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


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


@pytest.fixture
def start_sluice(tmp_path) -> Iterator[Callable[[str], SluiceServer]]:
    """Starts `sluice serve` with a config text; every server is stopped (SIGTERM, must exit
    0) at the end of the test."""
    servers: list[SluiceServer] = []

    def start(config_text: str, name: str = "sluice") -> SluiceServer:
        config = tmp_path / f"{name}.toml"
        config.write_text(config_text, "utf-8")
        server = SluiceServer(config, tmp_path / f"{name}.stderr.log")
        servers.append(server)
        return server

    yield start
    problems = []
    for server in servers:
        if server.returncode is not None:
            continue
        if server.proc.poll() is not None:
            problems.append(f"sluice died during the test with exit code "
                            f"{server.proc.returncode}\n{server.log_tail(8)}")
            continue
        try:
            rc = server.stop()
        except AssertionError as error:
            problems.append(str(error))
            continue
        if rc != 0:
            problems.append(f"sluice exited with {rc} after SIGTERM\n{server.log_tail(8)}")
    assert not problems, "\n".join(problems)


@pytest.fixture
def sluice(pg_up, start_sluice) -> SluiceServer:
    """A Sluice with the standard datasets (types, big, endless) on the session cluster."""
    return start_sluice(standard_config(pg_up))


# --------------------------------------------------------------------------------------------
# Raw HTTP
# --------------------------------------------------------------------------------------------

@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    sock: socket.socket
    buffered: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def raw_get(port: int, target: str, headers: dict[str, str] | None = None,
            rcvbuf: int | None = None, timeout: float = 10.0) -> RawResponse:
    """Sends a GET over a fresh socket; returns once the response head is in."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed inside the response head: {data[:300]!r}")
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    head = data[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {}
    for line in head[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, sock, data[end:])


class ChunkedDecoder:
    """Incremental decoder of a chunked body: feed() bytes, read .body / .complete."""

    def __init__(self, keep_body: bool = True) -> None:
        self.buffer = bytearray()
        self.keep_body = keep_body
        self.body = bytearray()
        self.body_bytes = 0
        self.newlines = 0
        self.complete = False
        self.hasher = hashlib.sha256()

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while not self.complete:
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self.buffer[:line_end]).split(b";")[0].strip(), 16)
            if size == 0:
                if len(self.buffer) < line_end + 4:
                    return
                assert bytes(self.buffer[line_end + 2:line_end + 4]) == b"\r\n", "bad last chunk"
                del self.buffer[:line_end + 4]
                self.complete = True
                return
            needed = line_end + 2 + size + 2
            if len(self.buffer) < needed:
                return
            chunk = bytes(self.buffer[line_end + 2:needed - 2])
            assert bytes(self.buffer[needed - 2:needed]) == b"\r\n", "chunk not ended by CRLF"
            del self.buffer[:needed]
            self.body_bytes += len(chunk)
            self.newlines += chunk.count(b"\n")
            self.hasher.update(chunk)
            if self.keep_body:
                self.body += chunk


def assert_json_error(response: requests.Response, status: int, code: str | None = None,
                      sqlstate: str | None = None) -> dict:
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text[:500]}")
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        response.headers)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "request_id"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"], error
    request_id = response.headers.get("X-Request-Id")
    assert request_id and error["request_id"] == request_id, (request_id, error)
    if code is not None:
        assert error["code"] == code, error
    if sqlstate is not None:
        assert error.get("sqlstate") == sqlstate, error
    return error


def wait_until(predicate: Callable[[], bool], timeout: float, message: str,
               interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout} s)")
        time.sleep(interval)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
