"""Compressed exports: `orders.csv.gz` / `.jsonl.zst` downloads (the file is gzip/zstd) and
transparent `Content-Encoding` chosen by `Accept-Encoding`, checked against the real `gzip` and
`zstd` tools, Python's gzip module, curl --compressed and requests; streaming, leaving clients,
integrity trailers over the wire bytes, and failures that must never leave a valid .gz."""

from __future__ import annotations

import base64
import gzip
import hashlib
import socket
import statistics
import subprocess
import time
import zlib
from pathlib import Path

import pytest
import requests

from support.csv import csv_rows_with_nulls
from support.demo import (
    ORDERS_COLUMNS,
    ORDERS_QUERY,
    RowDigest,
    assert_rows_of_the_table,
    canonical_orders_row,
    parse_csv_table,
    parse_jsonl_table,
    sqlite_connect,
    sqlite_rows,
)
from support.http import (
    ChunkedReader,
    assert_head_has_no_body,
    assert_json_error,
    head_then_get,
    raw_get,
)
from support.metrics import (
    assert_steady,
    metrics,
    read_chars,
    wait_for_metric,
    wait_until,
    wait_until_steady,
)
from support.server import run_sluice

FAILING = """
[[datasets]]
name = "fails"
source = "demo"
# abs() of the smallest integer is an overflow error: the query fails after 5000 rows.
query = "SELECT id, CASE WHEN id > 5000 THEN abs(-9223372036854775807 - 1) ELSE 1 END AS x FROM orders ORDER BY id"
"""

TOOLS = {"gz": ["gzip", "-dc"], "zst": ["zstd", "-dcq"]}
TESTERS = {"gz": ["gzip", "-t"], "zst": ["zstd", "-tq"]}


def curl(url: str, tmp_path: Path, *extra: str, name: str = "body.bin"):
    """(exit code, headers, trailers, body path) of a curl download."""
    dump, body = tmp_path / f"{name}.headers", tmp_path / name
    result = subprocess.run(["curl", "-sS", "-D", str(dump), "-o", str(body), *extra, url],
                            capture_output=True, timeout=300)
    blocks = dump.read_text("latin-1").replace("\r\n", "\n").split("\n\n")

    def fields(block: str) -> dict[str, str]:
        pairs = (line.split(":", 1) for line in block.split("\n") if ":" in line)
        return {k.strip().lower(): v.strip() for k, v in pairs}

    trailers = fields(blocks[1]) if len(blocks) > 1 else {}
    return result.returncode, fields(blocks[0]), trailers, body


def decompress_with_tool(ext: str, path: Path) -> bytes:
    result = subprocess.run([*TOOLS[ext], str(path)], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_rows(body: bytes, fmt: str) -> list[tuple]:
    """The canonical rows of a CSV or JSON Lines body (support/demo.py)."""
    text = body.decode("utf-8")
    return (parse_csv_table(text) if fmt == "csv" else parse_jsonl_table(text))[1]


def assert_from_table(db, body: bytes, fmt: str, limit: int, where: str = "1 = 1") -> None:
    """The body holds min(limit, matching) distinct rows of the selection, each equal to the
    table's row (sqlite3): an oracle outside Sluice for what the compressed bytes decode to."""
    with sqlite_connect(db) as conn:
        matching = conn.execute(f"SELECT count(*) FROM orders WHERE {where}").fetchone()[0]
    assert_rows_of_the_table(db, table_rows(body, fmt), min(limit, matching), where)


def plain(url: str) -> bytes:
    """The uncompressed body, as curl without --compressed gets it."""
    result = subprocess.run(["curl", "-sSf", url], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --------------------------------------------------------------------------------------------
# Downloads named .gz / .zst
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, ext, params, limit, where", [
    ("csv", "gz", "limit=200000", 200000, "1 = 1"),
    ("jsonl", "gz", "country=DE&limit=50000", 50000, "country = 'DE'"),
    ("csv", "zst", "limit=200000", 200000, "1 = 1"),
    ("jsonl", "zst", "status=paid&limit=30000", 30000, "status = 'paid'"),
    ("csv", "gz", "limit=0", 0, "1 = 1"),
])
def test_suffix_download_is_a_compressed_file(demo, server, tmp_path, fmt, ext, params, limit,
                                              where):
    code, headers, _, body = curl(f"{server.url}/v1/exports/orders.{fmt}.{ext}?{params}",
                                  tmp_path, "-H", "Accept-Encoding: gzip, zstd",
                                  name=f"orders.{fmt}.{ext}")
    assert code == 0
    assert headers["content-type"] == {"gz": "application/gzip", "zst": "application/zstd"}[ext]
    assert "content-encoding" not in headers and "vary" not in headers
    assert headers["content-disposition"].endswith(f'.{fmt}.{ext}"'), headers
    subprocess.run([*TESTERS[ext], str(body)], check=True, timeout=60)
    expected = plain(f"{server.url}/v1/exports/orders.{fmt}?{params}")
    assert decompress_with_tool(ext, body) == expected
    if ext == "gz":
        assert gzip.decompress(body.read_bytes()) == expected
    assert body.stat().st_size < max(len(expected), 100) * 0.45 + 64
    assert_from_table(demo.db, expected, fmt, limit, where)


