"""Column transforms ([datasets.columns.NAME]) against a real PostgreSQL: every expected value is
computed here, independently of Sluice, from psql's own text of the same query (PostgreSQL's
CSV through the PgCluster helpers) with Python's zoneinfo, decimal and hmac modules.

Covered: timestamp formatting in Europe/Berlin and America/New_York across DST, input zones,
infinity and BC passing through, dates written without a zone shift; `places` on numeric and
float8 (NaN, Infinity, huge and tiny values); boolean words; null_text in CSV and JSON Lines;
masks; HMAC-SHA-256; map with and without default; case and truncate on non-ASCII text;
renames with `columns=`/`order=`/filters and GET /v1/datasets; the copy_format = "csv"
pass-through with renames only and the decoding path once a value is transformed; config
errors naming the key (check-config and serve)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import pytest
import requests

from support.csv import CsvTable, csv_unguard, parse_csv
from support.http import assert_json_error
from support.pg import dataset_toml, source_toml
from support.server import run_sluice, sluice_bin

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def config_text(pg, query: str, dataset_body: str = "", name: str = "x",
                copy_csv: bool = False, extra_datasets: str = "") -> str:
    """One source `pg` and one dataset; `dataset_body` follows the dataset's `query` line (its
    keys first, then its [datasets.columns.*] / [datasets.filters.*] tables)."""
    source = source_toml("pg", pg)
    if copy_csv:
        source = source.replace("statement_timeout_ms = 0\n",
                                'statement_timeout_ms = 0\ncopy_format = "csv"\n')
    return "[server]\n\n" + source + dataset_toml(name, "pg", query, dataset_body) + extra_datasets


def get_ok(url: str, **params) -> requests.Response:
    response = requests.get(url, params=params or None, timeout=120)
    assert response.status_code == 200, response.text[:500]
    return response


def get_csv(server, dataset: str = "x", **params) -> CsvTable:
    body = get_ok(f"{server.url}/v1/exports/{dataset}.csv", **params).content
    return parse_csv(body, line_end=b"\r\n")


def get_jsonl(server, dataset: str = "x", **params) -> tuple[list[bytes], list[dict]]:
    """The raw lines and the parsed objects (floats kept exact as Decimal)."""
    body = get_ok(f"{server.url}/v1/exports/{dataset}.jsonl", **params).content
    assert body.endswith(b"\n")
    lines = body[:-1].split(b"\n")
    return lines, [json.loads(line, parse_float=Decimal) for line in lines]


def baseline(pg, query: str) -> list[dict[str, str | None]]:
    """psql's rows of `query` (PostgreSQL's own CSV; None is NULL), as dicts by column."""
    table = parse_csv(pg.copy_csv(query), line_end=b"\n")
    return [dict(zip(table.header, row)) for row in table.rows]


def rows_as_dicts(table: CsvTable) -> list[dict[str, str | None]]:
    return [dict(zip(table.header, row)) for row in table.rows]


# --- timestamps ------------------------------------------------------------------------------

# PostgreSQL's ISO output (TimeZone=UTC): date, optional time with fraction, optional offset.
# BC values, infinity and -infinity do not match and must pass through unchanged.
PG_TIMESTAMP = re.compile(
    r"^(\d{4,})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
    r"(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?)?$")

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 400 Gregorian years are 146097 days, a whole number of weeks: years beyond Python's 9999 are
# moved back by multiples of 400 (same calendar, same weekdays, same POSIX-rule zone offsets)
# and the shift is added back when written.
CYCLE_YEARS = 400
CYCLE_SECONDS = 146097 * 86400


@dataclass
class LocalValue:
    when: datetime        # aware, in the output zone (dates: naive midnight)
    nanos: int
    shift: int            # years moved back (a multiple of 400)
    date_only: bool
    unix: int | None      # floor of the instant in Unix seconds (None for dates)


def to_output_zone(text: str, zone: str, input_zone: str = "UTC") -> LocalValue | None:
    match = PG_TIMESTAMP.match(text)
    if match is None:
        return None
    year = int(match[1])
    shift = (year - 2000) // CYCLE_YEARS * CYCLE_YEARS if year > 9999 else 0
    local = datetime(year - shift, int(match[2]), int(match[3]), int(match[4] or 0),
                     int(match[5] or 0), int(match[6] or 0))
    nanos = int((match[7] or "").ljust(9, "0"))
    if match[4] is None:
        return LocalValue(local, 0, shift, True, None)
    if match[8] is not None:
        offset = int(match[9]) * 3600 + int(match[10] or 0) * 60 + int(match[11] or 0)
        offset = -offset if match[8] == "-" else offset
        instant = (local - timedelta(seconds=offset)).replace(tzinfo=UTC)
    else:
        instant = local.replace(tzinfo=ZoneInfo(input_zone)).astimezone(UTC)
    unix = (instant - EPOCH) // timedelta(seconds=1) + shift // CYCLE_YEARS * CYCLE_SECONDS
    return LocalValue(instant.astimezone(ZoneInfo(zone)), nanos, shift, False, unix)


def strftime_like(pattern: str, value: LocalValue) -> str:
    """The conversions of the spec, written out by hand (no locale, no platform strftime)."""
    t = value.when
    year = t.year + value.shift
    seconds = f"{t.second:02d}"
    offset = t.utcoffset() if not value.date_only else None

    def zone_offset(colon: bool) -> str:
        assert offset is not None
        total = int(offset.total_seconds())
        sign = "-" if total < 0 else "+"
        total = abs(total)
        return f"{sign}{total // 3600:02d}{':' if colon else ''}{total // 60 % 60:02d}"

    fraction = f"{value.nanos:09d}".rstrip("0")
    table = {
        "Y": f"{year:04d}", "y": f"{year % 100:02d}", "m": f"{t.month:02d}",
        "d": f"{t.day:02d}", "e": f"{t.day:2d}", "j": f"{t.timetuple().tm_yday:03d}",
        "H": f"{t.hour:02d}", "I": f"{(t.hour % 12) or 12:02d}",
        "p": "AM" if t.hour < 12 else "PM", "M": f"{t.minute:02d}", "S": seconds,
        "f": f"{value.nanos // 1000:06d}", "b": MONTHS[t.month - 1][:3],
        "B": MONTHS[t.month - 1], "a": DAYS[t.weekday()][:3], "A": DAYS[t.weekday()],
        "F": f"{year:04d}-{t.month:02d}-{t.day:02d}",
        "T": f"{t.hour:02d}:{t.minute:02d}:{seconds}", "R": f"{t.hour:02d}:{t.minute:02d}",
        "%": "%",
    }
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        nxt = pattern[i + 1]
        if nxt == "E":
            rest = pattern[i + 2:]
            if rest.startswith("z"):
                out.append(zone_offset(True))
                i += 3
            elif rest.startswith("*S"):
                out.append(seconds + ("." + fraction if fraction else ""))
                i += 4
            else:
                digits = int(rest[0])
                assert rest[1] == "S"
                out.append(seconds + "." + f"{value.nanos:09d}"[:digits])
                i += 4
            continue
        if nxt == "z":
            out.append(zone_offset(False))
        elif nxt == "Z":
            out.append(t.tzname())
        elif nxt == "s":
            out.append(str(value.unix))
        else:
            out.append(table[nxt])
        i += 2
    return "".join(out)


def expected_format(text: str | None, pattern: str, zone: str = "UTC",
                    input_zone: str = "UTC") -> str | None:
    if text is None:
        return None
    value = to_output_zone(text, zone, input_zone)
    return text if value is None else strftime_like(pattern, value)


# --- numbers, text ---------------------------------------------------------------------------

WIDE = Context(prec=5000)


def expected_places(text: str | None, places: int) -> str | None:
    """Half away from zero on the decimal digits; NaN/Infinity unchanged; no '-' on zero."""
    if text is None:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=WIDE)
    written = format(rounded, "f")
    return written.lstrip("-") if rounded.is_zero() else written


def simple_upper(text: str) -> str:
    """Unicode upper case, one code point for one (ß has no single upper-case letter)."""
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in text)


def simple_lower(text: str) -> str:
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def mask_last(text: str, keep: int) -> str:
    return "*" * len(text) if len(text) <= keep else "*" * (len(text) - keep) + text[-keep:]


def mask_email(text: str) -> str:
    if "@" not in text:
        return "***"
    local, domain = text.split("@", 1)
    return local[0] + "***@" + domain


# --------------------------------------------------------------------------------------------
# Timestamps and dates
# --------------------------------------------------------------------------------------------

FULL_PATTERN = ("%Y-%m-%d %H:%M:%S %Z %z|%Ez|%a %A %b %B|%j|%I %p|%e|%y|%s|%f|%E3S|%E*S|"
                "%F %T %R|100%%")


def test_timestamptz_formatted_in_berlin_and_new_york(pg_up, start_sluice):
    query = ("SELECT id, c_timestamptz, c_timestamptz AS berlin, c_timestamptz AS ny, "
             "c_timestamptz AS utc, c_timestamptz::text AS as_text, c_text "
             "FROM all_types WHERE id <= 300 ORDER BY id")
    body = f"""
