"""Cubes over SQLite: `sluice cube build` and the `/v1/cubes` API, end to end.

What a cube answers must be what an independent aggregate of the raw rows says (every cell,
empty ones included, decimals exact with their scale); a rebuild must switch readers from one
version to the next without a mixed or broken answer; unchanged files are not written again;
replaced versions are deleted after keep_versions_s; malformed requests and build errors are
refused with a JSON error (or an exit code and a message) naming the problem; the cache headers
say what may be cached; and on Cetus's sample Sluice answers what Cetus answers in a quarter of
the bytes. Every server and build is the real binary ($SLUICE_BIN).
"""

from __future__ import annotations

import json
import os
import pwd
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest
import requests

from support.http import assert_head_has_no_body, head_then_get
from support.server import REPO, run_sluice, stop_all

from .conftest import (
    ABSENT,
    BY_PRODUCT_MAX_SLICE,
    Build,
    CubeEnv,
    COUNTRIES,
    DAYS,
    DECLARED_STATUSES,
    EDGE_ROWS,
    EMPTY_DAYS,
    HOURS,
    MONTHS,
    PRODUCTS,
    SALES_MAX_SLICE,
    SALES_QUERY,
    Http,
    assert_body_record,
    assert_error,
    assert_record,
    by_product_cube,
    expected_by_id,
    expected_by_product,
    expected_nested,
    expected_sales,
    lookup_target,
    make_shop_db,
    quote,
    sales_cube,
    served_version,
    source_toml,
    wait_serving,
)

ETAG = re.compile(r'^"(v[0-9a-f]{20})-(\d+|x)-(\d+)"$')
SLICE_ETAG = re.compile(r'^"(v[0-9a-f]{20})-[^"]+"$')


def loads_ordered(text: str):
    """JSON with exact decimals, objects as lists of pairs (to check the order of keys)."""
    return json.loads(text, parse_float=Decimal, object_pairs_hook=lambda pairs: pairs)


def as_dict(pairs):
    if isinstance(pairs, list):
        return {key: as_dict(value) for key, value in pairs}
    return pairs


def file_index(manifest: dict) -> dict[tuple[str, ...], int]:
    return {tuple(entry["path"]): i for i, entry in enumerate(manifest["files"])}


def sales_statuses(expected: dict) -> list[str]:
    return sorted({key[2] for key in expected})


# --------------------------------------------------------------------------------------------
# 1. Every cell equals the aggregate of the raw rows
# --------------------------------------------------------------------------------------------

def every_slice(client, cube: str, statuses, dimension: str, ranges):
    """For every (country, month) x status x (first, last) of `ranges`: one slice lookup of
    `dimension` from first to last, which must answer 200. Yields (country, month, status,
    (first, last), target, reply)."""
    for country in COUNTRIES:
        for month in MONTHS:
            for status in statuses:
                for first, last in ranges:
                    target = lookup_target(cube, [country, month],
                                           {"status": status, dimension: f"{first}..{last}"})
                    reply = client.request(target)
                    assert reply.status == 200, (target, reply.status, reply.text[:300])
                    yield country, month, status, (first, last), target, reply


def test_every_sales_cell_matches_the_raw_orders(shop):
    """Every (country, month) x status x day, by slices of the day dimension: the record of
    each cell, null for cells without data (also in the files that do not exist)."""
    expected = expected_sales(shop.db)
    statuses = sales_statuses(expected)
    version = shop.builds["sales"].version
    files = file_index(shop.env.manifest("sales"))
    assert set(files) == {(c, m) for c in COUNTRIES for m in MONTHS} - ABSENT
    client = Http(shop.server)
    ranges = [(0, SALES_MAX_SLICE), (SALES_MAX_SLICE, len(DAYS))]
    seen_data = seen_empty = 0
    for country, month, status, (first, last), target, reply in every_slice(
            client, "sales", statuses, "day", [(DAYS[start], DAYS[end - 1]) for start, end in ranges]):
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.headers["cache-control"] == "public, max-age=300"
        etag = SLICE_ETAG.match(reply.headers.get("etag", ""))
        assert etag and etag.group(1) == version, reply.headers
        pairs = loads_ordered(reply.text)
        assert [day for day, _ in pairs] == DAYS[DAYS.index(first):DAYS.index(last) + 1], target
        for day, record in pairs:
            want = expected.get((country, month, status, day))
            assert_record(as_dict(record), want, f"{target} {day}")
            seen_data += want is not None
            seen_empty += want is None
    assert seen_data == len(expected)
    assert seen_empty > 0
    client.close()


def test_sales_single_lookups_match_and_carry_their_etag(shop):
    """A sample of single lookups (every edge cell, cells with and without data, files that do
    not exist): the record, or 404 no_data; the ETag names the version, the file and the record;
    cacheable either way."""
    expected = expected_sales(shop.db)
    statuses = sales_statuses(expected)
    version = shop.builds["sales"].version
    files = file_index(shop.env.manifest("sales"))
    rng = random.Random(11)
    cells = [(c, m, s, d) for c, m, s, d, *_ in EDGE_ROWS]
    cells += rng.sample(sorted(expected), 120)
    cells += [(rng.choice(COUNTRIES), rng.choice(MONTHS), rng.choice(statuses), day)
              for day in sorted(EMPTY_DAYS)]
    cells += [(c, m, "paid", "2026-01-03") for c, m in sorted(ABSENT)]
    client = Http(shop.server)
    for country, month, status, day in cells:
        target = lookup_target("sales", [country, month], {"status": status, "day": day})
        reply = client.request(target)
        want = expected.get((country, month, status, day))
        etag = ETAG.match(reply.headers.get("etag", ""))
        assert etag, (target, reply.headers)
        assert etag.group(1) == version
        if (country, month) in files:  # the file's position in the version's manifest
            assert etag.group(2) == str(files[(country, month)]), (target, reply.headers["etag"])
        assert int(etag.group(3)) == statuses.index(status) * len(DAYS) + DAYS.index(day)
        assert reply.headers.get("cache-control") == "public, max-age=300", reply.headers
        if want is None:
            assert_error(reply, 404, "no_data")
        else:
            assert reply.status == 200, (target, reply.text)
            assert reply.headers["content-type"].startswith("application/json")
            assert_record(reply.json(), want, target)
    client.close()


def test_decimals_keep_their_scale_in_the_text(shop):
    """The edge cells as the raw text shows them: the largest decimal(18, 2) and its negative,
    a zero sum, -0.05, 10.50 from the REAL 10.5, NULL metrics as null, empty and escaped
    texts."""
    client = Http(shop.server)

    def text(country, month, status, day="2026-01-31"):
        reply = client.request(lookup_target("sales", [country, month], {"status": status, "day": day}))
        assert reply.status == 200, reply.text
        return reply.text

    largest = text("US", "2026-03", "refunded")
    assert '"revenue":9999999999999999.99,"note":"exactly 16 bytes",' in largest, largest
    assert '"revenue":-9999999999999999.99,' in text("FR", "2026-01", "paid")
    zero = text("DE", "2026-02", "open")
    assert '"orders":2,"revenue":0.00,"note":null,"ratio":null,"top_price":99.90}' in zero
    assert '"revenue":-0.05,' in text("DE", "2026-03", "open")
    ten_fifty = text("DE", "2026-01", "paid")
    assert '"revenue":10.50,"note":"ten fifty",' in ten_fifty
    assert ten_fifty.endswith(',"top_price":10.50}'), ten_fifty
    assert text("FR", "2026-02", "cancelled") == (
        '{"orders":1,"revenue":null,"note":null,"ratio":null,"top_price":null}')
    assert '"revenue":0.00,"note":"",' in text("São Tomé", "2026-02", "on hold")
    assert '"top_price":1000.00}' in text("São Tomé", "2026-02", "on hold")
    client.close()


def test_every_cell_with_a_body_matches_the_raw_orders(shop):
    """The cube with a body (a map per record keyed by product, only the products present):
    every cell, by slices of the hour dimension (declared from/to/step), under declared
    statuses in their declared order; plus single lookups."""
    expected = expected_by_product(shop.db)
    version = shop.builds["by_product"].version
    hours = [str(h) for h in HOURS]
    assert len(hours) == BY_PRODUCT_MAX_SLICE
    client = Http(shop.server)
    seen = 0
    for country, month, status, _, target, reply in every_slice(
            client, "by_product", DECLARED_STATUSES, "hour", [(hours[0], hours[-1])]):
        assert reply.headers["cache-control"] == "public, max-age=60"
        assert SLICE_ETAG.match(reply.headers["etag"]).group(1) == version
        pairs = loads_ordered(reply.text)
        assert [hour for hour, _ in pairs] == hours
        for hour, record in pairs:
            want = expected.get((country, month, status, hour))
            assert_body_record(as_dict(record), want, f"{target} {hour}")
            seen += want is not None
    assert seen == len(expected)
    rng = random.Random(5)
    for key in rng.sample(sorted(expected), 60) + [("US", "2026-03", "refunded", "22"),
                                                    ("DE", "2026-02", "open", "22")]:
        country, month, status, hour = key
        target = lookup_target("by_product", [country, month], {"status": status, "hour": hour})
        reply = client.request(target)
        assert reply.status == 200, reply.text
        etag = ETAG.match(reply.headers["etag"])
        assert etag and int(etag.group(3)) == (DECLARED_STATUSES.index(status) * len(hours)
                                               + hours.index(hour))
        assert_body_record(reply.json(), expected[key], target)
    edge = client.request(lookup_target("by_product", ["DE", "2026-02"], {"status": "open", "hour": "22"}))
    assert edge.text == ('{"Laptop":{"orders":1,"revenue":-12.34,"max_qty":null},'
                         '"Phone":{"orders":1,"revenue":12.34,"max_qty":null}}')
    empty = client.request(lookup_target("by_product", ["New Zealand", "2026-03"],
                                         {"status": "cancelled", "hour": "22"}))
    assert_error(empty, 404, "no_data")
    client.close()


