"""Column transforms on SQLite, through the real server and CLI: every transformed value is
checked against an independent computation in Python (zoneinfo for time zones, decimal for
rounding, hmac for keyed hashes) on the rows orders.db holds; names in requests are output
names; config mistakes are refused with the key and line."""

from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import io
import json
import urllib.parse
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from support.csv import csv_unguard
from support.demo import config_for, sqlite_rows
from support.server import run_sluice

HMAC_KEY = "functional-test-key-0123456789abcdef"
# 2,000 consecutive orders (edge cases of the first rows) and every 1,000th (two years: DST).
WHERE = "(id <= 2000 OR id % 1000 = 0)"

DATASET = f"""
[[datasets]]
name = "shaped"
source = "demo"
query = "SELECT id, created_at, email, country, status, amount, quantity, note, id % 2 AS odd FROM orders WHERE {WHERE}"
sortable = ["id", "created_at"]

[datasets.filters.country]
type = "text"
operators = ["eq", "in"]

[datasets.columns.id]
rename = "Order number"

[datasets.columns.created_at]
rename = "Created (Berlin)"
format = "%d.%m.%Y %H:%M:%S %Z"
time_zone = "Europe/Berlin"

[datasets.columns.email]
mask = "email"
null_text = "(none)"

[datasets.columns.country]
map = {{ DE = "Germany", FR = "France", US = "United States" }}
default = "Other"
case = "upper"

[datasets.columns.status]
truncate = 4

[datasets.columns.amount]
places = 1

[datasets.columns.quantity]
hash = "hmac-sha256"
secret_env = "SLUICE_TEST_HMAC_KEY"

[datasets.columns.note]
mask = "last:5"
null_text = "-"

[datasets.columns.odd]
type = "bool"
true_text = "odd"
false_text = "even"
"""

OUTPUT_NAMES = ["Order number", "Created (Berlin)", "email", "country", "status", "amount",
                "quantity", "note", "odd"]
COUNTRY_MAP = {"DE": "Germany", "FR": "France", "US": "United States"}
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def shaped(start_server, monkeypatch):
    monkeypatch.setenv("SLUICE_TEST_HMAC_KEY", HMAC_KEY)
    return start_server(name="shaped", datasets=DATASET)


def number_text(value) -> str:
    """How the SQLite source writes a number: integers as integers, REALs in shortest form."""
    return str(value) if isinstance(value, int) else repr(value)


