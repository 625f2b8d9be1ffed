"""Cubes over PostgreSQL: numeric, bigint, text and double precision columns, every cell.

A private PostgreSQL cluster (support/pg.py's PgCluster, without the big test tables of
tests/postgres) holds generated orders; the cube's answers must equal an independent aggregate
computed by psycopg2 over the raw rows (sum and count instead of avg, PostgreSQL's own round()),
decimals exact with their scale, int64 over its whole range, doubles to the last bit.

    SLUICE_BIN=build/release/sluice /usr/bin/python3 -m pytest -q tests/cubes/test_cubes_postgres.py
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Iterator

import pytest

from support.pg import DB_NAME, PgCluster, source_toml
from support.server import stop_all

from .conftest import (
    ABSENT,
    COUNTRIES,
    DAYS,
    EDGE_ROWS,
    MONTHS,
    CubeEnv,
    Http,
    assert_error,
    assert_record,
    lookup_target,
    shop_rows,
)

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
# Doubles that only survive exactly if nothing is lost on the way (shortest round trip).
SCORE2 = [0.1, 1e-300, -1.5e300, 123456.789, 5e-324, 1.7976931348623157e308, -0.0, 2.5,
          None, 1 / 3, -2.2250738585072014e-308]

SCHEMA = """
CREATE TABLE orders (
  id bigint PRIMARY KEY, country text NOT NULL, month text NOT NULL, status text NOT NULL,
  day date NOT NULL, total numeric(18, 2), qty bigint, note text, score double precision,
  score2 double precision);
"""

QUERY = ("SELECT country, month, status, day, count(*) AS orders, sum(total) AS revenue, "
         "avg(total) AS avg_total, max(note) AS note, avg(score) AS ratio, max(score2) AS top, "
         "max(qty) AS max_qty FROM orders GROUP BY country, month, status, day")
METRICS = ('[{name = "orders", type = "int64"}, {name = "revenue", type = "decimal", scale = 2}, '
           '{name = "avg_total", type = "decimal", scale = 2}, '
           '{name = "note", type = "text", max_length = 16}, {name = "ratio", type = "float64"}, '
           '{name = "top", type = "float64"}, {name = "max_qty", type = "int64"}]')
MAX_SLICE = 16


def pg_rows() -> list[tuple]:
    """The SQLite shop's orders, typed for PostgreSQL: totals as numeric(18, 2), scores that
    are multiples of 0.25 (their sums are exact, so avg is one correctly rounded division),
    odd doubles in score2, and the int64 extremes as quantities of two edge cells."""
    rows = []
    edge_ids = {}
    for i, (oid, country, month, status, day, _product, _hour, cents, qty, note, _price) in \
            enumerate(shop_rows(seed=23)):
        total = None if cents is None else Decimal(cents).scaleb(-2)
        score = None if qty is None else qty * 0.25 - 2.5
        rows.append([oid, country, month, status, day, total, qty, note, score,
                     SCORE2[i % len(SCORE2)]])
        edge_ids[(country, month, status, day)] = len(rows) - 1
    top = rows[edge_ids[("US", "2026-03", "refunded", "2026-01-31")]]
    top[6], top[8] = INT64_MAX, None
    bottom = rows[edge_ids[("FR", "2026-01", "paid", "2026-01-31")]]
    bottom[6], bottom[8] = INT64_MIN, None
    # A third edge cell: a bigint beyond 2^53 (a double could not hold it).
    rows[edge_ids[("DE", "2026-03", "open", "2026-01-31")]][6] = 9007199254740993
    return [tuple(row) for row in rows]


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    """A private cluster with the orders in DB_NAME."""
    cluster = PgCluster()
    try:
        cluster.initdb()
        cluster.start()
        cluster.psql(f"CREATE DATABASE {DB_NAME}", dbname="postgres")
        cluster.psql(SCHEMA)
        from psycopg2.extras import execute_values  # Debian's python3-psycopg2, as support/pg.py

        conn = cluster.connect()
        try:
            with conn.cursor() as cursor:
                execute_values(cursor, "INSERT INTO orders VALUES %s", pg_rows(), page_size=1000)
                cursor.execute("ANALYZE orders")
            conn.commit()
        finally:
            conn.close()
        yield cluster
    finally:
        cluster.destroy()


def cube_toml(name: str = "pg_sales", query: str = QUERY) -> str:
    return f"""