def test_every_cell_with_two_body_dimensions_matches_the_raw_orders(shop):
    """Two body dimensions (product, hour): nested maps with only the keys present, every
    cell by slices of all 31 days (max_slice = 31)."""
    expected = expected_nested(shop.db)
    version = shop.builds["nested"].version
    statuses = sorted({key[2] for key in expected})
    client = Http(shop.server)
    seen = 0
    for country, month, status, _, target, reply in every_slice(
            client, "nested", statuses, "day", [(DAYS[0], DAYS[-1])]):
        assert SLICE_ETAG.match(reply.headers["etag"]).group(1) == version
        body = reply.json()
        assert list(body) == DAYS
        for day, record in body.items():
            want = expected.get((country, month, status, day))
            assert_body_record(record, want, f"{target} {day}", levels=2)
            seen += want is not None
    assert seen == len(expected)
    edge = client.request(lookup_target("nested", ["DE", "2026-02"], {"status": "open", "day": "2026-01-31"}))
    assert edge.text == ('{"Laptop":{"22":{"orders":1,"revenue":-12.34}},'
                         '"Phone":{"22":{"orders":1,"revenue":12.34}}}')
    client.close()


def test_every_cell_with_thousands_of_body_keys_matches_the_raw_orders(shop):
    """Body keyed by order id (thousands of keys, a few per record): every cell, by slices of
    all 31 days; each record lists exactly its orders."""
    expected = expected_by_id(shop.db)
    statuses = sorted({key[2] for key in expected})
    client = Http(shop.server)
    seen = 0
    for country, month, status, _, target, reply in every_slice(
            client, "by_id", statuses, "day", [(DAYS[0], DAYS[-1])]):
        for day, record in reply.json().items():
            want = expected.get((country, month, status, day))
            assert_body_record(record, want, f"{target} {day}")
            seen += 0 if want is None else len(want)
    assert seen == sum(len(orders) for orders in expected.values())
    client.close()


def test_a_value_with_two_dots_is_a_value_not_a_range(shop):
    """`pending..review` is a status: an exact value wins over the range syntax."""
    expected = expected_sales(shop.db)
    client = Http(shop.server)
    cells = [key for key in sorted(expected) if key[2] == "pending..review"][:10]
    assert cells
    for country, month, status, day in cells:
        target = lookup_target("sales", [country, month], {"status": status, "day": day})
        reply = client.request(target)
        assert reply.status == 200, (target, reply.text)
        assert_record(reply.json(), expected[(country, month, status, day)], target)
    client.close()


def test_a_server_started_before_the_first_build_picks_it_up(cube_env):
    env = cube_env("first")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + sales_cube(refresh_ms=50))
    server = env.serve()
    client = Http(server)
    target = lookup_target("sales", ["DE", "2026-01"], {"status": "paid", "day": "2026-01-31"})
    assert_error(client.request(target), 404, "cube_not_built")
    assert served_version(server, "sales") is None
    build = env.build_ok("sales")
    wait_serving(server, "sales", build.version)
    reply = client.request(target)
    assert reply.status == 200 and ETAG.match(reply.headers["etag"]).group(1) == build.version
    assert_record(reply.json(), expected_sales(db)[("DE", "2026-01", "paid", "2026-01-31")], target)
    client.close()


def test_cubes_without_path_or_without_file_dimensions(cube_env):
    """No path dimension: one file, the record chosen by parameters alone (month declared by
    from/to/step = "month", wider than the data). No file dimension: one record per file,
    chosen by the path alone. (The extreme orders are left out: their sums per month would pass
    decimal's 18 digits, which fails a build.)"""
    env = cube_env("shapes")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + """
[[cubes]]
name = "flat"
source = "shop"
query = "SELECT country, month, count(*) AS orders, sum(total_cents) || 'e-2' AS revenue FROM orders WHERE total_cents IS NULL OR abs(total_cents) <= 1e15 GROUP BY 1, 2"
file = ["country", {name = "month", from = "2025-12", to = "2026-04", step = "month"}]
metrics = [{name = "orders", type = "int64"}, {name = "revenue", type = "decimal", scale = 2}]

[[cubes]]
name = "nofile"
source = "shop"
query = "SELECT country, month, count(*) AS orders, sum(total_cents) || 'e-2' AS revenue FROM orders WHERE total_cents IS NULL OR abs(total_cents) <= 1e15 GROUP BY 1, 2"
path = ["country", "month"]
metrics = [{name = "orders", type = "int64"}, {name = "revenue", type = "decimal", scale = 2}]
""")
    assert env.build_ok("flat").files == 1
    env.build_ok("nofile")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        want = {(c, m): {"orders": n, "revenue": None if t is None else Decimal(t).scaleb(-2)}
                for c, m, n, t in conn.execute("SELECT country, month, count(id), sum(total_cents) "
                                               "FROM orders WHERE total_cents IS NULL OR abs(total_cents) <= 1e15 "
                                               "GROUP BY month, country")}
    conn.close()
    server = env.serve()
    client = Http(server)
    months = ["2025-12", "2026-01", "2026-02", "2026-03", "2026-04"]
    described = requests.get(f"{server.url}/v1/cubes/flat", timeout=10).json()
    assert described["url"] == "/v1/cubes/flat?country={country}&month={month}"
    assert described["file"][1]["values"] == months
    for country in COUNTRIES:
        reply = client.request(lookup_target("flat", [], {"country": country, "month": "2025-12..2026-04"}))
        assert reply.status == 200, reply.text
        body = reply.json()
        assert list(body) == months
        for month in months:
            assert_record(body[month], want.get((country, month)), f"flat {country} {month}")
        single = client.request(lookup_target("flat", [], {"country": country, "month": "2026-02"}))
        if (country, "2026-02") in want:
            assert single.status == 200, single.text
            assert_record(single.json(), want[(country, "2026-02")], f"flat {country}")
        else:
            assert_error(single, 404, "no_data")
        for month in MONTHS:
            reply = client.request(lookup_target("nofile", [country, month], {}))
            if (country, month) in want:
                assert reply.status == 200, reply.text
                assert ETAG.match(reply.headers["etag"]), reply.headers
                assert_record(reply.json(), want[(country, month)], f"nofile {country} {month}")
            else:
                assert_error(reply, 404, "no_data")
    assert_error(client.request("/v1/cubes/flat/DE?month=2026-01"), 400, "wrong_path")
    assert_error(client.request("/v1/cubes/flat?country=DE"), 400, "missing_parameter", ("month",))
    assert_error(client.request("/v1/cubes/nofile/DE/2026-01?month=2026-01"), 400, "unknown_parameter")
    assert_error(client.request("/v1/cubes/nofile/DE"), 400, "wrong_path")
    client.close()


def test_long_texts_and_64_metrics(cube_env):
    """Texts up to max_length = 4096 bytes (a 2-byte length field) with multi-byte characters
    and escapes come back exact; 64 metrics (a text and 63 int64), each NULL somewhere, render
    every NULL; a 65th metric is refused by the build."""
    env = cube_env("wide")
    db = env.folder / "wide.db"
    texts = {"a": "é" * 2048, "b": 'q"\\\n\t' * 500 + "end", "c": "x" * 300, "d": "", "e": "✓" * 1365}
    assert all(len(t.encode()) <= 4096 for t in texts.values())
    names = [f"m{i}" for i in range(65)]
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (k TEXT, body TEXT, " + ", ".join(f"{n} INTEGER" for n in names) + ")")
        for row, (key, text) in enumerate(texts.items()):
            values = [None if (i + row) % 5 == 0 else i * 1000 - row for i in range(65)]
            conn.execute(f"INSERT INTO t VALUES ({', '.join('?' * 67)})", (key, text, *values))
    conn.close()

    def cube(name: str, count: int) -> str:
        metric_list = ", ".join(f'{{name = "{n}", type = "int64"}}' for n in names[:count])
        return f"""
[[cubes]]
name = "{name}"
source = "wide"
query = "SELECT k, body, {', '.join(names[:count])} FROM t"
file = ["k"]
metrics = [{{name = "body", type = "text", max_length = 4096}}, {metric_list}]
"""
    env.write_config(source_toml(db, env.store, "wide") + cube("wide", 63) + cube("wider", 64))
    env.build_ok("wide")
    err = env.build_fails("wider")
    assert "64" in err, err
    server = env.serve()
    client = Http(server)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT * FROM t").fetchall()
    conn.close()
    for row in rows:
        reply = client.request(lookup_target("wide", [], {"k": row[0]}))
        assert reply.status == 200, reply.text
        want = {"body": row[1], **{n: v for n, v in zip(names[:63], row[2:65])}}
        assert_record(reply.json(), want, row[0])
    client.close()


def test_a_store_failure_at_start_is_503_not_never_built(cube_env):
    """The cube was built, but its current manifest cannot be read when the server starts: a
    store failure (503 store_unavailable, no-store), not "never built"; once readable again
    the server answers from it."""
    env = cube_env("start")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + sales_cube(refresh_ms=50))
    build = env.build_ok("sales")
    manifest = env.cube_dir("sales") / build.version / "manifest.json"
    saved = manifest.read_bytes()
    manifest.unlink()
    server = env.serve()
    client = Http(server)
    target = lookup_target("sales", ["DE", "2026-01"], {"status": "paid", "day": "2026-01-31"})
    try:
        assert_error(client.request(target), 503, "store_unavailable")
    finally:
        manifest.write_bytes(saved)
    wait_serving(server, "sales", build.version)
    assert client.request(target).status == 200
    client.close()


# --------------------------------------------------------------------------------------------
# 8. Describing the cubes
# --------------------------------------------------------------------------------------------

