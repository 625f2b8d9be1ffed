"""Streaming from PostgreSQL under stress: a client leaving mid-export, an exhausted pool,
PostgreSQL killed mid-stream and restarted, 500 slow concurrent downloads through a pool of
20 connections, and SIGTERM with a warm pool."""

from __future__ import annotations

import selectors
import socket
import threading
import time
import uuid

import pytest
import requests

from support.digests import sha256
from support.http import ChunkedDecoder, assert_json_error, raw_get
from support.metrics import assert_steady, wait_until
from support.pg import ALL_TYPES_ROWS, BIG_ROWS, standard_config
from support.server import SANITIZED


def sluice_backends(pg, request_id: str) -> list[str]:
    """States of the backends whose application_name marks them as serving `request_id`."""
    out = pg.scalar("SELECT coalesce(string_agg(state, ','), '') FROM pg_stat_activity "
                    f"WHERE application_name = 'sluice {request_id}'")
    return [state for state in out.split(",") if state]


def assert_types_export_works(url: str) -> None:
    response = requests.get(f"{url}/v1/exports/types.csv", params={"columns": "id"}, timeout=30)
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    assert response.content == b"id\r\n" + b"".join(
        b"%d\r\n" % i for i in range(1, ALL_TYPES_ROWS + 1))


def test_client_leaving_cancels_the_query(sluice, pg_up):
    request_id = f"pg-disconnect-{uuid.uuid4().hex[:12]}"
    response = raw_get(sluice.port, "/v1/exports/endless.csv",
                       headers={"X-Request-Id": request_id}, rcvbuf=65536)
    assert response.status == 200
    assert response.header("x-request-id") == request_id
    received = len(response.buffered)
    while received < 1 << 20:
        chunk = response.sock.recv(65536)
        assert chunk, "the endless export ended"
        received += len(chunk)
    # While the client holds the stream, its backend runs the COPY, marked with the request id.
    assert sluice_backends(pg_up, request_id) == ["active"], (
        "no active backend with application_name 'sluice <request id>' while streaming: " +
        pg_up.scalar("SELECT string_agg(application_name || '=' || coalesce(state, ''), ', ') "
                     "FROM pg_stat_activity"))
    aborted_before = sluice.metrics()["sluice_streams_aborted_total"]

    response.close()
    closed_at = time.monotonic()
    wait_until(lambda: "active" not in sluice_backends(pg_up, request_id), timeout=1.0,
               message="the backend still runs the query 1 s after the client left")
    assert time.monotonic() - closed_at <= 1.0

    wait_until(lambda: sluice.metrics()["sluice_active_streams"] == 0, timeout=2,
               message="the stream is still counted as active")
    assert_steady(lambda: sluice.metrics()["sluice_rows_read_total"], 0.5,
                  "rows_read_total after the client left")
    assert sluice.metrics()["sluice_streams_aborted_total"] == aborted_before + 1
    assert_types_export_works(sluice.url)
    assert "active" not in sluice_backends(pg_up, request_id)


def test_exhausted_pool_answers_503_database_busy_after_the_pool_timeout(pg_up, start_sluice):
    server = start_sluice(standard_config(pg_up, pool_size=2, pool_timeout_ms=500))
    holders = [raw_get(server.port, "/v1/exports/endless.csv", rcvbuf=4096) for _ in range(2)]
    try:
        assert [h.status for h in holders] == [200, 200]
        for holder in holders:  # each got rows: each holds one of the two connections
            assert holder.buffered or holder.sock.recv(1024)
        started = time.monotonic()
        response = requests.get(f"{server.url}/v1/exports/types.csv", timeout=10)
        elapsed = time.monotonic() - started
        assert_json_error(response, 503, "database_busy")
        retry_after = response.headers.get("Retry-After")
        assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, (
            response.headers)
        assert 0.4 <= elapsed < 3.0, f"answered after {elapsed:.3f} s, pool_timeout_ms = 500"
        # Only requests that need the database wait: the rest of the server is responsive.
        assert requests.get(f"{server.url}/healthz", timeout=2).status_code == 200
    finally:
        for holder in holders:
            holder.close()

    def served() -> bool:
        return requests.get(f"{server.url}/v1/exports/types.csv", params={"columns": "id"},
                            timeout=10).status_code == 200

    wait_until(served, timeout=5, message="exports still fail after the two clients left",
               interval=0.1)
    assert_types_export_works(server.url)
    # Both connections are usable again: two concurrent exports at once, both complete.
    results = []
    threads = [threading.Thread(target=lambda: results.append(requests.get(
        f"{server.url}/v1/exports/big.csv", params={"id.lte": "50000"}, timeout=30)))
        for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200, 200]
    assert all(r.content.count(b"\r\n") == 50001 for r in results)


