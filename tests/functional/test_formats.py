"""Output formats (issue 4): CSV options and the formula guard, TSV, JSON array, invalid UTF-8.

A hostile SQLite table (quotes, delimiters, CR/LF, tabs, control bytes, emoji, invalid UTF-8,
spreadsheet formulas, a 16 MiB field) is served by one `sluice serve` for the module; every
format is read back with an independent parser (Python's csv and json modules, a PostgreSQL
text-format TSV reader written here) and compared value by value with what sqlite3 returns,
after the documented rules: invalid UTF-8 becomes U+FFFD, guarded CSV text gets a leading `'`.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import requests

from support.demo import canonical_orders_row, config_for, sqlite_rows
from support.http import assert_json_error
from support.server import SluiceServer, run_sluice, stop_and_check

csv.field_size_limit(sys.maxsize)  # the 16 MiB field

BIG = ('x,"y"\r\n\t' * (16 * 1024 * 1024 // 9 + 1))[: 16 * 1024 * 1024]  # 16 MiB, all specials

# (id, t, n): t is TEXT (bytes are stored as TEXT without decoding), n an INTEGER column.
HOSTILE = [
    (1, "plain", 1),
    (2, 'say "hi", ok', -5),
    (3, "line1\r\nline2\rx\ny", 3),
    (4, "tab\there", 4),
    (5, "ctrl \x01\x02\x1f\x7f end", 5),
    (6, "😀 emoji Łódź 東京", 6),
    (7, b"bad \xff\xfe end \xc3", 7),
    (8, "=SUM(A1:A2)", -8),
    (9, "+49 30 1234567", 9),
    (10, "-minus", 10),
    (11, "@at", 11),
    (12, "\tleading tab", 12),
    (13, "\rleading cr", 13),
    (14, "", None),
    (15, None, 15),
    (16, "semi;colon|pipe", 16),
    (17, "back\\slash \\N", 17),
    (18, BIG, 18),
    (19, "'already quoted", 19),
    (20, "a=b, not a formula", -20),
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LATE_ROWS = 150_000  # enough that the bad row comes long after the first bytes went out


def text_of(value) -> str | None:
    """What the server must send for a stored value: invalid UTF-8 replaced by U+FFFD."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def guarded(value: str | None) -> str | None:
    if value is not None and value.startswith(FORMULA_START):
        return "'" + value
    return value


def expected_rows(guard: bool) -> list[tuple]:
    rows = []
    for row_id, t, n in HOSTILE:
        t = text_of(t)
        rows.append((str(row_id), guarded(t) if guard else t, None if n is None else str(n)))
    return rows


@pytest.fixture(scope="module")
def hostile(demo, tmp_path_factory) -> SluiceServer:
    base = tmp_path_factory.mktemp("formats")
    db = base / "hostile.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE hostile (id INTEGER PRIMARY KEY, t TEXT, n INTEGER)")
        conn.executemany("INSERT INTO hostile VALUES (?, CAST(? AS TEXT), ?)", HOSTILE)
        conn.execute("CREATE TABLE late (id INTEGER PRIMARY KEY, t TEXT)")
        conn.executemany("INSERT INTO late VALUES (?, ?)",
                         ((i, f"row {i} " + "p" * 80) for i in range(1, LATE_ROWS)))
        conn.execute("INSERT INTO late VALUES (?, CAST(? AS TEXT))", (LATE_ROWS, b"late \xff"))
    datasets = f"""
[sources.hostile]
kind = "sqlite"
path = "{db}"

[[datasets]]
name = "hostile"
source = "hostile"
query = "SELECT id, t, n FROM hostile ORDER BY id"

[[datasets]]
name = "hostile_fail"
source = "hostile"
query = "SELECT id, t, n FROM hostile ORDER BY id"
[datasets.output]
invalid_utf8 = "fail"

[[datasets]]
name = "hostile_excel"
source = "hostile"
query = "SELECT id, t, n FROM hostile WHERE id <> 18 ORDER BY id"
[datasets.output]
delimiter = ";"
bom = true
line_ending = "lf"

[[datasets]]
name = "hostile_unguarded"
source = "hostile"
query = "SELECT id, t, n FROM hostile WHERE id <> 18 ORDER BY id"
[datasets.output]
formula_guard = false

[[datasets]]
name = "late_fail"
source = "hostile"
query = "SELECT id, t FROM late ORDER BY id"
[datasets.output]
invalid_utf8 = "fail"
"""
    config = base / "formats.toml"
    config.write_text(config_for(demo) + datasets, "utf-8")
    server = SluiceServer(["serve", "--config", str(config)], base / "formats.stderr.log")
    yield server
    stop_and_check(server)