def test_list_and_describe_cubes(shop):
    expected = expected_sales(shop.db)
    statuses = sales_statuses(expected)
    pointer = shop.env.pointer("sales")
    listing = requests.get(f"{shop.server.url}/v1/cubes", timeout=10)
    assert listing.status_code == 200
    assert listing.headers["Content-Type"].startswith("application/json")
    cubes = {cube["name"]: cube for cube in listing.json()["cubes"]}
    assert [cube["name"] for cube in listing.json()["cubes"]] == ["sales", "by_product", "nested", "by_id",
                                                                 "later"]
    sales = cubes["sales"]
    assert sales["url"] == "/v1/cubes/sales/{country}/{month}?status={status}&day={day}"
    assert sales["version"] == shop.builds["sales"].version == pointer["version"]
    built = datetime.fromisoformat(sales["built_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - built).total_seconds()) < 600, sales["built_at"]
    assert sales["rows"] == len(expected) == shop.builds["sales"].rows
    assert sales["files"] == len({(c, m) for c, m, _, _ in expected}) == shop.builds["sales"].files
    assert sales["path"] == [{"name": "country", "count": len(COUNTRIES)},
                             {"name": "month", "count": len(MONTHS)}]
    assert sales["file"] == [{"name": "status", "count": len(statuses)},
                             {"name": "day", "count": len(DAYS)}]
    assert sales["body"] == []
    assert sales["metrics"] == [
        {"name": "orders", "type": "int64"}, {"name": "revenue", "type": "decimal", "scale": 2},
        {"name": "note", "type": "text"}, {"name": "ratio", "type": "float64"},
        {"name": "top_price", "type": "decimal", "scale": 2}]
    by_product = cubes["by_product"]
    assert by_product["url"] == "/v1/cubes/by_product/{country}/{month}?status={status}&hour={hour}"
    assert by_product["body"] == [{"name": "product", "count": len(PRODUCTS)}]
    assert by_product["file"] == [{"name": "status", "count": len(DECLARED_STATUSES)},
                                  {"name": "hour", "count": 12}]
    assert cubes["nested"]["body"] == [{"name": "product", "count": len(PRODUCTS)},
                                       {"name": "hour", "count": len(HOURS)}]
    assert cubes["later"]["version"] is None

    described = requests.get(f"{shop.server.url}/v1/cubes/sales", timeout=10).json()
    assert described["name"] == "sales" and described["version"] == pointer["version"]
    assert described["path"] == [
        {"name": "country", "count": len(COUNTRIES), "values": sorted(COUNTRIES)},
        {"name": "month", "count": len(MONTHS), "values": MONTHS}]
    assert described["file"] == [{"name": "status", "count": len(statuses), "values": statuses},
                                 {"name": "day", "count": len(DAYS), "values": DAYS}]
    assert described["record_size"] == shop.builds["sales"].record_size > 0
    assert described["records_per_file"] == len(statuses) * len(DAYS)
    assert described["max_slice"] == SALES_MAX_SLICE
    assert described["versions"] == [{"version": pointer["version"], "current": True}]
    assert described["metrics"] == sales["metrics"]

    product = requests.get(f"{shop.server.url}/v1/cubes/by_product", timeout=10).json()
    assert product["file"] == [
        {"name": "status", "count": len(DECLARED_STATUSES), "values": DECLARED_STATUSES},
        {"name": "hour", "count": 12, "values": [str(h) for h in HOURS]}]
    assert product["body"] == [{"name": "product", "count": len(PRODUCTS),
                                "values": sorted(PRODUCTS)}]
    assert product["max_slice"] == BY_PRODUCT_MAX_SLICE
    assert product["records_per_file"] == len(DECLARED_STATUSES) * 12

    client = Http(shop.server)
    assert_error(client.request("/v1/cubes/nope"), 404, "unknown_cube", ("nope",))
    assert_error(client.request("/v1/cubes/nope/DE/2026-01?status=paid&day=2026-01-01"), 404,
                 "unknown_cube")
    assert_error(client.request("/v1/cubes/later/DE/2026-01?status=paid&day=2026-01-01"), 404,
                 "cube_not_built", ("later",))
    client.close()


# --------------------------------------------------------------------------------------------
# 5. Malformed requests
# --------------------------------------------------------------------------------------------

S = "/v1/cubes/sales"
OK_Q = "status=paid&day=2026-01-03"


@pytest.mark.parametrize("target, status, code, mentions", [
    (f"{S}/DE?{OK_Q}", 400, "wrong_path", ("country", "month")),
    (f"{S}/DE/2026-01/extra?{OK_Q}", 400, "wrong_path", ()),
    (f"{S}/DE/2026-01/?{OK_Q}", 400, "wrong_path", ()),
    (f"{S}/Bosnia/Herz/2026-03?{OK_Q}", 400, "wrong_path", ()),
    (f"{S}/XX/2026-01?{OK_Q}", 404, "unknown_value", ("XX", "DE")),
    (f"{S}/de/2026-01?{OK_Q}", 404, "unknown_value", ("de",)),
    (f"{S}/M%C3%BCnchen/2026-01?{OK_Q}", 404, "unknown_value", ("München",)),
    (f"{S}/DE/2026-13?{OK_Q}", 404, "unknown_value", ("2026-13", "2026-01")),
    (f"{S}/DE/2026-01?status=lost&day=2026-01-03", 404, "unknown_value", ("lost", "paid")),
    (f"{S}/DE/2026-01?status=paid&day=2026-02-01", 404, "unknown_value", ("2026-02-01",)),
    (f"{S}/DE/2026-01?status=paid&day=2026-01-3", 404, "unknown_value", ("2026-01-3",)),
    (f"{S}/DE/2026-01?status=PAID&day=2026-01-03", 404, "unknown_value", ("PAID",)),
    (f"{S}/DE/2026-01?{OK_Q}&colour=red", 400, "unknown_parameter", ("colour",)),
    (f"{S}/DE/2026-01?Status=paid&day=2026-01-03", 400, "unknown_parameter", ("Status",)),
    (f"{S}/DE/2026-01?{OK_Q}&status=paid", 400, "duplicate_parameter", ("status",)),
    (f"{S}/DE/2026-01?{OK_Q}&day=2026-01-04", 400, "duplicate_parameter", ("day",)),
    (f"{S}/DE/2026-01?status=paid", 400, "missing_parameter", ("day",)),
    (f"{S}/DE/2026-01?day=2026-01-03", 400, "missing_parameter", ("status",)),
    (f"{S}/DE/2026-01", 400, "missing_parameter", ()),
    (f"{S}/DE/2026-01?status=paid&day=2026-01-01..2026-01-31", 400, "slice_too_large",
     (str(SALES_MAX_SLICE),)),
    (f"{S}/DE/2026-01?status=open..paid&day=2026-01-03", 400, "invalid_slice", ("day",)),
    (f"{S}/DE/2026-01?status=paid&day=2026-01-07..2026-01-01", 400, "invalid_slice", ()),
    (f"{S}/DE/2026-01?status=paid&day=2026-01-01..2026-02-01", 404, "unknown_value",
     ("2026-02-01",)),
    (f"{S}/DE/2026-01?status=paid&day=2026-01-01..", 404, "unknown_value", ()),
])
def test_malformed_lookup_is_refused(shop, target, status, code, mentions):
    reply = Http(shop.server).request(target)
    error = assert_error(reply, status, code, mentions)
    if code == "unknown_value":
        assert error.get("dimension") in ("country", "month", "status", "day"), error


def test_unknown_value_error_names_the_dimension(shop):
    client = Http(shop.server)
    error = assert_error(client.request(f"{S}/XX/2026-01?{OK_Q}"), 404, "unknown_value")
    assert error["dimension"] == "country"
    error = assert_error(client.request(f"{S}/DE/2026-01?status=paid&day=2026-02-01"), 404,
                         "unknown_value")
    assert error["dimension"] == "day"
    assert "2026-01-01" in error["message"], error  # some allowed values are listed
    client.close()


@pytest.mark.parametrize("target", [
    f"{S}/DE/2026-01?status=&day=2026-01-03",
    f"{S}/DE/2026-01?status&day=2026-01-03",
    f"{S}/DE/2026-01?status=paid&day=",
    f"{S}//2026-01?{OK_Q}",
    f"{S}/DE/%FF?{OK_Q}",
    f"{S}/../2026-01?{OK_Q}",
    f"{S}/DE/2026-01?status=paid&day=" + "9" * 4000,
    f"{S}/DE/2026-01?{OK_Q}&" + "&".join(f"p{i}=1" for i in range(300)),
])
def test_empty_or_odd_values_never_answer_a_record(shop, target):
    """Empty parameter values and path segments, invalid UTF-8, a dot-dot segment, a huge
    value, hundreds of parameters: a 4xx JSON error, never a record."""
    reply = Http(shop.server).request(target)
    assert 400 <= reply.status < 500, (target[:200], reply.status, reply.text[:300])
    error = assert_error(reply, reply.status, reply.json()["error"]["code"])
    assert error["code"] in ("unknown_value", "wrong_path", "unknown_parameter",
                             "missing_parameter", "bad_target", "invalid_parameter"), error


def test_lookup_without_path_segments_is_wrong_path(shop):
    """A lookup that gives the file dimensions but none of the path values (the cube has two)
    is a wrong path, not the cube's description."""
    reply = Http(shop.server).request(f"{S}?{OK_Q}")
    assert_error(reply, 400, "wrong_path")


def test_percent_encoded_values_find_their_record(shop):
    """Path values with a space, a slash and non-ASCII text, a file value with a space (as %20
    and as +): the right record."""
    expected = expected_sales(shop.db)
    client = Http(shop.server)
    checked = 0
    for country, encoded in [("New Zealand", "New%20Zealand"), ("Bosnia/Herz", "Bosnia%2FHerz"),
                             ("São Tomé", "S%C3%A3o%20Tom%C3%A9")]:
        for (c, month, status, day), want in sorted(expected.items()):
            if c != country or status != "on hold":
                continue
            for status_text in ("on%20hold", "on+hold"):
                target = f"{S}/{encoded}/{month}?status={status_text}&day={day}"
                reply = client.request(target)
                assert reply.status == 200, (target, reply.text)
                assert_record(reply.json(), want, target)
                checked += 1
    assert checked >= 6
    # %2F is a slash inside one value; the same value with a real slash is two segments.
    assert client.request(f"{S}/Bosnia%2fHerz/2026-03?status=paid&day=2026-01-03").status in (200, 404)
    client.close()


def test_parameter_order_does_not_change_the_answer(shop):
    """The file dimensions may come in any order: the same record, ETag and slice."""
    expected = expected_sales(shop.db)
    client = Http(shop.server)
    problems = []
    cells = [key for key in sorted(expected) if key[:2] == ("DE", "2026-01")][:6]
    cells.append(("DE", "2026-01", "refunded", "2026-01-31"))  # no data there
    for country, month, status, day in cells:
        base = f"{S}/{country}/{month}"
        straight = client.request(f"{base}?status={quote(status)}&day={day}")
        swapped = client.request(f"{base}?day={day}&status={quote(status)}")
        if (swapped.status, swapped.body, swapped.headers.get("etag")) != (
                straight.status, straight.body, straight.headers.get("etag")):
            problems.append(f"?day={day}&status={status}: {swapped.status} {swapped.text[:120]} "
                            f"instead of {straight.status} {straight.text[:120]}")
        else:
            assert_record(straight.json() if straight.status == 200 else None,
                          expected.get((country, month, status, day)), base)
    base = f"{S}/DE/2026-01"
    straight = client.request(f"{base}?status=paid&day=2026-01-01..2026-01-07")
    assert straight.status == 200 and len(straight.json()) == 7
    swapped = client.request(f"{base}?day=2026-01-01..2026-01-07&status=paid")
    if swapped.body != straight.body:
        problems.append(f"?day=2026-01-01..2026-01-07&status=paid: {swapped.status} "
                        f"{swapped.text[:300]} instead of the 7 days {straight.text[:300]}")
    client.close()
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# 6. Caching: 304, HEAD, Cache-Control
# --------------------------------------------------------------------------------------------

def test_conditional_requests_head_and_cache_control(shop):
    client = Http(shop.server)
    version = shop.builds["sales"].version
    target = lookup_target("sales", ["DE", "2026-01"], {"status": "paid", "day": "2026-01-31"})
    first = client.request(target)
    assert first.status == 200
    etag = first.headers["etag"]
    assert ETAG.match(etag) and not etag.startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=300"
    assert first.header_count("cache-control") == 1 and first.header_count("etag") == 1

    for value in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        again = client.request(target, {"If-None-Match": value})
        assert again.status == 304, (value, again.status)
        assert again.body == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == "public, max-age=300"
    other = client.request(target, {"If-None-Match": f'"{version}-0-0"'})
    assert other.status == 200 and other.body == first.body

    result = head_then_get(shop.server.port, target)
    assert_head_has_no_body(result, 200)
    assert result.head_headers["etag"] == etag
    assert result.head_headers["cache-control"] == "public, max-age=300"
    assert result.head_headers["content-type"].startswith("application/json")
    assert result.get_body == first.body

    # No data: a cacheable 404 of this version, revalidated like a record.
    empty = lookup_target("sales", ["DE", "2026-01"], {"status": "paid", "day": "2026-01-02"})
    missing = client.request(empty)
    assert_error(missing, 404, "no_data")
    assert missing.headers["cache-control"] == "public, max-age=300"
    assert ETAG.match(missing.headers["etag"]).group(1) == version
    assert client.request(empty, {"If-None-Match": missing.headers["etag"]}).status == 304
    head = head_then_get(shop.server.port, empty)
    assert_head_has_no_body(head, 404)
    assert head.head_headers["cache-control"] == "public, max-age=300"
    # No file for the path values (each exists alone): no_data as well.
    absent = client.request(lookup_target("sales", ["New Zealand", "2026-01"],
                                          {"status": "paid", "day": "2026-01-03"}))
    assert_error(absent, 404, "no_data")
    assert absent.headers["cache-control"] == "public, max-age=300" and "etag" in absent.headers
    sliced = client.request(lookup_target("sales", ["New Zealand", "2026-01"],
                                          {"status": "paid", "day": "2026-01-01..2026-01-03"}))
    assert sliced.status == 200
    assert sliced.json() == {"2026-01-01": None, "2026-01-02": None, "2026-01-03": None}

    # Errors are never cacheable (assert_error checks no-store and no ETag).
    assert_error(client.request(f"{S}/XX/2026-01?{OK_Q}"), 404, "unknown_value")
    assert_error(client.request(f"{S}/DE?{OK_Q}"), 400, "wrong_path")
    assert_error(client.request(f"{S}/DE/2026-01?status=paid"), 400, "missing_parameter")
    assert_error(client.request("/v1/cubes/later/DE/2026-01?" + OK_Q), 404, "cube_not_built")
    assert_error(client.request("/v1/cubes/zzz/DE/2026-01?" + OK_Q), 404, "unknown_cube")
    head = head_then_get(shop.server.port, f"{S}/XX/2026-01?{OK_Q}")
    assert_head_has_no_body(head, 404)
    assert head.head_headers["cache-control"] == "no-store"
    client.close()


def test_damaged_cube_file_is_503_never_cacheable(cube_env):
    """A cube file deleted or cut short under a running server: 503 store_unavailable with
    no-store (never a cacheable 404); the other files still answer; restored, it answers."""
    env = cube_env("damaged")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + sales_cube())
    env.build_ok("sales")
    server = env.serve()
    manifest = env.manifest("sales")
    entry = manifest["files"][0]
    country, month = entry["path"]
    path = env.store / entry["key"]
    saved = path.read_bytes()
    client = Http(server)
    target = lookup_target("sales", [country, month], {"status": "paid", "day": "2026-01-03"})
    sliced = lookup_target("sales", [country, month], {"status": "paid", "day": "2026-01-01..2026-01-05"})
    other_entry = manifest["files"][1]
    other = lookup_target("sales", other_entry["path"], {"status": "paid", "day": "2026-01-03"})
    good = client.request(target)
    assert good.status in (200, 404)
    other_good = client.request(other)

    def broken(reply):
        assert_error(reply, 503, "store_unavailable")
        assert reply.headers["cache-control"] == "no-store"
        assert reply.header_count("retry-after") <= 1, reply.header_list

    path.unlink()
    broken(client.request(target))
    broken(client.request(sliced))
    again = client.request(other)
    assert (again.status, again.body) == (other_good.status, other_good.body)
    path.write_bytes(saved[: entry["data_offset"] + 3])  # cut inside the records
    broken(client.request(target))
    path.write_bytes(saved)
    restored = client.request(target)
    assert (restored.status, restored.body) == (good.status, good.body)
    client.close()


def test_unreadable_cube_file_is_503(cube_env):
    """chmod 000 on a cube file (the server runs as `nobody`, for whom that means unreadable)
    before the server opened it: 503 store_unavailable with no-store; readable again, the
    record. (A file the server already holds open keeps being read through its descriptor, as
    cube files are immutable; a deleted or replaced one is opened again: see the damaged-file
    test.)"""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user `nobody` to run the server as (root reads any file)")
    # The test's tmp folder is private (0700); the server needs a folder it may enter.
    folder = Path(tempfile.mkdtemp(prefix="sluice-cubes-", dir="/tmp"))
    env = cube_env("unreadable", folder=folder / "env")
    try:
        os.chmod(folder, 0o755)
        db = make_shop_db(env.folder / "shop.db")
        env.write_config(source_toml(db, env.store) + sales_cube())
        env.build_ok("sales")
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)

        def as_nobody():
            os.setgid(nobody.pw_gid)
            os.setgroups([])
            os.setuid(nobody.pw_uid)

        server = env.serve(preexec_fn=as_nobody)
        entry = env.manifest("sales")["files"][1]
        target = lookup_target("sales", entry["path"], {"status": "paid", "day": "2026-01-01..2026-01-16"})
        client = Http(server)
        path = env.store / entry["key"]
        path.chmod(0)
        reply = client.request(target)
        assert_error(reply, 503, "store_unavailable")
        path.chmod(0o644)
        good = client.request(target)
        assert good.status == 200, good.text
        assert good.json(), good.text
        client.close()
        stop_all(env.servers)  # before its folder goes
    finally:
        for server in env.servers:
            server.kill()
        env.servers.clear()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# 3. Rebuilds under continuous lookups; unchanged files