[datasets.columns.as_text]
format = "{FULL_PATTERN}"
time_zone = "Europe/Berlin"

[datasets.columns.c_text]
format = "%F %T"

[datasets.columns.berlin]
format = "{FULL_PATTERN}"
time_zone = "Europe/Berlin"
rename = "Zeit (Berlin)"

[datasets.columns.ny]
format = "{FULL_PATTERN}"
time_zone = "America/New_York"

[datasets.columns.utc]
format = "%d/%m/%Y %T%Ez %Z"
"""
    sluice = start_sluice(config_text(pg_up, query, body))
    got = rows_as_dicts(get_csv(sluice))
    want = baseline(pg_up, query)
    assert got[0].keys() == {"id", "c_timestamptz", "Zeit (Berlin)", "ny", "utc", "as_text",
                             "c_text"}
    assert [r["id"] for r in got] == [r["id"] for r in want]
    seen_zones = set()
    for mine, theirs in zip(got, want):
        raw = theirs["c_timestamptz"]
        assert mine["c_timestamptz"] == raw  # the untransformed column is untouched
        assert mine["Zeit (Berlin)"] == expected_format(raw, FULL_PATTERN, "Europe/Berlin"), raw
        assert mine["ny"] == expected_format(raw, FULL_PATTERN, "America/New_York"), raw
        assert mine["utc"] == expected_format(raw, "%d/%m/%Y %T%Ez %Z"), raw
        # The same spelling in a text column is formatted the same; other text passes.
        assert mine["as_text"] == mine["Zeit (Berlin)"], raw
        assert mine["c_text"] == theirs["c_text"]
        if raw is not None and PG_TIMESTAMP.match(raw):
            seen_zones.add(mine["Zeit (Berlin)"].split(" ")[2])
            seen_zones.add(mine["ny"].split(" ")[2])
    # The data crosses both DST regimes in both zones, and has infinity, -infinity, BC, NULL.
    assert {"CET", "CEST", "EST", "EDT"} <= seen_zones, seen_zones
    by_raw = {r["c_timestamptz"]: r for r in got}
    # Spot checks written out by hand (the 02:30 that does not exist in Berlin, and the
    # second 01:30 of New York's fall-back night).
    assert by_raw["2024-03-31 01:30:00+00"]["Zeit (Berlin)"].startswith(
        "2024-03-31 03:30:00 CEST +0200|+02:00|Sun Sunday Mar March|091|03 AM")
    assert by_raw["2024-11-03 06:30:00+00"]["ny"].startswith(
        "2024-11-03 01:30:00 EST -0500|-05:00|Sun Sunday Nov November")
    assert by_raw["2025-01-01 07:59:59.999999+00"]["ny"].startswith(
        "2025-01-01 02:59:59 EST -0500|-05:00|Wed Wednesday Jan January|001|02 AM| 1|25|"
        "1735718399|999999|59.999|59.999999|")
    for special in ("infinity", "-infinity", "0100-01-01 00:00:00+00 BC"):
        assert by_raw[special]["Zeit (Berlin)"] == special
        assert by_raw[special]["ny"] == special
        assert by_raw[special]["utc"] == special
    assert by_raw[None]["ny"] is None
    # JSON Lines: formatted values are strings, NULL stays null.
    _, objects = get_jsonl(sluice)
    assert [(o["Zeit (Berlin)"], o["ny"], o["utc"]) for o in objects] == [
        (r["Zeit (Berlin)"], r["ny"], r["utc"]) for r in got]
    types = {c["name"]: c["type"] for c in
             get_ok(f"{sluice.url}/v1/datasets").json()["datasets"][0]["columns"]}
    assert types["Zeit (Berlin)"] == types["ny"] == "text" and types["c_timestamptz"] == "timestamp"


def test_timestamp_without_zone_and_input_time_zone(pg_up, start_sluice):
    query = ("SELECT id, c_timestamp, c_timestamp AS as_utc_in_ny, "
             "c_timestamp AS berlin_to_utc, c_timestamp AS ny_to_berlin "
             "FROM all_types WHERE id <= 300 ORDER BY id")
    pattern = "%F %T %Z %Ez %s %E*S %j %a"
    body = f"""
