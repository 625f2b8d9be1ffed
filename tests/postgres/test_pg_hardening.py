"""PostgreSQL exports under hostile conditions, as a client, an operator and PostgreSQL itself
see them: SIGTERM during a running COPY, a stalled client (backpressure all the way to the
backend), a statement timeout after the first byte, bytes that are not UTF-8 from a SQL_ASCII
database, 16 MiB cells (plain, gzip, zstd), a 1,000-column row, HEAD on the wire, and a failure
over HTTP/1.0 (no chunked framing to leave unfinished: the connection must be reset).

The expected data always comes from PostgreSQL itself through psql or psycopg2 (never through
Sluice), and PostgreSQL's own view (pg_stat_activity) tells whether a query still runs. Each
test starts its own `sluice serve`; every wait is a poll with a deadline.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import hashlib
import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from typing import Iterator

import psycopg2
import pytest
import requests

from support.http import ChunkedDecoder, assert_json_error, parse_head, raw_connect, raw_get, \
    read_head
from support.metrics import wait_until
from support.pg import PgCluster, dataset_toml, source_toml, standard_config
from support.server import SluiceServer, serve, stop_and_check

csv.field_size_limit(sys.maxsize)

# TIME CLIENT "METHOD TARGET" STATUS BYTES DURATIONms id=ID[ aborted="REASON"]
ACCESS_LINE = re.compile(
    r'^(?P<time>\S+) (?P<client>\S+) "(?P<method>\S+) (?P<target>(?:[^"\\]|\\.)*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) (?P<ms>\d+\.\d)ms id=(?P<id>\S+)'
    r'(?: aborted="(?P<aborted>(?:[^"\\]|\\.)*)")?$')

MIB = 1 << 20


def access_line(server, request_id: str) -> re.Match | None:
    for line in server.log_text().splitlines():
        match = ACCESS_LINE.match(line)
        if match and match["id"] == request_id:
            return match
    return None


def backends(pg: PgCluster, request_id: str) -> list[dict[str, str]]:
    """The backends serving `request_id` (application_name 'sluice <id>'), as PostgreSQL sees
    them: state, wait event and the start of the query."""
    out = pg.psql(
        "SELECT pid, coalesce(state, ''), coalesce(wait_event_type, ''), "
        "coalesce(wait_event, ''), left(query, 4) FROM pg_stat_activity "
        f"WHERE application_name = 'sluice {request_id}'").decode()
    rows = []
    for line in out.splitlines():
        pid, state, event_type, event, query = line.split("|")
        rows.append({"pid": pid, "state": state, "wait_event_type": event_type,
                     "wait_event": event, "query": query})
    return rows


def running_copies(pg: PgCluster) -> int:
    """COPY statements running on the cluster, whoever runs them (psql is not running any)."""
    return int(pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' "
                         "AND query ILIKE 'COPY%' AND pid <> pg_backend_pid()"))


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Reads until the peer ends the connection: (bytes, 'eof' or 'reset'); fails after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the connection is still open after {timeout} s ({len(data)} B)"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return bytes(data), "reset"
        except socket.timeout:
            raise AssertionError(f"the connection is still open after {timeout} s")
        if not chunk:
            return bytes(data), "eof"
        data += chunk


def read_at_least(response, size: int) -> bytes:
    data = bytearray(response.buffered)
    response.buffered = b""
    while len(data) < size:
        chunk = response.sock.recv(1 << 16)
        assert chunk, f"the export ended after {len(data)} bytes"
        data += chunk
    return bytes(data)


def assert_types_export_works(url: str) -> None:
    response = requests.get(f"{url}/v1/exports/types.csv", params={"columns": "id"}, timeout=30)
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    assert response.content == b"id\r\n" + b"".join(b"%d\r\n" % i for i in range(1, 301))


# --------------------------------------------------------------------------------------------
# SIGTERM during a running COPY
# --------------------------------------------------------------------------------------------

GRACE_MS = 500


def test_sigterm_cuts_a_running_copy_and_leaves_no_query_behind(pg_up, start_sluice):
    """An endless COPY export is streaming (its backend active in pg_stat_activity); SIGTERM with
    shutdown_grace_ms = 500: the server exits 0 after the grace, the chunked body ends without
    its final chunk, the log says shutdown, and PostgreSQL runs no COPY afterwards."""
    server = start_sluice(standard_config(pg_up, server=f"shutdown_grace_ms = {GRACE_MS}"),
                          name="term-copy")
    request_id = "term-copy-1"
    response = raw_get(server.port, "/v1/exports/endless.csv",
                       headers={"X-Request-Id": request_id}, rcvbuf=65536)
    assert response.status == 200 and response.header("transfer-encoding") == "chunked"
    decoder = ChunkedDecoder(keep_body=False)
    decoder.feed(read_at_least(response, MIB))
    running = backends(pg_up, request_id)
    assert [(b["state"], b["query"]) for b in running] == [("active", "COPY")], running

    signalled = time.monotonic()
    server.signal(signal.SIGTERM)
    rc, _ = server.wait_exit(timeout=GRACE_MS / 1000 + 5)
    exited_after = time.monotonic() - signalled
    assert rc == 0, server.log_tail()
    assert GRACE_MS / 1000 - 0.01 <= exited_after <= GRACE_MS / 1000 + 3.0, (
        f"exited {exited_after:.2f} s after SIGTERM, shutdown_grace_ms = {GRACE_MS}")

    rest, how = read_until_closed(response.sock, timeout=10)
    response.close()
    decoder.feed(rest)
    assert not decoder.complete, "the export cut by the shutdown ended with its final chunk"
    assert decoder.body_bytes > MIB // 2
    log = server.log_text()
    assert f"shutting down: no new connections; running downloads may finish for {GRACE_MS} ms" \
        in log, log[-2000:]
    line = access_line(server, request_id)
    assert line is not None and line["aborted"] == "shutdown", log[-2000:]
    # PostgreSQL: the backend's COPY is gone (the session itself may linger a moment).
    wait_until(lambda: not [b for b in backends(pg_up, request_id) if b["state"] != "idle"],
               timeout=5, message="the COPY of the shut-down server still runs")
    wait_until(lambda: running_copies(pg_up) == 0, timeout=5, message="a COPY still runs")


# --------------------------------------------------------------------------------------------
# Backpressure: a stalled client stalls PostgreSQL, not Sluice's memory
# --------------------------------------------------------------------------------------------

RSS_GROWTH_LIMIT_KIB = 100 * 1024


def test_a_stalled_client_leaves_the_backend_waiting_on_client_write(pg_up, start_sluice):
    """A client that reads nothing of an endless export: PostgreSQL's backend ends up blocked
    writing to Sluice (state active, wait_event ClientWrite), Sluice stops reading rows (the
    counter stands still) and its RSS stays within 100 MiB of what it was before."""
    server = start_sluice(standard_config(pg_up), name="backpressure")
    assert_types_export_works(server.url)  # warm: a pooled connection, the encoders
    rss_before = server.rss_kib()
    request_id = "stalled-copy-1"
    response = raw_get(server.port, "/v1/exports/endless.csv",
                       headers={"X-Request-Id": request_id}, rcvbuf=4096)
    try:
        assert response.status == 200

        def client_write() -> list[dict[str, str]]:
            rows = backends(pg_up, request_id)
            return rows if [(b["state"], b["wait_event"]) for b in rows] == \
                [("active", "ClientWrite")] else []

        seen = wait_until(client_write, timeout=15,
                          message="the backend blocked on ClientWrite for the stalled client")
        assert seen[0]["query"] == "COPY" and seen[0]["wait_event_type"] == "Client"

        samples: list[int] = []

        def rows_read_stands_still() -> bool:
            samples.append(server.metrics()["sluice_rows_read_total"])
            return len(samples) >= 3 and samples[-1] == samples[-3]

        wait_until(rows_read_stands_still, timeout=15, interval=0.25,
                   message="Sluice keeps reading rows for a client that reads nothing")
        assert client_write(), f"the backend no longer waits on the client: " \
            f"{backends(pg_up, request_id)}"
        growth = server.rss_kib() - rss_before
        assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth / 1024:.1f} MiB"
        m = server.metrics()
        assert m["sluice_active_streams"] == 1
        # Of the endless query's 10^9 rows (~110 bytes each): what the socket buffers and the
        # stream budget hold, no more (~28,000 measured; 200,000 would be 22 MB).
        assert m["sluice_rows_read_total"] < 200_000, m["sluice_rows_read_total"]
    finally:
        response.close()
    wait_until(lambda: not [b for b in backends(pg_up, request_id) if b["state"] == "active"],
               timeout=5, message="the COPY still runs after the client left")


# --------------------------------------------------------------------------------------------
# statement_timeout after the first byte
# --------------------------------------------------------------------------------------------

STATEMENT_TIMEOUT_MS = 1500
SLEEP_ROW = 30_000
LATE_SLEEP_QUERY = (
    "SELECT g, repeat('x', 50) AS pad, "
    f"CASE WHEN g = {SLEEP_ROW} THEN length(pg_sleep(10)::text) ELSE 0 END AS s "
    "FROM generate_series(1, 60000) AS g")


def test_statement_timeout_after_the_first_byte_aborts_the_download(pg_up, start_sluice):
    """statement_timeout_ms = 1500 and a query that sleeps at row 30,000: the response starts
    (200, the first ~30,000 rows), then PostgreSQL cancels the statement; the body ends without
    its final chunk, never holds row 30,000, the log names the statement timeout, and the source
    serves the next download."""
    config = ("[server]\n\n" + source_toml("strict", pg_up,
                                           statement_timeout_ms=STATEMENT_TIMEOUT_MS)
              + dataset_toml("late_sleep", "strict", LATE_SLEEP_QUERY)
              + dataset_toml("quick", "strict", "SELECT id FROM t ORDER BY id"))
    server = start_sluice(config, name="late-timeout")
    request_id = "late-timeout-1"
    started = time.monotonic()
    response = raw_get(server.port, "/v1/exports/late_sleep.csv",
                       headers={"X-Request-Id": request_id})
    assert response.status == 200 and response.header("transfer-encoding") == "chunked"
    rest, how = read_until_closed(response.sock, timeout=STATEMENT_TIMEOUT_MS / 1000 + 8)
    ended_after = time.monotonic() - started
    response.close()
    decoder = ChunkedDecoder()
    decoder.feed(response.buffered + rest)
    assert not decoder.complete, "the timed-out export ended with its final chunk"
    body = bytes(decoder.body)
    expected = b"g,pad,s\r\n" + b"".join(b"%d,%s,0\r\n" % (g, b"x" * 50)
                                          for g in range(1, SLEEP_ROW))
    assert len(body) > 100_000, f"only {len(body)} bytes went out before the timeout"
    assert expected.startswith(body), "the rows sent before the timeout are not the query's"
    assert b"\r\n%d," % SLEEP_ROW not in body
    assert STATEMENT_TIMEOUT_MS / 1000 - 0.01 <= ended_after <= STATEMENT_TIMEOUT_MS / 1000 + 3, (
        f"the download ended {ended_after:.2f} s after the request "
        f"(statement_timeout_ms = {STATEMENT_TIMEOUT_MS}, the sleep is 10 s)")
    line = wait_until(lambda: access_line(server, request_id), timeout=5,
                      message="the aborted download is logged")
    assert line["status"] == "200" and line["aborted"], line.group(0)
    assert "statement timeout" in line["aborted"], line.group(0)
    m = server.metrics()
    assert (m["sluice_streams_started_total"], m["sluice_streams_aborted_total"]) == (1, 1)
    ok = requests.get(f"{server.url}/v1/exports/quick.csv", timeout=10)
    assert ok.status_code == 200 and ok.content.count(b"\r\n") == 51


# --------------------------------------------------------------------------------------------
# Bytes that are not UTF-8 (a SQL_ASCII database)
# --------------------------------------------------------------------------------------------

ASCII_DB = "sluice_hardening_ascii"
# (id, SQL literal of t): invalid sequences of every kind, between valid text.
ASCII_ROWS = [
    (1, "'plain'"),
    (2, r"E'a\xff\xfeb'"),                  # two bytes that never start a sequence
    (3, r"E'trunc \xc3'"),                  # a 2-byte sequence cut at the end
    (4, r"E'\xc3\xa9 valid'"),             # é: valid
    (5, r"E'x\xe2\x82y'"),                  # a 3-byte sequence cut in the middle
    (6, r"E'\xed\xa0\x80 surrogate'"),     # an encoded UTF-16 surrogate
    (7, r"E'\xc0\xaf overlong'"),          # an overlong '/'
    (8, "NULL"),
    (9, r"E'\xf4\x90\x80\x80 beyond'"),    # above U+10FFFF
    (10, r"E'\xe2\x82\xac euro \xf0\x9f\x98'"),  # valid €, then a cut 4-byte sequence
]
LATE_GOOD_ROWS = 150_000


@pytest.fixture(scope="module")
def ascii_db(pg) -> Iterator[dict[int, str | None]]:
    """A SQL_ASCII database (template0, C collation) whose text holds bytes that are not UTF-8;
    returns what each row's t must become with invalid_utf8 = "replace", computed from the raw
    bytes PostgreSQL reports (t::bytea) with Python's UTF-8 decoder (maximal subparts)."""
    if not pg.running:
        pg.restart()
    pg.psql(f"DROP DATABASE IF EXISTS {ASCII_DB} WITH (FORCE)", dbname="postgres")
    pg.psql(f"CREATE DATABASE {ASCII_DB} ENCODING 'SQL_ASCII' TEMPLATE template0 "
            "LC_COLLATE 'C' LC_CTYPE 'C'", dbname="postgres")
    assert pg.scalar(f"SELECT pg_encoding_to_char(encoding) FROM pg_database "
                     f"WHERE datname = '{ASCII_DB}'") == "SQL_ASCII"
    values = ",\n".join(f"({i}, {literal})" for i, literal in ASCII_ROWS)
    pg.psql(f"""CREATE TABLE bad (id int PRIMARY KEY, t text);
INSERT INTO bad VALUES {values};
CREATE TABLE late (id int PRIMARY KEY, t text NOT NULL);
INSERT INTO late SELECT g, 'row ' || g || ' ' || repeat('p', 80)
  FROM generate_series(1, {LATE_GOOD_ROWS}) g;
INSERT INTO late VALUES ({LATE_GOOD_ROWS + 1}, E'late \\xff end');
ANALYZE;""", dbname=ASCII_DB)
    raw = pg.psql("SELECT id, coalesce(encode(t::bytea, 'hex'), 'NULL') FROM bad ORDER BY id",
                  dbname=ASCII_DB).decode().split()
    expected: dict[int, str | None] = {}
    for line in raw:
        row_id, hexed = line.split("|")
        expected[int(row_id)] = None if hexed == "NULL" else \
            bytes.fromhex(hexed).decode("utf-8", errors="replace")
    assert b"\xff\xfe" in bytes.fromhex(raw[1].split("|")[1])  # the bytes are really there
    yield expected
    if not pg.running:
        pg.restart()
    pg.psql(f"DROP DATABASE IF EXISTS {ASCII_DB} WITH (FORCE)", dbname="postgres")