# --------------------------------------------------------------------------------------------

LOAD_COUNTRIES = ["DE", "FR", "US"]
LOAD_MONTHS = ["2026-01", "2026-02"]
LOAD_STATUSES = ["open", "paid"]
LOAD_DAYS = DAYS[:10]
LOAD_QUERY = ("SELECT f.country, f.month, f.status, f.day, g.k AS orders, "
              "(g.k * 1000 + f.cell) || 'e-2' AS revenue, 'v' || g.k AS note, "
              "g.k + 0.5 AS ratio FROM facts f CROSS JOIN gen g")
LOAD_THREADS = 4


def load_cube(db: Path, store: Path) -> str:
    return source_toml(db, store, "facts") + f"""
[[cubes]]
name = "ver"
source = "facts"
query = "{LOAD_QUERY}"
path = ["country", "month"]
file = ["status", {{name = "day", from = "2026-01-01", to = "2026-01-10", step = "day"}}]
metrics = [{{name = "orders", type = "int64"}}, {{name = "revenue", type = "decimal", scale = 2}}, {{name = "note", type = "text", max_length = 16}}, {{name = "ratio", type = "float64"}}]
max_age_s = 5
keep_versions_s = 600
refresh_ms = 50
max_slice = 10
"""


def version_of_record(record: dict, cell: int) -> int:
    """The k a record was built from; every metric must agree (else the record is mixed)."""
    k = record["orders"]
    assert record == {"orders": k, "revenue": Decimal(k * 1000 + cell).scaleb(-2),
                      "note": f"v{k}", "ratio": Decimal(k) + Decimal("0.5")}, (record, cell)
    assert str(record["revenue"]).endswith(f"{cell % 100:02d}")
    return k


