"""Output options against a real PostgreSQL: the CSV pass-through (copy_format = "csv") applies
the formula guard, CRLF/LF, header and BOM itself and gives the same values as the decoding
path, both equal to psql's CSV; other delimiters fall back to decoding. TSV is loaded back into
PostgreSQL with COPY FROM STDIN and compared there (EXCEPT ALL both ways); the JSON array is
compared value by value with what psycopg2 reads from the table."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from decimal import Decimal

import pytest
import requests

from support.csv import FORMULA_START, csv_guarded, parse_csv
from support.pg import (
    ALL_TYPES_COLUMNS,
    ALL_TYPES_FILTERS,
    ALL_TYPES_NAMES,
    ALL_TYPES_QUERY,
    ALL_TYPES_ROWS,
    dataset_toml,
    source_toml,
)


def get_ok(url: str) -> requests.Response:
    response = requests.get(url, timeout=120)
    assert response.status_code == 200, response.text[:500]
    return response


def passthrough_config(pg) -> str:
    source = source_toml("pg", pg).replace("statement_timeout_ms = 0\n",
                                           'statement_timeout_ms = 0\ncopy_format = "csv"\n')
    return ("[server]\n\n" + source
            + dataset_toml("types", "pg", ALL_TYPES_QUERY, ALL_TYPES_FILTERS))


def test_passthrough_guards_text_and_keeps_numbers(pg_up, start_sluice, all_types_baseline):
    sluice = start_sluice(passthrough_config(pg_up), name="passthrough")
    body = get_ok(f"{sluice.url}/v1/exports/types.csv").content
    assert b"'=cmd|' /C calc'!A0" in body                  # guarded inside the PG record
    assert b",-12345678901234567890.123456789," in body     # numeric: no guard
    raw = parse_csv(body, line_end=b"\r\n", unguard=False)
    index = ALL_TYPES_NAMES.index("c_text")
    texts = [row[index] for row in raw.rows if row[index]]
    assert len(texts) > 100, texts[:5]
    assert all(not t.startswith(FORMULA_START) for t in texts), texts
    # Cell by cell against psql's CSV (docs/API.md): a cell that starts like a formula gets the
    # "'" unless its column is numeric (int, decimal, float: exempt however they start, e.g.
    # -42.50); every other cell is psql's value unchanged.
    numeric = {"id"} | {name for name, sqltype, _ in ALL_TYPES_COLUMNS
                        if sqltype in ("int2", "int4", "int8", "numeric", "float4", "float8")}
    assert raw.header == all_types_baseline.header
    assert len(raw.rows) == len(all_types_baseline.rows) == ALL_TYPES_ROWS
    for mine, theirs in zip(raw.rows, all_types_baseline.rows):
        want = [v if name in numeric else csv_guarded(v) for name, v in zip(raw.header, theirs)]
        assert mine == want, (f"row id={theirs[0]}", [
            (name, m, w) for name, m, w in zip(raw.header, mine, want) if m != w])
    assert any(row[index] is not None and row[index].startswith(FORMULA_START)
               for row in all_types_baseline.rows)


def test_passthrough_and_decoding_give_the_same_values(pg_up, start_sluice, all_types_baseline):
    sluice = start_sluice(passthrough_config(pg_up), name="both")
    passthrough = get_ok(f"{sluice.url}/v1/exports/types.csv").content
    decoded = get_ok(f"{sluice.url}/v1/exports/types.csv?delimiter=%3B").content
    # The pass-through is psql's data (guard undone), not only the same as the decoding path.
    unguarded = parse_csv(passthrough, line_end=b"\r\n")
    assert unguarded.header == all_types_baseline.header
    assert unguarded.rows == all_types_baseline.rows
    a = parse_csv(passthrough, line_end=b"\r\n", unguard=False)
    b = list(csv.reader(io.StringIO(decoded.decode("utf-8"), newline=""), delimiter=";",
                        strict=True))
    assert b[0] == a.header
    assert [[v or "" for v in row] for row in a.rows] == b[1:]
    # The same options through the pass-through: LF, no header, BOM.
    lf = get_ok(f"{sluice.url}/v1/exports/types.csv?line_ending=lf&header=false&bom=true").content
    assert lf.startswith(b"\xef\xbb\xbf") and not lf.startswith(b"\xef\xbb\xbfid,")
    assert lf[3:].replace(b"\n", b"\r\n").count(b"\r\n") >= len(a.rows)
    assert passthrough.split(b"\r\n", 1)[1].replace(b"\r\n", b"\n") == lf[3:].replace(
        b"\r\n", b"\n")


# Every column the binary COPY covers (interval and arrays make a query use text format).
BINARY_COLUMNS = ["id"] + [name for name, sqltype, _ in ALL_TYPES_COLUMNS
                           if sqltype not in ("interval", "int4[]", "text[]")]
BINARY_QUERY = f"SELECT {', '.join(BINARY_COLUMNS)} FROM all_types ORDER BY id"


def three_readers_config(pg) -> str:
    """The same query through the binary COPY (copy_format auto: CSV records written by the
    decoder), the text COPY (cells, written by the CSV encoder) and PostgreSQL's own CSV, each
    with and without the formula guard."""
    text = ["[server]\n"]
    for copy_format in ("auto", "text", "csv"):
        source = source_toml(f"pg_{copy_format}", pg)
        text.append(source.replace("statement_timeout_ms = 0\n",
                                   f'statement_timeout_ms = 0\ncopy_format = "{copy_format}"\n'))
        text.append(dataset_toml(f"b_{copy_format}", f"pg_{copy_format}", BINARY_QUERY))
        text.append(dataset_toml(f"b_{copy_format}_unguarded", f"pg_{copy_format}", BINARY_QUERY)
                    + "[datasets.output]\nformula_guard = false\n\n")
    return "\n".join(text)


def csv_records(body: bytes) -> list[list[str]]:
    text = body.decode("utf-8").removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(text, newline=""), strict=True))


def test_binary_csv_records_are_the_csv_encoder_s_bytes(pg_up, start_sluice, pg):
    """The binary reader writes a CSV download's records itself (PgBinaryDecoder::
    decode_csv_record); they must be the bytes the CSV encoder writes from the text COPY's
    cells, for every covered type, with the guard and without, CRLF and LF, header and BOM."""
    sluice = start_sluice(three_readers_config(pg_up), name="three")
    psql = parse_csv(pg.copy_csv(BINARY_QUERY), line_end=b"\n")
    assert len(psql.rows) == ALL_TYPES_ROWS
    for options in ("", "?line_ending=lf&header=false&bom=true"):
        for suffix in ("", "_unguarded"):
            records = get_ok(f"{sluice.url}/v1/exports/b_auto{suffix}.csv{options}").content
            cells = get_ok(f"{sluice.url}/v1/exports/b_text{suffix}.csv{options}").content
            assert records == cells, (options, suffix, [
                (a, b) for a, b in zip(records.split(b"\n"), cells.split(b"\n")) if a != b][:3])
            if not options:
                # And the values are psql's (the guard's "'" undone where there is one).
                table = parse_csv(records, line_end=b"\r\n", unguard=suffix == "")
                assert table.header == psql.header
                assert table.rows == psql.rows
        guarded = get_ok(f"{sluice.url}/v1/exports/b_auto.csv{options}").content
        unguarded = get_ok(f"{sluice.url}/v1/exports/b_auto_unguarded.csv{options}").content
        assert b"'=cmd|' /C calc'!A0" in guarded and b"'=cmd" not in unguarded
        assert b"'-infinity" in guarded and b",-infinity," in unguarded  # dates are guarded too
        # PostgreSQL's own CSV through the pass-through gives the same records.
        passthrough = get_ok(f"{sluice.url}/v1/exports/b_csv.csv{options}").content
        assert csv_records(guarded) == csv_records(passthrough)


# --------------------------------------------------------------------------------------------
# TSV: PostgreSQL's text format, read back by PostgreSQL itself
# --------------------------------------------------------------------------------------------

def test_tsv_loads_back_with_copy_from_stdin(sluice, pg_up):
    """docs/API.md: `COPY t FROM STDIN` reads the TSV back as it was. Loaded into a table of the
    same column types and compared inside PostgreSQL, typed and as each row's text, both ways
    (EXCEPT ALL keeps duplicates), so a value that changed on the way cannot hide."""
    response = get_ok(f"{sluice.url}/v1/exports/types.tsv")
    assert response.headers["Content-Type"] == "text/tab-separated-values; charset=utf-8"
    data = response.content
    header, _, records = data.partition(b"\n")
    assert header.decode("utf-8").split("\t") == ALL_TYPES_NAMES
    assert records.endswith(b"\n")
    # Rows in the dataset's order (ORDER BY id): the first field of each record.
    assert [int(line.split(b"\t", 1)[0]) for line in records[:-1].split(b"\n")] == list(
        range(1, ALL_TYPES_ROWS + 1))

    # json has no equality operator: compared as its (verbatim) text; everything else typed.
    typed = ", ".join(f"{name}::text" if sqltype == "json" else name
                      for name, sqltype, _ in [("id", "int4", [])] + ALL_TYPES_COLUMNS)
    conn = pg_up.connect()
    try:
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE tsv_back (LIKE all_types)")
        cur.copy_expert("COPY tsv_back FROM STDIN", io.BytesIO(records))
        cur.execute("SELECT (SELECT count(*) FROM all_types), (SELECT count(*) FROM tsv_back)")
        assert cur.fetchone() == (ALL_TYPES_ROWS, ALL_TYPES_ROWS)
        for first, second in (("all_types", "tsv_back"), ("tsv_back", "all_types")):
            cur.execute(f"SELECT id FROM (SELECT {typed} FROM {first} EXCEPT ALL "
                        f"SELECT {typed} FROM {second}) AS d ORDER BY id")
            missing = [r[0] for r in cur.fetchall()]
            assert not missing, f"ids in {first} but not in {second} (typed): {missing[:20]}"
            cur.execute(f"SELECT r FROM (SELECT s::text AS r FROM {first} AS s EXCEPT ALL "
                        f"SELECT s::text FROM {second} AS s) AS d ORDER BY r LIMIT 5")
            differing = [r[0] for r in cur.fetchall()]
            assert not differing, f"rows of {first} not in {second} (as text): {differing}"
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# JSON array: value by value against psycopg2
# --------------------------------------------------------------------------------------------

INT_TYPES = {"int2", "int4", "int8"}
FLOAT_TYPES = {"float4", "float8"}
# Read typed by psycopg2; every other column as PostgreSQL's text under Sluice's session
# settings (docs/CONFIG.md: "values are written exactly as PostgreSQL prints them").
TYPED = INT_TYPES | FLOAT_TYPES | {"numeric", "bool", "text", "bytea", "char(5)", "varchar(20)"}


def expected_json(api_type: str, sqltype: str, value):
    """docs/API.md's JSON for a value psycopg2 read, by the column's type in GET /v1/datasets:
    int, decimal and float as JSON numbers (NaN and the infinities, not valid JSON numbers, as
    strings), bool as true/false, NULL as null, json embedded, bytes as base64, everything
    else a string: PostgreSQL's text (bytea as `\\x` hex, docs/CONFIG.md)."""
    if value is None:
        return None
    if api_type == "int" or api_type == "bool":
        return value
    if api_type in ("decimal", "float"):
        if isinstance(value, Decimal):
            if value.is_nan():
                return "NaN"
            return value if value.is_finite() else ("Infinity" if value > 0 else "-Infinity")
        if math.isnan(value):
            return "NaN"
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if api_type == "json":
        return json.loads(value, parse_float=Decimal)
    if sqltype == "bytea":
        raw = bytes(value)
        return base64.b64encode(raw).decode("ascii") if api_type == "bytes" else "\\x" + raw.hex()
    return value


