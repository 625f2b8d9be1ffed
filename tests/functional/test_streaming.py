"""Streaming behaviour: first byte, backpressure, disconnects, concurrency, shutdown, keep-alive."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import statistics
import struct
import subprocess
import threading
import time

import pytest
import requests

from support.csv import csv_rows_with_nulls
from support.demo import (
    ORDERS_COLUMNS,
    ORDERS_QUERY,
    RowDigest,
    canonical_orders_row,
    parse_csv_table,
    parse_jsonl_table,
    sqlite_digest,
    sqlite_rows,
)
from support.http import ChunkedReader, raw_get
from support.server import SANITIZED
from support.metrics import (
    assert_steady,
    metrics,
    proc_io,
    read_chars,
    wait_for_metric,
    wait_until,
    wait_until_steady,
)


def set_linger_zero(sock: socket.socket) -> None:
    """close() then resets the connection at once instead of a polite FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def expected_csv_digest(db, where: str, params=()) -> RowDigest:
    return sqlite_digest(db, ORDERS_COLUMNS, f"{ORDERS_QUERY} WHERE {where}", params)


def csv_body_digest(body: bytes) -> RowDigest:
    rows = csv_rows_with_nulls(body.decode("utf-8"))
    assert next(rows) == ORDERS_COLUMNS
    return RowDigest().add_all(canonical_orders_row(r) for r in rows)


# --------------------------------------------------------------------------------------------
# Time to first byte
# --------------------------------------------------------------------------------------------