def ascii_config(pg: PgCluster) -> str:
    parts = ["[server]\n\n"]
    for copy_format in ("auto", "text", "csv"):
        source = source_toml(f"asc_{copy_format}", pg, url=pg.conninfo(ASCII_DB)).replace(
            "statement_timeout_ms = 0\n",
            f'statement_timeout_ms = 0\ncopy_format = "{copy_format}"\n')
        parts.append(source)
    fail = '[datasets.output]\ninvalid_utf8 = "fail"\n'
    for copy_format in ("auto", "text", "csv"):
        source = f"asc_{copy_format}"
        parts.append(dataset_toml(f"bad_{copy_format}", source,
                                  "SELECT id, t FROM bad ORDER BY id"))
        parts.append(dataset_toml(f"bad_fail_{copy_format}", source,
                                  "SELECT id, t FROM bad ORDER BY id", fail))
        parts.append(dataset_toml(f"late_fail_{copy_format}", source,
                                  "SELECT id, t FROM late ORDER BY id", fail))
    return "".join(parts)


@pytest.fixture(scope="module")
def ascii_server(ascii_db, pg, tmp_path_factory) -> Iterator[SluiceServer]:
    """One `sluice serve` for the module with the SQL_ASCII datasets: bad_*, bad_fail_* and
    late_fail_* on sources of each copy_format."""
    base = tmp_path_factory.mktemp("ascii")
    config = base / "ascii.toml"
    config.write_text(ascii_config(pg), "utf-8")
    server = serve(config, base / "ascii.stderr.log", "--listen", "127.0.0.1:0")
    yield server
    stop_and_check(server)