[[cubes]]
name = "{name}"
source = "pg"
query = "{query}"
path = ["country", "month"]
file = ["status", {{name = "day", from = "2026-01-01", to = "2026-01-31", step = "day"}}]
metrics = {METRICS}
max_age_s = 120
max_slice = {MAX_SLICE}
"""


def expected(pg: PgCluster) -> dict[tuple[str, str, str, str], dict]:
    """Per cell: the record, by psycopg2 from the raw rows (not the cube's query)."""
    conn = pg.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT country, month, status, to_char(day, 'YYYY-MM-DD'), count(id), sum(total), "
                "round(sum(total) / nullif(count(total), 0), 2), max(note), sum(score), "
                "count(score), max(score2), max(qty) FROM orders "
                "GROUP BY day, status, month, country")
            rows = cursor.fetchall()
    finally:
        conn.close()
    out = {}
    for country, month, status, day, n, total, average, note, score_sum, score_n, top, max_qty in rows:
        out[(country, month, status, day)] = {
            "orders": n,
            "revenue": None if total is None else total.quantize(Decimal("0.01")),
            "avg_total": average,
            "note": note,
            "ratio": score_sum / score_n if score_n else None,
            "top": top,
            "max_qty": max_qty,
        }
    return out


@pytest.fixture(scope="module")
def pg_cube(pg, tmp_path_factory):
    env = CubeEnv(tmp_path_factory.mktemp("cubes-pg"))
    env.write_config(source_toml("pg", pg) + f'[storage]\npath = "{env.store}"\n' + cube_toml())
    build = env.build_ok("pg_sales")
    server = env.serve()
    try:
        yield env, build, server
    finally:
        stop_all([server])


def test_every_cell_matches_the_raw_orders(pg, pg_cube):
    env, build, server = pg_cube
    want = expected(pg)
    assert build.rows == len(want)
    statuses = sorted({key[2] for key in want})
    described = json.loads(Http(server).request("/v1/cubes/pg_sales").text)
    assert described["file"][0]["values"] == statuses
    assert described["metrics"] == [
        {"name": "orders", "type": "int64"}, {"name": "revenue", "type": "decimal", "scale": 2},
        {"name": "avg_total", "type": "decimal", "scale": 2}, {"name": "note", "type": "text"},
        {"name": "ratio", "type": "float64"}, {"name": "top", "type": "float64"},
        {"name": "max_qty", "type": "int64"}]
    client = Http(server)
    seen = 0
    for country in COUNTRIES:
        for month in MONTHS:
            for status in statuses:
                for start, end in ((0, MAX_SLICE), (MAX_SLICE, len(DAYS))):
                    target = lookup_target("pg_sales", [country, month],
                                           {"status": status, "day": f"{DAYS[start]}..{DAYS[end - 1]}"})
                    reply = client.request(target)
                    assert reply.status == 200, (target, reply.text[:300])
                    assert reply.headers["cache-control"] == "public, max-age=120"
                    body = reply.json()
                    assert list(body) == DAYS[start:end]
                    for day, record in body.items():
                        cell = want.get((country, month, status, day))
                        assert_record(record, cell, f"{target} {day}")
                        seen += cell is not None
    assert seen == len(want)
    # Single lookups: a sample, the edge cells, cells without data, files that do not exist.
    rng = random.Random(3)
    cells = rng.sample(sorted(want), 80) + [(c, m, s, d) for c, m, s, d, *_ in EDGE_ROWS]
    cells += [(c, m, "paid", "2026-01-02") for c in COUNTRIES[:3] for m in MONTHS]
    cells += [(c, m, "open", "2026-01-05") for c, m in sorted(ABSENT)]
    for country, month, status, day in cells:
        target = lookup_target("pg_sales", [country, month], {"status": status, "day": day})
        reply = client.request(target)
        cell = want.get((country, month, status, day))
        if cell is None:
            assert_error(reply, 404, "no_data")
        else:
            assert reply.status == 200, (target, reply.text)
            assert_record(reply.json(), cell, target)
    client.close()


