"""`?order=` on PostgreSQL, and SQL-injection attempts through every parameter: each gets a
400 or is bound as a value, and no user text ever reaches PostgreSQL as SQL (checked in the
server's own statement log)."""

from __future__ import annotations

import csv
import io
import re

import requests

from support.http import assert_json_error
from support.pg import ALL_TYPES_FILTERS, ALL_TYPES_QUERY, PgCluster, dataset_toml, source_toml

SORTABLE = 'sortable = ["id", "c_text", "c_int4", "c_timestamptz", "c_numeric"]\n'
MARKER = "zq9inj"  # in every attack, to find it in PostgreSQL's log


def order_config(pg: PgCluster, url: str | None = None) -> str:
    return ("[server]\n\n" + source_toml("pg", pg, url=url)
            + dataset_toml("types", "pg", ALL_TYPES_QUERY, SORTABLE + ALL_TYPES_FILTERS))


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_order_matches_postgres_order_by(pg_up, start_sluice):
    server = start_sluice(order_config(pg_up))
    for order, sql in [
        ("-c_text,id", "c_text DESC NULLS FIRST, id ASC NULLS LAST"),
        ("c_int4,-id", "c_int4 ASC NULLS LAST, id DESC NULLS FIRST"),
        ("-c_timestamptz,c_numeric,id",
         "c_timestamptz DESC NULLS FIRST, c_numeric ASC NULLS LAST, id ASC NULLS LAST"),
    ]:
        response = requests.get(f"{server.url}/v1/exports/types.csv",
                                params={"order": order, "columns": "id"}, timeout=30)
        assert response.status_code == 200, response.text[:300]
        got = [row[0] for row in csv_rows(response.text)[1:]]
        expected = pg_up.psql(f"SELECT id FROM all_types ORDER BY {sql}").decode().split()
        assert got == expected, order
        assert len(got) > 10


def test_order_with_filters_and_limit(pg_up, start_sluice):
    server = start_sluice(order_config(pg_up))
    response = requests.get(f"{server.url}/v1/exports/types.jsonl",
                            params={"order": "-id", "id.lt": "50", "limit": "7"}, timeout=30)
    assert response.status_code == 200
    ids = [int(line.split(b",")[0].split(b":")[1]) for line in response.content.splitlines()]
    assert ids == list(range(49, 42, -1))


def test_bad_order_is_400_naming_the_parameter(pg_up, start_sluice):
    server = start_sluice(order_config(pg_up))
    for order in ["c_bytea", "id DESC", "-", "id,id"]:
        response = requests.get(f"{server.url}/v1/exports/types.csv", params={"order": order},
                                timeout=10)
        error = assert_json_error(response, 400, "invalid_order")
        assert "parameter 'order'" in error["message"], error


# Attacks for every kind of parameter. `{m}` is the marker.
VALUE_ATTACKS = [
    "x' OR '1'='1{m}",
    "x'); DROP TABLE all_types; --{m}",
    "x\\'; SELECT pg_sleep(5); --{m}",
    "x$$; SELECT 1; $${m}",
    "x\" OR 1=1 --{m}",
    "x'||(SELECT current_user)||'{m}",
    "1 UNION SELECT * FROM pg_shadow --{m}",
    "x%27%20OR%201=1{m}",
]
NAME_ATTACKS = [
    "id\" OR 1=1 --{m}",
    "id) OR (1=1{m}",
    "id;DROP TABLE all_types{m}",
    "(SELECT 1){m}",
    "*{m}",
    "id/*{m}*/",
]


def test_injection_through_every_parameter_never_reaches_sql(pg_up, start_sluice):
    # A role whose every statement PostgreSQL logs: the log then shows what Sluice sent as SQL.
    pg_up.psql("DO $$ BEGIN CREATE ROLE sluice_audit LOGIN; "
               "EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
               "GRANT pg_read_all_data TO sluice_audit;"
               "ALTER ROLE sluice_audit SET log_statement = 'all';"
               "ALTER ROLE sluice_audit SET log_min_error_statement = 'panic';")
    url = f"host={pg_up.dir} port={pg_up.port} user=sluice_audit dbname=sluice_test"
    server = start_sluice(order_config(pg_up, url=url))
    log_start = pg_up.log.stat().st_size
    export = f"{server.url}/v1/exports/types.csv"

    statuses: dict[str, int] = {}

    def get(params: dict[str, str], status: int = 400) -> requests.Response:
        """Each request has its one expected status (and a 400 its JSON error)."""
        response = requests.get(export, params=params, timeout=30)
        statuses[repr(params)] = response.status_code
        if status == 400:
            assert_json_error(response, 400)
        assert response.status_code == status, (params, response.status_code, response.text)
        return response

    # The operators each filter allows (ALL_TYPES_FILTERS; without `operators`: eq and in).
    allowed = {"id": {"eq", "in", "lt", "lte", "gt", "gte", "ne"},
               "c_text": {"eq", "in", "ne", "prefix", "is_null"}, "c_varchar": {"eq", "in"},
               "c_timestamptz": {"lt", "gte"}, "c_date": {"eq", "lt", "gte"},
               "c_numeric": {"lt", "gte"}, "c_bool": {"eq", "in"}}
    text_filters = {"c_text", "c_varchar"}
    everything = requests.get(export, timeout=30).text.count("\r\n")
    filters = re.findall(r"\[datasets\.filters\.(\w+)\]", ALL_TYPES_FILTERS)
    assert set(filters) == set(allowed)
    for attack in (a.format(m=MARKER) for a in VALUE_ATTACKS):
        for name in filters:
            for op in ["", ".eq", ".in", ".lt", ".gte", ".ne", ".prefix", ".is_null"]:
                operator = op[1:] or "eq"
                # Only a text filter with an operator it allows takes any text (is_null takes
                # a bool): 200, bound as a literal; everything else is refused before SQL.
                ok = name in text_filters and operator in allowed[name] and operator != "is_null"
                response = get({name + op: attack}, 200 if ok else 400)
                if ok:  # the value matches nothing; `ne` keeps every row (NULLs included)
                    rows = response.text.count("\r\n")
                    assert rows == (everything if op == ".ne" else 1), (name + op, attack)
        assert get({"order": attack}).status_code == 400
        assert get({"columns": attack}).status_code == 400
        assert get({"limit": attack}).status_code == 400
    for attack in (a.format(m=MARKER) for a in NAME_ATTACKS):
        assert get({attack: "1"}).status_code == 400
        assert get({"id." + attack: "1"}).status_code == 400
        assert get({"order": attack}).status_code == 400
        assert get({"order": "-" + attack}).status_code == 400
        assert get({"columns": "id," + attack}).status_code == 400
    assert 200 in statuses.values() and 400 in statuses.values()

    # Every attack that was answered 200 ran as a query; its text is only ever a parameter.
    server.stop()
    log = pg_up.log.read_bytes()[log_start:].decode("utf-8", "replace")
    assert "user=sluice_audit" in log or "statement:" in log or "execute" in log, (
        "PostgreSQL logged no statements of the audit role")
    marked = [line for line in log.splitlines() if MARKER in line]
    assert marked, "no attack reached PostgreSQL even as a bound value"
    as_sql = [line for line in marked if "parameters:" not in line]
    assert not as_sql, "user text reached PostgreSQL as SQL:\n" + "\n".join(as_sql[:5])
    # The table is still there and whole.
    assert int(pg_up.scalar("SELECT count(*) FROM all_types")) > 10