@pytest.mark.parametrize("copy_format", ["auto", "text", "csv"])
def test_invalid_utf8_replace_puts_u_fffd_exactly_where_the_bad_bytes_were(
        ascii_server, ascii_db, copy_format):
    """invalid_utf8 = "replace" (the default; docs/API.md: "A source value that is not valid
    UTF-8 ... has each invalid sequence replaced by U+FFFD"): CSV, TSV and JSON Lines hold each
    row's text with every maximal invalid subpart replaced by one U+FFFD and every valid
    character kept, for each copy_format (binary, text, PostgreSQL's own CSV passed through)."""
    url = f"{ascii_server.url}/v1/exports/bad_{copy_format}"
    ids = sorted(ascii_db)

    response = requests.get(f"{url}.csv", timeout=30)
    assert response.status_code == 200, response.text[:300]
    text = response.content.decode("utf-8")  # strict: the output is valid UTF-8
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert records[0] == ["id", "t"]
    assert records[1:] == [[str(i), ascii_db[i] or ""] for i in ids]
    assert "\r\n8,\r\n" in text  # NULL stays an empty field
    assert "2,a\ufffd\ufffdb\r\n" in text

    tsv = requests.get(f"{url}.tsv", timeout=30)
    assert tsv.status_code == 200
    assert tsv.content.decode("utf-8") == "id\tt\n" + "".join(
        f"{i}\t{ascii_db[i] if ascii_db[i] is not None else chr(92) + 'N'}\n" for i in ids)

    jsonl = requests.get(f"{url}.jsonl", timeout=30)
    assert jsonl.status_code == 200
    assert [json.loads(line) for line in jsonl.content.decode("utf-8").splitlines()] == \
        [{"id": i, "t": ascii_db[i]} for i in ids]


