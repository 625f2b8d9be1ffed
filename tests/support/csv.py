"""CSV as Sluice writes it, parsed so that NULL (an empty unquoted field) stays apart from ''
(a quoted empty field), cross-checked with Python's csv module; and the formula guard."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Iterator

# First characters a spreadsheet evaluates; CSV text cells starting with one get a leading "'"
# (the formula guard, on by default; tests/functional/test_formats.py checks its exact bytes;
# numeric columns are exempt).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_guarded(value):
    """How the formula guard writes a text value (numbers are never guarded)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_unguard(field: str | None) -> str | None:
    """Undoes the formula guard on a parsed CSV field. Exact for the tests' data: no stored value
    itself starts with "'" followed by a formula character (and psql's output never has the
    guard)."""
    if field is not None and field.startswith("'") and field[1:].startswith(FORMULA_START):
        return field[1:]
    return field


# An unquoted field runs up to the next delimiter, line end or (misplaced) quote.
UNQUOTED = re.compile(r'[^,\r\n"]*')


def strict_csv_records(text: str, line_end: str) -> list[list[str | None]]:
    """A strict RFC 4180 state machine over raw text: an empty unquoted field is None (NULL), a
    quoted empty field is ''; every record must end with `line_end`, and no bare CR/LF or quote
    may appear outside quotes."""
    records: list[list[str | None]] = []
    fields: list[str | None] = []
    i, n = 0, len(text)
    if n == 0:
        return records
    assert text.endswith(line_end), f"body does not end with {line_end!r}: {text[-40:]!r}"
    while i < n:
        if text[i] == '"':
            value = []
            i += 1
            while True:
                j = text.find('"', i)
                assert j >= 0, f"unterminated quoted field at {i}"
                value.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    value.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            fields.append("".join(value))
        else:
            j = UNQUOTED.match(text, i).end()
            assert j == n or text[j] != '"', f"quote inside an unquoted field at {j}"
            fields.append(text[i:j] if j > i else None)
            i = j
        if text.startswith(line_end, i):
            records.append(fields)
            fields = []
            i += len(line_end)
        elif i < n and text[i] == ",":
            i += 1
            if text.startswith(line_end, i):  # an empty unquoted last field
                fields.append(None)
                records.append(fields)
                fields = []
                i += len(line_end)
        else:
            raise AssertionError(
                f"after a field at {i}: expected ',' or {line_end!r}, got {text[i:i + 20]!r}")
    assert not fields
    return records


def rfc4180_fields(record: str) -> list[str | None]:
    """strict_csv_records of one raw record with its CRLF."""
    records = strict_csv_records(record, "\r\n")
    assert len(records) == 1, f"not one CRLF record: {record[:200]!r}"
    return records[0]


def csv_records(text: str) -> Iterator[tuple[list[str], str]]:
    """Parses CSV text with the csv module; yields (fields, raw text of the record).

    The raw text is what the csv module consumed for the record, so a caller can check bytes
    that the module hides, such as "" (empty string) against an empty unquoted field (NULL)."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), strict=True)
    for fields in reader:
        raw = "".join(consumed)
        consumed.clear()
        yield fields, raw


def csv_rows_with_nulls(text: str, unguard: bool = True) -> Iterator[list[str | None]]:
    """Every record of a CSV body, parsed by the csv module, with NULL (empty unquoted) as None
    and "" as ''. Also checks the record ends with CRLF and that our own strict parse of its raw
    bytes agrees with the csv module. With `unguard`, the formula guard's "'" is removed, so the
    rows compare with the table."""
    for fields, raw in csv_records(text):
        assert raw.endswith("\r\n"), f"record not terminated by CRLF: {raw[-60:]!r}"
        if '"' not in raw:
            # Nothing quoted: every empty field is an empty unquoted one, i.e. NULL.
            row = [f if f != "" else None for f in fields]
        else:
            row = rfc4180_fields(raw)
            assert [f if f is not None else "" for f in row] == fields, (
                f"csv module and strict parse disagree on {raw!r}")
        yield [csv_unguard(f) for f in row] if unguard else row


@dataclass
class CsvTable:
    header: list[str]
    rows: list[list[str | None]]


def parse_csv(data: bytes, line_end: bytes, unguard: bool = True) -> CsvTable:
    """Parses a whole CSV body twice: with the csv module (values) and with the strict state
    machine (raw bytes). The two must agree. With `unguard`, the formula guard's "'" is removed
    so values compare with psql's."""
    text = data.decode("utf-8")
    strict = strict_csv_records(text, line_end.decode())
    module = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    assert len(module) == len(strict), (len(module), len(strict))
    for index, (fields, record) in enumerate(zip(module, strict)):
        assert [f if f is not None else "" for f in record] == fields, (
            f"record {index}: csv module {fields!r} vs strict parse {record!r}")
    assert strict, "no header"
    header = strict[0]
    assert all(name is not None for name in header), header
    for index, record in enumerate(strict[1:], 1):
        assert len(record) == len(header), f"record {index} has {len(record)} fields: {record!r}"
    records = [[csv_unguard(f) for f in r] for r in strict[1:]] if unguard else strict[1:]
    return CsvTable(list(header), records)