def get(server: SluiceServer, path: str) -> requests.Response:
    response = requests.get(f"{server.url}/v1/exports/{path}", timeout=120)
    return response


def parse_csv(body: bytes, delimiter: str = ",") -> list[list[str]]:
    text = body.decode("utf-8")  # strict: must be valid UTF-8
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))


def as_csv_expectation(rows: list[tuple]) -> list[list[str]]:
    """The csv module reads NULL and '' alike, as ''."""
    return [["" if v is None else v for v in row] for row in rows]


def raw_records(body: bytes) -> dict[str, bytes]:
    """Small rows by id, from a CRLF CSV without the big row (ids are the first field)."""
    return {line.split(b",", 1)[0].decode(): line for line in body.split(b"\r\n") if line}


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------

def test_csv_round_trips_with_guard_and_repair(hostile):
    response = get(hostile, "hostile.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = parse_csv(response.content)
    assert rows[0] == ["id", "t", "n"]
    assert rows[1:] == as_csv_expectation(expected_rows(guard=True))
    assert len(rows[18][1]) == len(BIG) + 0  # the 16 MiB field came back whole ('x' first)
    assert response.content.count(b"\r\n") >= len(HOSTILE) + 1


def test_csv_guard_bytes_and_numeric_exemption(hostile):
    body = get(hostile, "hostile_unguarded.csv").content  # formula_guard = false: as stored
    assert b"\r\n8,=SUM(A1:A2),-8\r\n" in body
    guarded_body = get(hostile, "hostile_excel.csv?delimiter=,&bom=false&line_ending=crlf").content
    assert b"\r\n8,'=SUM(A1:A2),-8\r\n" in guarded_body      # text guarded, -8 stays a number
    assert b"\r\n9,'+49 30 1234567,9\r\n" in guarded_body
    assert b"\r\n10,'-minus,10\r\n" in guarded_body
    assert b"\r\n11,'@at,11\r\n" in guarded_body
    assert b"\r\n12,'\tleading tab,12\r\n" in guarded_body
    assert b"\r\n13,\"'\rleading cr\",13\r\n" in guarded_body  # CR forces quoting
    assert b"\r\n19,'already quoted,19\r\n" in guarded_body    # not a formula: untouched
    assert b"\r\n20,\"a=b, not a formula\",-20\r\n" in guarded_body
    assert b"\r\n2,\"say \"\"hi\"\", ok\",-5\r\n" in guarded_body
    assert b"\r\n14,\"\",\r\n" in guarded_body and b"\r\n15,,15\r\n" in guarded_body


def test_excel_dataset_semicolon_bom_lf(hostile):
    body = get(hostile, "hostile_excel.csv").content
    assert body.startswith(b"\xef\xbb\xbfid;t;n\n1;plain;1\n")
    rows = parse_csv(body[3:], delimiter=";")
    expected = [r for r in expected_rows(guard=True) if r[0] != "18"]
    assert rows[1:] == as_csv_expectation(expected)
    assert b'\n16;"semi;colon|pipe";16\n' in body


@pytest.mark.parametrize("query, delimiter", [("delimiter=%3B", ";"), ("delimiter=%09", "\t"),
                                              ("delimiter=|", "|")])
def test_delimiter_parameter(hostile, query, delimiter):
    body = get(hostile, f"hostile_unguarded.csv?{query}&bom=true").content
    assert body.startswith(b"\xef\xbb\xbf")
    rows = parse_csv(body[3:], delimiter=delimiter)
    assert rows[0] == ["id", "t", "n"]
    assert rows[1:] == as_csv_expectation([r for r in expected_rows(False) if r[0] != "18"])


def test_header_off_and_lf(hostile):
    body = get(hostile, "hostile_unguarded.csv?header=false&line_ending=lf").content
    assert body.startswith(b"1,plain,1\n2,")
    assert b"\r\n" not in body.replace(b'"line1\r\nline2', b"")  # only inside the quoted value
    rows = parse_csv(body)
    assert rows == as_csv_expectation([r for r in expected_rows(False) if r[0] != "18"])


def test_bom_is_only_sent_when_asked(hostile):
    assert get(hostile, "hostile_unguarded.csv?limit=1").content == b"id,t,n\r\n1,plain,1\r\n"
    assert get(hostile, "hostile_unguarded.csv?limit=0&bom=true").content == (
        b"\xef\xbb\xbfid,t,n\r\n")


# --------------------------------------------------------------------------------------------
# TSV
# --------------------------------------------------------------------------------------------

def tsv_unescape(field: str) -> str | None:
    if field == "\\N":
        return None
    out, i = [], 0
    while i < len(field):
        c = field[i]
        if c == "\\":
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[field[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def test_tsv_round_trips_like_postgres_text_format(hostile):
    response = get(hostile, "hostile.tsv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/tab-separated-values; charset=utf-8"
    text = response.content.decode("utf-8")
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    assert lines[0] == "id\tt\tn"
    rows = [tuple(tsv_unescape(f) for f in line.split("\t")) for line in lines[1:]]
    assert rows == expected_rows(guard=False)  # NULL (\N) and '' stay apart
    assert "\n15\t\\N\t15\n" in text and "\n14\t\t\\N\n" in text


def test_tsv_header_off(hostile):
    assert get(hostile, "hostile.tsv?header=false&limit=1").content == b"1\tplain\t1\n"


# --------------------------------------------------------------------------------------------
# JSON Lines and JSON array
# --------------------------------------------------------------------------------------------

def json_expectation() -> list[dict]:
    return [{"id": int(i), "t": t, "n": None if n is None else int(n)}
            for i, t, n in expected_rows(guard=False)]


def test_jsonl_round_trips(hostile):
    body = get(hostile, "hostile.jsonl").content.decode("utf-8")
    assert [json.loads(line) for line in body.split("\n")[:-1]] == json_expectation()


def test_json_array_round_trips(hostile):
    response = get(hostile, "hostile.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.content.decode("utf-8")
    assert body.startswith("[\n{") and body.endswith("}\n]\n")
    assert json.loads(body) == json_expectation()
    assert body.count("\n") == len(HOSTILE) + 2  # one object per line


def test_json_array_empty_and_limited(hostile):
    assert get(hostile, "hostile.json?limit=0").content == b"[]\n"
    assert json.loads(get(hostile, "hostile.json?limit=1").content) == json_expectation()[:1]


ORDERS_NAMES = ["id", "created_at", "email", "country", "status", "amount", "quantity", "note"]


def expected_order_object(row: tuple) -> dict:
    """docs/API.md's JSON for one orders row read with sqlite3: int and decimal columns as JSON
    numbers (id, quantity; amount, whose REALs and the few whole INTEGERs compare by value),
    NULL as null, text (the timestamp too: the dataset passes it through) as strings."""
    return dict(zip(ORDERS_NAMES, row))


def assert_orders_objects(objects: list, rows: list[tuple]) -> None:
    """JSON objects against sqlite3's rows, value by value and with the JSON types."""
    assert len(objects) == len(rows), (len(objects), len(rows))
    for obj, row in zip(objects, rows):
        assert isinstance(obj, dict) and list(obj) == ORDERS_NAMES, obj
        assert obj == expected_order_object(row), (obj, row)
        assert type(obj["id"]) is int and type(obj["quantity"]) is int, obj
        assert type(obj["amount"]) in (int, float) or obj["amount"] is None, obj
        for name in ("created_at", "email", "country", "status", "note"):
            assert obj[name] is None or type(obj[name]) is str, (name, obj)


def test_json_array_of_the_demo_orders(demo, server):
    """The first 500 orders (every hard note: quotes, CR/LF, tabs, control characters, emoji,
    '' and NULL) as a JSON array, compared value by value with orders.db through sqlite3."""
    response = requests.get(f"{demo.url}/v1/exports/orders.json?id.lte=500", timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.content.decode("utf-8")
    # `[` newline, one object per line separated by `,` newline, newline `]` newline.
    lines = body.split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""], (body[:100], body[-100:])
    objects_text = lines[1:-2]
    assert all(line.endswith("},") for line in objects_text[:-1]), objects_text[:2]
    assert objects_text[-1].endswith("}") and not objects_text[-1].endswith(",")
    rows = sqlite_rows(demo.db, "SELECT id, created_at, email, country, status, amount, "
                                "quantity, note FROM orders WHERE id <= 500 ORDER BY id")
    assert len(rows) == 500
    objects = json.loads(body)  # strict: raw control characters inside strings fail
    assert_orders_objects(sorted(objects, key=lambda o: o["id"]), rows)
    # The data held what the comparison is about.
    assert any(r[7] is None for r in rows) and any(r[7] == "" for r in rows)
    assert any(r[7] and any(ord(c) < 0x20 for c in r[7]) for r in rows)


# --------------------------------------------------------------------------------------------
# Invalid UTF-8 = "fail"
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl", "json"])
def test_invalid_utf8_fail_before_the_first_byte_is_an_error(hostile, ext):
    response = get(hostile, f"hostile_fail.{ext}")
    assert_json_error(response, 500, "invalid_utf8", mentions=["column 't'"])


def test_invalid_utf8_fail_mid_stream_aborts(hostile):
    response = requests.get(f"{hostile.url}/v1/exports/late_fail.csv", stream=True, timeout=60)
    assert response.status_code == 200
    received = 0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in response.iter_content(65536):
            received += len(chunk)
    assert received > 0
    # The server logs the abort after the connection is cut: the client may see the cut first.
    deadline = time.monotonic() + 10
    while not ("aborted" in hostile.log_text() and "invalid UTF-8" in hostile.log_text()):
        assert time.monotonic() < deadline, hostile.log_text()[-2000:]
        time.sleep(0.05)


def test_invalid_utf8_fail_passes_valid_rows(hostile):
    rows = parse_csv(get(hostile, "hostile_fail.csv?limit=6").content)
    assert rows[1:] == as_csv_expectation(expected_rows(True)[:6])


# --------------------------------------------------------------------------------------------
# Parameter errors
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, code, mentions", [
    ("hostile.csv?header=yes", "invalid_value", ["'header'", "true, false"]),
    ("hostile.csv?bom=1", "invalid_value", ["'bom'", "true, false"]),
    ("hostile.csv?line_ending=cr", "invalid_value", ["'line_ending'", "crlf, lf"]),
    ("hostile.csv?delimiter=%3B%3B", "invalid_value", ["'delimiter'", "one ASCII character"]),
    ("hostile.csv?delimiter=%22", "invalid_value", ["'delimiter'"]),
    ("hostile.csv?delimiter=%0A", "invalid_value", ["'delimiter'"]),
    ("hostile.csv?delimiter=", "invalid_value", ["'delimiter'"]),
    ("hostile.csv?bom=true&bom=false", "duplicate_parameter", ["'bom'"]),
    ("hostile.json?delimiter=%3B", "unsupported_parameter", ["'delimiter'", ".csv"]),
    ("hostile.jsonl?header=false", "unsupported_parameter", ["'header'"]),
    ("hostile.tsv?bom=true", "unsupported_parameter", ["'bom'"]),
    ("hostile.tsv?line_ending=lf", "unsupported_parameter", ["'line_ending'"]),
])
def test_bad_output_parameters_are_400(hostile, path, code, mentions):
    assert_json_error(get(hostile, path), 400, code, mentions)


def test_output_parameter_names_are_reserved_for_filters(tmp_path, demo):
    config = tmp_path / "reserved.toml"
    config.write_text(config_for(demo) + """
[[datasets]]
name = "clash"
source = "demo"
query = "SELECT id FROM orders"
[datasets.filters.delimiter]
type = "text"
""", "utf-8")
    result = run_sluice("check-config", str(config))
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert ".filters.delimiter: filter name is reserved" in stderr and "reserved" in stderr, stderr


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def test_cli_formats_and_options(demo, tmp_path):
    out = tmp_path / "orders.csv"
    result = run_sluice("export", "orders", "--config", str(demo.config), "--filter", "id.lte=3",
                        "--delimiter", ";", "--no-header", "--bom", "--lf", "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    body = out.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf1;") and b"\r\n" not in body.replace(b"\r\nsecond", b"")
    for fmt in ("tsv", "json"):
        target = tmp_path / f"orders.{fmt}"
        result = run_sluice("export", "orders", "--config", str(demo.config), "--format", fmt,
                            "--filter", "id.lte=3", "-o", str(target))
        assert result.returncode == 0, result.stderr.decode()
    rows = sqlite_rows(demo.db, "SELECT id, created_at, email, country, status, amount, "
                                "quantity, note FROM orders WHERE id <= 3 ORDER BY id")
    objects = json.loads((tmp_path / "orders.json").read_bytes())
    assert_orders_objects(sorted(objects, key=lambda o: o["id"]), rows)
    tsv = (tmp_path / "orders.tsv").read_bytes().decode("utf-8")
    assert tsv.startswith("id\tcreated_at\t")
    tsv_rows = [canonical_orders_row([tsv_unescape(f) for f in line.split("\t")])
                for line in tsv.split("\n")[1:-1]]
    assert sorted(tsv_rows) == sorted(canonical_orders_row(row) for row in rows)


def test_datasets_list_every_format(hostile):
    listed = requests.get(f"{hostile.url}/v1/datasets", timeout=10).json()["datasets"]
    hostile_entry = next(d for d in listed if d["name"] == "hostile")
    assert hostile_entry["formats"] == ["csv", "tsv", "jsonl", "json"]
    assert hostile_entry["urls"]["json"] == "/v1/exports/hostile.json"
    assert hostile_entry["urls"]["tsv"] == "/v1/exports/hostile.tsv"