def test_whole_demo_as_gz_matches_the_plain_export(server, tmp_path, orders_digest):
    code, _, _, body = curl(f"{server.url}/v1/exports/orders.csv.gz", tmp_path,
                            name="all.csv.gz")
    assert code == 0
    decoded = decompress_with_tool("gz", body)
    expected = hashlib.sha256(plain(f"{server.url}/v1/exports/orders.csv")).hexdigest()
    assert hashlib.sha256(decoded).hexdigest() == expected
    # And what it decodes to is the table (sqlite3), not only the same as another export.
    rows = csv_rows_with_nulls(decoded.decode("utf-8"))
    assert next(rows) == ORDERS_COLUMNS
    assert RowDigest().add_all(canonical_orders_row(r) for r in rows) == orders_digest


def test_unknown_suffixes_are_unknown_formats(server):
    for target in ("orders.csv.bz2", "orders.gz", "orders.zst", "orders.csv.gz.gz",
                   "orders.csv.GZ", "orders.tar.gz"):
        response = requests.get(f"{server.url}/v1/exports/{target}", timeout=10)
        assert_json_error(response, 404, "unknown_format")


# --------------------------------------------------------------------------------------------
# Content-Encoding by Accept-Encoding
# --------------------------------------------------------------------------------------------

def test_curl_compressed_gets_gzip_transparently(demo, server, tmp_path):
    url = f"{server.url}/v1/exports/orders.csv?limit=100000"
    code, headers, _, body = curl(url, tmp_path, "--compressed")
    assert code == 0
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"].endswith('.csv"')
    assert body.read_bytes() == plain(url)
    assert_from_table(demo.db, body.read_bytes(), "csv", 100000)


@pytest.mark.parametrize("accept, coding", [
    ("gzip", "gzip"),
    ("zstd", "zstd"),
    ("gzip, deflate, br, zstd", "gzip"),
    ("gzip;q=0.5, zstd", "zstd"),
    ("br", None),
    ("gzip;q=0.5, identity", None),
    ("*", "gzip"),
])
def test_accept_encoding_chooses(demo, server, tmp_path, accept, coding):
    url = f"{server.url}/v1/exports/orders.jsonl?limit=20000"
    code, headers, _, body = curl(url, tmp_path, "-H", f"Accept-Encoding: {accept}")
    assert code == 0
    assert headers.get("content-encoding") == coding
    assert headers["vary"] == "Accept-Encoding"
    assert headers["content-type"].startswith("application/x-ndjson")
    raw = body.read_bytes()
    expected = plain(url)
    if coding is None:
        assert raw == expected
    else:
        assert decompress_with_tool({"gzip": "gz", "zstd": "zst"}[coding], body) == expected
    assert_from_table(demo.db, expected, "jsonl", 20000)