def test_edge_values_as_text(pg_cube):
    """The edge cells' raw text: decimal(18, 2) extremes with their scale, int64 extremes,
    a bigint beyond 2^53, a zero sum as 0.00, NULL metrics as null."""
    _, _, server = pg_cube
    client = Http(server)

    def text(country, month, status):
        reply = client.request(lookup_target("pg_sales", [country, month],
                                             {"status": status, "day": "2026-01-31"}))
        assert reply.status == 200, reply.text
        return reply.text

    top = text("US", "2026-03", "refunded")
    assert '"revenue":9999999999999999.99,"avg_total":9999999999999999.99,' in top, top
    assert top.endswith(f'"max_qty":{INT64_MAX}}}'), top
    bottom = text("FR", "2026-01", "paid")
    assert '"revenue":-9999999999999999.99,"avg_total":-9999999999999999.99,' in bottom, bottom
    assert bottom.endswith(f'"max_qty":{INT64_MIN}}}'), bottom
    assert text("DE", "2026-03", "open").endswith('"max_qty":9007199254740993}')
    zero = text("DE", "2026-02", "open")
    assert zero.startswith('{"orders":2,"revenue":0.00,"avg_total":0.00,"note":null,"ratio":null,'), zero
    assert text("FR", "2026-02", "cancelled").startswith(
        '{"orders":1,"revenue":null,"avg_total":null,"note":null,"ratio":null,')
    assert '"revenue":-0.05,"avg_total":-0.05,' in text("DE", "2026-03", "open")
    client.close()


PG_BUILD_ERRORS = {
    "NaN in a float64 metric": (QUERY.replace("max(score2) AS top", "'NaN'::float8 AS top"), ("top",)),
    "numeric NaN in a decimal metric": (QUERY.replace("sum(total) AS revenue", "'NaN'::numeric AS revenue"),
                                        ("revenue",)),
    "fraction in an int64 metric": (QUERY.replace("max(qty) AS max_qty", "avg(qty) AS max_qty"), ("max_qty",)),
    "NULL dimension": (QUERY.replace("SELECT country,", "SELECT NULLIF(country, 'DE') AS country,")
                       .replace("GROUP BY country,", "GROUP BY 1,"), ("country", "NULL")),
    "two rows for one cell": (QUERY.replace("GROUP BY country, month, status, day",
                                            "GROUP BY country, month, status, day, id"),
                              ("status=", "day=")),
}


@pytest.mark.parametrize("case", list(PG_BUILD_ERRORS))
def test_build_errors_publish_nothing(pg, pg_cube, case):
    env, build, server = pg_cube
    query, mentions = PG_BUILD_ERRORS[case]
    pointer = (env.cube_dir("pg_sales") / "current.json").read_bytes()
    config = env.write_config(source_toml("pg", pg) + f'[storage]\npath = "{env.store}"\n'
                              + cube_toml(query=query), name="broken.toml")
    err = env.build_fails("pg_sales", config=config)
    for word in mentions:
        assert word in err, err
    assert (env.cube_dir("pg_sales") / "current.json").read_bytes() == pointer
    assert env.version_dirs("pg_sales") == [build.version]
    reply = Http(server).request(lookup_target("pg_sales", ["DE", "2026-01"],
                                               {"status": "paid", "day": "2026-01-31"}))
    assert reply.headers["etag"].startswith(f'"{build.version}-')