[datasets.columns.as_utc_in_ny]
format = "{pattern}"
time_zone = "America/New_York"

[datasets.columns.berlin_to_utc]
format = "{pattern}"
input_time_zone = "Europe/Berlin"

[datasets.columns.ny_to_berlin]
format = "{pattern}"
time_zone = "Europe/Berlin"
input_time_zone = "America/New_York"
"""
    sluice = start_sluice(config_text(pg_up, query, body))
    got = rows_as_dicts(get_csv(sluice))
    want = baseline(pg_up, query)
    assert len(got) == len(want) == 300
    for mine, theirs in zip(got, want):
        raw = theirs["c_timestamp"]
        assert mine["as_utc_in_ny"] == expected_format(raw, pattern, "America/New_York"), raw
        assert mine["berlin_to_utc"] == expected_format(raw, pattern, "UTC", "Europe/Berlin"), raw
        assert mine["ny_to_berlin"] == expected_format(raw, pattern, "Europe/Berlin",
                                                       "America/New_York"), raw
    by_raw = {r["c_timestamp"]: r for r in got}
    assert by_raw["2024-01-02 03:04:05.123456"]["berlin_to_utc"] == (
        "2024-01-02 02:04:05 UTC +00:00 1704161045 05.123456 002 Tue")
    # PostgreSQL's largest timestamp, beyond Python's datetime: checked by hand as well.
    largest = by_raw["294276-12-31 23:59:59.999999"]["as_utc_in_ny"]
    assert largest.startswith("294276-12-31 18:59:59 EST -05:00 ")
    assert largest.split(" ")[4] == pg_up.scalar(  # %s: whole seconds of the instant
        "SELECT extract(epoch FROM timestamptz '294276-12-31 23:59:59+00')::int8")
    for special in ("infinity", "-infinity", "0001-01-01 00:00:00 BC"):
        assert by_raw[special]["as_utc_in_ny"] == special
        assert by_raw[special]["ny_to_berlin"] == special


DATE_PATTERN = "%d.%m.%Y %a %A %b %B %j %e %y|%F"


def test_dates_formatted_without_zone_shift(pg_up, start_sluice):
    # The largest PostgreSQL date (a 7-digit year) is checked on its own below.
    query = ("SELECT id, c_date, c_date AS de, c_date AS ny FROM all_types "
             "WHERE id <= 300 AND c_date IS DISTINCT FROM date '5874897-12-31' ORDER BY id")
    body = f"""
[datasets.columns.de]
format = "{DATE_PATTERN}"
time_zone = "Europe/Berlin"

[datasets.columns.ny]
format = "{DATE_PATTERN}"
time_zone = "America/New_York"
input_time_zone = "Asia/Tokyo"
"""
    sluice = start_sluice(config_text(pg_up, query, body))
    got = rows_as_dicts(get_csv(sluice))
    want = baseline(pg_up, query)
    assert [r["id"] for r in got] == [r["id"] for r in want]
    for mine, theirs in zip(got, want):
        raw = theirs["c_date"]
        assert mine["de"] == expected_format(raw, DATE_PATTERN), raw
        assert mine["ny"] == expected_format(raw, DATE_PATTERN), raw  # no shift to the day before
    by_raw = {r["c_date"]: r for r in got}
    assert by_raw["2024-02-29"]["ny"] == (
        "29.02.2024 Thu Thursday Feb February 060 29 24|2024-02-29")
    assert by_raw["1970-01-01"]["ny"].startswith("01.01.1970 Thu ")
    for special in ("infinity", "-infinity", "0044-03-15 BC", "4713-01-01 BC"):
        assert by_raw[special]["de"] == special and by_raw[special]["ny"] == special


def test_largest_date_is_formatted(pg_up, start_sluice):
    query = ("SELECT id, c_date FROM all_types WHERE id <= 300 "
             "AND c_date = date '5874897-12-31' ORDER BY id")
    body = f'[datasets.columns.c_date]\nformat = "{DATE_PATTERN}"\n'
    sluice = start_sluice(config_text(pg_up, query, body))
    got = get_csv(sluice).rows
    want = baseline(pg_up, query)
    assert want and len(got) == len(want)
    expected = expected_format("5874897-12-31", DATE_PATTERN)
    assert pg_up.scalar("SELECT extract(isodow FROM date '5874897-12-31')") == "2"  # Tuesday
    assert expected.startswith("31.12.5874897 Tue Tuesday Dec December 365 ")
    assert [row[1] for row in got] == [expected] * len(want)


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------

def test_places_on_numeric_and_float8(pg_up, start_sluice):
    query = ("SELECT id, c_numeric AS n2, c_numeric AS n0, c_float8 AS f3, c_float8 AS f0, "
             "c_float4 AS r1, x.v AS edge FROM all_types LEFT JOIN (VALUES "
             "(2, '9.995'::numeric), (3, '-0.004'), (4, '-9.995'), (5, '0.005'), (6, '-0.0049'), "
             "(7, '99999999999999999999999999999.9999'), (8, '1e-3'), (9, '-0.5')) AS x(k, v) "
             "ON x.k = all_types.id WHERE id <= 300 ORDER BY id")
    body = """
