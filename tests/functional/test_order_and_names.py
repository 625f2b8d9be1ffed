"""`?order=` on SQLite (same NULL placement as PostgreSQL), the default order, file-name
templates in Content-Disposition, and SQL-injection attempts through every parameter."""

from __future__ import annotations

import csv
import datetime
import io
import os
from pathlib import Path

import pytest
import requests

from support.demo import config_for, sqlite_rows
from support.http import assert_json_error
from support.server import run_sluice

DATASET = """
[[datasets]]
name = "sorted"
source = "demo"
query = "SELECT id, created_at, country, amount, note FROM orders WHERE id <= 3000"
file_name = "orders-{date}"
sortable = ["id", "created_at", "amount", "note", "country"]
order = "-id"

[datasets.filters.country]
type = "text"
operators = ["eq", "in", "ne", "prefix", "is_null"]

[datasets.filters.amount]
type = "decimal"
operators = ["lt", "gte"]

[datasets.filters.id]
type = "int"
operators = ["eq", "in", "lt", "gte"]

[datasets.filters.created_at]
type = "date"
operators = ["lt", "gte"]

[[datasets]]
name = "unsorted"
source = "demo"
query = "SELECT id FROM orders WHERE id <= 10"
file_name = "Bestellungen {dataset} {datetime}"
"""


@pytest.fixture
def sorted_server(start_server):
    return start_server(name="sorted", datasets=DATASET)


def ids(response: requests.Response) -> list[int]:
    assert response.status_code == 200, response.text[:300]
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    return [int(row[0]) for row in rows[1:]]


def test_order_equals_sqlite_with_postgres_null_placement(sorted_server, demo):
    url = f"{sorted_server.url}/v1/exports/sorted.csv"
    for order, sql in [
        ("id", "id"),
        ("-amount,id", "amount DESC NULLS FIRST, id"),
        ("note,-id", "note ASC NULLS LAST, id DESC"),
        ("-note,id", "note DESC NULLS FIRST, id"),
        ("country,-created_at,id", "country NULLS LAST, created_at DESC NULLS FIRST, id"),
    ]:
        got = ids(requests.get(url, params={"order": order, "columns": "id"}, timeout=30))
        expected = [r[0] for r in sqlite_rows(
            demo.db, f"SELECT id FROM orders WHERE id <= 3000 ORDER BY {sql}")]
        assert got == expected, order
    # NULL notes exist, so the NULL placement was really exercised.
    assert sqlite_rows(demo.db, "SELECT count(*) FROM orders WHERE id <= 3000 AND note IS NULL")[0][0]


def test_default_order_filters_and_limit(sorted_server, demo):
    url = f"{sorted_server.url}/v1/exports/sorted.csv"
    assert ids(requests.get(url, params={"columns": "id", "limit": "3"}, timeout=30)) == [
        3000, 2999, 2998]
    got = ids(requests.get(url, params={"country": "DE", "order": "amount,id", "limit": "20"},
                           timeout=30))
    expected = [r[0] for r in sqlite_rows(
        demo.db, "SELECT id FROM orders WHERE id <= 3000 AND country = 'DE' "
                 "ORDER BY amount NULLS LAST, id LIMIT 20")]
    assert got == expected and len(got) == 20


def test_order_errors_name_the_parameter(sorted_server):
    url = f"{sorted_server.url}/v1/exports/sorted.csv"
    for order in ["email", "id desc", "-", "id,,amount", "id,-id"]:
        response = requests.get(url, params={"order": order}, timeout=10)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_order", error
        assert "parameter 'order'" in error["message"]
    response = requests.get(f"{sorted_server.url}/v1/exports/unsorted.csv",
                            params={"order": "id"}, timeout=10)
    assert response.status_code == 400
    assert "no sortable columns" in response.json()["error"]["message"]


def test_datasets_list_sortable_columns_and_default_order(sorted_server):
    datasets = {d["name"]: d for d in requests.get(f"{sorted_server.url}/v1/datasets",
                                                   timeout=10).json()["datasets"]}
    assert datasets["sorted"]["sortable"] == ["id", "created_at", "amount", "note", "country"]
    assert datasets["sorted"]["order"] == "-id"
    assert datasets["unsorted"]["sortable"] == []


def test_file_name_templates(sorted_server):
    before = datetime.datetime.now(datetime.timezone.utc)
    response = requests.get(f"{sorted_server.url}/v1/exports/sorted.csv", params={"limit": "1"},
                            timeout=10)
    after = datetime.datetime.now(datetime.timezone.utc)
    disposition = response.headers["Content-Disposition"]
    assert disposition in {f'attachment; filename="orders-{day:%Y-%m-%d}.csv"'
                           for day in (before, after)}, disposition

    response = requests.get(f"{sorted_server.url}/v1/exports/unsorted.jsonl", timeout=10)
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Bestellungen unsorted 20'), disposition
    stamp = disposition.split('"')[1].removeprefix("Bestellungen unsorted ").removesuffix(".jsonl")
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    assert before - datetime.timedelta(seconds=2) <= when <= after + datetime.timedelta(seconds=1)


