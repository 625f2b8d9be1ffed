"""The server's shared machinery as a client and an operator see it: the access log, the one
admission limit, counters that add up, and a shutdown that ends idle connections at once and
never lets a cut download look whole."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time

import requests

from support.http import raw_get
from support.metrics import metrics, wait_for_metric, wait_until

# TIME CLIENT "METHOD TARGET" STATUS BYTES DURATIONms id=ID[ aborted="REASON"]
ACCESS_LINE = re.compile(
    r'^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<client>\S+) '
    r'"(?P<method>\S+) (?P<target>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'(?P<ms>\d+\.\d)ms id=(?P<id>\S+)(?: aborted="(?P<aborted>(?:[^"\\]|\\.)*)")?$')
EVENT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [^\"]")


def access_lines(text: str) -> list[re.Match]:
    return [m for m in map(ACCESS_LINE.match, text.splitlines()) if m]


def log_lines(server) -> list[str]:
    return server.log_text().splitlines()


# --------------------------------------------------------------------------------------------
# Access log
# --------------------------------------------------------------------------------------------

def test_access_log_has_one_complete_line_per_request(start_server):
    srv = start_server(name="access")
    health = requests.get(f"{srv.url}/healthz", headers={"X-Request-Id": "health-1"}, timeout=10)
    # identity: the log counts the bytes on the wire, which requests would decompress
    export = requests.get(f"{srv.url}/v1/exports/orders.csv?id.lte=100",
                          headers={"X-Request-Id": "export-1", "Accept-Encoding": "identity"},
                          timeout=10)
    gzipped = requests.get(f"{srv.url}/v1/exports/orders.csv?id.lte=100",
                           headers={"X-Request-Id": "export-gz", "Accept-Encoding": "gzip"},
                           stream=True, timeout=10)
    wire = gzipped.raw.read(decode_content=False)
    missing = requests.get(f"{srv.url}/v1/exports/nope.csv", timeout=10)
    head = requests.head(f"{srv.url}/v1/exports/orders.csv?id.lte=5", timeout=10)
    assert (health.status_code, export.status_code, missing.status_code, head.status_code) == \
        (200, 200, 404, 200)
    wait_until(lambda: len(access_lines(srv.log_text())) >= 5, timeout=5, message="5 log lines")
    lines = {m["id"]: m for m in access_lines(srv.log_text())}

    h = lines["health-1"]
    assert (h["method"], h["target"], h["status"]) == ("GET", "/healthz", "200")
    assert int(h["bytes"]) == len(health.content)  # a body sent whole is counted too
    assert re.fullmatch(r"127\.0\.0\.1:\d+", h["client"])
    assert h["aborted"] is None

    e = lines["export-1"]
    assert (e["target"], e["status"]) == ("/v1/exports/orders.csv?id.lte=100", "200")
    assert int(e["bytes"]) == len(export.content)
    assert int(lines["export-gz"]["bytes"]) == len(wire) < len(export.content)

    m = lines[missing.headers["X-Request-Id"]]
    assert m["status"] == "404" and int(m["bytes"]) == len(missing.content)
    hd = lines[head.headers["X-Request-Id"]]
    assert hd["method"] == "HEAD" and int(hd["bytes"]) == 0
    # Every line of the log is an access line or a timestamped event, never a fragment.
    for line in log_lines(srv):
        assert ACCESS_LINE.match(line) or EVENT_LINE.match(line), line


def test_lines_of_many_threads_never_interleave(start_server):
    srv = start_server(name="interleave")
    threads, per_thread = 8, 40
    failures: list[str] = []

    def client(n: int) -> None:
        with requests.Session() as session:
            for i in range(per_thread):
                # Long targets make long lines, which a split write would tear.
                target = f"/v1/exports/orders.csv?id.lte=3&columns=id&limit=1&x{n}_{i}=" + "y" * 600
                r = session.get(srv.url + target, timeout=30)
                if r.status_code != 400:  # x... is not a filter: a 400 with a JSON body
                    failures.append(f"{r.status_code} {r.text[:200]}")

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures, failures[:3]
    wait_until(lambda: len(access_lines(srv.log_text())) >= threads * per_thread, timeout=10,
               message="every request logged")
    lines = log_lines(srv)
    torn = [line for line in lines if not (ACCESS_LINE.match(line) or EVENT_LINE.match(line))]
    assert not torn, torn[:3]
    assert len(access_lines(srv.log_text())) == threads * per_thread


def test_json_log_lines(start_server):
    srv = start_server('log_format = "json"\n', name="jsonlog")
    r = requests.get(f"{srv.url}/v1/exports/orders.jsonl?id.lte=10",
                     headers={"X-Request-Id": "json-1", "Accept-Encoding": "identity"}, timeout=10)
    assert r.status_code == 200
    bad = requests.get(f"{srv.url}/v1/exports/orders.csv?nope=1", timeout=10)
    assert bad.status_code == 400
    srv.stop()
    records = [json.loads(line) for line in log_lines(srv)]  # every line is one JSON object
    access = {rec["request_id"]: rec for rec in records if "request_id" in rec}
    rec = access["json-1"]
    assert rec["method"] == "GET" and rec["target"] == "/v1/exports/orders.jsonl?id.lte=10"
    assert rec["status"] == 200 and rec["bytes"] == len(r.content)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["time"])
    assert isinstance(rec["duration_ms"], (int, float)) and "aborted" not in rec
    rec = access[bad.headers["X-Request-Id"]]  # the bad request's own line
    assert rec["status"] == 400 and rec["target"] == "/v1/exports/orders.csv?nope=1", rec
    assert rec["bytes"] == len(bad.content) and "aborted" not in rec, rec
    events = [rec["message"] for rec in records if "message" in rec]
    assert any(message.startswith("shutting down") for message in events), events


def test_an_aborted_download_logs_a_plain_reason(start_server):
    srv = start_server(name="abortlog")
    response = raw_get(srv.port, "/v1/exports/orders_big.csv", headers={"X-Request-Id": "cut-1"})
    assert response.status == 200
    received = len(response.buffered)  # with the chunks' framing
    while received < 500_000:
        received += len(response.sock.recv(65536))
    response.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    response.close()  # a reset: the client is gone
    wait_until(lambda: any(m["id"] == "cut-1" for m in access_lines(srv.log_text())), timeout=10,
               message="the aborted download is logged")
    line = next(m for m in access_lines(srv.log_text()) if m["id"] == "cut-1")
    assert line["status"] == "200"
    assert line["aborted"] == "the client left", line.group(0)
    # What the socket took: at least what arrived, less the chunk framing (~10 bytes a chunk).
    assert int(line["bytes"]) >= received * 0.99
    assert ".hpp" not in srv.log_text() and "[system:" not in srv.log_text()


# --------------------------------------------------------------------------------------------
# One admission limit, counters that add up
# --------------------------------------------------------------------------------------------

def test_exports_and_archives_share_one_max_streams(start_server):
    srv = start_server("max_streams = 1\n", name="onelimit")
    created = requests.post(f"{srv.url}/v1/archives", json={"name": "album", "prefix": "album/"},
                            timeout=30)
    assert created.status_code == 201, created.text
    archive_url = srv.url + created.json()["url"]
    slow = raw_get(srv.port, "/v1/exports/orders_big.csv", rcvbuf=32 * 1024)
    try:
        assert slow.status == 200
        wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 1, timeout=5)
        refused = requests.get(archive_url, timeout=10)
        assert refused.status_code == 503, refused.status_code
        assert refused.json()["error"]["code"] == "too_many_streams"
        assert refused.headers["Retry-After"]
    finally:
        slow.close()
    wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 0, timeout=10)
    slow_zip = raw_get(srv.port, created.json()["url"], rcvbuf=32 * 1024)
    try:
        assert slow_zip.status == 200
        refused = requests.get(f"{srv.url}/v1/exports/orders.csv?limit=1", timeout=10)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "too_many_streams"
    finally:
        slow_zip.close()
    m = metrics(srv.url)
    assert m["sluice_streams_rejected_total"] == 2


def test_every_started_stream_ends_and_every_row_read_is_accounted_for(start_server):
    srv = start_server(name="counters")
    url = srv.url
    archive = requests.post(f"{url}/v1/archives", json={"name": "album", "prefix": "album/"},
                            timeout=30).json()
    requests.get(f"{url}/v1/exports/orders.csv?id.lte=1000", timeout=30).raise_for_status()
    assert requests.head(f"{url}/v1/exports/orders.csv", timeout=30).status_code == 200
    assert requests.head(url + archive["url"], timeout=30).status_code == 200
    beyond = requests.get(url + archive["url"], headers={"Range": f"bytes={archive['size'] + 10}-"},
                          timeout=30)
    assert beyond.status_code == 416
    assert requests.get(url + archive["url"], timeout=60).status_code == 200
    assert requests.get(f"{url}/v1/exports/nope.csv", timeout=10).status_code == 404
    # Downloads cut by their clients at several points.
    for n in range(5):
        cut = raw_get(srv.port, "/v1/exports/orders_big.csv" if n % 2 else archive["url"],
                      rcvbuf=32 * 1024)
        received = len(cut.buffered)
        while received < 20_000 * (n + 1):
            data = cut.sock.recv(65536)
            if not data:
                break
            received += len(data)
        cut.close()
    wait_for_metric(url, "sluice_active_streams", lambda v: v == 0, timeout=15)

    def settled() -> dict | None:
        """The counters once every stream has ended as exactly one outcome and every row read
        is accounted for (the last aborts are booked just after the slot is freed)."""
        m = metrics(url)
        done = (m["sluice_streams_started_total"] == m["sluice_streams_completed_total"]
                + m["sluice_streams_aborted_total"]
                and m["sluice_archives_started_total"] == m["sluice_archives_completed_total"]
                + m["sluice_archives_aborted_total"]
                and m["sluice_rows_read_total"] == m["sluice_rows_sent_total"]
                + m["sluice_rows_discarded_total"])
        return m if done else None

    m = wait_until(settled, timeout=10, message="every started stream ended, every row read "
                   "accounted for")
    assert m["sluice_streams_started_total"] == 1 + 2  # HEAD and errors never start a stream
    assert m["sluice_streams_started_total"] == \
        m["sluice_streams_completed_total"] + m["sluice_streams_aborted_total"]
    assert m["sluice_streams_aborted_total"] == 2
    assert m["sluice_archives_started_total"] == 1 + 3  # not the HEAD, not the 416
    assert m["sluice_archives_started_total"] == \
        m["sluice_archives_completed_total"] + m["sluice_archives_aborted_total"]
    assert m["sluice_active_archives"] == 0
    # Rows read ahead of a cut download are discarded (how many depends on where the cut fell;
    # a HEAD reads none): read = sent + discarded, checked above.
    assert m["sluice_rows_read_total"] >= m["sluice_rows_sent_total"] > 0
    assert m["sluice_rows_read_total"] == \
        m["sluice_rows_sent_total"] + m["sluice_rows_discarded_total"], m
    # The 416 and the 404, nothing else (the POST was 201; the rest 200, /metrics included).
    assert m['sluice_http_responses_total{class="4xx"}'] == 2


# --------------------------------------------------------------------------------------------
# Shutdown
# --------------------------------------------------------------------------------------------

def test_shutdown_ends_idle_connections_at_once(start_server):
    srv = start_server("shutdown_grace_ms = 8000\n", name="idle")
    idle = socket.create_connection((srv.host, srv.port), timeout=10)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in idle.recv(65536)
    signalled = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert idle.recv(1) == b""  # closed by the server, not by the idle timeout
    rc, _ = srv.wait_exit(timeout=10)
    assert rc == 0
    assert time.monotonic() - signalled < 2.0, "the idle connection held the shutdown"
    idle.close()


def test_an_http10_download_cut_by_shutdown_does_not_look_complete(start_server, tmp_path):
    srv = start_server("shutdown_grace_ms = 500\n", name="http10")
    target = tmp_path / "cut.csv"
    download = subprocess.Popen(["curl", "-sS", "-0", "--limit-rate", "1M", "-o", str(target),
                                 f"{srv.url}/v1/exports/orders_big.csv"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 1, timeout=10)
        # The download is under way: curl has written its first bytes to the file.
        wait_until(lambda: download.poll() is not None
                   or (target.exists() and target.stat().st_size >= 256 * 1024),
                   timeout=10, message="curl wrote its first 256 KiB")
        assert download.poll() is None, "the download ended before the signal"
        srv.signal(signal.SIGTERM)
        _, stderr = download.communicate(timeout=30)
        # An HTTP/1.0 body ends at the close: only a reset tells the client it was cut, which
        # curl reports as (56) "Recv failure: Connection reset by peer" (docs/API.md).
        assert download.returncode == 56, (download.returncode, stderr)
        assert b"reset" in stderr.lower(), stderr
        rc, _ = srv.wait_exit(timeout=10)
        assert rc == 0
        aborted = [m["aborted"] for m in access_lines(srv.log_text()) if m["aborted"]]
        assert aborted == ["shutdown"], srv.log_tail()
    finally:
        if download.poll() is None:
            download.kill()
            download.wait()