[datasets.columns.n2]
places = 2
[datasets.columns.n0]
places = 0
[datasets.columns.f3]
places = 3
[datasets.columns.f0]
places = 0
[datasets.columns.r1]
places = 1
[datasets.columns.edge]
places = 2
"""
    sluice = start_sluice(config_text(pg_up, query, body))
    want = baseline(pg_up, query)
    got = rows_as_dicts(get_csv(sluice))
    plan = {"n2": 2, "n0": 0, "f3": 3, "f0": 0, "r1": 1, "edge": 2}
    assert len(got) == len(want) == 300
    for mine, theirs in zip(got, want):
        for column, places in plan.items():
            assert mine[column] == expected_places(theirs[column], places), (column, theirs)
    by_id = {r["id"]: r for r in got}
    # The rules' own examples and a few written out by hand.
    assert [by_id[str(i)]["edge"] for i in range(2, 10)] == [
        "10.00", "0.00", "-10.00", "0.01", "0.00", "100000000000000000000000000000.00",
        "0.00", "-0.50"]
    n2 = {r["n2"] for r in got}
    assert {"NaN", "Infinity", "-Infinity", "-42.50", "3.14", "-0.50",
            "12345678901234567890.12", "1" + "0" * 100 + ".00", "0.00"} <= n2, n2
    f0 = {r["f0"] for r in got}
    assert "-17976931348623157" + "0" * 292 in f0 and "100000000000000000000" in f0, f0
    f3 = {r["f3"] for r in got}
    assert {"0.000", "0.100", "123456.789", "NaN", "Infinity", "-Infinity"} <= f3, f3

    # JSON Lines: the rounded values are numbers written exactly, NaN/Infinity strings.
    lines, objects = get_jsonl(sluice)
    assert len(objects) == len(want)
    for line, obj, theirs in zip(lines, objects, want):
        for column, places in plan.items():
            value = expected_places(theirs[column], places)
            if value is None:
                assert obj[column] is None
            elif value in ("NaN", "Infinity", "-Infinity"):
                assert obj[column] == value, (column, line)
            else:
                assert isinstance(obj[column], (int, Decimal)), (column, line)
                assert f'"{column}":{value}'.encode() in line, (column, value, line)
    datasets = get_ok(f"{sluice.url}/v1/datasets").json()["datasets"]
    types = {c["name"]: c["type"] for c in datasets[0]["columns"]}
    assert all(types[column] == "decimal" for column in plan), types


# --------------------------------------------------------------------------------------------
# Booleans, NULL text, JSON types
# --------------------------------------------------------------------------------------------

def test_bool_words_and_null_text_in_csv_and_jsonl(pg_up, start_sluice):
    query = ("SELECT id, c_bool, c_bool AS b2, (id % 2) AS odd, "
             "(ARRAY['t','f','true','false','1','0'])[id % 6 + 1] AS word, "
             "c_int4, c_text, c_numeric FROM all_types WHERE id <= 300 ORDER BY id")
    body = """
[datasets.columns.c_bool]
true_text = "yes"
false_text = "no"
null_text = "unknown"

[datasets.columns.b2]
true_text = "Ja"
false_text = "Nein"

[datasets.columns.odd]
true_text = "odd"
false_text = "even"

[datasets.columns.word]
true_text = "Y"
false_text = "N"

[datasets.columns.c_int4]
null_text = "n/a"

[datasets.columns.c_text]
null_text = "(none)"