@pytest.mark.parametrize("copy_format", ["auto", "text", "csv"])
def test_invalid_utf8_fail_is_500_invalid_utf8_naming_column_and_row(ascii_server, copy_format):
    """docs/API.md: `500 invalid_utf8` when the dataset has invalid_utf8 = "fail" and the first
    rows hold invalid UTF-8, naming the column and the row. (A SQL_ASCII database: Sluice takes
    its bytes as they are, client_encoding SQL_ASCII, and applies its own check; asked for UTF8,
    PostgreSQL failed the COPY itself with 22021, answered 400 invalid_value naming nothing.)"""
    for ext in ("csv", "jsonl"):
        response = requests.get(f"{ascii_server.url}/v1/exports/bad_fail_{copy_format}.{ext}",
                                timeout=30)
        assert_json_error(response, 500, "invalid_utf8", mentions=["column 't'", "row 2"])


@pytest.mark.parametrize("copy_format", ["auto", "text", "csv"])
def test_invalid_utf8_fail_after_the_first_byte_aborts_the_download(ascii_server, copy_format):
    """invalid_utf8 = "fail" and the bad row comes after 150,000 good ones: 200, the good rows,
    then the download is aborted (no final chunk), never a file that looks complete; the log
    names the invalid bytes."""
    request_id = f"late-utf8-{copy_format}"
    response = raw_get(ascii_server.port, f"/v1/exports/late_fail_{copy_format}.csv",
                       headers={"X-Request-Id": request_id})
    assert response.status == 200
    rest, _ = read_until_closed(response.sock, timeout=30)
    response.close()
    decoder = ChunkedDecoder()
    decoder.feed(response.buffered + rest)
    assert not decoder.complete, "the export with invalid UTF-8 ended with its final chunk"
    body = bytes(decoder.body)
    assert body.startswith(b"id,t\r\n1,row 1 ")
    assert b"late" not in body and b"\xef\xbf\xbd" not in body
    expected = b"id,t\r\n" + b"".join(b"%d,row %d %s\r\n" % (i, i, b"p" * 80)
                                      for i in range(1, LATE_GOOD_ROWS + 1))
    assert expected.startswith(body), "the rows sent before the failure are not the table's"
    line = wait_until(lambda: access_line(ascii_server, request_id), timeout=5,
                      message="the aborted download is logged")
    assert line["status"] == "200" and line["aborted"], line.group(0)
    assert ("invalid UTF-8" in line["aborted"]
            or 'invalid byte sequence for encoding \\"UTF8\\"' in line["aborted"]), line.group(0)


