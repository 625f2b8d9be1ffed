"""What the exports contain, checked against orders.db read directly with sqlite3."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from support.csv import csv_guarded, csv_records, csv_rows_with_nulls
from support.demo import (
    ORDERS_COLUMNS,
    ORDERS_QUERY,
    RowDigest,
    assert_rows_of_the_table,
    canonical_orders_row,
    canonical_row,
    parse_csv_table,
    parse_jsonl_table,
    sqlite_rows,
)
from support.digests import sha256_file
from support.http import ChunkedReader, raw_get, raw_request
from support.server import run_sluice

CSV_HEADER = "id,created_at,email,country,status,amount,quantity,note\r\n"


def curl_download(url: str, target: Path, timeout: float = 120) -> None:
    result = subprocess.run(["curl", "-sS", "--fail", "-o", str(target), url],
                            capture_output=True, timeout=timeout)
    assert result.returncode == 0, (
        f"curl exited {result.returncode}: {result.stderr.decode(errors='replace')}")


@pytest.fixture(scope="module")
def orders_csv(demo, tmp_path_factory) -> Path:
    """The full orders export as CSV, downloaded once with curl."""
    target = tmp_path_factory.mktemp("downloads") / "orders.csv"
    curl_download(f"{demo.url}/v1/exports/orders.csv", target)
    return target


@pytest.fixture(scope="module")
def orders_jsonl(demo, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("downloads") / "orders.jsonl"
    curl_download(f"{demo.url}/v1/exports/orders.jsonl", target)
    return target


@pytest.fixture(scope="module")
def orders_csv_digest(orders_csv) -> RowDigest:
    """The rows of the downloaded CSV, parsed once (strictly, NULL apart from '') for every test
    that compares with the table (orders_digest, read with sqlite3)."""
    text = orders_csv.read_bytes().decode("utf-8")  # must be valid UTF-8
    assert text.startswith(CSV_HEADER)
    rows = csv_rows_with_nulls(text)
    assert next(rows) == ORDERS_COLUMNS
    return RowDigest().add_all(canonical_orders_row(row) for row in rows)


@pytest.fixture(scope="module")
def orders_jsonl_checked(orders_jsonl) -> tuple[RowDigest, list[str]]:
    """The rows of the downloaded JSON Lines, parsed once: (digest, lines with a wrong JSON
    type: integers must stay integers, the decimal amount a number, NULL null)."""
    text = orders_jsonl.read_bytes().decode("utf-8")
    assert text.endswith("\n")
    lines = text.split("\n")
    assert lines[-1] == ""
    del lines[-1]
    assert list(json.loads(lines[0])) == ORDERS_COLUMNS
    scan = json.JSONDecoder().scan_once  # json.loads without its per-call overhead
    bad: list[str] = []

    def rows():
        for line in lines:
            o, end = scan(line, 0)
            row = (o["id"], o["created_at"], o["email"], o["country"], o["status"], o["amount"],
                   o["quantity"], o["note"])
            if not (end == len(line) and len(o) == 8 and type(row[0]) is int
                    and type(row[6]) is int and type(row[5]) in (int, float)
                    and type(row[1]) is str and type(row[3]) is str and type(row[4]) is str
                    and (row[2] is None or type(row[2]) is str)
                    and (row[7] is None or type(row[7]) is str)):
                bad.append(line)
            yield canonical_orders_row(row)

    return RowDigest().add_all(rows()), bad


def csv_cell(value) -> str:
    """How the server must write one value (RFC 4180, NULL empty, '' quoted, the formula guard's
    "'" before text that a spreadsheet would evaluate)."""
    if value is None:
        return ""
    value = csv_guarded(value)
    text = value if isinstance(value, str) else str(value)
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_record(row) -> str:
    return ",".join(csv_cell(v) for v in row) + "\r\n"


# --------------------------------------------------------------------------------------------
# The whole table
# --------------------------------------------------------------------------------------------

def test_full_csv_export_equals_the_table(orders_csv_digest, orders_digest, demo):
    digest = orders_csv_digest
    assert digest.count == demo.rows
    assert digest == orders_digest, "CSV rows differ from the table (values, NULLs or '')"


def test_csv_keeps_null_and_empty_string_apart_in_the_raw_bytes(orders_csv, demo):
    """csv.reader reads NULL and '' both as ''; the bytes must differ: `,\\r\\n` vs `,""\\r\\n`."""
    empty_ids = [r[0] for r in sqlite_rows(demo.db, "SELECT id FROM orders WHERE note = '' "
                                                    "ORDER BY id LIMIT 3")]
    null_ids = [r[0] for r in sqlite_rows(demo.db, "SELECT id FROM orders WHERE note IS NULL "
                                                   "ORDER BY id LIMIT 3")]
    null_email_ids = [r[0] for r in sqlite_rows(
        demo.db, "SELECT id FROM orders WHERE email IS NULL ORDER BY id LIMIT 3")]
    assert empty_ids and null_ids and null_email_ids
    wanted = set(empty_ids + null_ids + null_email_ids)
    raw_by_id = {}
    with open(orders_csv, encoding="utf-8", newline="") as handle:
        records = csv_records(handle.read(2_000_000))  # the first rows are enough
        next(records)
        for fields, raw in records:
            if int(fields[0]) in wanted:
                raw_by_id[int(fields[0])] = raw
            if len(raw_by_id) == len(wanted):
                break
    for row_id in empty_ids:
        assert raw_by_id[row_id].endswith(',""\r\n'), raw_by_id[row_id]
    for row_id in null_ids:
        assert raw_by_id[row_id].endswith(",\r\n") and not raw_by_id[row_id].endswith('""\r\n'), (
            raw_by_id[row_id])
    for row_id in null_email_ids:
        assert "Z,," in raw_by_id[row_id], raw_by_id[row_id]  # created_at ends with Z
    # And over the whole file: as many quoted-empty notes as the table has '' notes.
    empty_notes = sqlite_rows(demo.db, "SELECT count(*) FROM orders WHERE note = ''")[0][0]
    data = orders_csv.read_bytes()
    assert data.count(b',""\r\n') == empty_notes


def test_csv_tricky_rows_are_byte_exact(demo, server):
    """The first 100 orders hold every hard value: commas, quotes, LF, CRLF, lone CR, tabs,
    leading spaces, non-ASCII, emoji, a 2 KB cell, '' and NULL."""
    expected = sqlite_rows(demo.db, ORDERS_QUERY + " WHERE id <= 100 ORDER BY id")
    notes = [r[7] for r in expected]
    for needle in [",", '"', "\n", "\r\n", "\r", "\t", "ü", "東京", "📦", "  leading"]:
        assert any(n is not None and needle in n for n in notes), f"no note with {needle!r}"
    assert "" in notes and None in notes and any(n and len(n) >= 2048 for n in notes)

    response = requests.get(f"{demo.url}/v1/exports/orders.csv?id.lte=100", timeout=30)
    assert response.status_code == 200
    body = response.content.decode("utf-8")
    assert body == CSV_HEADER + "".join(csv_record(row) for row in expected)
    # ...and a standard CSV reader gets the values back.
    header, rows = parse_csv_table(body)
    assert rows == [canonical_row(ORDERS_COLUMNS, r) for r in expected]


def test_full_jsonl_export_equals_the_table(orders_jsonl_checked, orders_digest, demo):
    digest, bad = orders_jsonl_checked
    assert not bad, bad[:3]
    assert digest.count == demo.rows
    assert digest == orders_digest, "JSON Lines rows differ from the table"


def test_jsonl_tricky_rows_exact(demo, server):
    expected = sqlite_rows(demo.db, ORDERS_QUERY + " WHERE id <= 100 ORDER BY id")
    response = requests.get(f"{demo.url}/v1/exports/orders.jsonl?id.lte=100", timeout=30)
    assert response.status_code == 200
    lines = response.content.decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 101
    for line, row in zip(lines, expected):
        assert all(ord(c) >= 0x20 for c in line), f"raw control character in {line!r}"
        obj = json.loads(line)
        assert list(obj) == ORDERS_COLUMNS
        values = [obj[c] for c in ORDERS_COLUMNS]
        assert values[:5] == list(row[:5]) and values[6:] == list(row[6:]), (values, row)
        assert values[5] == row[5] and type(values[5]) in (int, float)


def test_countries_aggregate(demo, server):
    expected = sqlite_rows(demo.db, "SELECT country, count(*), round(sum(amount), 2) FROM orders "
                                    "GROUP BY country")
    response = requests.get(f"{demo.url}/v1/exports/countries.jsonl", timeout=30)
    assert response.status_code == 200
    got = [json.loads(line) for line in response.text.splitlines()]
    assert sorted((o["country"], int(o["orders"]), o["revenue"]) for o in got) == sorted(expected)
    # count(*) is an integer in SQLite; JSON must carry it as a number, not as a string.
    assert all(type(o["orders"]) is int for o in got), got[:3]
    assert all(type(o["revenue"]) in (int, float) for o in got), got[:3]


def test_orders_big_jsonl_ids_are_numbers(demo, server):
    """orders_big's id is `o.id + (r.n - 1) * max(id)`: an integer expression, so an integer."""
    response = requests.get(f"{demo.url}/v1/exports/orders_big.jsonl?country=DE", stream=True,
                            timeout=30)
    assert response.status_code == 200
    first = json.loads(next(response.iter_lines()))
    response.close()
    assert first["country"] == "DE"
    assert type(first["quantity"]) is int
    assert type(first["id"]) is int, f"id exported as {first['id']!r}"