def test_bad_file_name_template_stops_the_server_with_key_and_line(demo, tmp_path):
    config = tmp_path / "bad.toml"
    text = config_for(demo) + DATASET.replace("orders-{date}", "orders-{day}")
    config.write_text(text, "utf-8")
    result = run_sluice("check-config", str(config))
    assert result.returncode != 0
    line = text.splitlines().index('file_name = "orders-{day}"') + 1
    assert f"bad.toml:{line}: datasets[" in result.stderr.decode()
    assert "file_name: unknown placeholder {day}" in result.stderr.decode()


# Attacks on every kind of parameter, answered 400 or bound as a value (no match), never run.
# `{attached}` is a database file the ATTACH attack would create and attach if it ran as SQL.
ATTACKS = ["x' OR '1'='1", "x'); DROP TABLE orders; --", "1 OR 1=1", "x\" OR 1=1 --",
           "1; ATTACH DATABASE '{attached}' AS x; --", "x' UNION SELECT name FROM sqlite_master --",
           "(SELECT 1)", "*", "id/**/", "0x41", "1e3", "NULL"]

# The text filter's operators whose value is any text: each attack is a literal, answered 200.
TEXT_KEYS = {"country", "country.ne", "country.prefix", "country.in"}


def open_files(pid: int) -> set[str]:
    """What the process has open (/proc/PID/fd targets)."""
    names = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            names.add(os.readlink(fd))
        except OSError:  # closed meanwhile
            pass
    return names


def test_injection_through_every_parameter(sorted_server, demo, tmp_path):
    # Without a dot, so that the attack is also one parameter name (not `name.operator`).
    attached = tmp_path / "attached_db"
    assert "." not in str(attached), attached
    url = f"{sorted_server.url}/v1/exports/sorted.csv"
    before = sqlite_rows(demo.db, "SELECT count(*), sum(id) FROM orders")
    for attack in (a.format(attached=attached) for a in ATTACKS):
        assert "," not in attack  # `in` takes it as one value
        for key in ["country", "country.ne", "country.prefix", "country.in", "country.is_null",
                    "amount.lt", "amount.gte", "id", "id.in", "id.lt", "created_at.gte",
                    "order", "columns", "limit", attack, "id." + attack, "country." + attack]:
            response = requests.get(url, params={key: attack}, timeout=30)
            where = (key, attack)
            if key not in TEXT_KEYS:
                # Not a text value of a text filter: refused with its JSON error, before any SQL.
                if key == attack:
                    code = "unknown_filter"      # no such parameter
                elif key in ("id." + attack, "country." + attack):
                    code = "unknown_operator"    # no such operator
                elif key == "order":
                    code = "invalid_order"       # not a sortable column
                elif key == "columns":
                    code = "unknown_column"      # not a column of the dataset
                else:
                    code = "invalid_value"       # does not parse as int/decimal/date/bool/limit
                error = assert_json_error(response, 400, code)
                if code == "invalid_value":
                    assert f"'{key}'" in error["message"], (where, error)
                continue
            # A text value: bound as a literal. Exactly the rows the same filter selects in
            # sqlite3 with the attack as a bound parameter: none for eq / in / prefix (no
            # country looks like an attack), all 3000 for ne (NULL countries included).
            assert response.status_code == 200, (where, response.text[:300])
            rows = list(csv.reader(io.StringIO(response.text, newline="")))
            assert rows[0] == ["id", "created_at", "country", "amount", "note"], where
            condition = {
                "country": "country = ?", "country.in": "country = ?",
                "country.prefix": "substr(country, 1, length(?1)) = ?1",
                "country.ne": "country IS NOT ?",
            }[key]
            expected = sorted(r[0] for r in sqlite_rows(
                demo.db, f"SELECT id FROM orders WHERE id <= 3000 AND {condition}", [attack]))
            assert sorted(int(r[0]) for r in rows[1:]) == expected, where
            assert len(expected) == (3000 if key == "country.ne" else 0), where
    assert sqlite_rows(demo.db, "SELECT count(*), sum(id) FROM orders") == before
    # The ATTACH never ran: no database file was created and none is open in the server.
    assert not attached.exists(), f"{attached} was created"
    assert str(attached) not in open_files(sorted_server.pid)
    assert [str(p) for p in tmp_path.iterdir() if p.name.startswith("attached")] == []