# --------------------------------------------------------------------------------------------
# 16 MiB cells, plain and compressed
# --------------------------------------------------------------------------------------------

HUGE_TABLE = "hardening_huge"


@pytest.fixture(scope="module")
def huge(pg) -> Iterator[dict]:
    """Three rows with a 16 MiB cell each: md5 hex text; text full of CSV specials (quotes,
    commas, CR LF, ';') and multi-byte characters; a 16 MiB bytea. Returns psql's CSV of the
    table (header, LF) and psycopg2's SHA-256 of every cell, both computed without Sluice."""
    if not pg.running:
        pg.restart()
    pg.psql(f"""DROP TABLE IF EXISTS {HUGE_TABLE};
CREATE TABLE {HUGE_TABLE} (id int PRIMARY KEY, t text, b bytea);
INSERT INTO {HUGE_TABLE} VALUES
 (1, (SELECT string_agg(md5(g::text), '' ORDER BY g) FROM generate_series(1, 524288) g), NULL),
 (2, repeat(E'a,"b"\\r\\n\u00e4\u20ac;', 1290556), NULL),
 (3, NULL, (SELECT decode(string_agg(md5(g::text), '' ORDER BY g), 'hex')
            FROM generate_series(1, 1048576) g));""", timeout=300)
    query = f"SELECT id, t, b FROM {HUGE_TABLE} ORDER BY id"
    baseline = pg.psql(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)", timeout=300)
    cells = {}
    with psycopg2.connect(pg.conninfo()) as conn, conn.cursor() as cursor:
        cursor.execute(query)
        for row_id, t, b in cursor.fetchall():
            cells[row_id] = (t, None if b is None else bytes(b))
    conn.close()
    assert len(cells[1][0]) == 16 * MIB and len(cells[3][1]) == 16 * MIB
    assert len(cells[2][0].encode()) >= 16 * MIB
    yield {"query": query, "csv_sha256": hashlib.sha256(baseline).hexdigest(),
           "csv_length": len(baseline), "cells": cells}
    if not pg.running:
        pg.restart()
    pg.psql(f"DROP TABLE IF EXISTS {HUGE_TABLE}")


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_16_mib_cells_are_exported_byte_for_byte(pg_up, start_sluice, huge, tmp_path, suffix):
    """The CSV of three 16 MiB cells (line_ending=lf, so PostgreSQL's own CSV is the exact
    baseline) is byte-for-byte psql's; compressed as a .gz / .zst file it decodes (Python's zlib,
    the zstd tool) to the same bytes and passes `gzip -t` / `zstd -t`."""
    server = start_sluice("[server]\n\n" + source_toml("pg", pg_up)
                          + dataset_toml("huge", "pg", huge["query"]), name=f"huge{suffix}")
    response = requests.get(f"{server.url}/v1/exports/huge.csv{suffix}",
                            params={"line_ending": "lf"}, headers={"Accept-Encoding": "identity"},
                            timeout=120)
    assert response.status_code == 200, response.text[:300]
    wire = response.content
    saved = tmp_path / f"huge.csv{suffix}"
    saved.write_bytes(wire)
    if suffix == ".gz":
        assert response.headers["Content-Type"] == "application/gzip"
        assert subprocess.run(["gzip", "-t", str(saved)]).returncode == 0
        data = gzip.decompress(wire)
    elif suffix == ".zst":
        assert response.headers["Content-Type"] == "application/zstd"
        assert subprocess.run(["zstd", "-q", "-t", str(saved)]).returncode == 0
        data = subprocess.run(["zstd", "-q", "-d", "-c", str(saved)], capture_output=True,
                              check=True).stdout
    else:
        data = wire
    assert len(data) == huge["csv_length"]
    assert hashlib.sha256(data).hexdigest() == huge["csv_sha256"]