def time_to_first_body_byte(port: int, target: str) -> float:
    """Seconds from sending the request to receiving the first byte of body data."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    set_linger_zero(sock)
    try:
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        start = time.perf_counter()
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before the body: {data[:200]!r}"
            data += chunk
            head_end = data.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            body = data[head_end + 4:]
            size_end = body.find(b"\r\n")
            if size_end >= 0 and len(body) > size_end + 2:  # a chunk-size line and data
                elapsed = time.perf_counter() - start
                break
        assert data.startswith(b"HTTP/1.1 200 "), data[:200]
        return elapsed
    finally:
        sock.close()


def test_time_to_first_byte_does_not_grow_with_export_size(demo, server):
    small, big = [], []
    for _ in range(9):
        small.append(time_to_first_body_byte(server.port, "/v1/exports/orders.csv"))
        wait_for_metric(demo.url, "sluice_active_streams", lambda v: v == 0, timeout=10)
        big.append(time_to_first_body_byte(server.port, "/v1/exports/orders_big.csv"))
        wait_for_metric(demo.url, "sluice_active_streams", lambda v: v == 0, timeout=10)
    small_median, big_median = statistics.median(small), statistics.median(big)
    report = f"orders {small_median * 1000:.1f} ms, orders_big {big_median * 1000:.1f} ms"
    assert small_median < 0.100, report
    assert big_median < 0.100, report
    # 50x the data, about the same first byte (a few ms of absolute slack for scheduling noise).
    assert big_median <= 3 * small_median + 0.005, report


# --------------------------------------------------------------------------------------------
# Backpressure
# --------------------------------------------------------------------------------------------

class PacedReader(threading.Thread):
    """Downloads a target over a socket with a small receive buffer at about `rate` bytes/s;
    `pause_event` makes it stop reading (the connection stays open), `stop_event` leave."""

    def __init__(self, port: int, target: str, rate: float, duration: float,
                 rcvbuf: int = 64 * 1024):
        super().__init__(daemon=True)
        self.port, self.target, self.rate, self.duration = port, target, rate, duration
        self.rcvbuf = rcvbuf
        self.received = 0
        self.line_ends = 0  # CRLFs received: at least the rows (notes hold some too)
        self.status = None
        self.error: BaseException | None = None
        self.started_at = None
        self.stop_event = threading.Event()
        self.pause_event = threading.Event()

    def run(self) -> None:
        try:
            response = raw_get(self.port, self.target, rcvbuf=self.rcvbuf)
            self.status = response.status
            set_linger_zero(response.sock)
            self.received = len(response.buffered)
            self.started_at = time.monotonic()
            tick = 0.05
            while not self.stop_event.is_set():
                elapsed = time.monotonic() - self.started_at
                if elapsed >= self.duration:
                    break
                allowed = int(self.rate * (elapsed + tick)) - self.received
                while allowed > 0 and not self.pause_event.is_set():
                    data = response.sock.recv(min(allowed, 65536))
                    if not data:
                        raise ConnectionError("server closed the download")
                    self.received += len(data)
                    self.line_ends += data.count(b"\r\n")
                    allowed -= len(data)
                time.sleep(tick)  # the pace (while paused: the stall)
            response.close()
        except BaseException as error:  # reported by the test
            self.error = error


@pytest.mark.release_rss
def test_backpressure_slow_client(start_server, demo):
    srv = start_server(name="backpressure")
    budget = metrics(srv.url)["sluice_stream_budget_bytes"]
    assert budget > 0
    bound = 2 * budget / 60  # rows are >= ~60 bytes; 2x slack
    # orders_big reads orders.db over and over (a 64 KiB SQLite page cache: pread after pread),
    # so the kernel's count of the bytes the process read (/proc/PID/io rchar) measures the
    # database reads from outside Sluice. One row costs at most this many file bytes:
    db_bytes_per_row = demo.db.stat().st_size / demo.rows
    reader = PacedReader(srv.port, "/v1/exports/orders_big.csv", rate=1_000_000, duration=60)
    reader.start()
    try:
        wait_until(lambda: reader.started_at is not None or reader.error, timeout=10,
                   message="download started")
        assert reader.error is None, reader.error
        assert reader.status == 200

        # (seconds since start, read - sent, rss KiB, rows sent, active, rchar, client CRLFs)
        samples = []
        t0 = reader.started_at
        next_sample = t0 + 0.5
        while next_sample <= t0 + 10.0:
            time.sleep(max(0.0, next_sample - time.monotonic()))  # the sampling clock
            m = metrics(srv.url)
            samples.append((next_sample - t0,
                            m["sluice_rows_read_total"] - m["sluice_rows_sent_total"],
                            srv.rss_kib(), m["sluice_rows_sent_total"], m["sluice_active_streams"],
                            read_chars(srv.pid), reader.line_ends))
            next_sample += 0.5
        received_at_10 = reader.received
        assert reader.error is None, reader.error

        table = "\n".join(f"t={t:4.1f}s read-sent={d:8d} rss={r} KiB sent={s} rchar={c} crlf={n}"
                          for t, d, r, s, _, c, n in samples)
        assert all(sample[4] == 1 for sample in samples), table
        assert max(d for _, d, *_ in samples) <= bound, f"bound {bound:.0f} rows\n{table}"
        # The client really was served at about its pace (the stream did not stall or run away).
        assert 5_000_000 <= received_at_10 <= 13_000_000, received_at_10
        assert samples[-1][3] > samples[3][3], table
        rss_at_2 = next(r for t, _, r, *_ in samples if t >= 2.0)
        rss_at_10 = samples[-1][2]
        # (Not under ASan: it keeps freed memory in quarantine, and the idle job workers' queue
        # polls allocate, so RSS grows without anything held.)
        if not SANITIZED:
            assert rss_at_10 - rss_at_2 <= 4 * 1024, f"RSS grew {rss_at_10 - rss_at_2} KiB\n{table}"
        # Outside Sluice's counters: from t=2 s to t=10 s the process read from the database
        # about what the client took (its rows, plus the buffers and the pipeline budget
        # refilled), not the hundreds of MB a read that ignores the client would have fetched
        # meanwhile (about 75 MB/s here when nothing holds it back).
        at_2 = next(sample for sample in samples if sample[0] >= 2.0)
        file_bytes = samples[-1][5] - at_2[5]
        client_rows = samples[-1][6] - at_2[6]
        allowed = 2 * (client_rows + bound) * db_bytes_per_row + (1 << 20)
        assert 0 < file_bytes <= allowed, (
            f"the server read {file_bytes} file bytes while the client took {client_rows} rows "
            f"(allowed {allowed:.0f})\n{table}")

        # The client stalls: once the socket buffers and the pipeline are full, the process reads
        # nothing from the database until the client reads again.
        reader.pause_event.set()
        wait_until_steady(lambda: read_chars(srv.pid), quiet=0.5, timeout=10,
                          message="the server's file reads while the client stalls", tolerance=4096)
        assert_steady(lambda: read_chars(srv.pid), 1.0,
                      "the server's file reads (rchar) while the client stalls", tolerance=4096)
        assert metrics(srv.url)["sluice_active_streams"] == 1  # still connected, just not reading
        reader.stop_event.set()
        reader.join(timeout=10)
        assert reader.error is None, reader.error
    finally:  # the reader never outlives the test, whatever failed
        reader.stop_event.set()
        reader.join(timeout=10)

    m = wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 0, timeout=5)
    assert m["sluice_busy_source_threads"] == 0


# --------------------------------------------------------------------------------------------
# Disconnect
# --------------------------------------------------------------------------------------------

def file_reads(srv):
    """The kernel's count of the bytes `srv` read from files (the SQLite database)."""
    return lambda: read_chars(srv.pid)