[datasets.columns.c_numeric]
places = 1
null_text = "-"
"""
    sluice = start_sluice(config_text(pg_up, query, body))
    want = baseline(pg_up, query)
    got = rows_as_dicts(get_csv(sluice))
    assert len(got) == len(want) == 300
    for mine, theirs in zip(got, want):
        flag = theirs["c_bool"]
        assert mine["c_bool"] == ("unknown" if flag is None else {"t": "yes", "f": "no"}[flag])
        assert mine["b2"] == (None if flag is None else {"t": "Ja", "f": "Nein"}[flag])
        assert mine["odd"] == {"1": "odd", "0": "even"}[theirs["odd"]]
        assert mine["word"] == ("Y" if theirs["word"] in ("t", "true", "1") else "N")
        assert mine["c_int4"] == (theirs["c_int4"] if theirs["c_int4"] is not None else "n/a")
        assert mine["c_text"] == (theirs["c_text"] if theirs["c_text"] is not None else "(none)")
        numeric = expected_places(theirs["c_numeric"], 1)
        assert mine["c_numeric"] == (numeric if numeric is not None else "-")
    assert {r["c_bool"] for r in got} == {"yes", "no", "unknown"}

    lines, objects = get_jsonl(sluice)
    assert len(objects) == len(want)
    for obj, theirs in zip(objects, want):
        flag = theirs["c_bool"]
        assert obj["c_bool"] == ("unknown" if flag is None else {"t": "yes", "f": "no"}[flag])
        assert obj["b2"] == (None if flag is None else {"t": "Ja", "f": "Nein"}[flag])
        if theirs["c_int4"] is None:
            assert obj["c_int4"] == "n/a"  # a string where the others are numbers
        else:
            assert type(obj["c_int4"]) is int and obj["c_int4"] == int(theirs["c_int4"])
        assert obj["c_text"] == (theirs["c_text"] if theirs["c_text"] is not None else "(none)")
        numeric = expected_places(theirs["c_numeric"], 1)
        if numeric is None:
            assert obj["c_numeric"] == "-"
        elif numeric in ("NaN", "Infinity", "-Infinity"):
            assert obj["c_numeric"] == numeric
        else:
            assert isinstance(obj["c_numeric"], (int, Decimal))
            assert str(obj["c_numeric"]) == numeric
    null_row = objects[0]  # id 1 is NULL everywhere
    assert null_row["id"] == 1 and null_row["c_int4"] == "n/a" and null_row["c_numeric"] == "-"
    assert b'"c_int4":"n/a"' in lines[0] and b'"b2":null' in lines[0]
    types = {c["name"]: c["type"] for c in
             get_ok(f"{sluice.url}/v1/datasets").json()["datasets"][0]["columns"]}
    assert types["c_int4"] == "int" and types["c_numeric"] == "decimal", types
    assert types["c_bool"] == "text" and types["odd"] == "text", types


def test_many_batches_of_big(pg_up, start_sluice, monkeypatch):
    """Every kind of transform at once over 20000 rows of `big` (many batches)."""
    monkeypatch.setenv("SLUICE_TEST_BIG_KEY", "big-table-secret-key")
    query = "SELECT id, k, payload, amount, ts, note FROM big ORDER BY id LIMIT 20000"
    body = """
[datasets.columns.k]
map = { "0" = "zero", "1" = "one" }
default = "many"
[datasets.columns.payload]
hash = "hmac-sha256"
secret_env = "SLUICE_TEST_BIG_KEY"
rename = "Payload HMAC"
[datasets.columns.amount]
places = 1
[datasets.columns.ts]
format = "%a %d %b %Y %I:%M:%E3S %p %Z"
time_zone = "America/New_York"
rename = "Time (New York)"
[datasets.columns.note]
null_text = "(null)"
case = "upper"
truncate = 4
"""
    sluice = start_sluice(config_text(pg_up, query, body))
    want = baseline(pg_up, query)
    table = get_csv(sluice)
    assert table.header == ["id", "k", "Payload HMAC", "amount", "Time (New York)", "note"]
    assert len(table.rows) == len(want) == 20000
    key = b"big-table-secret-key"
    pattern = "%a %d %b %Y %I:%M:%E3S %p %Z"
    for row, t in zip(table.rows, want):
        assert row == [
            t["id"], {"0": "zero", "1": "one"}.get(t["k"], "many"),
            hmac.new(key, t["payload"].encode(), hashlib.sha256).hexdigest(),
            expected_places(t["amount"], 1),
            expected_format(t["ts"], pattern, "America/New_York"),
            "(null)" if t["note"] is None else t["note"].upper()[:4],
        ], t
    assert table.rows[0][4] == "Tue 31 Dec 2019 07:00:01.001 PM EST"


# --------------------------------------------------------------------------------------------
# Masks, HMAC, map, case, truncate
# --------------------------------------------------------------------------------------------

def test_masks(pg_up, start_sluice):
    query = ("SELECT id, CASE WHEN id % 5 = 0 THEN c_text "
             "ELSE (ARRAY['john','ä','Ω','x'])[id % 4 + 1] || id || '.doe@example.com' END "
             "AS email, c_text AS last4, c_varchar AS last2, c_text AS hidden, "
             "c_int8 AS hidden_int FROM all_types WHERE id <= 300 ORDER BY id")
    body = """
