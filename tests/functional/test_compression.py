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

from support.http import ChunkedReader, assert_json_error, raw_get
from support.metrics import metrics, wait_for_metric, wait_until
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


def plain(url: str) -> bytes:
    """The uncompressed body, as curl without --compressed gets it."""
    result = subprocess.run(["curl", "-sSf", url], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --------------------------------------------------------------------------------------------
# Downloads named .gz / .zst
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, ext, params", [
    ("csv", "gz", "limit=200000"),
    ("jsonl", "gz", "country=DE&limit=50000"),
    ("csv", "zst", "limit=200000"),
    ("jsonl", "zst", "status=paid&limit=30000"),
    ("csv", "gz", "limit=0"),
])
def test_suffix_download_is_a_compressed_file(server, tmp_path, fmt, ext, params):
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


def test_whole_demo_as_gz_matches_the_plain_export(server, tmp_path):
    code, _, _, body = curl(f"{server.url}/v1/exports/orders.csv.gz", tmp_path,
                            name="all.csv.gz")
    assert code == 0
    expected = hashlib.sha256(plain(f"{server.url}/v1/exports/orders.csv")).hexdigest()
    assert hashlib.sha256(decompress_with_tool("gz", body)).hexdigest() == expected


def test_unknown_suffixes_are_unknown_formats(server):
    for target in ("orders.csv.bz2", "orders.gz", "orders.zst", "orders.csv.gz.gz",
                   "orders.csv.GZ", "orders.tar.gz"):
        response = requests.get(f"{server.url}/v1/exports/{target}", timeout=10)
        assert_json_error(response, 404, "unknown_format")


# --------------------------------------------------------------------------------------------
# Content-Encoding by Accept-Encoding
# --------------------------------------------------------------------------------------------

def test_curl_compressed_gets_gzip_transparently(server, tmp_path):
    url = f"{server.url}/v1/exports/orders.csv?limit=100000"
    code, headers, _, body = curl(url, tmp_path, "--compressed")
    assert code == 0
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"].endswith('.csv"')
    assert body.read_bytes() == plain(url)


@pytest.mark.parametrize("accept, coding", [
    ("gzip", "gzip"),
    ("zstd", "zstd"),
    ("gzip, deflate, br, zstd", "gzip"),
    ("gzip;q=0.5, zstd", "zstd"),
    ("br", None),
    ("gzip;q=0.5, identity", None),
    ("*", "gzip"),
])
def test_accept_encoding_chooses(server, tmp_path, accept, coding):
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


def test_plain_requests_stay_plain_but_vary(server):
    response = requests.get(f"{server.url}/v1/exports/orders.csv?limit=10", timeout=10,
                            headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding"


def test_requests_decodes_its_default_gzip(server):
    url = f"{server.url}/v1/exports/orders.csv?limit=50000"
    response = requests.get(url, timeout=60)  # sends Accept-Encoding: gzip, deflate
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.content == plain(url)


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


def test_head_answers_the_same_headers(server):
    for target, accept in (("orders.csv.gz", ""), ("orders.jsonl.zst", ""),
                           ("orders.csv", "zstd")):
        url = f"{server.url}/v1/exports/{target}?limit=10"
        extra = {"Accept-Encoding": accept} if accept else {"Accept-Encoding": "identity"}
        head = requests.head(url, timeout=10, headers=extra)
        get = requests.get(url, timeout=10, headers=extra, stream=True)
        for name in ("Content-Type", "Content-Disposition", "Content-Encoding", "Vary"):
            assert head.headers.get(name) == get.headers.get(name), (target, name)
        assert head.content == b""
        get.close()


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


def test_a_client_that_leaves_mid_stream_stops_the_query(start_server):
    srv = start_server(name="leaves")
    before = metrics(srv.url)
    response = raw_get(srv.port, "/v1/exports/orders_big.csv.zst")
    assert response.status == 200
    received = len(response.buffered)
    while received < 300_000:
        data = response.sock.recv(65536)
        assert data
        received += len(data)
    response.sock.close()
    wait_for_metric(srv.url, "sluice_active_streams", lambda v: v == 0, timeout=5)
    after = metrics(srv.url)
    time.sleep(0.3)
    assert metrics(srv.url)["sluice_rows_read_total"] == after["sluice_rows_read_total"]
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
def test_trailers_are_over_the_compressed_wire_bytes(server, tmp_path, target, accept):
    code, headers, trailers, body = curl(f"{server.url}/v1/exports/{target}", tmp_path,
                                         "-H", "TE: trailers", "-H", f"Accept-Encoding: {accept}")
    assert code == 0
    raw = body.read_bytes()
    digest = hashlib.sha256(raw)
    assert trailers["sluice-rows"] == "54321"
    assert trailers["sluice-sha256"] == digest.hexdigest()
    assert trailers["content-digest"] == f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    ext = "zst" if ".zst" in target else "gz"
    assert len(decompress_with_tool(ext, body).splitlines()) >= 54321


@pytest.mark.parametrize("target, accept, ext", [
    ("fails.csv.gz", "identity", "gz"),
    ("fails.csv", "gzip", "gz"),
    ("fails.csv.zst", "identity", "zst"),
])
def test_a_failure_mid_stream_never_leaves_a_valid_file(start_server, tmp_path, target, accept, ext):
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