def test_client_disconnect_stops_the_query(start_server, demo):
    srv = start_server(name="disconnect")
    before = metrics(srv.url)
    read_before = read_chars(srv.pid)
    response = raw_get(srv.port, "/v1/exports/orders_big.csv")
    assert response.status == 200
    received = len(response.buffered)
    while received < 1_000_000:
        data = response.sock.recv(65536)
        assert data
        received += len(data)
    during = metrics(srv.url)
    assert during["sluice_active_streams"] == 1
    assert read_chars(srv.pid) > read_before  # the export reads the file: the probe sees it
    response.sock.close()
    closed = time.monotonic()

    # Outside Sluice: the process stops reading orders.db (rchar of /proc/PID/io) at once ...
    settled, last_read = wait_until_steady(file_reads(srv), quiet=0.3, timeout=5,
                                           message="the server's file reads", tolerance=4096)
    assert last_read - closed < 0.5, f"file reads went on {last_read - closed:.2f} s"
    assert_steady(file_reads(srv), 0.5, "the server's file reads after the client left",
                  tolerance=4096)
    # ... far from the 100,000,000 rows of orders_big: less than half a pass over the file
    # (the 1,000,000-row bound on rows_read_total below).
    db_size = demo.db.stat().st_size
    assert settled - read_before < db_size // 2, (settled - read_before, db_size)
    # Sluice's own counters agree.
    wait_until(lambda: (lambda m: m["sluice_active_streams"] == 0
                        and m["sluice_busy_source_threads"] == 0)(metrics(srv.url)),
               timeout=2, message="no active stream, no busy source thread")
    rows_read = assert_steady(lambda: metrics(srv.url)["sluice_rows_read_total"], 0.3,
                              "rows_read_total after the client left")
    # Far from the 100,000,000 rows of orders_big: the read stopped near where the client did.
    assert rows_read < 1_000_000, rows_read
    after = metrics(srv.url)
    assert after["sluice_streams_aborted_total"] == before["sluice_streams_aborted_total"] + 1

    # The next request is served normally and correctly.
    check = requests.get(f"{srv.url}/v1/exports/orders.csv?id.gt=1000&id.lte=3000", timeout=30)
    assert check.status_code == 200
    assert csv_body_digest(check.content) == expected_csv_digest(demo.db, "id > 1000 AND id <= 3000")


# A query that reads for a long time before its first row: 200 x 2,000,000 joined rows, none
# of which match.
SLOW_DATASET = """
[[datasets]]
name = "slow"
source = "demo"
query = "SELECT o.id, o.note FROM (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 200) SELECT n FROM r) AS r CROSS JOIN orders AS o WHERE o.quantity + r.n = -1"
"""