def expected_row(row) -> list[str | None]:
    """The transforms of DATASET, computed independently; None is NULL (an empty CSV field)."""
    order_id, created_at, email, country, status, amount, quantity, note, odd = row
    created = datetime.fromisoformat(created_at.replace("Z", "+00:00")).astimezone(BERLIN)
    if email is None:
        masked_email = "(none)"
    else:
        local, domain = email.rsplit("@", 1)
        masked_email = (local[0] + "***@" + domain) if local else "***"
    if note is None:
        masked_note = "-"
    elif len(note) <= 5:
        masked_note = "*" * len(note)
    else:
        masked_note = "*" * (len(note) - 5) + note[-5:]
    rounded = Decimal(number_text(amount)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return [
        str(order_id),
        created.strftime("%d.%m.%Y %H:%M:%S %Z"),
        masked_email,
        COUNTRY_MAP.get(country, "Other").upper() if country is not None else None,
        status[:4] if status is not None else None,
        str(rounded) if amount is not None else None,
        hmac.new(HMAC_KEY.encode(), str(quantity).encode(), hashlib.sha256).hexdigest()
        if quantity is not None else None,
        masked_note,
        ("odd" if odd else "even") if odd is not None else None,
    ]


def source_rows(demo, where: str = "", params=()) -> list[tuple]:
    return sqlite_rows(
        demo.db,
        "SELECT id, created_at, email, country, status, amount, quantity, note, id % 2 "
        f"FROM orders WHERE {WHERE} {where} ORDER BY id", params)


def test_csv_equals_python_for_every_row(shaped, demo):
    response = requests.get(f"{shaped.url}/v1/exports/shaped.csv", timeout=60)
    assert response.status_code == 200, response.text[:300]
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == OUTPUT_NAMES
    expected = [expected_row(r) for r in source_rows(demo)]
    assert len(rows) - 1 == len(expected) == 2000 + 1998
    for got, want in zip(rows[1:], expected):
        # Python's csv reader cannot tell NULL from "", so compare NULL as ''.
        assert [csv_unguard(c) for c in got] == [w if w is not None else "" for w in want], want[0]


def test_dst_both_sides_in_the_data(shaped, demo):
    """The rows span two years: both CET and CEST must appear."""
    body = requests.get(f"{shaped.url}/v1/exports/shaped.csv?columns=Created%20(Berlin)",
                        timeout=60).text
    zones = {line.rsplit(" ", 1)[-1] for line in body.splitlines()[1:]}
    assert zones == {"CET", "CEST"}


def test_json_lines_types_and_nulls(shaped, demo):
    response = requests.get(f"{shaped.url}/v1/exports/shaped.jsonl", timeout=60)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    expected = [expected_row(r) for r in source_rows(demo)]
    assert len(lines) == len(expected)
    saw_null_email = False
    for got, want in zip(lines, expected):
        assert list(got) == OUTPUT_NAMES
        assert got["Order number"] == int(want[0])          # a rename keeps the int type
        assert isinstance(got["amount"], (int, float))      # places: still a number
        assert Decimal(str(got["amount"])) == Decimal(want[5])
        assert got["email"] == want[2]                      # null_text is a string
        saw_null_email |= want[2] == "(none)"
        assert got["odd"] == want[8] and want[8] in ("odd", "even")
        assert got["quantity"] == want[6]
        assert got["Created (Berlin)"] == want[1]
    assert saw_null_email


def test_places_keeps_digits_exact(shaped, demo):
    body = requests.get(f"{shaped.url}/v1/exports/shaped.jsonl?columns=amount", timeout=60).text
    raw = [line.split(":", 1)[1].rstrip("}") for line in body.splitlines()]
    expected = [expected_row(r)[5] for r in source_rows(demo)]
    assert len(raw) == len(expected) == 2000 + 1998
    # The literal text: one fraction digit, no exponent, no float noise; the rounded value.
    assert all(len(v.split(".")[1]) == 1 for v in raw), raw[:5]
    assert sorted(raw) == sorted(v if v is not None else "null" for v in expected)


def test_requests_use_output_names(shaped, demo):
    quoted = urllib.parse.quote("Order number")
    response = requests.get(
        f"{shaped.url}/v1/exports/shaped.csv?columns={quoted},email&order=-{quoted}&limit=3",
        timeout=30)
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == ["Order number", "email"]
    newest = [str(r[0]) for r in source_rows(demo)[::-1][:3]]
    assert [r[0] for r in rows[1:]] == newest
    # The query's own names are not the API's.
    for query, parameter in (("columns=id", "columns"), ("order=id", "order")):
        bad = requests.get(f"{shaped.url}/v1/exports/shaped.csv?{query}", timeout=30)
        assert bad.status_code == 400, bad.text
        error = bad.json()["error"]
        assert parameter in error["message"] and "Order number" in error["message"], error


def test_filters_select_on_source_values(shaped, demo):
    response = requests.get(f"{shaped.url}/v1/exports/shaped.csv?country=DE,FR", timeout=30)
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.text, newline="")))[1:]
    expected = [expected_row(r) for r in source_rows(demo, "AND country IN ('DE', 'FR')")]
    assert len(rows) == len(expected) > 0
    assert {r[3] for r in rows} == {"GERMANY", "FRANCE"}


def test_datasets_lists_output_names_and_types(shaped):
    listing = requests.get(f"{shaped.url}/v1/datasets", timeout=10).json()
    dataset = next(d for d in listing["datasets"] if d["name"] == "shaped")
    assert [c["name"] for c in dataset["columns"]] == OUTPUT_NAMES
    types = {c["name"]: c["type"] for c in dataset["columns"]}
    assert types["Order number"] == "int"
    assert types["Created (Berlin)"] == "text"
    assert types["amount"] == "decimal"
    assert types["quantity"] == "text"
    assert dataset["sortable"] == ["Order number", "Created (Berlin)"]
    assert dataset["compressions"] == ["gz", "zst"]


