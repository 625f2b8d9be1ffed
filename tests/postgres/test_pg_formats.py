"""Output options against a real PostgreSQL: the CSV pass-through (copy_format = "csv") applies
the formula guard, CRLF/LF, header and BOM itself and gives the same values as the decoding
path; other delimiters fall back to decoding; TSV and JSON array read back like psql's data."""

from __future__ import annotations

import csv
import io
import json

import requests

from support.csv import parse_csv
from support.pg import (
    ALL_TYPES_FILTERS,
    ALL_TYPES_NAMES,
    ALL_TYPES_QUERY,
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


def test_passthrough_guards_text_and_keeps_numbers(pg_up, start_sluice):
    sluice = start_sluice(passthrough_config(pg_up), name="passthrough")
    body = get_ok(f"{sluice.url}/v1/exports/types.csv").content
    assert b"'=cmd|' /C calc'!A0" in body                  # guarded inside the PG record
    assert b",-12345678901234567890.123456789," in body     # numeric: no guard
    raw = parse_csv(body, line_end=b"\r\n", unguard=False)
    index = ALL_TYPES_NAMES.index("c_text")
    texts = [row[index] for row in raw.rows if row[index]]
    assert all(not t.startswith(("=", "+", "-", "@", "\t", "\r")) for t in texts), texts


def test_passthrough_and_decoding_give_the_same_values(pg_up, start_sluice):
    sluice = start_sluice(passthrough_config(pg_up), name="both")
    passthrough = get_ok(f"{sluice.url}/v1/exports/types.csv").content
    decoded = get_ok(f"{sluice.url}/v1/exports/types.csv?delimiter=%3B").content
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


def test_tsv_and_json_array_read_back(sluice):
    csv_rows = parse_csv(get_ok(f"{sluice.url}/v1/exports/types.csv").content,
                         line_end=b"\r\n").rows
    tsv = get_ok(f"{sluice.url}/v1/exports/types.tsv").content.decode("utf-8")
    lines = tsv.split("\n")[:-1]
    assert lines[0].split("\t") == ALL_TYPES_NAMES
    assert len(lines) - 1 == len(csv_rows)

    def unescape(field: str):
        if field == "\\N":
            return None
        return (field.replace("\\\\", "\x00").replace("\\t", "\t").replace("\\n", "\n")
                .replace("\\r", "\r").replace("\x00", "\\"))

    tsv_rows = [[unescape(f) for f in line.split("\t")] for line in lines[1:]]
    assert tsv_rows == csv_rows
    rows = json.loads(get_ok(f"{sluice.url}/v1/exports/types.json").content)
    assert len(rows) == len(csv_rows) and list(rows[0]) == ALL_TYPES_NAMES
    assert [r["id"] for r in rows] == [int(r[0]) for r in csv_rows]
