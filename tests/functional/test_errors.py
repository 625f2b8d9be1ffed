"""Bad requests get the right 4xx with the JSON error body, and the server keeps serving."""

from __future__ import annotations

import json
import re
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from support.demo import parse_csv_table, sqlite_connect, sqlite_rows
from support.http import (
    ChunkedReader,
    assert_json_error,
    raw_connect,
    raw_get,
    raw_request,
    read_fixed_body,
)
from support.server import run_sluice


def assert_still_serving(demo) -> None:
    """A good request right after: health and a small, correct export."""
    assert requests.get(f"{demo.url}/healthz", timeout=10).json() == {"status": "ok"}
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?id.lte=50&columns=id,email",
                            timeout=10)
    assert response.status_code == 200
    _, rows = parse_csv_table(response.content.decode())
    expected = sqlite_rows(demo.db, "SELECT id, email FROM orders WHERE id <= 50")
    assert sorted(rows, key=lambda r: r[0]) == sorted(expected)


def raw_error(port: int, request: bytes, status: int) -> tuple[dict, dict]:
    """Sends raw bytes, checks the status, returns (headers, the JSON body's error)."""
    response = raw_request(port, request)
    try:
        assert response.status == status, (
            f"expected {status}, got {response.status} for {request[:80]!r}... "
            f"({len(request)} bytes)")
        body = read_fixed_body(response)
    finally:
        response.close()
    assert response.header("content-type").startswith("application/json"), response.head
    error = json.loads(body)["error"]
    assert error["request_id"] == response.header("x-request-id")
    assert error["code"] and error["message"]
    return response.headers, error


# --------------------------------------------------------------------------------------------
# Malformed HTTP
# --------------------------------------------------------------------------------------------

