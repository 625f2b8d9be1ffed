"""Integrity trailers: with `TE: trailers`, a download ends with its row count and SHA-256
(`Sluice-Rows`, `Sluice-Sha256`, RFC 9530 `Content-Digest`), checked here with curl, which
writes trailers after the headers in its -D dump."""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
from pathlib import Path

import pytest

from support.demo import sqlite_rows

FAILING = """
[[datasets]]
name = "fails"
source = "demo"
# abs() of the smallest integer is an overflow error: the query fails after 5000 rows.
query = "SELECT id, CASE WHEN id > 5000 THEN abs(-9223372036854775807 - 1) ELSE 1 END AS x FROM orders ORDER BY id"
"""


def curl(url: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, str], dict[str, str], bytes]:
    """(exit code, headers, trailers, body) of a curl download."""
    dump, body = tmp_path / "dump.txt", tmp_path / "body.bin"
    result = subprocess.run(["curl", "-sS", "-D", str(dump), "-o", str(body), *extra, url],
                            capture_output=True, timeout=120)
    blocks = dump.read_text("latin-1").replace("\r\n", "\n").split("\n\n")
    def fields(block: str) -> dict[str, str]:
        pairs = (line.split(":", 1) for line in block.split("\n")[0:] if ":" in line)
        return {name.strip().lower(): value.strip() for name, value in pairs}
    headers = fields(blocks[0])
    trailers = fields(blocks[1]) if len(blocks) > 1 else {}
    return result.returncode, headers, trailers, body.read_bytes()


@pytest.mark.parametrize("fmt, params, rows", [
    ("csv", "limit=12345", 12345),
    ("jsonl", "country=DE&limit=777", 777),
    ("csv", "limit=0", 0),
])
def test_trailers_carry_rows_and_the_sha256_of_the_body(server, tmp_path, fmt, params, rows):
    url = f"{server.url}/v1/exports/orders.{fmt}?{params}"
    code, headers, trailers, body = curl(url, tmp_path, "-H", "TE: trailers")
    assert code == 0
    assert headers["trailer"] == "Sluice-Rows, Sluice-Sha256, Content-Digest"
    digest = hashlib.sha256(body)
    assert trailers["sluice-rows"] == str(rows)
    assert trailers["sluice-sha256"] == digest.hexdigest()
    assert trailers["content-digest"] == f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    if fmt == "jsonl":
        assert body.count(b"\n") == rows


def test_no_trailers_unless_asked(server, tmp_path):
    code, headers, trailers, body = curl(f"{server.url}/v1/exports/orders.csv?limit=10", tmp_path)
    assert code == 0 and "trailer" not in headers and trailers == {}
    code, headers, trailers, _ = curl(f"{server.url}/v1/exports/orders.csv?limit=10", tmp_path,
                                      "-H", "TE: gzip;q=0.5, deflate")
    assert code == 0 and "trailer" not in headers and trailers == {}
    # HTTP/1.0 has no chunks, so no trailers either.
    code, headers, trailers, body = curl(f"{server.url}/v1/exports/orders.csv?limit=10", tmp_path,
                                         "--http1.0", "-H", "TE: trailers")
    assert code == 0 and "trailer" not in headers and trailers == {}
    assert body.count(b"\r\n") >= 11


def test_token_is_matched_case_insensitively_among_others(server, tmp_path):
    code, headers, trailers, body = curl(f"{server.url}/v1/exports/orders.csv?limit=3", tmp_path,
                                         "-H", "TE: deflate;q=0.3, TRAILERS")
    assert code == 0 and trailers["sluice-sha256"] == hashlib.sha256(body).hexdigest()


def test_raw_trailer_section_is_well_formed(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/exports/orders.csv?limit=5 HTTP/1.1\r\nHost: x\r\n"
                     b"TE: trailers\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2:]
    assert rest.endswith(b"\r\n\r\n"), rest
    fields = dict(line.split(b": ", 1) for line in rest[:-4].split(b"\r\n"))
    assert fields[b"Sluice-Rows"] == b"5"
    assert fields[b"Sluice-Sha256"].decode() == hashlib.sha256(body).hexdigest()


def test_a_failed_export_sends_no_trailers(start_server, demo, tmp_path):
    srv = start_server(name="fails", datasets=FAILING)
    code, headers, trailers, body = curl(f"{srv.url}/v1/exports/fails.csv", tmp_path,
                                         "-H", "TE: trailers")
    # docs/API.md: an HTTP/1.1 export that fails after its headers ends without the final
    # chunk and the connection is closed: curl's (18) "transfer closed with outstanding read
    # data remaining", and no trailers.
    assert code == 18, f"curl exit {code}: the transfer must look cut short (18)"
    assert headers["trailer"] and trailers == {}
    assert body.count(b"\n") >= 100
    # What arrived is a beginning of what the query yields before it fails (id <= 5000, x = 1).
    ids = sqlite_rows(demo.db, "SELECT id FROM orders WHERE id <= 5000 ORDER BY id")
    assert (b"id,x\r\n" + b"".join(b"%d,1\r\n" % r[0] for r in ids)).startswith(body), body[-200:]


def test_a_failed_http10_export_is_reset_not_closed(start_server, tmp_path):
    """HTTP/1.0 bodies end at the close, so a failure must reset the connection: curl reports
    an error instead of saving a short file that looks complete."""
    srv = start_server(name="fails10", datasets=FAILING)
    code, headers, _, body = curl(f"{srv.url}/v1/exports/fails.csv", tmp_path, "--http1.0")
    assert "transfer-encoding" not in headers
    assert code == 56, f"curl exit {code} (56 = connection reset)"
    assert body.startswith(b"id,x\r\n")
    code, _, _, body = curl(f"{srv.url}/v1/exports/orders.csv?limit=100", tmp_path, "--http1.0")
    assert code == 0 and body.count(b"\r\n") >= 101