def test_postgres_killed_mid_stream_aborts_it_and_sluice_recovers_after_restart(
        pg_up, start_sluice, big_baseline):
    server = start_sluice(standard_config(pg_up, pool_size=20))
    # Several idle pooled connections, all of which the crash will make stale.
    warm = []
    threads = [threading.Thread(target=lambda: warm.append(requests.get(
        f"{server.url}/v1/exports/big.csv", params={"id.lte": "100000"}, timeout=30)))
        for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in warm] == [200] * 6
    aborted_before = server.metrics()["sluice_streams_aborted_total"]

    response = raw_get(server.port, "/v1/exports/big.csv", rcvbuf=8192)
    assert response.status == 200
    decoder = ChunkedDecoder(keep_body=False)
    decoder.feed(response.buffered)
    for _ in range(10):  # a slow client
        decoder.feed(response.sock.recv(8192))
        time.sleep(0.02)
    assert not decoder.complete and decoder.body_bytes > 0

    pg_up.stop("immediate")
    response.sock.settimeout(15)
    try:
        while True:  # now read what is left as fast as possible
            data = response.sock.recv(1 << 20)
            if not data:
                break
            decoder.feed(data)
    except (ConnectionResetError, socket.timeout) as error:
        assert not isinstance(error, socket.timeout), (
            f"the download neither ended nor failed within 15 s of the crash "
            f"({decoder.body_bytes} bytes)")
    finally:
        response.close()
    assert not decoder.complete, "the download ended with the final chunk: looks complete"
    assert decoder.body_bytes < len(big_baseline.data)
    wait_until(lambda: server.metrics()["sluice_streams_aborted_total"] == aborted_before + 1,
               timeout=5, message="the aborted stream was not counted as aborted")

    # While PostgreSQL is down: a clean 503, no hang.
    down = requests.get(f"{server.url}/v1/exports/types.csv", timeout=15)
    assert_json_error(down, 503, "database_unavailable")

    pg_up.restart()  # returns once PostgreSQL accepts connections
    assert pg_up.scalar("SELECT 1") == "1"
    attempts = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        attempt = requests.get(f"{server.url}/v1/exports/types.csv", params={"columns": "id"},
                               timeout=15)
        attempts.append((attempt.status_code,
                         "ok" if attempt.status_code == 200 else attempt.text[:200]))
        if attempt.status_code == 200:
            break
        time.sleep(0.2)
    assert attempts[-1][0] == 200, f"exports still fail 10 s after the restart: {attempts}"
    assert_types_export_works(server.url)
    # PostgreSQL accepted connections before the first attempt: stale pooled connections
    # must not make clients fail.
    assert len(attempts) == 1, (
        f"{len(attempts) - 1} export(s) failed after PostgreSQL was back and accepting "
        f"connections (stale pooled connections): {attempts}")
    server.assert_alive()


# --------------------------------------------------------------------------------------------
# 500 slow clients, a pool of 20 connections
# --------------------------------------------------------------------------------------------

CLIENTS = 500
POOL_SIZE = 20
ROWS_PER_CLIENT = 12_000          # ~1 MB of CSV each
CLIENT_RATE = 2 << 20             # bytes per second per client
TICK_S = 0.02
TEST_BOUND_S = 60.0
RSS_LIMIT_KIB = 150 * 1024