[datasets.columns.email]
mask = "email"
[datasets.columns.last4]
mask = "last:4"
[datasets.columns.last2]
mask = "last:2"
[datasets.columns.hidden]
mask = "fixed"
mask_text = "[redacted]"
[datasets.columns.hidden_int]
mask = "fixed"
"""
    sluice = start_sluice(config_text(pg_up, query, body))
    want = baseline(pg_up, query)
    got = rows_as_dicts(get_csv(sluice))
    assert len(got) == len(want) == 300
    for mine, theirs in zip(got, want):
        for column, rule in (("email", mask_email), ("last4", lambda v: mask_last(v, 4)),
                             ("last2", lambda v: mask_last(v, 2)),
                             ("hidden", lambda v: "[redacted]"), ("hidden_int", lambda v: "***")):
            value = theirs[column]
            assert mine[column] == (None if value is None else rule(value)), (column, value)
    by_id = {r["id"]: r for r in got}
    assert by_id["2"]["email"] == "Ω***@example.com"   # 'Ω2.doe@example.com'
    assert by_id["3"]["email"] == "x***@example.com"
    assert by_id["4"]["email"] == "j***@example.com"
    assert by_id["9"]["email"] == "ä***@example.com"
    assert by_id["5"]["email"] == "***"  # row 5 has c_text = '\\': no @
    # 'emoji 😀🎉👩‍👩‍👧' is 13 code points (the family is 3 emoji joined by 2 ZWJ).
    tail = "\u200d\U0001F469\u200d\U0001F467"
    emoji = next(r for r in got if r["last4"] and r["last4"].endswith(tail))
    assert emoji["last4"] == "*" * 9 + tail
    assert {r["last2"] for r in got} == {"***rt", "", "*" * 18 + "rs", "*****dé", "*,b", '*"y',
                                         None}


def test_hmac_sha256_matches_python(pg_up, start_sluice, monkeypatch):
    short_key = "0123456789abcdef"                      # exactly 16 bytes
    long_key = "k" * 40 + "ß€" * 20                     # > 64 bytes: hashed first (RFC 2104)
    monkeypatch.setenv("SLUICE_TEST_HMAC_SHORT", short_key)
    monkeypatch.setenv("SLUICE_TEST_HMAC_LONG", long_key)
    columns = ["c_text", "c_text_long_key", "c_int8", "c_timestamptz", "c_bytea", "c_numeric",
               "c_float4", "c_float8", "c_bool", "c_date", "c_interval", "c_uuid", "c_jsonb",
               "c_text_arr"]
    query = (f"SELECT id, c_text AS c_text_long_key, "
             f"{', '.join(c for c in columns if c != 'c_text_long_key')} "
             "FROM all_types WHERE id <= 300 ORDER BY id")
    body = "".join(
        f'[datasets.columns.{c}]\nhash = "hmac-sha256"\nsecret_env = "SLUICE_TEST_HMAC_'
        f'{"LONG" if c == "c_text_long_key" else "SHORT"}"\n' for c in columns)
    sluice = start_sluice(config_text(pg_up, query, body))
    want = baseline(pg_up, query)
    got = rows_as_dicts(get_csv(sluice))

    def digest(key: str, value: str | None) -> str | None:
        if value is None:
            return None
        return hmac.new(key.encode(), value.encode("utf-8"), hashlib.sha256).hexdigest()

    assert len(got) == len(want) == 300
    for mine, theirs in zip(got, want):
        for column in columns:
            source = "c_text" if column == "c_text_long_key" else column
            key = long_key if column == "c_text_long_key" else short_key
            assert mine[column] == digest(key, theirs[source]), (column, theirs[source])
            if mine[column] is not None:
                assert re.fullmatch(r"[0-9a-f]{64}", mine[column])
    # A known value, hashed here by hand.
    plain = next(r for r, t in zip(got, want) if t["c_text"] == "plain")
    assert plain["c_text"] == hmac.new(b"0123456789abcdef", b"plain", "sha256").hexdigest()
    _, objects = get_jsonl(sluice)
    assert [o["c_int8"] for o in objects] == [digest(short_key, t["c_int8"]) for t in want]


def test_map_case_and_truncate(pg_up, start_sluice):
    query = ("SELECT id, c_varchar AS mapped, c_varchar AS mapped_default, "
             "c_varchar AS mapped_upper, c_text AS upper, c_text AS lower, c_text AS short, "
             "c_text AS upper_short FROM all_types WHERE id <= 300 ORDER BY id")
    body = """
[datasets.columns.mapped]
map = { short = "S", "ünïcödé" = "Unicode", "a,b" = "A-B" }

[datasets.columns.mapped_default]
map = { short = "S", "" = "(empty)" }
default = "Other"