def test_gzip_and_cli_give_the_same_bytes(shaped, demo, tmp_path):
    plain = requests.get(f"{shaped.url}/v1/exports/shaped.csv", timeout=60).content
    # The plain body is right by itself (computed in Python from orders.db) ...
    rows = list(csv.reader(io.StringIO(plain.decode("utf-8"), newline="")))
    assert rows[0] == OUTPUT_NAMES
    assert [[csv_unguard(c) for c in got] for got in rows[1:]] == [
        [w if w is not None else "" for w in expected_row(r)] for r in source_rows(demo)]
    # ... and the gzip file and the CLI give the same bytes.
    packed = requests.get(f"{shaped.url}/v1/exports/shaped.csv.gz", timeout=60).content
    assert gzip.decompress(packed) == plain
    config = tmp_path / "shaped.toml"
    out = tmp_path / "cli.csv"
    result = run_sluice("export", "shaped", "--config", str(config), "--output", str(out),
                        env={"SLUICE_TEST_HMAC_KEY": HMAC_KEY, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes() == plain


BAD_CONFIGS = [
    ('[datasets.columns.created_at]\nformat = "%F"\ntime_zone = "Mars/Olympus"\n',
     "datasets[1].columns.created_at.time_zone", "Mars/Olympus"),
    ('[datasets.columns.id]\nformat = "%F"\n', "datasets[1].columns.id.format", "timestamps"),
    ('[datasets.columns.created_at]\nformat = "%Q"\n', "datasets[1].columns.created_at.format",
     "%Q"),
    ('[datasets.columns.email]\nhash = "hmac-sha256"\nsecret_env = "SLUICE_NO_SUCH_VAR"\n',
     "datasets[1].columns.email.secret_env", "not set"),
    ('[datasets.columns.email]\nmask = "email"\nmap = { a = "b" }\n',
     "datasets[1].columns.email.mask", "cannot be combined"),
    ('[datasets.columns.email]\nmask = "last:0"\n', "datasets[1].columns.email.mask", "last:N"),
    ('[datasets.columns.email]\ntrue_text = "y"\n', "datasets[1].columns.email.true_text",
     "false_text"),
    ('[datasets.columns.email]\nrename = "id"\n', "datasets[1].columns.", "written as 'id'"),
    ('[datasets.columns.nope]\nrename = "x"\n', "datasets[1].columns.nope",
     "no such column"),
    ('[datasets.columns.amount]\nplaces = 31\n', "datasets[1].columns.amount.places",
     "at most 30"),
]


@pytest.mark.parametrize("columns,key,problem", BAD_CONFIGS)
def test_check_config_names_key_and_line(demo, tmp_path, columns, key, problem):
    text = config_for(demo) + (
        '\n[[datasets]]\nname = "broken"\nsource = "demo"\n'
        'query = "SELECT id, created_at, email, amount FROM orders"\n' + columns)
    config = tmp_path / "broken.toml"
    config.write_text(text, "utf-8")
    result = run_sluice("check-config", str(config))
    message = result.stderr.decode()
    assert result.returncode != 0
    key = key.replace("datasets[1]", f"datasets[{text.count('[[datasets]]') - 1}]")
    assert key in message and problem in message, message
    line = int(message.split(f"{config}:", 1)[1].split(":", 1)[0])
    assert text.splitlines()[line - 1].startswith(("[datasets.columns", "format", "time_zone",
                                                     "map", "mask", "true_text", "secret_env",
                                                     "rename", "places")), (line, message)


def test_demo_report_dataset(demo):
    """The demo's orders_report shows the transforms to a first-time user; its first rows must
    be right too."""
    response = requests.get(f"{demo.url}/v1/exports/orders_report.csv?limit=50", timeout=30)
    assert response.status_code == 200, response.text[:300]
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == ["Order", "Ordered (Berlin)", "email", "country", "status", "amount",
                       "quantity", "note"]
    source = sqlite_rows(demo.db, "SELECT id, created_at, email, amount, note FROM orders "
                                  "WHERE id <= 50 ORDER BY id")
    assert len(rows) - 1 == len(source) == 50
    for got, (order_id, created_at, email, amount, note) in zip(rows[1:], source):
        berlin = datetime.fromisoformat(created_at.replace("Z", "+00:00")).astimezone(BERLIN)
        assert got[0] == str(order_id)
        assert got[1] == berlin.strftime("%d.%m.%Y %H:%M")
        assert got[2] == ("" if email is None else email[0] + "***@" + email.rsplit("@", 1)[1])
        assert got[5] == str(Decimal(number_text(amount)).quantize(Decimal("0.01"),
                                                                    rounding=ROUND_HALF_UP))
        assert csv_unguard(got[7]) == ("" if note is None else note[:40])