class SlowClient:
    def __init__(self, index: int, port: int):
        self.index = index
        self.first_id = (index * 1999) % (BIG_ROWS - ROWS_PER_CLIENT) + 1
        self.end_id = self.first_id + ROWS_PER_CLIENT
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.request = (f"GET /v1/exports/big.csv?id.gte={self.first_id}&id.lt={self.end_id} "
                        "HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").encode()
        self.sent = False
        self.head = b""
        self.status: int | None = None
        self.decoder = ChunkedDecoder(keep_body=False)
        self.started = time.monotonic()
        self.first_byte: float | None = None
        self.done: float | None = None
        self.eof = False
        self.tokens = 0.0

    def on_readable(self, now: float) -> None:
        if self.tokens < 1:
            return
        try:
            data = self.sock.recv(int(min(self.tokens, 65536)))
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
            self.done = now
            return
        self.tokens -= len(data)
        if self.first_byte is None:
            self.first_byte = now
        if self.status is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            end = self.head.index(b"\r\n\r\n") + 4
            self.status = int(self.head.split(b" ", 2)[1])
            data = self.head[end:]
        self.decoder.feed(data)


@pytest.mark.release_rss
def test_500_slow_concurrent_downloads_through_20_connections(pg_up, start_sluice,
                                                              big_baseline):
    server = start_sluice(standard_config(pg_up, pool_size=POOL_SIZE, pool_timeout_ms=60000))
    run_started = time.monotonic()
    deadline = run_started + TEST_BOUND_S
    selector = selectors.DefaultSelector()
    clients = [SlowClient(i, server.port) for i in range(CLIENTS)]
    for client in clients:
        selector.register(client.sock, selectors.EVENT_WRITE, client)

    max_rss = 0
    max_backends = 0
    stop_sampling = threading.Event()

    def sample_backends() -> None:
        nonlocal max_backends
        while not stop_sampling.wait(0.5):
            try:
                count = int(pg_up.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'sluice %'"))
            except AssertionError:
                continue
            max_backends = max(max_backends, count)

    sampler = threading.Thread(target=sample_backends, daemon=True)
    sampler.start()
    open_clients = len(clients)
    last_tick = time.monotonic()
    next_rss = 0.0
    try:
        while open_clients and time.monotonic() < deadline:
            now = time.monotonic()
            refill = (now - last_tick) * CLIENT_RATE
            last_tick = now
            for client in clients:
                if not client.eof:
                    client.tokens = min(client.tokens + refill, CLIENT_RATE * 0.1)
            if now >= next_rss:
                max_rss = max(max_rss, server.rss_kib())
                next_rss = now + 0.1
            for key, events in selector.select(timeout=TICK_S):
                client: SlowClient = key.data
                if events & selectors.EVENT_WRITE and not client.sent:
                    client.sock.sendall(client.request)  # small: fits the socket buffer
                    client.sent = True
                    selector.modify(client.sock, selectors.EVENT_READ, client)
                    continue
                if events & selectors.EVENT_READ:
                    client.on_readable(now)
                    if client.eof:
                        selector.unregister(client.sock)
                        client.sock.close()
                        open_clients -= 1
            # Pace: wait for the rest of the tick when nobody may read.
            spent = time.monotonic() - now
            if spent < TICK_S / 2:
                time.sleep(TICK_S / 2 - spent)
    finally:
        stop_sampling.set()
        for client in clients:
            if not client.eof:
                try:
                    selector.unregister(client.sock)
                except (KeyError, ValueError):
                    pass
                client.sock.close()
        selector.close()
        sampler.join(timeout=5)
    elapsed = time.monotonic() - run_started

    unfinished = [c.index for c in clients if not c.eof]
    assert not unfinished, (
        f"{len(unfinished)} of {CLIENTS} downloads unfinished after {TEST_BOUND_S} s; "
        f"never got a byte: {sum(1 for c in clients if c.first_byte is None)}")
    statuses = {}
    for client in clients:
        statuses[client.status] = statuses.get(client.status, 0) + 1
    assert statuses == {200: CLIENTS}, statuses
    incomplete = [c.index for c in clients if not c.decoder.complete]
    assert not incomplete, f"{len(incomplete)} downloads ended without the final chunk"
    wrong = []
    header_crlf = big_baseline.header.replace(b"\n", b"\r\n")
    for client in clients:
        expected = header_crlf + big_baseline.slice_lf(client.first_id, client.end_id).replace(
            b"\n", b"\r\n")
        if (client.decoder.newlines != ROWS_PER_CLIENT + 1
                or client.decoder.body_bytes != len(expected)
                or client.decoder.hasher.hexdigest() != sha256(expected)):
            wrong.append((client.index, client.decoder.newlines, client.decoder.body_bytes,
                          len(expected)))
    assert not wrong, f"{len(wrong)} downloads with wrong content, e.g. {wrong[:5]}"
    first_bytes = sorted(c.first_byte - c.started for c in clients)
    assert first_bytes[-1] < 60.0, f"slowest first byte after {first_bytes[-1]:.1f} s"
    if not SANITIZED:  # the sanitizer build's RSS is ASan's (shadow memory, quarantine)
        assert max_rss < RSS_LIMIT_KIB, f"sluice RSS reached {max_rss / 1024:.1f} MiB"
    assert 0 < max_backends <= POOL_SIZE, (
        f"{max_backends} PostgreSQL backends served Sluice, pool_size = {POOL_SIZE}")
    metrics = server.metrics()
    assert metrics["sluice_active_streams"] == 0
    print(f"\n500 slow clients: {elapsed:.1f} s, first byte median "
          f"{first_bytes[len(first_bytes) // 2]:.2f} s / max {first_bytes[-1]:.2f} s, "
          f"max RSS {max_rss / 1024:.1f} MiB, max backends {max_backends}")


# --------------------------------------------------------------------------------------------
# Shutdown with a warm pool
# --------------------------------------------------------------------------------------------

def test_sigterm_with_a_warm_pool_exits_0(pg_up, start_sluice):
    """SIGTERM after concurrent exports left ~20 idle pooled connections: a clean exit 0, every
    time (the pooled connections must go before the I/O machinery they are registered with)."""
    outcomes = []
    for attempt in range(5):
        server = start_sluice(standard_config(pg_up, pool_size=20), name=f"warm{attempt}")
        results = []
        failures = []

        def fetch():
            try:
                results.append(requests.get(f"{server.url}/v1/exports/big.csv",
                                            params={"id.lt": "12000"}, timeout=30))
            except requests.RequestException as error:
                failures.append(repr(error))

        threads = [threading.Thread(target=fetch) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, f"{failures[:3]}\n{server.log_tail(40)}"
        assert [r.status_code for r in results] == [200] * 20
        assert all(r.content.count(b"\r\n") == 12000 for r in results)
        rc = server.stop()
        outcomes.append(rc)
        if rc != 0:
            break
    assert outcomes == [0] * 5, (
        f"exit codes after SIGTERM: {outcomes} (-6 = SIGABRT, -11 = SIGSEGV)\n"
        f"{server.log_tail(5)}")


def test_cancelled_connection_is_replaced_before_the_next_request(pg_up, start_sluice):
    """A client that leaves mid-download makes Sluice cancel the COPY and close that connection;
    the pool opens a replacement at once, on its own, so the next download does not wait for a
    new PostgreSQL backend (docs/BENCHMARKS.md: TTFB 16-18 ms -> 5-6 ms after an abort)."""
    server = start_sluice(standard_config(pg_up), name="replace")

    def idle_pooled() -> int:
        # Sluice's pooled connections: no application_name outside a COPY (psql's is 'psql').
        return int(pg_up.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND application_name = '' AND state = 'idle'"))

    assert_types_export_works(server.url)  # leaves one pooled connection idle
    wait_until(lambda: idle_pooled() >= 1, timeout=5, message="no idle pooled connection")
    before = idle_pooled()
    response = raw_get(server.port, "/v1/exports/endless.csv", rcvbuf=65536)
    assert response.status == 200
    received = len(response.buffered)
    while received < 256 * 1024:
        chunk = response.sock.recv(65536)
        assert chunk, "the endless export ended"
        received += len(chunk)
    assert idle_pooled() == before - 1  # the stream holds it
    response.close()
    # No request in between: the replacement appears by itself.
    wait_until(lambda: idle_pooled() == before, timeout=5,
               message="the cancelled connection was not replaced")
    wait_until(lambda: server.metrics()["sluice_active_streams"] == 0, timeout=2,
               message="the stream is still counted as active")
    assert_types_export_works(server.url)