def test_client_disconnect_while_the_query_has_no_rows_yet(start_server):
    """The client gives up before the first row: the server must notice and stop the query,
    not keep a pool thread and a stream slot until the query ends by itself."""
    srv = start_server("shutdown_grace_ms = 200\n", name="slow", datasets=SLOW_DATASET)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.sendall(b"GET /v1/exports/slow.csv HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for_metric(srv.url, "sluice_busy_source_threads", lambda v: v == 1, timeout=5)
    reads_at_start = read_chars(srv.pid)
    time.sleep(0.5)  # the client's patience (the stimulus), while the query scans orders.db
    # The running query reads the file: the kernel's count shows it (so it can show the stop).
    assert read_chars(srv.pid) - reads_at_start > 4096, "the query read nothing in 0.5 s"
    sock.settimeout(0.01)
    with pytest.raises(socket.timeout):
        sock.recv(1)  # still nothing: the query has not produced a row
    sock.close()
    closed = time.monotonic()
    try:
        m = wait_for_metric(srv.url, "sluice_busy_source_threads", lambda v: v == 0, timeout=1.0)
    except AssertionError as error:
        raise AssertionError(
            f"{error}: the query kept running after its client left "
            f"({time.monotonic() - closed:.1f} s)") from None
    assert m["sluice_active_streams"] == 0
    # Outside Sluice's counters: the process stopped reading orders.db within a second.
    _, last_read = wait_until_steady(file_reads(srv), quiet=0.3, timeout=5,
                                     message="the server's file reads", tolerance=4096)
    assert last_read - closed < 1.0, f"file reads went on {last_read - closed:.2f} s"
    assert_steady(file_reads(srv), 0.5, "the server's file reads after the client left",
                  tolerance=4096)
    assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200


# --------------------------------------------------------------------------------------------
# Many clients at once
# --------------------------------------------------------------------------------------------

CONCURRENT_QUERIES = [
    # (query string, SQL condition): deterministic selections, CSV and JSON Lines
    *[(f"orders.csv?id.gt={k * 97_001}&id.lte={k * 97_001 + 4000}",
       f"id > {k * 97_001} AND id <= {k * 97_001 + 4000}") for k in range(10)],
    *[(f"orders.jsonl?country={c}&id.lt=60000", f"country = '{c}' AND id < 60000")
      for c in ["DE", "US", "FR", "JP", "SE"]],
    ("orders.csv?country=NO,FI,DK&status=delivered&id.lt=150000",
     "country IN ('NO', 'FI', 'DK') AND status = 'delivered' AND id < 150000"),
    ("orders.jsonl?quantity.gte=18&id.lt=200000", "quantity >= 18 AND id < 200000"),
    ("orders.csv?created_at.gte=2024-06-01&created_at.lt=2024-06-02",
     "created_at >= '2024-06-01' AND created_at < '2024-06-02'"),
    ("orders.csv?status=refunded&id.gt=1900000", "status = 'refunded' AND id > 1900000"),
    ("orders.jsonl?id.in=1,2,3,17,30,1999999", "id IN (1, 2, 3, 17, 30, 1999999)"),
]


def test_200_concurrent_downloads(demo, server):
    expected = {q: expected_csv_digest(demo.db, where) for q, where in CONCURRENT_QUERIES}
    clients = 200
    before = metrics(demo.url)
    barrier = threading.Barrier(clients, timeout=120)
    results: list[tuple[str, int, object]] = [None] * clients  # type: ignore[list-item]

    def download(i: int) -> None:
        query = CONCURRENT_QUERIES[i % len(CONCURRENT_QUERIES)][0]
        try:
            with requests.get(f"{demo.url}/v1/exports/{query}", stream=True, timeout=120) as r:
                # Every client holds its response open until all 200 have one.
                barrier.wait()
                body = r.content
            if r.status_code != 200:
                results[i] = (query, r.status_code, body[:200])
                return
            if query.startswith("orders.csv"):
                digest = csv_body_digest(body)
            else:
                keys, rows = parse_jsonl_table(body.decode("utf-8"))
                assert not rows or keys == ORDERS_COLUMNS
                digest = RowDigest().add_all(rows)
            results[i] = (query, 200, digest)
        except BaseException as error:
            barrier.abort()
            results[i] = (query, -1, repr(error))

    threads = [threading.Thread(target=download, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "downloads hung"

    failures = [r for r in results if r[1] != 200]
    assert not failures, failures[:5]
    wrong = [(q, d, expected[q]) for q, _, d in results if d != expected[q]]
    assert not wrong, wrong[:5]
    after = wait_for_metric(demo.url, "sluice_active_streams", lambda v: v == 0, timeout=10)
    assert after["sluice_streams_started_total"] - before["sluice_streams_started_total"] == clients
    assert (after["sluice_streams_completed_total"] - before["sluice_streams_completed_total"]
            == clients)
    assert after["sluice_streams_aborted_total"] == before["sluice_streams_aborted_total"]
    assert after["sluice_busy_source_threads"] == 0


def test_stream_limit_gives_503_and_frees_slots(start_server, demo):
    srv = start_server("max_streams = 2\n", name="max2")
    first = raw_get(srv.port, "/v1/exports/orders_big.csv", rcvbuf=64 * 1024)
    second = raw_get(srv.port, "/v1/exports/orders_big.jsonl", rcvbuf=64 * 1024)
    try:
        assert first.status == 200 and second.status == 200
        third = requests.get(f"{srv.url}/v1/exports/orders.csv?limit=1", timeout=10)
        assert third.status_code == 503
        assert third.headers.get("Retry-After")
        assert third.json()["error"]["code"] == "too_many_streams"
        # Non-export requests are not limited.
        assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200
    finally:
        first.close()
        second.close()
    wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 0, timeout=5)
    again = requests.get(f"{srv.url}/v1/exports/orders.csv?id.lte=100", timeout=10)
    assert again.status_code == 200
    assert csv_body_digest(again.content) == expected_csv_digest(demo.db, "id <= 100")


# --------------------------------------------------------------------------------------------
# Shutdown
# --------------------------------------------------------------------------------------------

def test_shutdown_cuts_a_slow_download_without_the_last_chunk(start_server, demo):
    srv = start_server("shutdown_grace_ms = 500\n", name="grace500")
    # A slow download of the multi-GB export: it cannot finish inside the grace period.
    slow = subprocess.Popen(["curl", "-sS", "--limit-rate", "2M", "-o", "/dev/null",
                             f"{srv.url}/v1/exports/orders_big.csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # A download that is running when the signal comes but can finish quickly: its client holds
    # back until then.
    fast = raw_get(srv.port, "/v1/exports/orders.csv?id.lte=60000", rcvbuf=64 * 1024)
    assert fast.status == 200
    try:
        wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 2, timeout=10)
        # The slow download is flowing: curl has written a first MiB into /dev/null.
        wait_until(lambda: slow.poll() is not None or proc_io(slow.pid)["wchar"] >= 1 << 20,
                   timeout=10, message="curl received its first MiB")
        assert slow.poll() is None, slow.stderr.read()
        signalled = time.monotonic()
        srv.signal(signal.SIGTERM)

        body = ChunkedReader(fast).read_all()
        fast_done = time.monotonic() - signalled
        assert fast.complete, f"the fast download was cut after {len(body)} bytes"
        assert fast_done < 0.5
        assert csv_body_digest(body) == expected_csv_digest(demo.db, "id <= 60000")

        rc, _ = srv.wait_exit(timeout=10)
        exited = time.monotonic() - signalled
        assert rc == 0, srv.log_tail()
        assert exited < 3.0, f"server took {exited:.1f} s to exit"
        # The slow download ends without its last chunk: curl's "transfer closed with
        # outstanding read data remaining".
        _, stderr = slow.communicate(timeout=30)
        assert slow.returncode == 18, (slow.returncode, stderr)
    finally:
        fast.close()
        if slow.poll() is None:
            slow.kill()
            slow.wait()


def test_shutdown_with_requests_sees_chunked_encoding_error(start_server):
    srv = start_server("shutdown_grace_ms = 300\n", name="grace300")
    response = requests.get(f"{srv.url}/v1/exports/orders_big.jsonl", stream=True, timeout=30)
    assert response.status_code == 200
    chunks = response.iter_content(65536)
    received = len(next(chunks))
    srv.signal(signal.SIGTERM)
    signalled = time.monotonic()
    time.sleep(0.6)  # the stimulus: the client does not read past the grace period (300 ms)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in chunks:
            received += len(chunk)
    rc, _ = srv.wait_exit(timeout=10)
    assert rc == 0
    assert time.monotonic() - signalled < 3.0
    assert received < 5_000_000_000


def test_graceful_shutdown_lets_a_running_download_finish(start_server, demo, tmp_path):
    srv = start_server("shutdown_grace_ms = 8000\n", name="grace8000")
    target = tmp_path / "during-shutdown.csv"
    download = subprocess.Popen(["curl", "-sS", "--fail", "--limit-rate", "8M", "-o", str(target),
                                 f"{srv.url}/v1/exports/orders.csv?id.lte=150000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 1, timeout=10)
        # The download is under way: curl has written its first bytes to the file.
        wait_until(lambda: download.poll() is not None
                   or (target.exists() and target.stat().st_size >= 256 * 1024),
                   timeout=10, message="curl wrote its first 256 KiB")
        assert download.poll() is None, "the download finished before the signal"
        signalled = time.monotonic()
        srv.signal(signal.SIGTERM)
        _, stderr = download.communicate(timeout=30)
        finished = time.monotonic() - signalled
        assert download.returncode == 0, stderr
        rc, _ = srv.wait_exit(timeout=10)
        exited = time.monotonic() - signalled
        assert rc == 0
        # It ended because the download did, not because the grace period ran out.
        assert exited < 6.0 and exited - finished < 2.0, (finished, exited)
        assert csv_body_digest(target.read_bytes()) == expected_csv_digest(demo.db, "id <= 150000")
        assert "shutting down" in srv.log_text()
    finally:
        if download.poll() is None:
            download.kill()
            download.wait()


def test_new_connections_are_refused_after_sigterm(start_server):
    srv = start_server("shutdown_grace_ms = 2000\n", name="refuse")
    slow = raw_get(srv.port, "/v1/exports/orders_big.csv", rcvbuf=64 * 1024)  # keeps it running
    try:
        assert slow.status == 200
        srv.signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection((srv.host, srv.port), timeout=2).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_until(refused, timeout=1.5, message="the listening socket closed after SIGTERM")
        # Refused while the server still runs (its download keeps it up for the grace period):
        # the listener was closed, the process has not merely exited.
        srv.assert_alive()
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{srv.url}/healthz", timeout=2)
    finally:
        slow.close()
    rc, _ = srv.wait_exit(timeout=10)
    assert rc == 0


# --------------------------------------------------------------------------------------------
# Keep-alive
# --------------------------------------------------------------------------------------------

def test_keep_alive_session(demo, server):
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(f"{demo.url}/healthz", timeout=10).status_code == 200
            r = session.get(f"{demo.url}/v1/exports/orders.csv?id.lte=20", timeout=10)
            assert r.status_code == 200
            _, rows = parse_csv_table(r.content.decode())
            assert len(rows) == 20
            assert session.get(f"{demo.url}/v1/exports/nope.csv", timeout=10).status_code == 404
            assert session.get(f"{demo.url}/v1/exports/orders.csv?id=x", timeout=10).status_code == 400
            r = session.get(f"{demo.url}/v1/exports/orders.jsonl?id.lte=5", timeout=10)
            assert r.status_code == 200 and len(r.text.splitlines()) == 5
            assert session.get(f"{demo.url}/v1/datasets", timeout=10).status_code == 200


def test_keep_alive_one_connection_many_requests(demo, server):
    """http.client with auto_open off: a closed connection would raise instead of reconnecting."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.connect()
    conn.auto_open = 0
    sock = conn.sock
    try:
        expected = sqlite_rows(demo.db, "SELECT id, email FROM orders WHERE id <= 300")
        statuses = {"/healthz": 200, "/v1/exports/orders.csv?id.lte=300&columns=id,email": 200,
                    "/v1/exports/nope.csv": 404, "/v1/exports/orders.csv?limit=-1": 400,
                    "/metrics": 200, "/v1/datasets": 200}
        for i, path in enumerate(["/healthz", "/v1/exports/orders.csv?id.lte=300&columns=id,email",
                                  "/v1/exports/nope.csv", "/v1/exports/orders.csv?limit=-1",
                                  "/metrics", "/v1/exports/orders.csv?id.lte=300&columns=id,email",
                                  "/v1/datasets"] * 2):
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            assert conn.sock is sock, f"request {i} ({path}) needed a new connection"
            assert response.status == statuses[path], (path, response.status, body[:200])
            if "columns=id,email" in path:
                _, rows = parse_csv_table(body.decode())
                assert sorted(rows) == sorted(expected)
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(demo, server):
    requests_bytes = (b"GET /v1/exports/orders.csv?id.lte=2&columns=id HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /v1/exports/nope.csv HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /v1/exports/orders.jsonl?id=1&columns=id,country HTTP/1.1\r\n"
                      b"Host: x\r\nConnection: close\r\n\r\n")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(requests_bytes)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200", b"200", b"404", b"200"], data[:2000]
    assert b"\r\n\r\na\r\nid\r\n1\r\n2\r\n\r\n0\r\n\r\n" in data
    assert data.endswith(b'{"id":1,"country":"GB"}\n\r\n0\r\n\r\n'), data[-200:]