def test_16_mib_cells_in_json_lines_match_psycopg2(pg_up, start_sluice, huge):
    """JSON Lines of the same rows: each 16 MiB text value (UTF-8) and the bytea (`\\x` hex) has
    the SHA-256 of the value psycopg2 reads."""
    server = start_sluice("[server]\n\n" + source_toml("pg", pg_up)
                          + dataset_toml("huge", "pg", huge["query"]), name="huge-jsonl")
    response = requests.get(f"{server.url}/v1/exports/huge.jsonl", timeout=120)
    assert response.status_code == 200
    lines = response.content.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    for line in lines[:3]:
        obj = json.loads(line)
        t, b = huge["cells"][obj["id"]]
        assert list(obj) == ["id", "t", "b"]
        if t is None:
            assert obj["t"] is None
        else:
            assert hashlib.sha256(obj["t"].encode()).digest() == \
                hashlib.sha256(t.encode()).digest(), f"row {obj['id']}: t differs"
        if b is None:
            assert obj["b"] is None
        else:
            # bytea is written as PostgreSQL prints it (bytea_output=hex, docs/CONFIG.md).
            assert obj["b"].startswith("\\x") and len(obj["b"]) == 2 + 2 * len(b)
            assert hashlib.sha256(bytes.fromhex(obj["b"][2:])).digest() == \
                hashlib.sha256(b).digest(), f"row {obj['id']}: b differs"


# --------------------------------------------------------------------------------------------
# A 1,000-column row
# --------------------------------------------------------------------------------------------

WIDE_TABLE = "hardening_wide"
WIDE_COLUMNS = 1000
WIDE_TYPES = ["int4", "text", "numeric", "bool", "date"]


def wide_literal(row: int, column: int) -> str:
    if row == 3:
        return "NULL"
    kind = column % len(WIDE_TYPES)
    if kind == 0:
        return str(row * 100_000 + column)
    if kind == 1:
        return ["'v%d, \"q\"'" % column, "''", "E'l\\nb'", "'\u00e9'"][(column + row) % 4]
    if kind == 2:
        return f"{column}.{row}5" if row == 1 else f"-{column}.{row}"
    if kind == 3:
        return "true" if (column + row) % 2 else "false"
    return f"'2024-01-{1 + column % 28:02d}'" if row == 1 else "NULL"