def test_plain_requests_stay_plain_but_vary(server):
    response = requests.get(f"{server.url}/v1/exports/orders.csv?limit=10", timeout=10,
                            headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding"


def test_requests_decodes_its_default_gzip(demo, server):
    url = f"{server.url}/v1/exports/orders.csv?limit=50000"
    response = requests.get(url, timeout=60)  # sends Accept-Encoding: gzip, deflate
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.content == plain(url)
    assert_from_table(demo.db, response.content, "csv", 50000)


def test_nothing_acceptable_is_406_before_the_query(server):
    for accept in ("br, identity;q=0", "*;q=0", "identity;q=0"):
        response = requests.get(f"{server.url}/v1/exports/orders.csv", timeout=10,
                                headers={"Accept-Encoding": accept})
        assert_json_error(response, 406, "not_acceptable")
        assert response.headers["Vary"] == "Accept-Encoding"  # caches key the 406 on it
    # The same refusal with a coding Sluice has is fine.
    response = requests.get(f"{server.url}/v1/exports/orders.csv?limit=5", timeout=10,
                            headers={"Accept-Encoding": "zstd, identity;q=0"})
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "zstd"


def test_head_answers_the_same_headers(demo, server):
    """HEAD and GET on one keep-alive connection, read off the wire: the same headers, and not
    one byte between the HEAD response's headers and the GET's status line (requests and
    http.client never read a HEAD body, so they cannot see one)."""
    for target, accept in (("orders.csv.gz", ""), ("orders.jsonl.zst", ""),
                           ("orders.csv", "zstd")):
        url = f"/v1/exports/{target}?limit=10"
        extra = {"Accept-Encoding": accept} if accept else {"Accept-Encoding": "identity"}
        result = head_then_get(server.port, url, headers=extra)
        assert_head_has_no_body(result)
        for name in ("content-type", "content-disposition", "content-encoding", "vary"):
            assert result.head_headers.get(name) == result.get_headers.get(name), (target, name)
        # The GET after it is a whole, correct download: 10 rows of the table.
        ext = "zst" if ".zst" in target or accept == "zstd" else "gz"
        decoded = subprocess.run(TOOLS[ext], input=result.get_body, capture_output=True,
                                 check=True).stdout.decode("utf-8")
        if target.startswith("orders.jsonl"):
            _, rows = parse_jsonl_table(decoded)
        else:
            _, rows = parse_csv_table(decoded)
        assert len(rows) == 10, decoded[:300]
        ids = [row[0] for row in rows]
        expected = sqlite_rows(demo.db, f"{ORDERS_QUERY} WHERE id IN ({', '.join('?' * 10)})",
                               ids)
        assert sorted(rows) == sorted(canonical_orders_row(r) for r in expected), target


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------

def first_chunk(port: int, target: str, accept: str) -> tuple[float, bytes]:
    """Seconds to the first chunk of body data, and that chunk."""
    start = time.perf_counter()
    response = raw_get(port, target, headers={"Accept-Encoding": accept})
    try:
        assert response.status == 200
        data = ChunkedReader(response).read_chunk()
        return time.perf_counter() - start, data
    finally:
        response.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        response.close()


@pytest.mark.parametrize("target, accept", [
    ("/v1/exports/orders_big.csv.gz", "identity"),
    ("/v1/exports/orders_big.csv", "zstd"),
])
def test_a_big_export_starts_at_once_and_its_first_chunk_decodes(demo, server, target, accept):
    """orders_big is 50x the demo: the first compressed bytes must still leave at once, and be
    a complete, decodable block (the compressor flushed), not a header waiting for more."""
    times = []
    for _ in range(5):
        elapsed, data = first_chunk(server.port, target, accept)
        times.append(elapsed)
        wait_for_metric(demo.url, "sluice_active_streams", lambda v: v == 0, timeout=10)
        if "zstd" in accept:
            out = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True).stdout
        else:
            out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        assert out.startswith(b"id,created_at,email,") and out.count(b"\r\n") >= 2, out[:200]
    assert statistics.median(times) < 0.100, times


def test_a_client_that_leaves_mid_stream_stops_the_query(start_server, demo):
    srv = start_server(name="leaves")
    before = metrics(srv.url)
    read_before = read_chars(srv.pid)
    response = raw_get(srv.port, "/v1/exports/orders_big.csv.zst")
    assert response.status == 200
    received = len(response.buffered)
    while received < 300_000:
        data = response.sock.recv(65536)
        assert data
        received += len(data)
    response.sock.close()
    # Outside Sluice's counters: the kernel's count of the bytes the process read (the SQLite
    # file through pread) stops moving soon after the client left...
    settled, _ = wait_until_steady(lambda: read_chars(srv.pid), quiet=0.3, timeout=3,
                                   message="the server's file reads (rchar)", tolerance=4096)
    # ... and stays still (a query still running would read on), ...
    assert_steady(lambda: read_chars(srv.pid), 0.5, "the server's file reads after the client "
                  "left", tolerance=4096)
    # ... far from the 100,000,000 rows (50 passes over orders.db) of orders_big: at most 5
    # passes over the file, the bound rows_read_total < 10,000,000 below sets on Sluice's own
    # count (the compressed stream fills the socket buffers with many rows).
    db_size = demo.db.stat().st_size
    assert settled - read_before < 5 * db_size, (settled - read_before, db_size)
    wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 0, timeout=5)
    after = metrics(srv.url)
    assert_steady(lambda: metrics(srv.url)["sluice_rows_read_total"], 0.3, "rows_read_total")
    assert after["sluice_rows_read_total"] < 10_000_000
    assert after["sluice_streams_aborted_total"] == before["sluice_streams_aborted_total"] + 1


def test_bytes_sent_total_counts_wire_bytes(start_server, tmp_path):
    srv = start_server(name="wire")
    before = metrics(srv.url)["sluice_bytes_sent_total"]
    code, _, _, body = curl(f"{srv.url}/v1/exports/orders.csv.gz?limit=100000", tmp_path)
    assert code == 0
    wait_until(lambda: metrics(srv.url)["sluice_active_streams"] == 0, timeout=5)
    assert metrics(srv.url)["sluice_bytes_sent_total"] - before == body.stat().st_size


