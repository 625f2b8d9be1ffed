"""What Sluice sends from PostgreSQL equals what PostgreSQL itself says: CSV and JSON Lines of a
table with every common type and its edge values, with and without filters, and a 1,000,000-row
table downloaded with curl. The baseline is always psql (COPY ... TO STDOUT (FORMAT csv)) with
the session settings Sluice uses."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal

import pytest
import requests

from support.csv import CsvTable, parse_csv
from support.digests import sha256
from support.http import assert_json_error
from support.pg import (
    ALL_TYPES_NAMES,
    ALL_TYPES_QUERY,
    ALL_TYPES_ROWS,
    BIG_ROWS,
    JSON_BOOL_COLUMNS,
    JSON_EMBEDDED_COLUMNS,
    JSON_INT_COLUMNS,
    JSON_NUMBER_COLUMNS,
    dataset_toml,
)

NON_NUMBERS = {"NaN", "Infinity", "-Infinity"}


def row_key(row: list[str | None]) -> tuple:
    return tuple((value is None, value or "") for value in row)


def get_ok(url: str, **kwargs) -> requests.Response:
    response = requests.get(url, timeout=60, **kwargs)
    assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
    return response


def test_all_types_csv_equals_psql_copy_csv(sluice, all_types_baseline):
    baseline: CsvTable = all_types_baseline
    # The data must hold what the test is about, or it could not fail.
    assert len(baseline.rows) == ALL_TYPES_ROWS
    flat = [value for row in baseline.rows for value in row]
    assert None in flat and "" in flat and any("\r\n" in (v or "") for v in flat)

    response = get_ok(f"{sluice.url}/v1/exports/types.csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    got = parse_csv(response.content, line_end=b"\r\n")  # also: CRLF, NULL vs "" from bytes
    assert got.header == baseline.header == ALL_TYPES_NAMES
    assert len(got.rows) == len(baseline.rows)
    for mine, theirs in zip(got.rows, baseline.rows):
        differences = [(name, m, t) for name, m, t in zip(baseline.header, mine, theirs)
                       if m != t]
        assert not differences, f"row id={theirs[0]}: (column, sluice, psql) {differences}"


def test_null_and_empty_string_are_distinct_bytes_in_csv(sluice):
    # Row 1 is NULL everywhere but id; some row has c_text = '' and c_varchar = ''.
    response = get_ok(f"{sluice.url}/v1/exports/types.csv",
                      params={"id": "1", "columns": "id,c_text,c_varchar,c_bytea"})
    assert response.content == b"id,c_text,c_varchar,c_bytea\r\n1,,,\r\n"
    response = get_ok(f"{sluice.url}/v1/exports/types.csv",
                      params={"c_text": "", "columns": "c_text"})
    lines = response.content.split(b"\r\n")
    assert lines[0] == b"c_text" and lines[-1] == b"" and len(lines) > 3, response.content[:200]
    assert set(lines[1:-1]) == {b'""'}, response.content[:200]


FILTER_CASES = [
    # (query string, the same restriction in SQL, columns)
    ("id.gte=50&id.lt=120", "id >= 50 AND id < 120", "*"),
    ("id=7", "id = 7", "*"),
    ("id=1,5,299,1000", "id IN (1, 5, 299, 1000)", "*"),
    ("id.in=2,3,4&id.ne=3", "id IN (2, 4)", "*"),
    ("id.ne=3&id.lte=10", "id <> 3 AND id <= 10", "*"),
    ("id.gt=290&columns=c_json,id,c_text", "id > 290", "c_json, id, c_text"),
    ("c_text.is_null=true", "c_text IS NULL", "*"),
    ("c_text.is_null=false&id.lt=40", "c_text IS NOT NULL AND id < 40", "*"),
    ("c_text.ne=plain", "c_text IS DISTINCT FROM 'plain'", "*"),
    ("c_text.eq=emoji 😀🎉👩‍👩‍👧", "c_text = 'emoji 😀🎉👩‍👩‍👧'", "*"),
    ("c_text.prefix=non-ASCII: ä", "starts_with(c_text, 'non-ASCII: ä')", "*"),
    ("c_text.prefix=100%", "starts_with(c_text, '100%')", "*"),
    ("c_text.prefix=%", "starts_with(c_text, '%')", "*"),
    ("c_text.prefix=_", "starts_with(c_text, '_')", "*"),
    ('c_text.prefix=say "', "starts_with(c_text, 'say \"')", "*"),
    ("c_varchar=short,a,b", "c_varchar IN ('short', 'a', 'b')", "*"),
    ("c_varchar=ünïcödé", "c_varchar = 'ünïcödé'", "*"),
    ("c_timestamptz.gte=2024-01-01T00:00:00Z", "c_timestamptz >= '2024-01-01 00:00:00+00'", "*"),
    ("c_timestamptz.lt=1970-01-01T00:00:00%2B01:00",
     "c_timestamptz < '1970-01-01 00:00:00+01'", "*"),
    ("c_date.gte=2000-01-01", "c_date >= '2000-01-01'", "*"),
    ("c_date=2024-02-29", "c_date = '2024-02-29'", "*"),
    ("c_numeric.gte=-42.50&c_numeric.lt=100.000000000000000000001",
     "c_numeric >= -42.50 AND c_numeric < 100.000000000000000000001", "*"),
    # Exact decimals: 12345678901234567890.123456789 < ...890.12345679, but not as doubles.
    ("c_numeric.lt=12345678901234567890.12345679&c_numeric.gte=1000",
     "c_numeric < 12345678901234567890.12345679 AND c_numeric >= 1000", "*"),
    ("c_bool=false", "c_bool = false", "*"),
    ("c_bool=true&id.lt=100&columns=id,c_bool,c_bytea", "c_bool AND id < 100",
     "id, c_bool, c_bytea"),
]


@pytest.mark.parametrize("query,where,columns", FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filtered_csv_equals_psql_with_the_same_where(sluice, pg_up, query, where, columns):
    expected = parse_csv(pg_up.copy_csv(
        f"SELECT {columns} FROM ({ALL_TYPES_QUERY}) AS s WHERE {where}"), line_end=b"\n")
    assert 0 < len(expected.rows) < ALL_TYPES_ROWS, (
        f"the case must select some but not all rows: {len(expected.rows)}")
    response = get_ok(f"{sluice.url}/v1/exports/types.csv?{query}")
    got = parse_csv(response.content, line_end=b"\r\n")
    assert got.header == expected.header
    assert sorted(got.rows, key=row_key) == sorted(expected.rows, key=row_key), (
        f"sluice ids {sorted(int(r[got.header.index('id')]) for r in got.rows)} vs psql ids "
        f"{sorted(int(r[expected.header.index('id')]) for r in expected.rows)}")


def expected_json_value(column: str, text: str | None):
    """What JSON Lines must hold for PostgreSQL's text output of a value."""
    if text is None:
        return None
    if column in JSON_INT_COLUMNS:
        return int(text)
    if column in JSON_NUMBER_COLUMNS:
        return text if text in NON_NUMBERS else Decimal(text)
    if column in JSON_BOOL_COLUMNS:
        return {"t": True, "f": False}[text]
    if column in JSON_EMBEDDED_COLUMNS:
        return json.loads(text, parse_float=Decimal)
    return text