def test_a_thousand_column_row_is_exported_exactly(pg_up, start_sluice):
    """SELECT * of a 1,000-column table: CSV (line_ending=lf) and TSV are byte-for-byte
    PostgreSQL's own COPY output (CSV and text format, with header), and JSON Lines has the
    1,000 keys in order."""
    names = [f"c{i:04d}" for i in range(WIDE_COLUMNS)]
    columns = ", ".join(f"{name} {WIDE_TYPES[i % len(WIDE_TYPES)]}"
                        for i, name in enumerate(names))
    rows = ",\n".join("(" + ", ".join(wide_literal(r, c) for c in range(WIDE_COLUMNS)) + ")"
                      for r in (1, 2, 3))
    pg_up.psql(f"DROP TABLE IF EXISTS {WIDE_TABLE};\nCREATE TABLE {WIDE_TABLE} ({columns});\n"
               f"INSERT INTO {WIDE_TABLE} VALUES\n{rows};")
    try:
        query = f"SELECT * FROM {WIDE_TABLE} ORDER BY c0000"
        server = start_sluice("[server]\n\n" + source_toml("pg", pg_up)
                              + dataset_toml("wide", "pg", query), name="wide")
        baseline_csv = pg_up.copy_csv(query)
        baseline_tsv = pg_up.psql(f"COPY ({query}) TO STDOUT (FORMAT text, HEADER)")
        assert baseline_csv.split(b"\n", 1)[0] == ",".join(names).encode()

        got_csv = requests.get(f"{server.url}/v1/exports/wide.csv", params={"line_ending": "lf"},
                               timeout=30)
        assert got_csv.status_code == 200, got_csv.text[:300]
        assert got_csv.content == baseline_csv
        got_tsv = requests.get(f"{server.url}/v1/exports/wide.tsv", timeout=30)
        assert got_tsv.content == baseline_tsv
        lines = requests.get(f"{server.url}/v1/exports/wide.jsonl", timeout=30).content.splitlines()
        assert len(lines) == 3
        objects = [json.loads(line, parse_float=Decimal) for line in lines]
        with psycopg2.connect(pg_up.conninfo()) as conn, conn.cursor() as cursor:
            cursor.execute(query)
            expected = cursor.fetchall()
        conn.close()
        for obj, row in zip(objects, expected):
            assert list(obj) == names
            # int4 and numeric as JSON numbers, bool as JSON booleans, text and date as strings.
            assert list(obj.values()) == [v.isoformat() if isinstance(v, datetime.date) else v
                                          for v in row]
    finally:
        pg_up.psql(f"DROP TABLE IF EXISTS {WIDE_TABLE}")


# --------------------------------------------------------------------------------------------
# HEAD on the wire
# --------------------------------------------------------------------------------------------