def test_rebuilds_under_continuous_lookups_answer_from_one_version(cube_env):
    """4 threads of keep-alive lookups (single records, slices, cells without data) while the
    data changes and `sluice cube build` runs 3 times: each answer is of one version (every
    metric says k, and the ETag names the version built with k); the ETag changes with every
    version; no error."""
    env = cube_env("load")
    db = env.folder / "versions.db"
    cells: dict[tuple[str, str, str, str], int] = {}
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE facts (country TEXT, month TEXT, status TEXT, day TEXT, cell INTEGER)")
        conn.execute("CREATE TABLE gen (k INTEGER)")
        conn.execute("INSERT INTO gen VALUES (1)")
        n = 0
        for country in LOAD_COUNTRIES:
            for month in LOAD_MONTHS:
                for status in LOAD_STATUSES:
                    for day in LOAD_DAYS:
                        n += 1
                        if n % 7 != 0:  # every 7th cell has no data
                            cells[(country, month, status, day)] = n
                            conn.execute("INSERT INTO facts VALUES (?,?,?,?,?)",
                                         (country, month, status, day, n))
    conn.close()
    env.write_config(load_cube(db, env.store))
    version_k = {env.build_ok("ver").version: 1}
    server = env.serve()

    singles = [(key, lookup_target("ver", key[:2], {"status": key[2], "day": key[3]}))
               for key in [(c, m, s, d) for c in LOAD_COUNTRIES for m in LOAD_MONTHS
                           for s in LOAD_STATUSES for d in LOAD_DAYS]]
    slices = [((c, m, s), lookup_target("ver", [c, m], {"status": s, "day": f"{LOAD_DAYS[0]}..{LOAD_DAYS[-1]}"}))
              for c in LOAD_COUNTRIES for m in LOAD_MONTHS for s in LOAD_STATUSES]
    stop = threading.Event()
    lock = threading.Lock()
    pairs: dict[tuple[str, int], int] = defaultdict(int)      # (ETag version, k) -> answers
    etags: dict[str, set[str]] = defaultdict(set)               # target -> ETags seen
    statuses: dict[int, int] = defaultdict(int)
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        client = Http(server)
        local_pairs: dict[tuple[str, int], int] = defaultdict(int)
        local_etags: dict[str, set[str]] = defaultdict(set)
        local_status: dict[int, int] = defaultdict(int)
        try:
            while not stop.is_set():
                if rng.random() < 0.8:
                    key, target = rng.choice(singles)
                    reply = client.request(target)
                    local_status[reply.status] += 1
                    version = ETAG.match(reply.headers.get("etag", "")).group(1)
                    if key in cells:
                        assert reply.status == 200, (target, reply.status, reply.text)
                        k = version_of_record(reply.json(), cells[key])
                        local_pairs[(version, k)] += 1
                    else:
                        assert reply.status == 404 and reply.json()["error"]["code"] == "no_data"
                else:
                    (country, month, status), target = rng.choice(slices)
                    reply = client.request(target)
                    local_status[reply.status] += 1
                    assert reply.status == 200, (target, reply.status, reply.text)
                    version = SLICE_ETAG.match(reply.headers["etag"]).group(1)
                    ks = set()
                    for day, record in reply.json().items():
                        key = (country, month, status, day)
                        if key in cells:
                            ks.add(version_of_record(record, cells[key]))
                        else:
                            assert record is None, (target, day, record)
                    assert len(ks) == 1, f"a slice mixes versions {ks}: {reply.text}"
                    local_pairs[(version, ks.pop())] += 1
                local_etags[target].add(reply.headers["etag"])
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            with lock:
                errors.append(f"{type(error).__name__}: {error}")
        finally:
            client.close()
            with lock:
                for pair, count in local_pairs.items():
                    pairs[pair] += count
                for target, tags in local_etags.items():
                    etags[target] |= tags
                for status, count in local_status.items():
                    statuses[status] += count

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(LOAD_THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        for k in (2, 3, 4):
            with sqlite3.connect(db) as conn:
                conn.execute("UPDATE gen SET k = ?", (k,))
            conn.close()
            build = env.build_ok("ver")
            assert build.written == build.files  # every file holds k
            version_k[build.version] = k
            wait_serving(server, "ver", build.version)
            time.sleep(0.5)
            assert not errors, errors[:5]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    elapsed = time.monotonic() - started
    assert not errors, errors[:5]
    total = sum(statuses.values())
    assert set(statuses) <= {200, 404}, dict(statuses)
    rate = total / elapsed
    print(f"\n{total} lookups in {elapsed:.1f} s ({rate:.0f}/s) over {len(version_k)} versions")
    assert rate >= 1000, f"only {rate:.0f} lookups/s"
    for (version, k), count in pairs.items():
        assert version in version_k, f"ETag of an unknown version {version}"
        assert version_k[version] == k, f"ETag of version k={version_k[version]} on data of k={k}"
    assert {version for version, _ in pairs} == set(version_k), "a version was never seen"
    # The ETag is one per version and target: it changed with every version seen.
    for target, tags in etags.items():
        versions = {ETAG.match(tag).group(1) if ETAG.match(tag) else SLICE_ETAG.match(tag).group(1)
                    for tag in tags}
        assert len(tags) == len(versions), (target, tags)
    assert served_version(server, "ver") == max(version_k, key=version_k.get)


def test_a_build_writes_only_the_files_that_changed(cube_env):
    """One (country, month)'s data changes: the build reports 1 written and the rest unchanged,
    the new manifest refers to the old objects, and lookups on unchanged files answer the same
    data under the new version's ETag; a build of unchanged data writes nothing."""
    env = cube_env("unchanged")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + sales_cube(refresh_ms=50))
    first = env.build_ok("sales")
    assert first.written == first.files and first.unchanged == 0
    server = env.serve()
    statuses = sales_statuses(expected_sales(db))
    targets = {(c, m): lookup_target("sales", [c, m], {"status": s, "day": f"{DAYS[0]}..{DAYS[15]}"})
               for c in COUNTRIES for m in MONTHS if (c, m) not in ABSENT for s in statuses[:1]}
    client = Http(server)
    before = {key: client.request(target) for key, target in targets.items()}

    with sqlite3.connect(db) as conn:  # one order of FR 2026-02, one cent more
        order_id, = conn.execute("SELECT id FROM orders WHERE country = 'FR' AND month = '2026-02' "
                                 "AND status = ? AND day <= '2026-01-16' AND total_cents > 0 "
                                 "ORDER BY id LIMIT 1", (statuses[0],)).fetchone()
        conn.execute("UPDATE orders SET total_cents = total_cents + 1 WHERE id = ?", (order_id,))
    conn.close()
    second = env.build_ok("sales")
    assert (second.written, second.unchanged) == (1, first.files - 1), second.line
    assert second.files == first.files
    manifest = env.manifest("sales", second.version)
    for entry in manifest["files"]:
        owner = second.version if tuple(entry["path"]) == ("FR", "2026-02") else first.version
        assert entry["key"].startswith(f".sluice/cubes/sales/{owner}/"), entry
    assert len([n for n in env.files_of("sales", second.version) if n.endswith(".cube")]) == 1
    env.assert_version_complete("sales", second.version)

    wait_serving(server, "sales", second.version)
    old_tag = before[("DE", "2026-01")].headers["etag"]
    revalidated = client.request(targets[("DE", "2026-01")], {"If-None-Match": old_tag})
    assert revalidated.status == 200, "the previous version's ETag must not match any more"
    expected = expected_sales(db)
    for key, target in targets.items():
        reply = client.request(target)
        assert reply.status == 200
        assert SLICE_ETAG.match(reply.headers["etag"]).group(1) == second.version
        assert reply.headers["etag"] != before[key].headers["etag"]
        if key != ("FR", "2026-02"):
            assert reply.body == before[key].body, key
        else:
            assert reply.body != before[key].body
        for day, record in reply.json().items():
            assert_record(record, expected.get((*key, statuses[0], day)), f"{target} {day}")
    single = client.request(lookup_target("sales", ["DE", "2026-01"], {"status": "paid", "day": "2026-01-31"}))
    assert ETAG.match(single.headers["etag"]).group(1) == second.version
    assert_record(single.json(), expected[("DE", "2026-01", "paid", "2026-01-31")], "DE")

    third = env.build_ok("sales")
    assert (third.written, third.unchanged) == (0, first.files), third.line
    assert not any(n.endswith(".cube") for n in env.files_of("sales", third.version))
    wait_serving(server, "sales", third.version)
    reply = client.request(targets[("DE", "2026-01")])
    assert SLICE_ETAG.match(reply.headers["etag"]).group(1) == third.version
    assert reply.body == before[("DE", "2026-01")].body
    client.close()


def test_build_all(cube_env):
    env = cube_env("all")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + sales_cube() + by_product_cube())
    result = env.build("--all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert [Build.parse(line).cube for line in lines] == ["sales", "by_product"]
    assert env.pointer("sales")["version"] == Build.parse(lines[0]).version
    assert env.pointer("by_product")["version"] == Build.parse(lines[1]).version


# --------------------------------------------------------------------------------------------
# 4. Old versions are deleted after keep_versions_s
# --------------------------------------------------------------------------------------------

def cube_objects(env, version: str) -> list[str]:
    return [name for name in env.files_of("sales", version) if name.endswith(".cube")]


def test_replaced_versions_are_deleted_after_keep_versions(cube_env):
    env = cube_env("keep")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + sales_cube(keep_versions_s=0, refresh_ms=50))
    expected = expected_sales(db)
    statuses = sales_statuses(expected)

    def change_all():
        with sqlite3.connect(db) as conn:  # every file changes; the edge cells stay
            conn.execute("UPDATE orders SET total_cents = total_cents + 1 "
                         "WHERE total_cents IS NOT NULL AND day < '2026-01-31'")
        conn.close()

    def check_served(server, version):
        wait_serving(server, "sales", version)
        want = expected_sales(db)
        client = Http(server)
        for country, month in [("DE", "2026-01"), ("FR", "2026-02"), ("São Tomé", "2026-03")]:
            reply = client.request(lookup_target("sales", [country, month],
                                                 {"status": statuses[1], "day": f"{DAYS[16]}..{DAYS[30]}"}))
            assert reply.status == 200, reply.text
            assert SLICE_ETAG.match(reply.headers["etag"]).group(1) == version
            for day, record in reply.json().items():
                assert_record(record, want.get((country, month, statuses[1], day)), day)
        client.close()

    v1 = env.build_ok("sales")
    server = env.serve()
    check_served(server, v1.version)
    n = v1.files
    assert len(cube_objects(env, v1.version)) == n

    change_all()
    v2 = env.build_ok("sales")
    assert v2.written == n and v2.deleted == 1, v2.line
    assert env.files_of("sales", v1.version) == [], "v1's objects are not deleted"
    assert env.pointer("sales")["retired"] == []
    env.assert_version_complete("sales", v2.version)
    check_served(server, v2.version)

    with sqlite3.connect(db) as conn:  # one file changes
        conn.execute("UPDATE orders SET total_cents = total_cents + 1 WHERE id = "
                     "(SELECT min(id) FROM orders WHERE country = 'DE' AND month = '2026-03' "
                     "AND total_cents IS NOT NULL AND day < '2026-01-31')")
    conn.close()
    v3 = env.build_ok("sales")
    assert (v3.written, v3.unchanged, v3.deleted) == (1, n - 1, 1), v3.line
    manifest = env.assert_version_complete("sales", v3.version)
    still_used = sorted(entry["key"].rsplit("/", 1)[1] for entry in manifest["files"]
                        if entry["key"].startswith(f".sluice/cubes/sales/{v2.version}/"))
    assert len(still_used) == n - 1
    assert env.files_of("sales", v2.version) == still_used, (
        "v2 must keep exactly the objects v3 refers to (and no manifest)")
    assert sorted(env.files_of("sales", v3.version)) == sorted(
        [cube_objects(env, v3.version)[0], "manifest.json"])
    check_served(server, v3.version)

    change_all()
    v4 = env.build_ok("sales")
    assert v4.written == n and v4.deleted == 1, v4.line
    assert env.files_of("sales", v2.version) == [] and env.files_of("sales", v3.version) == []
    env.assert_version_complete("sales", v4.version)
    check_served(server, v4.version)

    # keep_versions_s = 1: the version replaced just now is kept; one replaced > 1 s ago is not.
    kept_config = env.write_config(source_toml(db, env.store) + sales_cube(keep_versions_s=1,
                                                                           refresh_ms=50),
                                   name="keep1.toml")
    change_all()
    v5 = env.build_ok("sales", config=kept_config)
    assert v5.deleted == 0, v5.line
    env.assert_version_complete("sales", v4.version)
    assert [r["version"] for r in env.pointer("sales")["retired"]] == [v4.version]
    check_served(server, v5.version)
    described = wait_for_versions(server, 2)
    assert [(v["version"], v["current"]) for v in described] == [(v5.version, True), (v4.version, False)]
    time.sleep(1.2)
    change_all()
    v6 = env.build_ok("sales", config=kept_config)
    assert v6.deleted == 1, v6.line
    assert env.files_of("sales", v4.version) == []
    env.assert_version_complete("sales", v5.version)
    env.assert_version_complete("sales", v6.version)
    assert [r["version"] for r in env.pointer("sales")["retired"]] == [v5.version]
    check_served(server, v6.version)
    described = wait_for_versions(server, 2, current=v6.version)
    assert [(v["version"], v["current"]) for v in described] == [(v6.version, True), (v5.version, False)]