[datasets.columns.mapped_upper]
map = { short = "kurz", "x\\"y" = "quote" }
case = "upper"

[datasets.columns.upper]
case = "upper"

[datasets.columns.lower]
case = "lower"

[datasets.columns.short]
truncate = 9

[datasets.columns.upper_short]
case = "upper"
truncate = 12
"""
    sluice = start_sluice(config_text(pg_up, query, body))
    want = baseline(pg_up, query)
    got = rows_as_dicts(get_csv(sluice))
    first = {"short": "S", "ünïcödé": "Unicode", "a,b": "A-B"}
    second = {"short": "S", "": "(empty)"}
    third = {"short": "kurz", 'x"y': "quote"}
    assert len(got) == len(want) == 300
    for mine, theirs in zip(got, want):
        v = theirs["mapped"]
        assert mine["mapped"] == (None if v is None else first.get(v, v)), v
        assert mine["mapped_default"] == (None if v is None else second.get(v, "Other")), v
        assert mine["mapped_upper"] == (None if v is None else simple_upper(third.get(v, v))), v
        t = theirs["upper"]
        if t is None:
            assert mine["upper"] is mine["lower"] is mine["short"] is mine["upper_short"] is None
            continue
        assert mine["upper"] == simple_upper(t), t
        assert mine["lower"] == simple_lower(t), t
        assert mine["short"] == t[:9], t
        assert mine["upper_short"] == simple_upper(t)[:12], t
    texts = {t["upper"]: m for m, t in zip(got, want) if t["upper"] is not None}
    assert texts["non-ASCII: äöü ß café Ελληνικά 日本語"]["upper"] == (
        "NON-ASCII: ÄÖÜ ß CAFÉ ΕΛΛΗΝΙΚΆ 日本語")
    assert texts["non-ASCII: äöü ß café Ελληνικά 日本語"]["lower"] == (
        "non-ascii: äöü ß café ελληνικά 日本語")
    assert texts["emoji 😀🎉👩‍👩‍👧"]["short"] == "emoji 😀🎉👩"
    assert texts["non-ASCII: äöü ß café Ελληνικά 日本語"]["upper_short"] == "NON-ASCII: Ä"
    assert texts["€"]["short"] == "€" and texts[""]["short"] == ""
    assert {m["mapped_default"] for m in got} == {"S", "(empty)", "Other", None}
    assert {m["mapped_upper"] for m in got} >= {"KURZ", "QUOTE", "ÜNÏCÖDÉ", "EXACTLY TWENTY CHARS"}


# --------------------------------------------------------------------------------------------
# Renames
# --------------------------------------------------------------------------------------------

RENAME_BODY = """sortable = ["id", "c_int4", "c_text"]
order = "-id"

[datasets.filters.id]
type = "int"
operators = ["eq", "lte", "gte"]

[datasets.filters.text]
column = "c_text"
type = "text"
operators = ["eq", "is_null"]

[datasets.columns.id]
rename = "Row ID"

[datasets.columns.c_int4]
rename = "Amount (EUR)"

[datasets.columns.c_text]
rename = "Text"

[datasets.columns.c_timestamptz]
rename = "Created"
format = "%d.%m.%Y %H:%M"
time_zone = "Europe/Berlin"
"""


def test_rename_with_columns_order_and_filters(pg_up, start_sluice):
    query = ("SELECT id, c_int4, c_text, c_timestamptz, c_bool FROM all_types "
             "WHERE id <= 300")
    sluice = start_sluice(config_text(pg_up, query, RENAME_BODY))
    want = baseline(pg_up, query + " ORDER BY id DESC")

    table = get_csv(sluice)
    assert table.header == ["Row ID", "Amount (EUR)", "Text", "Created", "c_bool"]
    assert [r[0] for r in table.rows] == [t["id"] for t in want]  # the config's order = "-id"
    for row, theirs in zip(table.rows, want):
        assert row[1] == theirs["c_int4"] and row[2] == theirs["c_text"]
        assert row[3] == expected_format(theirs["c_timestamptz"], "%d.%m.%Y %H:%M",
                                         "Europe/Berlin")
        assert row[4] == theirs["c_bool"]

    # columns= and order= take the output names; filters keep their parameter names.
    params = {"columns": "Text,Row ID,Created", "order": "-Amount (EUR),Row ID", "id.lte": "120"}
    table = get_csv(sluice, **params)
    sub = baseline(pg_up, "SELECT * FROM (" + query + ") q WHERE id <= 120 "
                   "ORDER BY c_int4 DESC NULLS FIRST, id")
    assert table.header == ["Text", "Row ID", "Created"]
    assert table.rows == [[t["c_text"], t["id"],
                           expected_format(t["c_timestamptz"], "%d.%m.%Y %H:%M", "Europe/Berlin")]
                          for t in sub]
    _, objects = get_jsonl(sluice, **{"columns": "Row ID,Text", "text.eq": "plain",
                                      "order": "Row ID"})
    plain = baseline(pg_up, "SELECT * FROM (" + query + ") q WHERE c_text = 'plain' ORDER BY id")
    assert objects == [{"Row ID": int(t["id"]), "Text": "plain"} for t in plain] and plain

    # The source names are not accepted in requests any more.
    for bad in ({"columns": "id,c_text"}, {"columns": "Text,c_int4"}, {"order": "id"},
                {"order": "-c_int4"}):
        response = requests.get(f"{sluice.url}/v1/exports/x.csv", params=bad, timeout=30)
        assert_json_error(response, 400)

    datasets = get_ok(f"{sluice.url}/v1/datasets").json()["datasets"]
    assert len(datasets) == 1
    info = datasets[0]
    assert info["columns"] == [
        {"name": "Row ID", "type": "int"}, {"name": "Amount (EUR)", "type": "int"},
        {"name": "Text", "type": "text"}, {"name": "Created", "type": "text"},
        {"name": "c_bool", "type": "bool"}]
    assert info["sortable"] == ["Row ID", "Amount (EUR)", "Text"]
    assert info["order"] == "-Row ID"
    assert {f["name"]: f["column"] for f in info["filters"]} == {"id": "Row ID", "text": "Text"}


# --------------------------------------------------------------------------------------------
# copy_format = "csv": pass-through with renames only, decoding with value transforms
# --------------------------------------------------------------------------------------------

def export_and_copy_statement(pg, url: str, **params) -> tuple[bytes, str]:
    """Runs an export whose query sleeps in PostgreSQL (PAUSE) and reads, from
    pg_stat_activity, the COPY statement Sluice sent for it meanwhile."""
    result: dict[str, bytes] = {}
    thread = threading.Thread(target=lambda: result.update(body=get_ok(url, **params).content))
    thread.start()
    statement = ""
    deadline = time.monotonic() + 20
    while not statement and time.monotonic() < deadline:
        statement = pg.scalar(
            "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            f"AND query LIKE 'COPY (%{PAUSE}%' LIMIT 1")
        if not statement:
            time.sleep(0.02)
    thread.join(timeout=60)
    assert "body" in result, "the export did not finish"
    assert statement, "no COPY seen in pg_stat_activity"
    return result["body"], statement


PAUSE = "pg_sleep(0.61)"


def test_copy_csv_passthrough_with_renames_and_with_transforms(pg_up, start_sluice):
    query = ("SELECT id, c_numeric, c_text, c_timestamptz, c_bool FROM all_types, "
             f"(SELECT {PAUSE}) AS pause WHERE id <= 300")
    renames = """
[datasets.columns.id]
rename = "ID"
[datasets.columns.c_text]
rename = 'Text "quoted"'  # (a comma is refused: columns= could not name it)
[datasets.columns.c_numeric]
rename = "Number"
"""
    transformed = renames + """
[datasets.columns.c_bool]
true_text = "yes"
false_text = "no"
null_text = "?"
"""
    second = dataset_toml("tx", "pg", query, transformed)
    sluice = start_sluice(config_text(pg_up, query, renames, name="rn", copy_csv=True,
                                      extra_datasets=second))
    want = baseline(pg_up, "SELECT id, c_numeric, c_text, c_timestamptz, c_bool FROM all_types "
                    "WHERE id <= 300 ORDER BY id")
    header = ["ID", "Number", 'Text "quoted"', "c_timestamptz", "c_bool"]
    expected_rows = [[t["id"], t["c_numeric"], t["c_text"], t["c_timestamptz"], t["c_bool"]]
                     for t in want]

    def by_id(rows):
        return sorted(rows, key=lambda r: int(r[0]))

    # Renames only: PostgreSQL's CSV records pass through, under the renamed header.
    raw, statement = export_and_copy_statement(pg_up, f"{sluice.url}/v1/exports/rn.csv")
    assert statement.endswith("TO STDOUT (FORMAT csv)"), statement
    assert raw.startswith(b'ID,Number,"Text ""quoted""",c_timestamptz,c_bool\r\n')
    passthrough = parse_csv(raw, line_end=b"\r\n")
    assert passthrough.header == header
    assert by_id(passthrough.rows) == expected_rows
    # The decoding path (another delimiter) gives the same values under the same header.
    semi, statement = export_and_copy_statement(pg_up, f"{sluice.url}/v1/exports/rn.csv",
                                                delimiter=";")
    assert "FORMAT csv" not in statement, statement
    decoded = list(csv.reader(io.StringIO(semi.decode(), newline=""), delimiter=";",
                              strict=True))
    assert decoded[0] == header
    assert by_id([[csv_unguard(v) for v in row] for row in decoded[1:]]) == [
        [v or "" for v in row] for row in expected_rows]

    # A value transform on a selected column: Sluice decodes and transforms.
    raw_tx, statement = export_and_copy_statement(pg_up, f"{sluice.url}/v1/exports/tx.csv")
    assert "FORMAT csv" not in statement, statement
    tx = parse_csv(raw_tx, line_end=b"\r\n")
    assert tx.header == header
    words = {"t": "yes", "f": "no", None: "?"}
    assert by_id(tx.rows) == [row[:4] + [words[row[4]]] for row in expected_rows]
    # The same dataset with only renamed columns selected passes through again.
    sub, statement = export_and_copy_statement(pg_up, f"{sluice.url}/v1/exports/tx.csv",
                                               columns="Number,ID")
    assert statement.endswith("TO STDOUT (FORMAT csv)"), statement
    table = parse_csv(sub, line_end=b"\r\n")
    assert table.header == ["Number", "ID"]
    assert sorted(table.rows, key=lambda r: int(r[1])) == [[row[1], row[0]]
                                                           for row in expected_rows]
    # And JSON Lines of the transformed dataset agree with the CSV.
    _, objects = get_jsonl(sluice, "tx")
    assert sorted(objects, key=lambda o: o["ID"]) == [
        {"ID": int(t["id"]),
         "Number": (None if t["c_numeric"] is None else t["c_numeric"]
                    if t["c_numeric"] in ("NaN", "Infinity", "-Infinity")
                    else Decimal(t["c_numeric"])),
         'Text "quoted"': t["c_text"], "c_timestamptz": t["c_timestamptz"],
         "c_bool": words[t["c_bool"]]} for t in want]



# --------------------------------------------------------------------------------------------
# Config errors
# --------------------------------------------------------------------------------------------

def column_error(stderr: str, path, column: str, key: str) -> re.Match | None:
    return re.search(rf"{re.escape(str(path))}:(\d+): datasets\[0\]\.columns\.{column}\.{key}: "
                     r"\S", stderr)


def table_lines(text: str, column: str) -> range:
    lines = text.splitlines()
    start = lines.index(f"[datasets.columns.{column}]") + 1
    end = start
    while end < len(lines) and lines[end] and not lines[end].startswith("["):
        end += 1
    return range(start, end + 1)


@pytest.mark.parametrize("column, settings, key, words", [
    ("c_timestamptz", 'format = "%F %T"\ntime_zone = "Mars/Olympus_Mons"', "time_zone",
     "Mars/Olympus_Mons"),
    ("c_timestamp", 'format = "%F"\ninput_time_zone = "Europe/Nowhere"', "input_time_zone",
     "Europe/Nowhere"),
    ("c_int4", 'format = "%Y-%m-%d"', "format", "c_int4"),
    ("c_timestamptz", 'format = "%Y %Q"', "format", "%Q"),
    ("c_text", 'hash = "hmac-sha256"\nsecret_env = "SLUICE_TEST_UNSET_SECRET"', "secret_env",
     "SLUICE_TEST_UNSET_SECRET"),
    ("c_bool", 'true_text = "yes"', "true_text", "false_text"),
    ("c_timestamptz", 'true_text = "yes"\nfalse_text = "no"', "true_text", "c_timestamptz"),
    ("c_text", 'mask = "last:4"\nhash = "hmac-sha256"', "hash", "mask"),
], ids=["unknown_time_zone", "unknown_input_time_zone", "format_on_int", "unknown_conversion",
        "unset_secret", "true_without_false", "bool_words_on_timestamp", "two_value_transforms"])
def test_check_config_names_the_key(pg_up, tmp_path, monkeypatch, column, settings, key, words):
    monkeypatch.delenv("SLUICE_TEST_UNSET_SECRET", raising=False)
    query = ("SELECT id, c_int4, c_text, c_bool, c_timestamp, c_timestamptz FROM all_types "
             "WHERE id <= 300")
    text = config_text(pg_up, query, f"[datasets.columns.{column}]\n{settings}\n")
    path = tmp_path / "bad.toml"
    path.write_text(text, "utf-8")
    result = run_sluice("check-config", str(path))
    stderr = result.stderr.decode("utf-8", "replace") + result.stdout.decode("utf-8", "replace")
    assert result.returncode != 0, stderr
    match = column_error(stderr, path, column, key)
    assert match, stderr
    assert int(match[1]) in table_lines(text, column), (match[0], text)
    assert words in stderr[match.start():], stderr
    # A good config next to it passes, so the failure is the key's.
    good = tmp_path / "good.toml"
    good.write_text(config_text(pg_up, query, f"[datasets.columns.{column}]\nrename = \"R\"\n"),
                    "utf-8")
    ok = run_sluice("check-config", str(good))
    assert ok.returncode == 0, ok.stderr.decode(errors="replace")

    # serve refuses the same config at start, with the same message.
    serve = subprocess.run([sluice_bin(), "serve", "--config", str(path), "--listen",
                            "127.0.0.1:0"], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    served = serve.stderr.decode("utf-8", "replace") + serve.stdout.decode("utf-8", "replace")
    assert serve.returncode != 0
    assert match[0] in served, served