def test_head_sends_no_body_leaves_no_query_and_the_connection_is_reused(pg_up, start_sluice):
    """HEAD of the endless export over a raw keep-alive socket: the response head and not one
    body byte (the next bytes are the status line of the GET sent after it, answered in full);
    no stream starts and no query runs (docs/API.md: a HEAD costs the database nothing): not
    one row read, and no backend ever carries the HEAD's request id."""
    server = start_sluice(standard_config(pg_up), name="head")
    sock = raw_connect(server.port)
    sock.sendall(b"HEAD /v1/exports/endless.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"X-Request-Id: head-pg-1\r\n\r\n")
    head, after = read_head(sock)
    status, _, headers = parse_head(head)
    fields = {name.lower(): value for name, value in headers}
    assert status == 200 and fields["content-type"].startswith("text/csv"), head
    assert fields["x-request-id"] == "head-pg-1"
    assert after == b""
    wait_until(lambda: access_line(server, "head-pg-1"), timeout=5, message="HEAD logged")
    assert backends(pg_up, "head-pg-1") == []
    assert server.metrics()["sluice_rows_read_total"] == 0, "the HEAD ran the query"
    head_rows = 0

    sock.sendall(b"GET /v1/exports/types.csv?columns=id HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = after
    while len(data) < 13:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed after the HEAD"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), f"not a status line after the HEAD: {data[:80]!r}"
    _, rest = read_head(sock, data)
    decoder = ChunkedDecoder()
    decoder.feed(rest)
    while not decoder.complete:
        chunk = sock.recv(65536)
        assert chunk, "the GET after the HEAD was cut"
        decoder.feed(chunk)
    sock.close()
    assert bytes(decoder.body) == b"id\r\n" + b"".join(b"%d\r\n" % i for i in range(1, 301))

    line = access_line(server, "head-pg-1")
    assert (line["method"], line["status"], line["bytes"], line["aborted"]) == \
        ("HEAD", "200", "0", None)
    m = server.metrics()
    assert m["sluice_streams_started_total"] == 1  # the GET only
    assert m["sluice_bytes_sent_total"] == len(decoder.body)
    assert m["sluice_rows_sent_total"] == 300
    assert m["sluice_rows_read_total"] == head_rows + 300
    assert m["sluice_rows_read_total"] == \
        m["sluice_rows_sent_total"] + m["sluice_rows_discarded_total"]
    assert running_copies(pg_up) == 0


# --------------------------------------------------------------------------------------------
# A failure over HTTP/1.0: a reset, never a clean end
# --------------------------------------------------------------------------------------------

LATE_DIVZERO = ("SELECT g, 1 / (g - 500000) AS x "
                "FROM (SELECT generate_series(1, 1000000) AS g) AS s")


def http10_get(port: int, target: str, request_id: str):
    sock = raw_connect(port, timeout=30)
    sock.sendall(f"GET {target} HTTP/1.0\r\nX-Request-Id: {request_id}\r\n\r\n".encode())
    head, rest = read_head(sock)
    status, _, headers = parse_head(head)
    fields = {name.lower(): value for name, value in headers}
    assert status == 200, head
    # HTTP/1.0 has no chunks: no Content-Length, no Transfer-Encoding; the body ends at the
    # close, so only a reset can tell the client the body was cut.
    assert "content-length" not in fields and "transfer-encoding" not in fields, head
    assert fields.get("connection", "").lower() == "close", head
    return sock, rest


def test_http10_failure_after_the_first_byte_resets_the_connection(pg_up, start_sluice):
    """Division by zero at row 500,000 over HTTP/1.0: the client gets rows 1..499,999 at most,
    then a TCP reset (ConnectionResetError), not an orderly end; the log names the error."""
    server = start_sluice("[server]\n\n" + source_toml("pg", pg_up)
                          + dataset_toml("late_divzero", "pg", LATE_DIVZERO), name="h10-div")
    sock, rest = http10_get(server.port, "/v1/exports/late_divzero.csv", "h10-div-1")
    body, how = read_until_closed(sock, timeout=30)
    sock.close()
    body = rest + body
    assert how == "reset", f"the cut HTTP/1.0 body ended cleanly after {len(body)} bytes"
    # 1 / (g - 500000) in integer arithmetic truncates toward zero: 0, then -1 at g = 499,999.
    expected = b"g,x\r\n" + b"".join(b"%d,%d\r\n" % (g, -1 if g == 499999 else 0)
                                     for g in range(1, 500000))
    assert len(body) > 0 and expected.startswith(body), body[:200]
    assert b"\r\n500000," not in body
    line = wait_until(lambda: access_line(server, "h10-div-1"), timeout=5,
                      message="the aborted download is logged")
    assert line["status"] == "200" and line["aborted"], line.group(0)
    assert "division by zero" in line["aborted"], line.group(0)
    assert server.metrics()["sluice_streams_aborted_total"] == 1


def test_http10_backend_terminated_mid_stream_resets_the_connection(pg_up, start_sluice):
    """pg_terminate_backend of the backend serving an HTTP/1.0 download mid-stream: the client
    sees a reset, the log says the database connection was lost during the COPY, and the server
    serves on."""
    server = start_sluice(standard_config(pg_up), name="h10-term")
    sock, rest = http10_get(server.port, "/v1/exports/endless.csv", "h10-term-1")
    received = len(rest)
    while received < MIB:
        chunk = sock.recv(65536)
        assert chunk, "the endless export ended"
        received += len(chunk)
    running = backends(pg_up, "h10-term-1")
    assert [b["state"] for b in running] == ["active"], running
    assert pg_up.scalar(f"SELECT pg_terminate_backend({running[0]['pid']})") == "t"
    body, how = read_until_closed(sock, timeout=30)
    sock.close()
    assert how == "reset", f"the cut HTTP/1.0 body ended cleanly ({received + len(body)} B)"
    line = wait_until(lambda: access_line(server, "h10-term-1"), timeout=5,
                      message="the aborted download is logged")
    # Whichever libpq call notices the backend gone (reading a row, or collecting the COPY's
    # final status once libpq ended it), the log says the COPY lost its connection -- or, when
    # libpq read the backend's last words first, gives them.
    assert line["status"] == "200" and line["aborted"], line.group(0)
    assert ("lost the connection during COPY" in line["aborted"]
            or "terminating connection due to administrator command" in line["aborted"]), \
        line.group(0)
    assert_types_export_works(server.url)