def wait_for_versions(server, count: int, current: str | None = None) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        versions = requests.get(f"{server.url}/v1/cubes/sales", timeout=10).json()["versions"]
        if len(versions) == count and (current is None or versions[0]["version"] == current):
            return versions
        assert time.monotonic() < deadline, versions
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# 7. Build errors: exit 1, a message naming the problem, nothing published
# --------------------------------------------------------------------------------------------

def bad(select: str) -> str:
    """The sales query with its select list replaced (same GROUP BY)."""
    return f"SELECT {select} FROM orders GROUP BY country, month, status, day"


GOOD_SELECT = ("country, month, status, day, count(*) AS orders, sum(total_cents) || 'e-2' AS revenue, "
               "max(note) AS note, avg(qty) AS ratio, max(price) AS top_price")
METRICS_SELECT = ("count(*) AS orders, sum(total_cents) || 'e-2' AS revenue, max(note) AS note, "
                  "avg(qty) AS ratio, max(price) AS top_price")

BUILD_ERRORS = {
    "missing column": (bad("country, month, status, day, count(*) AS orders, "
                           "sum(total_cents) || 'e-2' AS revenue, max(note) AS note, avg(qty) AS ratio"),
                       ("top_price",)),
    "NULL path value": (bad("CASE WHEN country = 'FR' THEN NULL ELSE country END AS country, month, "
                            f"status, day, {METRICS_SELECT}"), ("country", "NULL")),
    "NULL file value": (bad("country, month, CASE WHEN status = 'open' THEN NULL ELSE status END AS status, "
                            f"day, {METRICS_SELECT}"), ("status", "NULL")),
    "empty path value": (bad("country, CASE WHEN month = '2026-02' THEN '' ELSE month END AS month, "
                             f"status, day, {METRICS_SELECT}"), ("month", "empty")),
    "value outside declared": (bad("country, month, status, CASE WHEN day = '2026-01-05' THEN '2026-02-05' "
                                   f"ELSE day END AS day, {METRICS_SELECT}"), ("day", "2026-02-05")),
    "text in int64": (bad("country, month, status, day, CASE WHEN count(*) > 1 THEN 'abc' ELSE count(*) END "
                          "AS orders, sum(total_cents) || 'e-2' AS revenue, max(note) AS note, "
                          "avg(qty) AS ratio, max(price) AS top_price"), ("orders", "abc")),
    "fraction in int64": (bad("country, month, status, day, count(*) + 0.5 AS orders, "
                              "sum(total_cents) || 'e-2' AS revenue, max(note) AS note, avg(qty) AS ratio, "
                              "max(price) AS top_price"), ("orders",)),
    "text in decimal": (bad("country, month, status, day, count(*) AS orders, 'ten' AS revenue, "
                            "max(note) AS note, avg(qty) AS ratio, max(price) AS top_price"),
                        ("revenue", "ten")),
    "text in float64": (bad("country, month, status, day, count(*) AS orders, "
                            "sum(total_cents) || 'e-2' AS revenue, max(note) AS note, 'half' AS ratio, "
                            "max(price) AS top_price"), ("ratio", "half")),
    "text too long": (bad("country, month, status, day, count(*) AS orders, "
                          "sum(total_cents) || 'e-2' AS revenue, "
                          "CASE WHEN day = '2026-01-31' THEN 'seventeen bytes!!' ELSE max(note) END AS note, "
                          "avg(qty) AS ratio, max(price) AS top_price"), ("note", "max_length")),
    "text too long in bytes": (bad("country, month, status, day, count(*) AS orders, "
                                   "sum(total_cents) || 'e-2' AS revenue, "
                                   "CASE WHEN day = '2026-01-31' THEN 'ääääääääx' ELSE max(note) END AS note, "
                                   "avg(qty) AS ratio, max(price) AS top_price"), ("note", "max_length")),
    "decimal of 19 digits": (bad("country, month, status, day, count(*) AS orders, "
                                 "CASE WHEN day = '2026-01-31' THEN '12345678901234567.89' "
                                 "ELSE sum(total_cents) || 'e-2' END AS revenue, max(note) AS note, "
                                 "avg(qty) AS ratio, max(price) AS top_price"), ("revenue",)),
    "decimal of 22 digits": (bad("country, month, status, day, count(*) AS orders, "
                                 "CASE WHEN day = '2026-01-31' THEN '99999999999999999999.99' "
                                 "ELSE sum(total_cents) || 'e-2' END AS revenue, max(note) AS note, "
                                 "avg(qty) AS ratio, max(price) AS top_price"), ("revenue",)),
    "invalid UTF-8 text": (bad("country, month, status, day, count(*) AS orders, "
                               "sum(total_cents) || 'e-2' AS revenue, "
                               "CASE WHEN day = '2026-01-31' THEN CAST(x'61ff62' AS TEXT) ELSE max(note) END AS note, "
                               "avg(qty) AS ratio, max(price) AS top_price"), ("note", "UTF-8")),
    "invalid UTF-8 dimension": (bad("country, month, CASE WHEN status = 'open' THEN CAST(x'6fff' AS TEXT) "
                                    f"ELSE status END AS status, day, {METRICS_SELECT}"), ("status", "UTF-8")),
    "float64 beyond range": (bad("country, month, status, day, count(*) AS orders, "
                                 "sum(total_cents) || 'e-2' AS revenue, max(note) AS note, "
                                 "CASE WHEN day = '2026-01-31' THEN '1e400' ELSE avg(qty) END AS ratio, "
                                 "max(price) AS top_price"), ("ratio", "1e400")),
    "two rows for one cell": ("SELECT country, month, status, day, count(*) AS orders, "
                              "sum(total_cents) || 'e-2' AS revenue, max(note) AS note, avg(qty) AS ratio, "
                              "max(price) AS top_price FROM orders GROUP BY country, month, status, day, product",
                              ("country=", "month=", "status=", "day=")),
}


BUILD_ERRORS.update({
    "no rows": (SALES_QUERY.replace("FROM orders", "FROM orders WHERE 0"), ("no rows",)),
    "SQL error": (SALES_QUERY.replace("FROM orders", "FROM no_such_table"), ("no_such_table",)),
})


@dataclass
class ErrorsEnv:
    env: CubeEnv
    db: Path
    good: Build
    server: object
    target: str
    before: object


@pytest.fixture(scope="module")
def errors_env(tmp_path_factory) -> Iterator[ErrorsEnv]:
    """A good version of `sales`, served (refresh_ms = 50), and one lookup's answer."""
    env = CubeEnv(tmp_path_factory.mktemp("cubes-errors"))
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + sales_cube(refresh_ms=50))
    good = env.build_ok("sales")
    server = env.serve()
    try:
        target = lookup_target("sales", ["DE", "2026-01"], {"status": "paid", "day": "2026-01-01..2026-01-16"})
        before = Http(server).request(target)
        assert before.status == 200
        yield ErrorsEnv(env, db, good, server, target, before)
    finally:
        stop_all([server])


@pytest.mark.parametrize("case", list(BUILD_ERRORS))
def test_build_error_publishes_nothing(errors_env, case):
    """A broken query: exit 1, `sluice: cube "sales": ...` naming the problem, no new version
    folder, the pointer untouched, and the running server still answers the previous version."""
    query, mentions = BUILD_ERRORS[case]
    env = errors_env.env
    pointer_path = env.cube_dir("sales") / "current.json"
    pointer = pointer_path.read_bytes()
    config = env.write_config(source_toml(errors_env.db, env.store) + sales_cube(query=query),
                              name="broken.toml")
    result = env.build("sales", config=config)
    out, err = result.stdout.decode(), result.stderr.decode()
    problems = []
    if result.returncode != 1:
        problems.append(f"exit {result.returncode}")
    if "published" in out:
        problems.append(f"published: {out.strip()}")
    if not err.startswith('sluice: cube "sales": '):
        problems.append(f"the message does not name the cube: {err.strip()!r}")
    problems += [f"{m!r} not named in {err.strip()!r}" for m in mentions if m not in err]
    if pointer_path.read_bytes() != pointer:
        problems.append("the pointer changed")
    new_folders = sorted(set(env.version_dirs("sales")) - {errors_env.good.version})
    if new_folders:
        problems.append(f"new version folders {new_folders}")
    # Undo a wrong publication, so that the other cases start from the good version.
    pointer_path.write_bytes(pointer)
    for folder in new_folders:
        shutil.rmtree(env.cube_dir("sales") / folder)
    wait_serving(errors_env.server, "sales", errors_env.good.version)
    time.sleep(0.12)  # two refreshes
    after = Http(errors_env.server).request(errors_env.target)
    assert (after.status, after.body, after.headers["etag"]) == (
        errors_env.before.status, errors_env.before.body, errors_env.before.headers["etag"])
    assert not problems, f"{case}: " + "; ".join(problems)