# --------------------------------------------------------------------------------------------
# Integrity and failures
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, accept", [
    ("orders.csv.gz?limit=54321", "identity"),
    ("orders.jsonl.zst?limit=54321", "identity"),
    ("orders.csv?limit=54321", "gzip"),
])
def test_trailers_are_over_the_compressed_wire_bytes(demo, server, tmp_path, target, accept):
    code, headers, trailers, body = curl(f"{server.url}/v1/exports/{target}", tmp_path,
                                         "-H", "TE: trailers", "-H", f"Accept-Encoding: {accept}")
    assert code == 0
    raw = body.read_bytes()
    digest = hashlib.sha256(raw)
    assert trailers["sluice-rows"] == "54321"
    assert trailers["sluice-sha256"] == digest.hexdigest()
    assert trailers["content-digest"] == f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    ext = "zst" if ".zst" in target else "gz"
    fmt = "jsonl" if ".jsonl" in target else "csv"
    # Exactly that many rows of the table (notes hold line breaks: counted as parsed rows).
    assert_from_table(demo.db, decompress_with_tool(ext, body), fmt, 54321)


@pytest.mark.parametrize("target, accept, ext", [
    ("fails.csv.gz", "identity", "gz"),
    ("fails.csv", "gzip", "gz"),
    ("fails.csv.zst", "identity", "zst"),
])
def test_a_failure_mid_stream_never_leaves_a_valid_file(start_server, demo, tmp_path, target,
                                                        accept, ext):
    srv = start_server(name="fails", datasets=FAILING)
    code, headers, trailers, body = curl(f"{srv.url}/v1/exports/{target}", tmp_path,
                                         "-H", f"Accept-Encoding: {accept}", "-H", "TE: trailers")
    assert code == 18, f"curl exit {code}: the transfer must look cut short"
    assert trailers == {}
    assert body.stat().st_size > 0
    tested = subprocess.run([*TESTERS[ext], str(body)], capture_output=True, timeout=60)
    assert tested.returncode != 0, "a cut export must not be a valid compressed file"
    # What did arrive decodes (each write was flushed): the rows before the failure.
    partial = subprocess.run([*TOOLS[ext], str(body)], capture_output=True, timeout=60).stdout
    assert partial.startswith(b"id,x\r\n1,1\r\n")
    # Exactly a beginning of what the query yields before it fails (id <= 5000, x = 1, from
    # orders.db), never a row past the failure.
    ids = sqlite_rows(demo.db, "SELECT id FROM orders WHERE id <= 5000 ORDER BY id")
    whole = b"id,x\r\n" + b"".join(b"%d,1\r\n" % r[0] for r in ids)
    assert whole.startswith(partial), partial[-200:]


def test_a_failed_http10_compressed_export_is_reset(start_server, tmp_path):
    srv = start_server(name="fails10", datasets=FAILING)
    code, headers, _, body = curl(f"{srv.url}/v1/exports/fails.csv.gz", tmp_path, "--http1.0")
    assert code == 56, f"curl exit {code} (56 = connection reset)"
    assert subprocess.run(["gzip", "-t", str(body)], capture_output=True).returncode != 0


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------

def test_cli_compresses_by_suffix_and_flag(demo, tmp_path):
    base = ["export", "orders", "--config", str(demo.config), "--filter", "country=FR",
            "--filter", "id.lte=200000"]
    plain_out = run_sluice(*base, "--format", "csv")
    assert plain_out.returncode == 0, plain_out.stderr
    # The plain export is the table's selection (sqlite3); the compressed ones must equal it.
    expected = sqlite_rows(demo.db, f"{ORDERS_QUERY} WHERE country = 'FR' AND id <= 200000")
    assert sorted(table_rows(plain_out.stdout, "csv")) == sorted(
        canonical_orders_row(r) for r in expected)
    for name, tool in (("o.csv.gz", TOOLS["gz"]), ("o.csv.zst", TOOLS["zst"])):
        result = run_sluice(*base, "--format", "csv", "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert not (tmp_path / f"{name}.partial").exists()
        out = subprocess.run([*tool, str(tmp_path / name)], capture_output=True, check=True)
        assert out.stdout == plain_out.stdout
    result = run_sluice(*base, "--format", "csv", "--compress", "zstd")
    assert result.returncode == 0
    assert subprocess.run(TOOLS["zst"], input=result.stdout, capture_output=True,
                          check=True).stdout == plain_out.stdout
    result = run_sluice(*base, "--compress", "zstd", "-o", str(tmp_path / "x.csv.gz"))
    assert result.returncode != 0 and b"contradicts" in result.stderr
    assert not (tmp_path / "x.csv.gz").exists()
