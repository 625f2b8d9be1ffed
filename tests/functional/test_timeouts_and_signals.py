"""Timeouts and signals as a client sees them, on SQLite and archive downloads: a stalled
download cut by `write_timeout_ms`, a request head that never ends cut by `read_timeout_ms`, an
idle keep-alive connection closed by `idle_timeout_ms`, SIGTERM during an archive download with a
short `shutdown_grace_ms`; and HEAD and a 1,000-column row on the wire.

Every test starts its own `sluice serve` (the `start_sluice` fixture) over a small SQLite
database and an object store made here, so timings, counters and the log are its own. Nothing
waits on a fixed sleep: each condition is polled with a deadline (`wait_until`), and each timing
is checked against both ends (not before the timeout, not long after it).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from support.archives import create_archive
from support.http import ChunkedDecoder, parse_head, raw_connect, raw_get, read_head
from support.metrics import wait_until

# TIME CLIENT "METHOD TARGET" STATUS BYTES DURATIONms id=ID[ aborted="REASON"]
ACCESS_LINE = re.compile(
    r'^(?P<time>\S+) (?P<client>\S+) "(?P<method>\S+) (?P<target>(?:[^"\\]|\\.)*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) (?P<ms>\d+\.\d)ms id=(?P<id>\S+)'
    r'(?: aborted="(?P<aborted>(?:[^"\\]|\\.)*)")?$')

ROWS = 400_000              # ~44 MB of CSV: far more than every buffer between us and SQLite
WIDE_COLUMNS = 1000
BLOB_BYTES = 48 << 20       # each stored object of the archive tests
STALL_RCVBUF = 4096         # the stalled client's receive buffer


def access_line(server, request_id: str) -> re.Match | None:
    for line in server.log_text().splitlines():
        match = ACCESS_LINE.match(line)
        if match and match["id"] == request_id:
            return match
    return None


def read_until_closed(sock: socket.socket, timeout: float,
                      since: float | None = None) -> tuple[bytes, str, float]:
    """Reads until the peer ends the connection; returns (bytes, 'eof' or 'reset', seconds from
    `since` (a time.monotonic() taken before the server could start its timer; default: now)
    to the end). Fails if the connection is still open after `timeout` seconds."""
    started = time.monotonic() if since is None else since
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the connection is still open after {timeout} s "
                                 f"({len(data)} bytes read)")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return bytes(data), "reset", time.monotonic() - started
        except socket.timeout:
            raise AssertionError(
                f"the connection is still open {timeout} s later ({len(data)} bytes read)")
        if not chunk:
            return bytes(data), "eof", time.monotonic() - started
        data += chunk


# --------------------------------------------------------------------------------------------
# The data: one SQLite database and one object store for the module
# --------------------------------------------------------------------------------------------

def wide_type(column: int) -> str:
    return {0: "INTEGER", 1: "REAL"}.get(column % 5, "TEXT")


def wide_value(row: int, column: int):
    """Row 3 is all NULL; rows 1 and 2 hold ints, reals, text with CSV specials and non-ASCII,
    empty strings and line breaks, and NULLs, by column."""
    if row == 3:
        return None
    kind = column % 5
    if kind == 0:
        return row * 100_000 + column
    if kind == 1:
        return (column + 0.5) * (1 if row == 1 else -1)
    if kind == 2:
        return f'r{row} c{column}, "q" \u00fc'
    if kind == 3:
        return "" if (column + row) % 2 else f"line\nbreak {column}"
    return None if row == 1 else f"v{column}"


@dataclass
class Lite:
    db: Path
    store: Path
    wide_names: list[str]

    def config(self, server: str = "") -> str:
        return f"""[server]
{server}

[sources.lite]
kind = "sqlite"
path = "{self.db}"

[storage]
kind = "local"
path = "{self.store}"

[[datasets]]
name = "rows"
source = "lite"
query = "SELECT id, pad FROM rows ORDER BY id"

[datasets.filters.id]
type = "int"
operators = ["eq", "lte"]