def test_build_of_an_unknown_cube(errors_env):
    result = errors_env.env.build("nope")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "nope" in err and "sales" in err, err  # names the cube asked for and the cubes there


# --------------------------------------------------------------------------------------------
# Config errors: FILE:LINE: key
# --------------------------------------------------------------------------------------------

CONFIG_HEAD = '[sources.shop]\nkind = "sqlite"\npath = "{db}"\n\n[storage]\npath = "{store}"\n\n'
CUBE_LINES = [
    "[[cubes]]",
    'name = "sales"',
    'source = "shop"',
    'query = "SELECT 1"',
    'path = ["country", "month"]',
    'file = ["status", {name = "day", from = "2026-01-01", to = "2026-01-31", step = "day"}]',
    'metrics = [{name = "orders", type = "int64"}, {name = "revenue", type = "decimal", scale = 2}]',
]


def cube_text(replace: dict[int, str] | None = None, add: list[str] = ()) -> list[str]:
    lines = list(CUBE_LINES)
    for index, line in (replace or {}).items():
        lines[index] = line
    return lines + list(add)


CONFIG_ERRORS = [
    # (cube lines, index of the line named (in the cube lines), key, words)
    (cube_text({6: 'metrics = [{name = "orders", type = "int65"}]'}), 6, "cubes[0].metrics[0].type", ("int65",)),
    (cube_text({6: 'metrics = [{name = "revenue", type = "decimal"}]'}), 6, "cubes[0].metrics[0].scale", ()),
    (cube_text({6: 'metrics = [{name = "revenue", type = "decimal", scale = 19}]'}), 6,
     "cubes[0].metrics[0].scale", ()),
    (cube_text({6: 'metrics = [{name = "note", type = "text"}]'}), 6, "cubes[0].metrics[0].max_length", ()),
    (cube_text({6: 'metrics = [{name = "orders", type = "int64", scale = 2}]'}), 6,
     "cubes[0].metrics[0].scale", ()),
    (cube_text({6: 'metrics = [{name = "re venue", type = "int64"}]'}), 6, "cubes[0].metrics[0].name", ("re venue",)),
    (cube_text({6: "metrics = []"}), 6, "cubes[0].metrics", ()),
    (cube_text({4: 'path = [{name = "country", values = ["DE"]}, "month"]'}), 4, "cubes[0].path[0]", ()),
    (cube_text({5: 'file = ["country", "day"]'}), 5, "cubes[0].file[0]", ("country",)),
    (cube_text({5: 'file = ["status", {name = "day", from = "2026-01-31", to = "2026-01-01", step = "day"}]'}),
     5, "cubes[0].file[1].to", ()),
    (cube_text({5: 'file = ["status", {name = "day", from = "2026-02-30", to = "2026-03-01", step = "day"}]'}),
     5, "cubes[0].file[1].from", ()),
    (cube_text({5: 'file = ["status", {name = "day", from = "2026-01-01", to = "2026-01-31", step = "week"}]'}),
     5, "cubes[0].file[1].step", ("day",)),
    (cube_text({5: 'file = [{name = "status", values = []}, "day"]'}), 5, "cubes[0].file[0].values", ()),
    (cube_text({5: 'file = [{name = "status", values = ["paid", "paid"]}, "day"]'}), 5,
     "cubes[0].file[0].values[1]", ("paid",)),
    (cube_text({2: 'source = "warehouse"'}), 2, "cubes[0].source", ("warehouse",)),
    (cube_text({1: 'name = "sales cube"'}), 1, "cubes[0].name", ()),
    (cube_text(add=["max_slice = 0"]), 7, "cubes[0].max_slice", ()),
    (cube_text(add=["refresh_ms = 1"]), 7, "cubes[0].refresh_ms", ()),
    (cube_text(add=['colour = "red"']), 7, "cubes[0]", ("colour",)),
    (cube_text() + [""] + cube_text(), 9, "cubes[1].name", ("sales",)),
]


@pytest.mark.parametrize("lines, index, key, words", CONFIG_ERRORS,
                         ids=[case[2] + "-" + str(i) for i, case in enumerate(CONFIG_ERRORS)])
def test_config_errors_name_file_line_and_key(tmp_path, lines, index, key, words):
    sqlite3.connect(tmp_path / "shop.db").close()
    head = CONFIG_HEAD.format(db=tmp_path / "shop.db", store=tmp_path)
    config = tmp_path / "cubes.toml"
    config.write_text(head + "\n".join(lines) + "\n", "utf-8")
    line = head.count("\n") + index + 1
    result = run_sluice("check-config", str(config))
    err = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, err)
    assert err.startswith(f"sluice: {config}:{line}: {key}") or err.startswith(
        f"sluice: {config.name}:{line}: {key}"), err
    for word in words:
        assert word in err, err


def test_config_errors_stop_serve_and_build(tmp_path):
    sqlite3.connect(tmp_path / "shop.db").close()
    config = tmp_path / "cubes.toml"
    config.write_text(CONFIG_HEAD.format(db=tmp_path / "shop.db", store=tmp_path)
                      + "\n".join(cube_text({6: 'metrics = [{name = "orders", type = "int65"}]'})) + "\n")
    check = run_sluice("check-config", str(config))
    build = run_sluice("cube", "build", "sales", "--config", str(config))
    served = run_sluice("serve", "--config", str(config), "--listen", "127.0.0.1:0", timeout=30)
    assert check.returncode == build.returncode == served.returncode == 1
    assert "cubes[0].metrics[0].type" in build.stderr.decode()
    assert "cubes[0].metrics[0].type" in served.stderr.decode()
    no_storage = tmp_path / "nostore.toml"
    no_storage.write_text(f'[sources.shop]\nkind = "sqlite"\npath = "{tmp_path}/shop.db"\n\n'
                          + "\n".join(CUBE_LINES) + "\n")
    result = run_sluice("check-config", str(no_storage))
    assert result.returncode == 1 and ":5: cubes" in result.stderr.decode(), result.stderr
    assert "[storage]" in result.stderr.decode()


# --------------------------------------------------------------------------------------------
# 9. Cetus's sample
# --------------------------------------------------------------------------------------------

CETUS_QUERY = ("SELECT month, region, category, customer_segment, sales_channel, product, "
               "round(sales, 2) AS sales, round(profit, 2) AS profit, quantity FROM sales")


def test_cetus_sample_same_answers_in_a_quarter_of_the_bytes(cube_env):
    env = cube_env("cetus")
    db = env.folder / "cetus.db"
    lookups_file = env.folder / "lookups.jsonl"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "cetus_layout.py"), "--db", str(db),
         "--emit-lookups", "100", "--lookups-file", str(lookups_file),
         "--out", str(env.folder / "cetus-out")],
        capture_output=True, timeout=120, check=True)
    summary = json.loads(result.stdout)
    env.write_config(source_toml(db, env.store, "cetus") + f"""
[[cubes]]
name = "cetus"
source = "cetus"
query = "{CETUS_QUERY}"
path = ["month", "region"]
file = ["category", "customer_segment", "sales_channel"]
body = ["product"]
metrics = [{{name = "sales", type = "decimal", scale = 2}}, {{name = "profit", type = "decimal", scale = 2}}, {{name = "quantity", type = "int64"}}]
""")
    build = env.build_ok("cetus")
    assert build.rows == summary["input_rows"]
    assert build.files == summary["files"]
    server = env.serve()
    client = Http(server)
    lookups = [json.loads(line) for line in lookups_file.read_text("utf-8").splitlines()]
    assert len(lookups) == 100
    empty = 0
    for lookup in lookups:
        path, file = lookup["path"], lookup["file"]
        target = lookup_target("cetus", [path["Month"], path["Region"]], {
            "category": file["Category"], "customer_segment": file["Customer Segment"],
            "sales_channel": file["Sales Channel"]})
        reply = client.request(target)
        cetus = json.loads(lookup["body"], parse_float=Decimal)
        if cetus == {}:
            assert_error(reply, 404, "no_data")
            empty += 1
            continue
        assert reply.status == 200, (target, reply.text)
        ours = reply.json()
        assert sorted(ours) == sorted(cetus), (target, ours, cetus)
        for product, (sales, profit, quantity) in cetus.items():
            record = ours[product]
            assert list(record) == ["sales", "profit", "quantity"]
            assert record["sales"] == sales and record["sales"].as_tuple().exponent == -2, (record, sales)
            assert record["profit"] == profit and record["profit"].as_tuple().exponent == -2
            assert type(record["quantity"]) is int and record["quantity"] == quantity
    assert 0 < empty < 100
    client.close()
    stored = sum(p.stat().st_size for p in (env.store / ".sluice" / "cubes").rglob("*") if p.is_file())
    print(f"\nSluice stores {stored} bytes, Cetus {summary['total_bytes_stored']} "
          f"({stored / summary['total_bytes_stored']:.3f})")
    assert stored * 4 <= summary["total_bytes_stored"], (stored, summary["total_bytes_stored"])