def json_type_ok(column: str, text: str | None, value) -> bool:
    if text is None:
        return value is None
    if column in JSON_INT_COLUMNS:
        return type(value) is int
    if column in JSON_NUMBER_COLUMNS:
        return type(value) is str if text in NON_NUMBERS else type(value) in (int, Decimal)
    if column in JSON_BOOL_COLUMNS:
        return type(value) is bool
    if column in JSON_EMBEDDED_COLUMNS:
        return True  # any JSON value; compared by value
    return type(value) is str


def test_all_types_jsonl_has_the_right_json_types_and_values(sluice, all_types_baseline):
    baseline: CsvTable = all_types_baseline
    response = get_ok(f"{sluice.url}/v1/exports/types.jsonl")
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    body = response.content
    assert body.endswith(b"\n")
    lines = body[:-1].split(b"\n")
    assert len(lines) == len(baseline.rows)
    for line, theirs in zip(lines, baseline.rows):
        # strict json: raw control characters in strings are errors; NaN tokens too.
        obj = json.loads(line.decode("utf-8"), parse_float=Decimal,
                         parse_constant=lambda c: pytest.fail(f"bare {c} in {line[:200]!r}"))
        assert list(obj) == baseline.header, line[:200]
        problems = []
        for name, text in zip(baseline.header, theirs):
            value = obj[name]
            if not json_type_ok(name, text, value):
                problems.append((name, "type", type(value).__name__, value, text))
            elif value != expected_json_value(name, text):
                problems.append((name, "value", value, text))
        assert not problems, f"row id={theirs[0]}: {problems}"


def test_jsonl_numbers_keep_their_digits(sluice):
    """int8 beyond 2^53 and numeric with 39 significant digits go out as written."""
    response = get_ok(f"{sluice.url}/v1/exports/types.jsonl",
                      params={"columns": "c_int8,c_numeric", "id.lte": "40"})
    text = response.text
    assert '"c_int8":9007199254740993' in text.replace(" ", "")
    assert '"c_numeric":12345678901234567890.123456789' in text.replace(" ", "")
    assert '"c_numeric":"NaN"' in text.replace(" ", "")


def test_big_table_with_curl_equals_psql(sluice, big_baseline, tmp_path):
    target = tmp_path / "big.csv"
    result = subprocess.run(
        ["curl", "-sS", "--fail", "--max-time", "120", "-o", str(target),
         f"{sluice.url}/v1/exports/big.csv"], capture_output=True, timeout=150)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    data = target.read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") == BIG_ROWS + 1, "rows or line ends differ"
    normalised = data.replace(b"\r\n", b"\n")  # big has no CR or LF inside values
    assert len(normalised) == len(big_baseline.data)
    assert sha256(normalised) == sha256(big_baseline.data)