[[datasets]]
name = "wide"
source = "lite"
query = "SELECT * FROM wide ORDER BY rowid"
"""


@pytest.fixture(scope="module")
def lite(tmp_path_factory) -> Lite:
    base = tmp_path_factory.mktemp("timeouts")
    db = base / "lite.db"
    names = [f"c{i:04d}" for i in range(WIDE_COLUMNS)]
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, pad TEXT NOT NULL)")
        conn.executemany("INSERT INTO rows VALUES (?, ?)",
                         ((i, f"{i:0100d}") for i in range(1, ROWS + 1)))
        columns = ", ".join(f"{name} {wide_type(i)}" for i, name in enumerate(names))
        conn.execute(f"CREATE TABLE wide ({columns})")
        marks = ", ".join("?" for _ in names)
        for row in (1, 2, 3):
            conn.execute(f"INSERT INTO wide VALUES ({marks})",
                         [wide_value(row, c) for c in range(WIDE_COLUMNS)])
    store = base / "objects"
    (store / "big").mkdir(parents=True)
    (store / "big" / "blob.jpg").write_bytes(os.urandom(BLOB_BYTES))  # stored: Content-Length
    (store / "deflated").mkdir()
    (store / "deflated" / "blob.bin").write_bytes(os.urandom(BLOB_BYTES))  # deflated: chunked
    return Lite(db, store, names)


# --------------------------------------------------------------------------------------------
# write_timeout_ms
# --------------------------------------------------------------------------------------------

WRITE_TIMEOUT_S = 1.0


@pytest.mark.parametrize("kind", ["export", "archive"])
def test_write_timeout_aborts_a_download_whose_client_stopped_reading(lite, start_sluice, kind):
    """A client with a 4 KiB receive buffer that reads nothing after the response head: the
    server's write stalls, and `write_timeout_ms` cuts the download: logged with the reason,
    counted as aborted, and what the client can still read ends short of a complete body (no
    final chunk for the chunked export; short of Content-Length for the stored archive, which
    goes out with sendfile)."""
    srv = start_sluice(lite.config(f"write_timeout_ms = {int(WRITE_TIMEOUT_S * 1000)}\n"),
                       name=f"write-timeout-{kind}")
    if kind == "archive":
        created = create_archive(srv, {"name": "big", "prefix": "big/", "method": "store"})
        assert created["ranges"] is True
        target, expected_size = created["url"], created["size"]
    else:
        target, expected_size = "/v1/exports/rows.csv", None
    request_id = f"stalled-{kind}"
    started = time.monotonic()
    response = raw_get(srv.port, target, headers={"X-Request-Id": request_id},
                       rcvbuf=STALL_RCVBUF)
    assert response.status == 200
    if kind == "archive":
        assert int(response.header("content-length")) == expected_size
        assert response.header("transfer-encoding") is None
    else:
        assert response.header("transfer-encoding") == "chunked"

    # The client reads nothing more. The server must give up on its own.
    line = wait_until(lambda: access_line(srv, request_id), timeout=WRITE_TIMEOUT_S + 5,
                      message="the stalled download is logged")
    logged_after = time.monotonic() - started
    assert line["aborted"] == "a write stalled for longer than write_timeout_ms (1000 ms)", (
        line.group(0))
    assert line["status"] == "200"
    assert WRITE_TIMEOUT_S <= logged_after <= WRITE_TIMEOUT_S + 3.0, (
        f"aborted {logged_after:.2f} s after the request, write_timeout_ms = 1000")
    m = srv.metrics()
    if kind == "archive":
        assert (m["sluice_archives_started_total"], m["sluice_archives_aborted_total"],
                m["sluice_archives_completed_total"], m["sluice_active_archives"]) == (1, 1, 0, 0)
    else:
        assert (m["sluice_streams_started_total"], m["sluice_streams_aborted_total"],
                m["sluice_streams_completed_total"]) == (1, 1, 0)
    assert m["sluice_active_streams"] == 0
    assert m["sluice_http_aborted_total"] == 1

    # Now the client reads what the kernel still holds: the connection ends (the server closed
    # it), and the body is not complete.
    rest, how, _ = read_until_closed(response.sock, timeout=10)
    response.close()
    body = response.buffered + rest
    if kind == "archive":
        assert len(body) < expected_size, f"{len(body)} of {expected_size} bytes: complete"
    else:
        decoder = ChunkedDecoder(keep_body=False)
        decoder.feed(body)
        assert not decoder.complete, "the stalled export ended with its final chunk"
        assert decoder.body_bytes < ROWS * 100
    assert int(line["bytes"]) <= len(body), (line.group(0), len(body), how)


# --------------------------------------------------------------------------------------------
# read_timeout_ms and idle_timeout_ms
# --------------------------------------------------------------------------------------------

SHORT_TIMEOUT_S = 0.8
LONG_TIMEOUT_MS = 20000


def test_read_timeout_closes_a_request_head_that_never_ends(lite, start_sluice):
    """Half a request head, then nothing: the connection is closed read_timeout_ms after the
    first byte (not the much longer idle timeout), with nothing answered; the server serves on."""
    srv = start_sluice(lite.config(f"read_timeout_ms = {int(SHORT_TIMEOUT_S * 1000)}\n"
                                   f"idle_timeout_ms = {LONG_TIMEOUT_MS}\n"), name="read-timeout")
    sock = raw_connect(srv.port)
    sent = time.monotonic()  # the server's timer starts when it reads the first byte: later
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
    data, how, elapsed = read_until_closed(sock, timeout=10, since=sent)
    sock.close()
    assert data == b"", f"half a request was answered: {data[:200]!r}"
    assert SHORT_TIMEOUT_S - 0.01 <= elapsed <= SHORT_TIMEOUT_S + 1.5, (
        f"closed after {elapsed:.2f} s ({how}), read_timeout_ms = 800")
    assert requests.get(f"{srv.url}/healthz", timeout=5).status_code == 200
    wait_until(lambda: srv.metrics()["sluice_open_connections"] == 1, timeout=5,
               message="only the metrics request's own connection is open")


def test_read_timeout_is_not_extended_by_a_trickling_client(lite, start_sluice):
    """A client that sends its head one byte every 50 ms (slowloris) is still cut
    read_timeout_ms after its first byte: the timeout covers the whole head."""
    srv = start_sluice(lite.config(f"read_timeout_ms = {int(SHORT_TIMEOUT_S * 1000)}\n"
                                   f"idle_timeout_ms = {LONG_TIMEOUT_MS}\n"), name="trickle")
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
    sock = raw_connect(srv.port)
    sock.settimeout(0.05)
    first = time.monotonic()
    closed_after = None
    received = b""
    for byte in head:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - first
            break
        try:
            chunk = sock.recv(65536)  # waits at most 50 ms: the pace of the trickle
        except socket.timeout:
            continue
        except ConnectionResetError:
            closed_after = time.monotonic() - first
            break
        if not chunk:
            closed_after = time.monotonic() - first
            break
        received += chunk
        assert time.monotonic() - first < 10, "still open after 10 s"
    sock.close()
    assert closed_after is not None, "the trickling client was never cut"
    assert received == b""
    assert SHORT_TIMEOUT_S - 0.01 <= closed_after <= SHORT_TIMEOUT_S + 1.5, (
        f"closed {closed_after:.2f} s after the first byte, read_timeout_ms = 800")


@pytest.mark.parametrize("after", ["response", "connect"])
def test_idle_timeout_closes_a_connection_without_a_next_request(lite, start_sluice, after):
    """A keep-alive connection after a complete response (or a connection that never sends a
    byte) is closed idle_timeout_ms later, not at the much longer read timeout."""
    srv = start_sluice(lite.config(f"idle_timeout_ms = {int(SHORT_TIMEOUT_S * 1000)}\n"
                                   f"read_timeout_ms = {LONG_TIMEOUT_MS}\n"), name=f"idle-{after}")
    # The server's idle timer starts after this: after the accept, or after the response.
    since = time.monotonic()
    sock = raw_connect(srv.port)
    if after == "response":
        sock.sendall(b"GET /v1/exports/rows.csv?id.lte=3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, rest = read_head(sock)
        status, _, headers = parse_head(head)
        assert status == 200 and ("Transfer-Encoding", "chunked") in headers
        decoder = ChunkedDecoder()
        decoder.feed(rest)
        while not decoder.complete:
            chunk = sock.recv(65536)
            assert chunk, "closed before the end of the response"
            decoder.feed(chunk)
        assert bytes(decoder.body) == b"id,pad\r\n" + b"".join(
            b"%d,%s\r\n" % (i, b"%0100d" % i) for i in (1, 2, 3))
        assert not decoder.buffer
    data, how, elapsed = read_until_closed(sock, timeout=10, since=since)
    sock.close()
    assert data == b""
    assert SHORT_TIMEOUT_S - 0.01 <= elapsed <= SHORT_TIMEOUT_S + 1.5, (
        f"closed after {elapsed:.2f} s ({how}), idle_timeout_ms = 800")


# --------------------------------------------------------------------------------------------
# SIGTERM during an archive download
# --------------------------------------------------------------------------------------------

GRACE_MS = 500


@pytest.mark.parametrize("method", ["store", "deflate"])
def test_sigterm_cuts_an_archive_download_after_the_grace(lite, start_sluice, tmp_path, method):
    """curl downloads a 48 MiB archive at 1 MB/s; SIGTERM with shutdown_grace_ms = 500: the
    transfer is cut (curl fails: short of Content-Length for stored entries, no final chunk for
    deflated ones), the partial file is no ZIP, the server exits 0 in time and logs why."""
    srv = start_sluice(lite.config(f"shutdown_grace_ms = {GRACE_MS}\n"), name=f"term-{method}")
    prefix = "big/" if method == "store" else "deflated/"
    created = create_archive(srv, {"name": "cut", "prefix": prefix, "method": method})
    target = tmp_path / f"cut-{method}.zip"
    headers = tmp_path / f"cut-{method}.headers"
    curl = subprocess.Popen(
        ["curl", "-sS", "--limit-rate", "1M", "-H", "X-Request-Id: term-archive", "-D",
         str(headers), "-o", str(target), srv.url + created["url"]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: target.exists() and target.stat().st_size > 0, timeout=10,
                   message="the archive's first bytes arrived")
        assert srv.metrics()["sluice_active_archives"] == 1
        signalled = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc, _ = srv.wait_exit(timeout=GRACE_MS / 1000 + 5)
        exited_after = time.monotonic() - signalled
        assert rc == 0, srv.log_tail()
        assert GRACE_MS / 1000 - 0.01 <= exited_after <= GRACE_MS / 1000 + 3.0, (
            f"exited {exited_after:.2f} s after SIGTERM, shutdown_grace_ms = {GRACE_MS}")
        _, stderr = curl.communicate(timeout=30)
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait()
    head = headers.read_text("latin-1")
    assert head.startswith("HTTP/1.1 200"), head
    received = target.stat().st_size
    if method == "store":
        assert f"Content-Length: {created['size']}" in head, head
        assert curl.returncode == 18, (curl.returncode, stderr)  # partial file
        assert received < created["size"]
    else:
        assert "Transfer-Encoding: chunked" in head, head
        assert curl.returncode == 18, (curl.returncode, stderr)  # outstanding read data
        assert received < BLOB_BYTES
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(target)  # no central directory: no reader takes it for a whole ZIP
    log = srv.log_text()
    assert "shutting down: no new connections; running downloads may finish for 500 ms" in log
    assert "grace period over: cancelling 1 connection(s)" in log, log[-2000:]
    line = access_line(srv, "term-archive")
    assert line is not None, log[-2000:]
    assert line["aborted"] == "shutdown", line.group(0)


# --------------------------------------------------------------------------------------------
# HEAD on the wire
# --------------------------------------------------------------------------------------------

def test_head_sends_no_body_and_the_connection_carries_the_next_request(lite, start_sluice):
    """HEAD of a 400,000-row export over a raw keep-alive socket: the head, then not one body
    byte — the next bytes on the connection are the status line of the GET sent after it, which
    is answered in full. HEAD starts no stream, sends no body bytes and runs no query (not one
    row read: docs/API.md, a HEAD costs the database nothing); a wrong HEAD gets the GET's 4xx."""
    srv = start_sluice(lite.config(), name="head")
    sock = raw_connect(srv.port)
    sock.sendall(b"HEAD /v1/exports/rows.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"X-Request-Id: head-1\r\n\r\n")
    head, after = read_head(sock)
    status, _, headers = parse_head(head)
    assert status == 200
    names = {name.lower(): value for name, value in headers}
    assert names["content-type"].startswith("text/csv")
    assert names["x-request-id"] == "head-1"
    assert names.get("connection", "").lower() != "close"
    assert after == b"", f"body bytes after the HEAD response's head: {after[:100]!r}"
    # The server is idle now (the HEAD is logged): then the next request on the same socket.
    wait_until(lambda: access_line(srv, "head-1"), timeout=5, message="the HEAD is logged")
    m = srv.metrics()
    assert m["sluice_rows_read_total"] == 0, "the HEAD ran the query"
    assert m["sluice_busy_source_threads"] == 0
    wrong = requests.head(f"{srv.url}/v1/exports/rows.csv?nosuch=1", timeout=10)
    assert wrong.status_code == 400 and wrong.content == b""
    sock.sendall(b"GET /v1/exports/rows.csv?id.lte=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = after
    while len(data) < 12:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed after the HEAD"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), (
        f"the bytes after the HEAD's head are not the next status line: {data[:80]!r}")
    head2, rest = read_head(sock, data)
    decoder = ChunkedDecoder()
    decoder.feed(rest)
    while not decoder.complete:
        chunk = sock.recv(65536)
        assert chunk, "the GET after the HEAD was cut"
        decoder.feed(chunk)
    sock.close()
    assert bytes(decoder.body) == b"id,pad\r\n1,%0100d\r\n2,%0100d\r\n" % (1, 2)

    line = access_line(srv, "head-1")
    assert (line["method"], line["status"], line["bytes"]) == ("HEAD", "200", "0")
    assert line["aborted"] is None
    m = srv.metrics()
    assert m["sluice_streams_started_total"] == 1  # the GET only
    assert m["sluice_bytes_sent_total"] == len(decoder.body)  # HEAD: not one body byte
    assert m["sluice_rows_read_total"] == 2  # the GET's two rows: nothing for the HEAD
    assert m["sluice_rows_sent_total"] == 2
    assert m["sluice_rows_read_total"] == m["sluice_rows_sent_total"] + \
        m["sluice_rows_discarded_total"]
    # The client has the whole body once the last chunk is written; the server releases the
    # stream and the source thread just after that.
    wait_until(lambda: (lambda n: n["sluice_busy_source_threads"] == 0
                        and n["sluice_active_streams"] == 0)(srv.metrics()),
               timeout=5, message="the GET's stream and source thread are released")


# --------------------------------------------------------------------------------------------
# A 1,000-column row
# --------------------------------------------------------------------------------------------

def test_a_thousand_column_row_is_exported_exactly(lite, start_sluice):
    """SELECT * of a 1,000-column table: the CSV header names every column in order, every value
    of every row matches sqlite3's (NULL empty, '' quoted), and JSON Lines has the same keys
    in order with typed values."""
    srv = start_sluice(lite.config(), name="wide")
    with sqlite3.connect(f"file:{lite.db}?mode=ro", uri=True) as conn:
        cursor = conn.execute("SELECT * FROM wide ORDER BY rowid")
        names = [d[0] for d in cursor.description]
        expected = cursor.fetchall()
    assert names == lite.wide_names and len(expected) == 3

    response = requests.get(f"{srv.url}/v1/exports/wide.csv", timeout=30)
    assert response.status_code == 200, response.text[:300]
    body = response.content
    assert body.startswith((",".join(names) + "\r\n").encode())
    records = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert records[0] == names
    assert len(records) == 4
    for row_index, (record, row) in enumerate(zip(records[1:], expected), start=1):
        assert len(record) == WIDE_COLUMNS, (row_index, len(record))
        for column, (got, want) in enumerate(zip(record, row)):
            if want is None:
                text = ""
            elif isinstance(want, float):
                assert float(got) == want, (row_index, names[column], got, want)
                continue
            else:
                text = str(want)
            assert got == text, (row_index, names[column], got, want)
    # NULL and '' stay apart in the raw CSV: row 3 is all NULL (bare commas).
    assert body.split(b"\r\n")[-2] == b"," * (WIDE_COLUMNS - 1)
    assert b',"",' in body

    lines = requests.get(f"{srv.url}/v1/exports/wide.jsonl", timeout=30).content.splitlines()
    assert len(lines) == 3
    for line, row in zip(lines, expected):
        obj = json.loads(line)
        assert list(obj) == names
        assert list(obj.values()) == list(row)