MALFORMED = [
    ("garbage", b"GARBAGE\r\n\r\n"),
    ("binary", b"\x00\x01\x02\xff\xfe\r\n\r\n"),
    ("no version", b"GET /healthz\r\n\r\n"),
    ("two spaces", b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad version", b"GET /healthz HTTP/x.y\r\nHost: x\r\n\r\n"),
    ("unsupported version", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"),
    ("not http", b"GET /healthz FOO/1.1\r\nHost: x\r\n\r\n"),
    ("header without colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"),
    ("bad content-length", b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
]


@pytest.mark.parametrize("request_bytes", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_http_gets_400(demo, server, request_bytes):
    headers, error = raw_error(server.port, request_bytes, 400)
    assert error["code"] == "bad_request"
    assert_still_serving(demo)


# Heads Beast's parser accepts but RFC 9112 refuses: each could hide a second request.
SMUGGLING = [
    ("xchunked", b"POST /v1/archives HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
     "Transfer-Encoding"),
    ("chunked then identity",
     b"POST /v1/archives HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
     "Transfer-Encoding"),
    ("chunked on 1.0", b"POST /v1/archives HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
     "Transfer-Encoding"),
    ("obs-fold", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "obs-fold"),
    ("no host", b"GET /healthz HTTP/1.1\r\n\r\n", "Host"),
    ("two hosts", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "Host"),
]


@pytest.mark.parametrize("head,mentions", [(m[1], m[2]) for m in SMUGGLING],
                         ids=[m[0] for m in SMUGGLING])
def test_framing_that_could_smuggle_a_request_gets_400_and_a_close(demo, server, head, mentions):
    sock = raw_connect(server.port)
    try:
        # What follows the refused head must never run as a request of its own.
        sock.sendall(head + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    assert rest[length:] == b"", data  # one answer, then the connection closed
    error = json.loads(rest[:length])["error"]
    assert error["code"] == "bad_request" and mentions in error["message"], error
    assert_still_serving(demo)


def test_proper_framing_still_works(demo, server):
    body = b'{"name": "album", "prefix": "album/"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    for head, status in (
            (b"POST /v1/archives HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             b"Connection: close\r\n\r\n" + chunked, 201),
            (b"POST /v1/archives HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n"
             b"Connection: close\r\n\r\n" + chunked, 201),
            (b"GET /healthz HTTP/1.0\r\n\r\n", 200)):  # HTTP/1.0 needs no Host
        response = raw_request(server.port, head)
        try:
            assert response.status == status, (head[:60], response.head)
            body = json.loads(read_fixed_body(response))
            if status == 201:  # the chunked body was read whole: the archive of album/
                assert body["url"].startswith("/v1/archives/") and body["entries"] > 0, body
            else:
                assert body == {"status": "ok"}, body
        finally:
            response.close()


def test_malformed_request_target_gets_400(demo, server):
    for target in [b"/v1/exports/orders.csv?limit=%zz", b"/v1/exports/orders.csv?id=%4", b"*"]:
        raw_error(server.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400)
    assert_still_serving(demo)


def test_absolute_form_target_is_accepted(demo, server):
    """RFC 9112 3.2.2: a server MUST accept the absolute-form (`GET http://host/path`)."""
    request = (f"GET http://127.0.0.1:{server.port}/v1/exports/orders.csv?id.lte=2&columns=id "
               f"HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n").encode()
    response = raw_request(server.port, request)
    try:
        assert response.status == 200, response.head
        assert ChunkedReader(response).read_all() == b"id\r\n1\r\n2\r\n"
    finally:
        response.close()


def test_client_that_sends_half_a_request_and_leaves(demo, server):
    sock = raw_connect(server.port)
    sock.sendall(b"GET /v1/exports/orders.csv HTTP/1.1\r\nHost: x\r\nX-Par")
    sock.close()
    assert_still_serving(demo)


@pytest.mark.parametrize("shape", ["one 9 KiB header", "90 headers of 115 bytes"])
def test_oversized_headers_get_431(demo, server, shape):
    if shape.startswith("one"):
        fields = b"X-Big: " + b"a" * 9 * 1024 + b"\r\n"
    else:
        fields = b"".join(b"X-Header-%03d: %s\r\n" % (i, b"v" * 99) for i in range(90))
    request = b"GET /v1/exports/orders.csv?limit=1 HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    assert len(request) > 8 * 1024 + 512
    headers, error = raw_error(server.port, request, 431)
    assert error["code"] == "headers_too_large"
    assert_still_serving(demo)


def test_headers_just_under_the_limit_are_fine(demo, server):
    fields = b"".join(b"X-Header-%03d: %s\r\n" % (i, b"v" * 99) for i in range(60))
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    assert len(request) < 8 * 1024 - 512
    response = raw_request(server.port, request)
    try:
        assert response.status == 200
    finally:
        response.close()


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------

def test_unknown_dataset_404(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/nope.csv", timeout=10)
    assert_json_error(response, 404, "unknown_dataset", mentions=["nope"])
    assert_still_serving(demo)


def test_unknown_format_404(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/orders.xml", timeout=10)
    assert_json_error(response, 404, "unknown_format")
    response = requests.get(f"{demo.url}/v1/exports/orders.CSV", timeout=10)
    assert_json_error(response, 404, "unknown_format")  # suffixes are case-sensitive (.GZ too)


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/exports", "/v2/exports/orders.csv",
                                  "/v1/exports/orders.csv/extra", "/metrics/x", "/healthz/"])
def test_unknown_path_404(demo, server, path):
    response = requests.get(f"{demo.url}{path}", timeout=10)
    assert_json_error(response, 404, "not_found")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_an_export_405(demo, server, method):
    response = requests.request(method, f"{demo.url}/v1/exports/orders.csv", data=b"x=1",
                                timeout=10)
    assert_json_error(response, 405, "method_not_allowed")
    assert_still_serving(demo)


# Each target gets its one answer (docs/API.md): more segments than /v1/exports/{name}.{format}
# is no endpoint at all (404 not_found; no dot-segment is resolved into another path); one
# segment whose name (up to the first dot, %2F and %5C decoded inside it) is not
# [A-Za-z0-9_-]{1,64} is 400 invalid_dataset_name.
@pytest.mark.parametrize("target,status,code", [
    ("/v1/exports/../orders.csv", 404, "not_found"),
    ("/v1/exports/..", 400, "invalid_dataset_name"),
    ("/v1/exports/../../etc/passwd", 404, "not_found"),
    ("/v1/exports/..%2forders.csv", 400, "invalid_dataset_name"),
    ("/v1/exports/%2e%2e.csv", 400, "invalid_dataset_name"),
    ("/v1/exports/%2e%2e%2forders.csv", 400, "invalid_dataset_name"),
    ("/v1/exports/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd.csv", 400, "invalid_dataset_name"),
    ("/v1/exports/orders%2f..%2f..%2fetc.csv", 400, "invalid_dataset_name"),
    ("/v1/exports/..%5corders.csv", 400, "invalid_dataset_name"),
    ("/v1/exports/orders%00.csv", 400, "invalid_dataset_name"),
])
def test_path_traversal_in_the_dataset_name(demo, server, target, status, code):
    response = raw_get(server.port, target)
    try:
        assert response.status == status, (target, response.head)
        body = json.loads(read_fixed_body(response))
        assert body["error"]["request_id"] == response.header("x-request-id")
        assert body["error"]["code"] == code, body
    finally:
        response.close()


def test_path_traversal_with_curl_path_as_is(demo, server):
    # Both are four segments under /v1: no endpoint (404), never orders.csv resolved.
    for path in ["/v1/exports/../exports/orders.csv", "/v1/exports/%2e%2e/orders.csv"]:
        result = subprocess.run(["curl", "-sS", "--path-as-is", "-o", "/dev/null", "-w",
                                 "%{http_code}", f"{demo.url}{path}"],
                                capture_output=True, timeout=30)
        assert result.returncode == 0
        assert result.stdout.decode() == "404", (path, result.stdout)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------

def test_unknown_filter_400_names_it(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?colour=red", timeout=10)
    assert_json_error(response, 400, "unknown_filter", mentions=["colour"])
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?email=a@b.c", timeout=10)
    assert_json_error(response, 400, "unknown_filter", mentions=["email"])
    assert_still_serving(demo)


@pytest.mark.parametrize("query,param", [
    ("id=abc", "id"),
    ("id=1.5", "id"),
    ("id=", "id"),
    ("id.gt=9223372036854775808", "id.gt"),
    ("id.in=1,2,x", "id.in"),
    ("quantity.lt=ten", "quantity.lt"),
    ("created_at.lt=yesterday", "created_at.lt"),
    ("created_at.gte=2024-02-30", "created_at.gte"),
    ("created_at.gte=2023-02-29T00:00:00Z", "created_at.gte"),
    ("created_at.lt=2024-01-01T25:00:00Z", "created_at.lt"),
    ("created_at.lt=2024-01-01T10:00:00%2B99:00", "created_at.lt"),
    ("country=%FF%FE", "country"),
])
def test_wrongly_typed_value_400_names_the_parameter(demo, server, query, param):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?{query}", timeout=10)
    error = assert_json_error(response, 400, "invalid_value")
    assert f"'{param}'" in error["message"], error
    assert_still_serving(demo)


def test_unknown_operator_400(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?id.like=5", timeout=10)
    assert_json_error(response, 400, "unknown_operator", mentions=["like", "id.like"])


@pytest.mark.parametrize("query,op", [("country.lt=DE", "lt"), ("created_at.eq=2024-01-01", "eq"),
                                      ("status.prefix=pa", "prefix"), ("id.is_null=true", "is_null"),
                                      ("id.ne=5", "ne")])
def test_operator_not_allowed_400(demo, server, query, op):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?{query}", timeout=10)
    assert_json_error(response, 400, "operator_not_allowed", mentions=[f"'{op}'"])


def test_unknown_column_400(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?columns=id,password", timeout=10)
    assert_json_error(response, 400, "unknown_column", mentions=["password", "columns"])
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?columns=", timeout=10)
    assert_json_error(response, 400)
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?columns=id,id", timeout=10)
    assert_json_error(response, 400, "duplicate_column", mentions=["id"])
    assert_still_serving(demo)


@pytest.mark.parametrize("value", ["-1", "-100", "abc", "1.5", "", "99999999999999999999", "+5"])
def test_bad_limit_400(demo, server, value):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?limit={value}", timeout=10)
    assert_json_error(response, 400, "invalid_value", mentions=["limit"])


def test_repeated_parameters(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?limit=1&limit=2", timeout=10)
    assert_json_error(response, 400, mentions=["limit"])
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?id.lt=5&id.lt=7", timeout=10)
    assert_json_error(response, 400, "duplicate_parameter", mentions=["id.lt"])


# --------------------------------------------------------------------------------------------
# SQL injection: rejected, or harmless (a literal value), and the database untouched
# --------------------------------------------------------------------------------------------

def db_fingerprint(db: Path) -> tuple:
    stat = os.stat(db)
    with sqlite_connect(db) as conn:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        count = conn.execute("SELECT count(*), sum(id), max(id) FROM orders").fetchone()
    return stat.st_size, stat.st_mtime_ns, tuple(schema), count


INJECTED_VALUES = [
    ("country", "DE' OR '1'='1"),
    ("country", "DE'; DROP TABLE orders; --"),
    ("country", "DE\" OR \"1\"=\"1"),
    ("status", "paid') OR ('1'='1"),
    ("status", "paid' UNION SELECT 1,2,3,4,5,6,7,8 --"),
    ("country", "DE,FR') OR 1=1 --"),
]


@pytest.mark.parametrize("param,value", INJECTED_VALUES, ids=[v for _, v in INJECTED_VALUES])
def test_sql_injection_through_filter_values_is_a_literal(demo, server, param, value):
    """country and status are text filters (eq, in): any UTF-8 text is a valid value, so each
    attack is answered 200 with exactly the rows whose column equals the text (or, split at
    commas for `in`, one of its parts) literally, as sqlite3 finds them with bound parameters."""
    before = db_fingerprint(demo.db)
    response = requests.get(f"{demo.url}/v1/exports/orders.csv",
                            params={param: value, "columns": "id"}, timeout=30)
    assert response.status_code == 200, response.text[:300]
    values = value.split(",")
    placeholders = ", ".join("?" for _ in values)
    expected = [r[0] for r in sqlite_rows(
        demo.db, f"SELECT id FROM orders WHERE {param} IN ({placeholders})", values)]
    lines = response.text.split("\r\n")
    assert lines[0] == "id" and lines[-1] == ""
    assert sorted(int(line) for line in lines[1:-1]) == sorted(expected)
    assert len(expected) < demo.rows  # not every row: the condition was not widened
    assert db_fingerprint(demo.db) == before
    assert_still_serving(demo)


@pytest.mark.parametrize("query", [
    "id=1 OR 1=1",
    "id=1;DROP TABLE orders",
    "id.in=1,2) OR (1=1",
    "limit=1;DROP TABLE orders",
    "limit=1 OR 1=1",
    "columns=id,email FROM orders; DROP TABLE orders; --",
    "columns=id\"",
    "columns=*",
    "columns=id,(SELECT sql FROM sqlite_master)",
    "columns=\"id\"",
    "country) OR (1=1=DE",
    "1=1 OR country=DE",
    "id.gt=0) OR (1",
    "country.in;DROP TABLE orders=DE",
    "id\" OR \"1\"=\"1=5",
])
def test_sql_injection_through_names_and_numbers_is_rejected(demo, server, query):
    before = db_fingerprint(demo.db)
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?{quote(query, safe='=&,')}",
                            timeout=30)
    assert_json_error(response, 400)
    assert db_fingerprint(demo.db) == before
    assert_still_serving(demo)


# --------------------------------------------------------------------------------------------
# check-config
# --------------------------------------------------------------------------------------------

def test_check_config_accepts_the_demo_config(demo):
    result = run_sluice("check-config", str(demo.config))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"ok" in result.stdout


@pytest.mark.parametrize("broken,line,key", [
    ('[datasets.filters.country]\ntype = "strng"\n', 2, "datasets[0].filters.country.type"),
    ('[datasets.filters.country]\ntype = "text"\noperators = ["eq", "like"]\n', 3,
     "datasets[0].filters.country.operators[1]"),
    ('[datasets.filters.country]\ntype = "text"\ncolour = "red"\n', 3,
     "datasets[0].filters.country.colour"),
])
def test_check_config_names_key_and_line(demo, tmp_path, broken, line, key):
    head = (
        '[server]\nlisten = "127.0.0.1:0"\n\n'
        f'[sources.demo]\nkind = "sqlite"\npath = "{demo.db}"\n\n'
        '[[datasets]]\nname = "orders"\nsource = "demo"\nquery = "SELECT * FROM orders"\n\n'
    )
    config = tmp_path / "broken.toml"
    config.write_text(head + broken, "utf-8")
    result = run_sluice("check-config", str(config))
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, (result.returncode, stderr)
    expected_line = head.count("\n") + line
    assert f"{config}:{expected_line}: {key}:" in stderr, stderr
    assert stderr.startswith("sluice: "), stderr


def test_check_config_missing_database(demo, tmp_path):
    config = tmp_path / "missing.toml"
    config.write_text('[sources.demo]\nkind = "sqlite"\npath = "nowhere.db"\n', "utf-8")
    result = run_sluice("check-config", str(config))
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1
    assert f"{config}:3: sources.demo.path:" in stderr, stderr


def test_too_many_in_values_400(demo, server):
    values = ",".join(str(i) for i in range(1, 1002))
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?id.in={values}", timeout=10)
    assert_json_error(response, 400, "too_many_values", mentions=["id.in"])
    values = ",".join(str(i) for i in range(1, 1001))
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?columns=id&id.in={values}",
                            timeout=10)
    assert response.status_code == 200
    assert response.text.count("\r\n") == 1001