def test_big_table_jsonl_row_count_and_ids(sluice):
    response = requests.get(f"{sluice.url}/v1/exports/big.jsonl",
                            params={"columns": "id,amount", "id.gt": "900000"}, timeout=120)
    assert response.status_code == 200
    lines = response.content.split(b"\n")
    assert lines[-1] == b""
    ids = [json.loads(line)["id"] for line in lines[:-1]]
    assert ids == list(range(900001, BIG_ROWS + 1))


# --------------------------------------------------------------------------------------------
# SQL injection through filter values: rejected, or a literal; the database unchanged
# --------------------------------------------------------------------------------------------

INJECTED_VALUES = [
    # the functional tests' strings, on a text filter
    "DE' OR '1'='1",
    "DE'; DROP TABLE all_types; --",
    "DE\" OR \"1\"=\"1",
    "paid') OR ('1'='1",
    "paid' UNION SELECT 1,2,3,4,5,6,7,8 --",
    "DE,FR') OR 1=1 --",
    # PostgreSQL flavours
    "x'::text; DROP TABLE t; --",
    "\\' OR 1=1 --",
    "$1",
    "$$ OR true $$",
    "'); SELECT pg_sleep(5); --",
    "'||pg_sleep(5)||'",
    "current_setting('sluice.p1')",
    "x'); SELECT set_config('sluice.p1', 'plain', false); --",
    "E'\\x27 OR 1=1",
    "plain\x00zzz",
]


def sql_literal(value: str) -> str:
    assert "\x00" not in value
    return "'" + value.replace("'", "''") + "'"


def db_fingerprint(pg) -> str:
    return pg.scalar(
        "SELECT (SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class"
        "        WHERE relnamespace = 'public'::regnamespace)"
        " || '|' || (SELECT count(*) || ':' || md5(string_agg(a::text, '|' ORDER BY id))"
        "            FROM all_types a)"
        " || '|' || (SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY id)) FROM t)")


@pytest.mark.parametrize("value", INJECTED_VALUES, ids=[repr(v) for v in INJECTED_VALUES])
def test_sql_injection_through_text_filter_values_is_a_literal(sluice, pg_up, value):
    before = db_fingerprint(pg_up)
    response = requests.get(f"{sluice.url}/v1/exports/types.csv",
                            params={"c_text": value, "columns": "id,c_text"}, timeout=4)
    if "\x00" in value:
        # No PostgreSQL text can hold a NUL byte: refused, naming the parameter (a 200 would
        # mean the value was cut short or changed on its way).
        error = assert_json_error(response, 400)
        assert "c_text" in error["message"], error
    else:
        # Any other UTF-8 text is a valid value of the text filter: bound as a literal.
        assert response.status_code == 200, response.text[:300]
        values = value.split(",")  # c_text allows `in`: a comma separates values
        expected = pg_up.scalar(
            "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM all_types "
            f"WHERE c_text IN ({', '.join(sql_literal(v) for v in values)})")
        got = parse_csv(response.content, line_end=b"\r\n")
        assert got.header == ["id", "c_text"]
        assert ",".join(sorted((r[0] for r in got.rows), key=int)) == expected
        assert all(r[1] in values for r in got.rows)
    assert db_fingerprint(pg_up) == before
    check = requests.get(f"{sluice.url}/v1/exports/types.csv",
                         params={"c_text": "DE' OR '1'='1", "columns": "id,c_text"}, timeout=10)
    assert check.status_code == 200
    # exactly the one stored value that looks like an injection
    rows = parse_csv(check.content, line_end=b"\r\n").rows
    assert rows and all(r[1] == "DE' OR '1'='1" for r in rows), rows


def test_url_env_with_a_tcp_url_gets_the_same_session_settings(pg_up, start_sluice,
                                                               all_types_baseline, monkeypatch):
    """A postgresql:// URL (with its own query parameters) from the environment, over TCP:
    the session settings still apply, so the CSV is the same as over the unix socket."""
    monkeypatch.setenv("SLUICE_TEST_PG_URL",
                       pg_up.tcp_url() + "?connect_timeout=5&application_name=from-url")
    config = ("[server]\n\n[sources.tcp]\nkind = \"postgres\"\nurl_env = \"SLUICE_TEST_PG_URL\"\n"
              "pool_size = 2\n\n" + dataset_toml("types", "tcp", ALL_TYPES_QUERY))
    server = start_sluice(config)
    response = get_ok(f"{server.url}/v1/exports/types.csv")
    got = parse_csv(response.content, line_end=b"\r\n")
    assert got.header == all_types_baseline.header
    assert got.rows == all_types_baseline.rows