def json_matches(api_type: str, got, want) -> bool:
    if want is None:
        return got is None
    if isinstance(want, str) or api_type == "json":
        return type(got) is type(want) and got == want
    if api_type == "int":
        return type(got) is int and got == want
    if api_type == "bool":
        return type(got) is bool and got == want
    if isinstance(want, Decimal):
        return type(got) in (int, Decimal) and Decimal(got) == want
    return type(got) in (int, Decimal) and float(got) == want  # a float8/float4 value


def test_json_array_equals_the_table_read_with_psycopg2(sluice, pg_up):
    response = get_ok(f"{sluice.url}/v1/exports/types.json")
    assert response.headers["Content-Type"] == "application/json"
    body = response.content.decode("utf-8")
    # `[` newline, one object per line separated by `,` newline, newline `]` newline.
    lines = body.split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""], (body[:100], body[-100:])
    assert len(lines) == ALL_TYPES_ROWS + 3
    assert all(line.endswith("},") for line in lines[1:-3]) and lines[-3].endswith("}")
    # Strict: bare NaN/Infinity tokens are not JSON.
    objects = json.loads(body, parse_float=Decimal,
                         parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON array"))

    columns = [("id", "int4")] + [(name, sqltype) for name, sqltype, _ in ALL_TYPES_COLUMNS]
    listing = requests.get(f"{sluice.url}/v1/datasets", timeout=10).json()["datasets"]
    api_types = {c["name"]: c["type"]
                 for c in next(d for d in listing if d["name"] == "types")["columns"]}
    # The types Sluice declares for the number, bool and json columns follow the SQL types.
    declared = {"int2": "int", "int4": "int", "int8": "int", "numeric": "decimal",
                "float4": "float", "float8": "float", "bool": "bool", "json": "json",
                "jsonb": "json"}
    expected_types = {name: declared[sqltype] for name, sqltype in columns if sqltype in declared}
    assert {name: api_types[name] for name in expected_types} == expected_types
    select = ", ".join(name if sqltype in TYPED else f"{name}::text"
                       for name, sqltype in columns)
    conn = pg_up.connect()
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT {select} FROM all_types ORDER BY id")
        rows = cur.fetchall()
    finally:
        conn.close()
    assert len(objects) == len(rows) == ALL_TYPES_ROWS
    for obj, row in zip(objects, rows):
        assert list(obj) == ALL_TYPES_NAMES, list(obj)
        problems = [(name, obj[name], value) for (name, sqltype), value in zip(columns, row)
                    if not json_matches(api_types[name], obj[name],
                                        expected_json(api_types[name], sqltype, value))]
        assert not problems, f"row id={row[0]}: (column, json, postgres) {problems}"