def test_incremental_builds_read_only_what_changed_query_names(cube_env):
    """With a changed_query, a build reads and writes only the path combinations it names and
    keeps the rest of the version (layout and dictionaries included); answers stay equal to the
    raw orders. A change that does not fit the layout (a status the dictionaries do not have)
    makes a full build; a changed_query that names nothing publishes nothing; --full ignores it."""
    env = cube_env("incremental")
    db = make_shop_db(env.folder / "shop.db")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE changes (country TEXT, month TEXT)")
    conn.close()
    changed = "SELECT DISTINCT country, month FROM changes"
    env.write_config(source_toml(db, env.store) + sales_cube(refresh_ms=50,
                                                             extra=f'changed_query = "{changed}"'))
    first = env.build_ok("sales")
    assert not first.incremental and first.written == first.files

    nothing = env.build("sales")
    assert nothing.returncode == 0, nothing.stderr
    assert b"changed_query names no change" in nothing.stdout, nothing.stdout
    assert env.pointer("sales")["version"] == first.version

    statuses = sales_statuses(expected_sales(db))
    with sqlite3.connect(db) as conn:  # FR 2026-02 changes, and DE 2026-01 is named but the same
        conn.execute("UPDATE orders SET total_cents = total_cents + 7 WHERE country = 'FR' "
                     "AND month = '2026-02' AND total_cents > 0")
        conn.execute("INSERT INTO changes VALUES ('FR', '2026-02'), ('DE', '2026-01')")
    conn.close()
    second = env.build_ok("sales")
    assert second.incremental, second.line
    fr_rows = sum(1 for (c, m, _s, _d) in expected_sales(db) if (c, m) == ("FR", "2026-02"))
    de_rows = sum(1 for (c, m, _s, _d) in expected_sales(db) if (c, m) == ("DE", "2026-01"))
    assert second.rows == fr_rows + de_rows, second.line  # only the named combinations were read
    assert (second.written, second.files) == (1, first.files), second.line
    manifest = env.manifest("sales", second.version)
    assert manifest["schema"] == env.manifest("sales", first.version)["schema"]
    env.assert_version_complete("sales", second.version)

    server = env.serve()
    wait_serving(server, "sales", second.version)
    client = Http(server)
    expected = expected_sales(db)
    for country, month in (("FR", "2026-02"), ("DE", "2026-01"), ("FR", "2026-01")):
        for status in statuses:
            reply = client.request(lookup_target("sales", [country, month],
                                                 {"status": status, "day": f"{DAYS[0]}..{DAYS[15]}"}))
            assert reply.status == 200, reply.text
            body = reply.json()
            for day in DAYS[:16]:
                assert_record(body[day], expected.get((country, month, status, day)),
                              f"{country} {month} {status} {day}")

    with sqlite3.connect(db) as conn:  # a status no version has seen: does not fit, full build
        conn.execute("UPDATE orders SET status = 'lost' WHERE id = (SELECT min(id) FROM orders "
                     "WHERE country = 'FR' AND month = '2026-02')")
    conn.close()
    third = env.build_ok("sales")
    assert not third.incremental and third.rows == len(expected_sales(db)), third.line
    assert "lost" in env.manifest("sales", third.version)["schema"]["file"][0]["values"]

    full = env.build("sales", "--full")
    assert full.returncode == 0 and b"(incremental)" not in full.stdout, full.stdout
    client.close()


def _wait_job(server, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        reply = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10)
        job = reply.json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_a_build_runs_as_a_background_job(cube_env):
    """POST /v1/cubes/NAME/builds (or POST /v1/jobs {"cube": NAME}) queues a build that a worker
    runs: the job's result names the version it published, which the cube then serves; a build
    that fails on the data fails the job at once (not retried); bad submissions are 4xx."""
    env = cube_env("as_job")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + sales_cube(refresh_ms=50))
    server = env.serve()
    assert_error(Http(server).request("/v1/cubes/sales/DE/2026-01?status=paid&day=2026-01-01"), 404,
                 "cube_not_built")

    reply = requests.post(f"{server.url}/v1/cubes/sales/builds", timeout=10)
    assert reply.status_code == 202, reply.text
    job = _wait_job(server, reply.json()["id"])
    assert job["state"] == "succeeded", job
    assert job["dataset"] == "cube:sales" and job["request"] == {"cube": "sales", "full": False}
    version = job["result"]["version"]
    assert version == env.pointer("sales")["version"]
    assert job["result"]["rows"] == len(expected_sales(db)) and job["result"]["url"] == "/v1/cubes/sales"
    wait_serving(server, "sales", version)
    assert requests.get(f"{server.url}/v1/jobs/{job['id']}/result", timeout=10).status_code == 409
    listed = requests.get(f"{server.url}/v1/jobs", params={"dataset": "cube:sales"}, timeout=10).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]

    reply = requests.post(f"{server.url}/v1/jobs", json={"cube": "sales", "full": True, "priority": 5},
                          timeout=10)
    assert reply.status_code == 202, reply.text
    second = _wait_job(server, reply.json()["id"])
    assert second["state"] == "succeeded" and second["result"]["version"] != version, second

    for body, status, code in (({"cube": "nope"}, 404, "unknown_cube"),
                               ({"cube": "sales", "format": "csv"}, 400, "invalid_field"),
                               ({"cube": ""}, 400, "invalid_field"),
                               ({"dataset": "x", "full": True}, 400, "invalid_field")):
        reply = requests.post(f"{server.url}/v1/jobs", json=body, timeout=10)
        assert reply.status_code == status and reply.json()["error"]["code"] == code, (body, reply.text)
    reply = requests.post(f"{server.url}/v1/cubes/sales/builds", data="[1]", timeout=10)
    assert reply.status_code == 400

    with sqlite3.connect(db) as conn:  # rows the build refuses (one cell twice, sums past 18 digits)
        conn.execute("CREATE TABLE dup AS SELECT * FROM orders")
    conn.close()
    env.write_config(source_toml(db, env.store) + sales_cube(
        refresh_ms=50, query=SALES_QUERY.replace("FROM orders GROUP BY country, month, status, day",
                                                 "FROM (SELECT * FROM orders UNION ALL SELECT * FROM dup) "
                                                 "GROUP BY country, month, status, day, id")))
    stop_all(env.servers)
    server = env.serve()
    reply = requests.post(f"{server.url}/v1/cubes/sales/builds", timeout=10)
    failed = _wait_job(server, reply.json()["id"])
    assert failed["state"] == "failed" and failed["attempt"] == 1, failed
    assert failed["error"]["code"] == "cube_build_failed", failed
    assert failed["error"]["message"].startswith('cube "sales": row '), failed
    assert env.pointer("sales")["version"] == second["result"]["version"]


def test_incremental_builds_fall_back_to_full_when_the_layout_cannot_hold_the_change(cube_env):
    """From the review: a record fuller than the current layout's slots, a config whose metrics
    changed order, and a query ending in ';' (which cannot be a subquery) each make a full build,
    and every answer stays equal to the data."""
    env = cube_env("fallback")
    db = env.folder / "body.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (country TEXT, k TEXT, p TEXT, amount INTEGER, q INTEGER)")
        conn.execute("CREATE TABLE changes (country TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                         [("DE", "a", "x", 3, 1), ("DE", "b", "y", 4, 2), ("FR", "a", "y", 5, 3)])
    conn.close()

    def config(metrics: str, query: str = "SELECT country, k, p, amount, q FROM t;") -> None:
        env.write_config(source_toml(db, env.store) + f"""
[[cubes]]
name = "c"
source = "shop"
query = "{query}"
changed_query = "SELECT DISTINCT country FROM changes"
path = ["country"]
file = ["k"]
body = ["p"]
metrics = [{metrics}]
refresh_ms = 50
keep_versions_s = 1
""")

    def answers() -> dict:
        server = env.serve()
        client = Http(server)
        out = {}
        for country in ("DE", "FR"):
            for k in ("a", "b"):
                reply = client.request(f"/v1/cubes/c/{country}?k={k}")
                assert reply.status in (200, 404), reply.text
                out[(country, k)] = reply.json() if reply.status == 200 else None
        client.close()
        stop_all([server])
        return out

    amount_q = '{name = "amount", type = "int64"}, {name = "q", type = "int64"}'
    config(amount_q)
    assert not env.build_ok("c").incremental
    with sqlite3.connect(db) as conn:  # DE/a gets a second body key: 2 entries, the layout holds 1
        conn.execute("INSERT INTO t VALUES ('DE', 'a', 'y', 6, 4)")
        conn.execute("INSERT INTO changes VALUES ('DE')")
    conn.close()
    fuller = env.build_ok("c")
    assert not fuller.incremental, fuller.line
    assert answers() == {("DE", "a"): {"x": {"amount": 3, "q": 1}, "y": {"amount": 6, "q": 4}},
                         ("DE", "b"): {"y": {"amount": 4, "q": 2}},
                         ("FR", "a"): {"y": {"amount": 5, "q": 3}}, ("FR", "b"): None}

    config('{name = "q", type = "int64"}, {name = "amount", type = "int64"}')  # metrics swapped
    swapped = env.build_ok("c")
    assert not swapped.incremental, swapped.line
    assert answers()[("DE", "b")] == {"y": {"q": 2, "amount": 4}}

    with sqlite3.connect(db) as conn:  # a change that fits: incremental, despite the ';'
        conn.execute("UPDATE t SET amount = 5 WHERE country = 'DE' AND k = 'b'")  # within 3..6
    conn.close()
    fits = env.build_ok("c")
    assert fits.incremental and fits.written == 1, fits.line
    assert answers()[("DE", "b")] == {"y": {"q": 2, "amount": 5}}
    assert env.manifest("c", fits.version)["rows"] == 4


def test_one_build_of_a_cube_is_queued_at_a_time(cube_env):
    """While a build of a cube waits (no worker runs in this server), asking again answers that
    job; a full build is another request; once cancelled, a new build can be queued."""
    env = cube_env("one_build")
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(source_toml(db, env.store) + "[queue]\nworkers = 0\n" + sales_cube())
    server = env.serve()
    first = requests.post(f"{server.url}/v1/cubes/sales/builds", timeout=10)
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers, first.text
    again = requests.post(f"{server.url}/v1/jobs", json={"cube": "sales"}, timeout=10)
    assert again.status_code == 202 and again.headers.get("idempotent-replayed") == "true", again.headers
    assert again.json()["id"] == first.json()["id"]
    full = requests.post(f"{server.url}/v1/cubes/sales/builds", json={"full": True}, timeout=10)
    assert full.json()["id"] != first.json()["id"]
    assert requests.delete(f"{server.url}/v1/jobs/{first.json()['id']}", timeout=10).status_code == 200
    later = requests.post(f"{server.url}/v1/cubes/sales/builds", timeout=10)
    assert later.status_code == 202 and later.json()["id"] != first.json()["id"], later.text