def test_dataset_listing(demo, server):
    response = requests.get(f"{demo.url}/v1/datasets", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    datasets = {d["name"]: d for d in response.json()["datasets"]}
    assert set(datasets) == {"orders", "orders_big", "orders_report", "countries"}
    assert [c["name"] for c in datasets["orders"]["columns"]] == ORDERS_COLUMNS
    filters = {f["name"]: f for f in datasets["orders"]["filters"]}
    assert set(filters) == {"country", "status", "id", "quantity", "created_at"}
    assert filters["created_at"]["type"] == "timestamp"


# --------------------------------------------------------------------------------------------
# Filters, columns, limit: each against the same selection done in SQL
# --------------------------------------------------------------------------------------------

FILTER_CASES = [
    # (query string, SQL condition, SQL parameters)
    ("country=DE&id.lt=200000", "country = ? AND id < ?", ["DE", 200000]),
    ("country=DE,FR,JP&id.lt=100000", "country IN (?, ?, ?) AND id < ?", ["DE", "FR", "JP", 100000]),
    # (a filter given twice, country=NO&country=FI, is 400 duplicate_parameter: test_cli_rough_edges)
    ("country.in=NO,FI&id.gte=100&id.lt=900000", "country IN (?, ?) AND id >= ? AND id < ?",
     ["NO", "FI", 100, 900000]),
    ("country.in=DK,AT&status=refunded", "country IN (?, ?) AND status = ?", ["DK", "AT", "refunded"]),
    ("status.eq=pending&quantity.gte=19", "status = ? AND quantity >= ?", ["pending", 19]),
    ("status=paid,pending&id.lt=30000", "status IN (?, ?) AND id < ?", ["paid", "pending", 30000]),
    ("id.lt=1000", "id < ?", [1000]),
    ("id.gte=1999001", "id >= ?", [1999001]),
    ("id.gt=500&id.lte=1500&country.in=DE,US", "id > ? AND id <= ? AND country IN (?, ?)",
     [500, 1500, "DE", "US"]),
    ("id.in=1,17,30,2000000,5000000", "id IN (1, 17, 30, 2000000, 5000000)", []),
    ("id=30", "id = ?", [30]),
    ("id.eq=-5", "id = ?", [-5]),
    ("quantity=20&country=CH", "quantity = ? AND country = ?", [20, "CH"]),
    ("quantity.lte=1&id.lt=5000", "quantity <= ? AND id < ?", [1, 5000]),
    ("country=XX", "country = ?", ["XX"]),
    ("created_at.gte=2024-02-29&created_at.lt=2024-03-01",
     "created_at >= ? AND created_at < ?", ["2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"]),
    ("created_at.lt=2023-07-01T00:04:04Z", "created_at < ?", ["2023-07-01T00:04:04Z"]),
    ("created_at.lte=2023-07-01T00:04:04Z", "created_at <= ?", ["2023-07-01T00:04:04Z"]),
    ("created_at.gt=2025-06-30T12:00:00Z", "created_at > ?", ["2025-06-30T12:00:00Z"]),
    ("created_at.gte=2024-01-01T00:00:00Z&created_at.lte=2024-01-01T06:00:00Z&country=DE",
     "created_at >= ? AND created_at <= ? AND country = ?",
     ["2024-01-01T00:00:00Z", "2024-01-01T06:00:00Z", "DE"]),
]


def export_rows(url: str, dataset: str, fmt: str, query: str) -> tuple[list[str], list[tuple]]:
    response = requests.get(f"{url}/v1/exports/{dataset}.{fmt}?{query}", timeout=60)
    assert response.status_code == 200, response.text[:500]
    text = response.content.decode("utf-8")
    return parse_csv_table(text) if fmt == "csv" else parse_jsonl_table(text)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("query,where,params", FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filters_match_sql(demo, server, query, where, params, fmt):
    expected = sqlite_rows(demo.db, f"{ORDERS_QUERY} WHERE {where}", params)
    header, rows = export_rows(demo.url, "orders", fmt, query)
    if fmt == "csv" or rows:
        assert header == ORDERS_COLUMNS
    assert len(rows) == len(expected)
    assert sorted(rows) == sorted(canonical_orders_row(r) for r in expected)


# Equivalent spellings of one instant must select the same rows. The stored values are
# `YYYY-MM-DDTHH:MM:SSZ`; the server accepts all the spellings below as valid timestamps.
TIMESTAMP_NOTATIONS = [
    # (query string, the same bound written as the stored UTC form)
    ("created_at.lt=2024-03-01T14:00:00%2B02:00", "created_at < '2024-03-01T12:00:00Z'"),
    ("created_at.gte=2024-02-29T23:30:00-01:00&created_at.lt=2024-03-01T02:00:00Z",
     "created_at >= '2024-03-01T00:30:00Z' AND created_at < '2024-03-01T02:00:00Z'"),
    ("created_at.lt=2024-03-01%2012:00:00", "created_at < '2024-03-01T12:00:00Z'"),
    ("id.lte=10&created_at.lte=2023-07-01T00:04:04.000Z",
     "id <= 10 AND created_at <= '2023-07-01T00:04:04Z'"),
]


@pytest.mark.parametrize("query,where", TIMESTAMP_NOTATIONS, ids=[c[0] for c in TIMESTAMP_NOTATIONS])
def test_timestamp_filters_compare_instants_not_text(demo, server, query, where):
    expected = sqlite_rows(demo.db, f"SELECT id FROM orders WHERE {where}")
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?columns=id&{query}", timeout=60)
    assert response.status_code == 200, response.text
    ids = [int(line) for line in response.text.split("\r\n")[1:-1]]
    assert len(ids) == len(expected), (
        f"{query} selected {len(ids)} rows; the same instant in UTC ({where}) selects "
        f"{len(expected)}")
    assert sorted(ids) == sorted(r[0] for r in expected)


COLUMN_CASES = [
    ("columns=id,email&country=SE&id.lt=300000", ["id", "email"], "country = 'SE' AND id < 300000"),
    ("columns=note,id&status=refunded&id.lt=20000", ["note", "id"],
     "status = 'refunded' AND id < 20000"),
    ("columns=amount,country,quantity&quantity.gt=18", ["amount", "country", "quantity"],
     "quantity > 18"),
    ("columns=created_at&id.gte=1999990", ["created_at"], "id >= 1999990"),
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("query,columns,where", COLUMN_CASES, ids=[c[0] for c in COLUMN_CASES])
def test_columns_match_sql(demo, server, query, columns, where, fmt):
    expected = sqlite_rows(demo.db, f"SELECT {', '.join(columns)} FROM orders WHERE {where}")
    header, rows = export_rows(demo.url, "orders", fmt, query)
    assert header == columns
    rows = [canonical_row(columns, r) for r in rows] if fmt == "csv" else rows
    assert sorted(rows, key=repr) == sorted((canonical_row(columns, r) for r in expected), key=repr)


LIMIT_CASES = [
    ("limit=0", 0, "1 = 1", None),
    ("limit=1", 1, "1 = 1", None),
    ("limit=2500", 2500, "1 = 1", None),
    ("limit=7&country=BE", 7, "country = 'BE'", None),
    ("limit=100000&status=cancelled&quantity.gte=4", 100000, "status = 'cancelled' AND quantity >= 4",
     None),
    ("columns=id,note&limit=40&id.gt=1000", 40, "id > 1000", ["id", "note"]),
    ("limit=5&columns=status,id&created_at.lt=2023-07-02", 5, "created_at < '2023-07-02'",
     ["status", "id"]),
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("query,limit,where,columns", LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_limit_matches_sql(demo, server, query, limit, where, columns, fmt):
    """Without an order the rows a LIMIT picks are the source's choice: exactly min(limit, n)
    distinct rows, each one of the rows the filter selects (looked up by id)."""
    cols = columns or ORDERS_COLUMNS
    assert "id" in cols
    matching = sqlite_rows(demo.db, f"SELECT count(*) FROM orders WHERE {where}")[0][0]
    header, rows = export_rows(demo.url, "orders", fmt, query)
    if fmt == "csv" or rows:
        assert header == cols
    assert len(rows) == min(limit, matching)
    assert len(set(rows)) == len(rows)
    position = cols.index("id")
    ids = [r[position] for r in rows]
    found = []
    for start in range(0, len(ids), 30000):
        part = ids[start:start + 30000]
        found += sqlite_rows(
            demo.db, f"SELECT {', '.join(cols)} FROM orders WHERE ({where}) AND id IN "
                     f"({', '.join('?' for _ in part)})", part)
    assert sorted(rows) == sorted(canonical_row(cols, r) for r in found)


def test_limit_zero_csv_is_just_the_header(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?limit=0&columns=id,note", timeout=10)
    assert response.status_code == 200
    assert response.content == b"id,note\r\n"
    response = requests.get(f"{demo.url}/v1/exports/orders.jsonl?limit=0", timeout=10)
    assert response.status_code == 200
    assert response.content == b""


# --------------------------------------------------------------------------------------------
# The command line gives the same bytes as HTTP
# --------------------------------------------------------------------------------------------

def test_cli_export_to_file_equals_http_body(demo, orders_csv, orders_csv_digest, orders_digest,
                                            tmp_path):
    # The HTTP body is the table (sqlite3), so the same bytes from the CLI are the table too.
    assert orders_csv_digest == orders_digest
    target = tmp_path / "cli-orders.csv"
    result = run_sluice("export", "orders", "--config", str(demo.config), "--format", "csv",
                        "-o", str(target))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert target.stat().st_size == orders_csv.stat().st_size
    assert sha256_file(target) == sha256_file(orders_csv)
    assert not (tmp_path / "cli-orders.csv.partial").exists()


def test_cli_export_into_a_fifo_writes_in_place(demo, server, tmp_path):
    """-o names a pipe (as /dev/null is a device): the bytes go into it, and it stays a pipe;
    a FILE.partial renamed over it would replace it with a regular file (as root, even
    /dev/null)."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    received = bytearray()

    def drain() -> None:
        with open(fifo, "rb") as pipe:
            while chunk := pipe.read(65536):
                received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)  # blocks for good if nothing writes
    reader.start()
    result = run_sluice("export", "orders", "--config", str(demo.config), "--format", "csv",
                        "--filter", "id.lte=1000", "-o", str(fifo))
    reader.join(timeout=10)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert not reader.is_alive(), "nothing was written into the pipe"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the pipe was replaced by a file"
    assert not (tmp_path / "pipe.csv.partial").exists()
    # What went through the pipe is the table's selection, byte for byte as RFC 4180 writes it.
    expected = sqlite_rows(demo.db, ORDERS_QUERY + " WHERE id <= 1000 ORDER BY id")
    assert sorted(parse_csv_table(bytes(received).decode("utf-8"))[1]) == sorted(
        canonical_orders_row(r) for r in expected)
    http = requests.get(f"{demo.url}/v1/exports/orders.csv?id.lte=1000",
                        headers={"Accept-Encoding": "identity"}, timeout=30)
    assert bytes(received) == http.content


def test_cli_export_to_stdout_equals_http_body(demo, orders_jsonl, orders_jsonl_checked,
                                              orders_digest):
    # The HTTP body is the table (sqlite3), so the same bytes from the CLI are the table too.
    digest, bad = orders_jsonl_checked
    assert digest == orders_digest and not bad
    result = run_sluice("export", "orders", "--config", str(demo.config), "--format", "jsonl")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert len(result.stdout) == orders_jsonl.stat().st_size
    assert hashlib.sha256(result.stdout).hexdigest() == sha256_file(orders_jsonl)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cli_export_with_filters_equals_http_body(demo, server, tmp_path, fmt):
    filters = ["country=DE,FR", "id.lt=150000", "quantity.gte=2"]
    http = requests.get(f"{demo.url}/v1/exports/orders.{fmt}?" + "&".join(filters), timeout=60)
    assert http.status_code == 200
    # The HTTP body itself is the table's selection (sqlite3), so CLI == HTTP proves both right.
    expected = sqlite_rows(demo.db, f"{ORDERS_QUERY} WHERE country IN ('DE', 'FR') "
                                    "AND id < 150000 AND quantity >= 2")
    _, rows = (parse_csv_table if fmt == "csv" else parse_jsonl_table)(http.content.decode())
    assert sorted(rows) == sorted(canonical_orders_row(r) for r in expected)
    args = ["export", "orders", "--config", str(demo.config), "--format", fmt]
    for f in filters:
        args += ["--filter", f]
    to_stdout = run_sluice(*args)
    assert to_stdout.returncode == 0, to_stdout.stderr.decode(errors="replace")
    assert to_stdout.stdout == http.content
    target = tmp_path / f"filtered.{fmt}"
    to_file = run_sluice(*args, "-o", str(target))
    assert to_file.returncode == 0, to_file.stderr.decode(errors="replace")
    assert target.read_bytes() == http.content


# --------------------------------------------------------------------------------------------
# Response headers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,content_type", [("csv", "text/csv"), ("jsonl", "application/x-ndjson")])
def test_download_headers(demo, server, fmt, content_type):
    response = requests.get(f"{demo.url}/v1/exports/orders.{fmt}?limit=10", timeout=10)
    assert response.status_code == 200
    h = response.headers
    assert h["Content-Type"].startswith(content_type)
    assert h["Content-Disposition"].startswith("attachment")
    assert f'filename="orders.{fmt}"' in h["Content-Disposition"]
    assert h["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in h
    assert h["Cache-Control"] == "no-store"
    assert h["X-Accel-Buffering"] == "no"
    assert h.get("X-Request-Id")


def test_chunked_body_ends_with_the_last_chunk(demo, server):
    response = raw_get(server.port, "/v1/exports/orders.csv?limit=1000")
    try:
        assert response.status == 200
        body = ChunkedReader(response).read_all()
        assert response.complete
        assert body.startswith(CSV_HEADER.encode())
        assert_rows_of_the_table(demo.db, parse_csv_table(body.decode("utf-8"))[1], 1000)
    finally:
        response.close()


def test_client_request_id_is_echoed(demo, server):
    offered = "test-Req_42.abc"
    for path, status in [("/v1/exports/orders.csv?limit=1", 200), ("/healthz", 200),
                         ("/v1/exports/nope.csv", 404)]:
        response = requests.get(f"{demo.url}{path}", headers={"X-Request-Id": offered}, timeout=10)
        assert response.status_code == status, (path, response.status_code)
        assert response.headers["X-Request-Id"] == offered, path
        if status == 404:  # the error body names the same id
            assert response.json()["error"]["request_id"] == offered


def test_unsafe_request_id_is_replaced(demo, server):
    for offered in ["has space", "semi;colon", "x" * 65, "quote\"d"]:
        response = requests.get(f"{demo.url}/healthz", headers={"X-Request-Id": offered},
                                timeout=10)
        assert response.status_code == 200
        got = response.headers["X-Request-Id"]
        assert got and got != offered
        assert all(c.isalnum() or c in "._-" for c in got)


def test_request_ids_are_unique(demo, server):
    ids = {requests.get(f"{demo.url}/healthz", timeout=10).headers["X-Request-Id"]
           for _ in range(20)}
    assert len(ids) == 20


def test_http_1_0_client_gets_an_unchunked_body(demo, server):
    """HTTP/1.0 has no chunked encoding (RFC 9112 6.1: a server MUST NOT send Transfer-Encoding
    to a 1.0 request); the body must be the plain CSV, ended by closing the connection."""
    expected = sqlite_rows(demo.db, ORDERS_QUERY + " WHERE id <= 3 ORDER BY id")
    response = raw_request(server.port, b"GET /v1/exports/orders.csv?id.lte=3 HTTP/1.0\r\n\r\n")
    try:
        body = response.buffered
        while True:
            data = response.sock.recv(65536)
            if not data:
                break
            body += data
    finally:
        response.close()
    assert response.status == 200
    assert response.header("transfer-encoding") is None, (
        f"chunked response to an HTTP/1.0 request; body starts {body[:20]!r}")
    assert body.decode() == CSV_HEADER + "".join(csv_record(r) for r in expected)
