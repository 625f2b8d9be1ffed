"""Cubes stored in S3 (s3rver, a real S3 endpoint process): a build writes the version's files,
manifest and pointer into the bucket; each lookup is exactly one ranged GET of one record's
bytes (seen through a recording proxy); a rebuild switches readers; an endpoint that fails is a
503 with no-store, never a cacheable 404."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import requests

from support.s3 import BUCKET, FaultProxy, storage_config

CUBE = """
[sources.cells]
kind = "sqlite"
path = "{db}"

[[cubes]]
name = "sales"
source = "cells"
query = "SELECT country, month, status, day, orders, revenue FROM cells"
path = ["country", "month"]
file = ["status", {{name = "day", from = 1, to = 31}}]
metrics = [{{name = "orders", type = "int64"}}, {{name = "revenue", type = "decimal", scale = 2}}]
refresh_ms = 50
"""

STATUSES = ["open", "paid", "shipped"]


def make_cells(path, bump=0):
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS cells")
        db.execute("CREATE TABLE cells (country TEXT, month TEXT, status TEXT, day INTEGER, "
                   "orders INTEGER, revenue TEXT)")
        rows = []
        for c, country in enumerate(["DE", "FR"]):
            for m, month in enumerate(["2026-01", "2026-02"]):
                for s, status in enumerate(STATUSES):
                    for day in range(1, 32, 2):  # the even days have no data
                        orders = c * 1000 + m * 100 + s * 10 + day + bump
                        rows.append((country, month, status, day, orders, f"{orders}.{day:02d}"))
        db.executemany("INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.close()


def write_config(sluice, endpoint, db):
    path = sluice.tmp / "cubes.toml"
    path.write_text("[server]\nlisten = \"127.0.0.1:0\"\n" + storage_config(endpoint) + CUBE.format(db=db),
                    "utf-8")
    return path


def build(sluice, config):
    done = sluice.run("cube", "build", "sales", "--config", str(config))
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    line = done.stdout.decode()
    return re.search(r"published version (v[0-9a-f]{20})", line).group(1), line


def test_a_cube_in_s3_answers_each_lookup_with_one_ranged_get(s3, sluice):
    proxy = FaultProxy(s3.port)
    db = sluice.tmp / "cells.db"
    make_cells(db)
    config = write_config(sluice, proxy.endpoint, db)
    version, line = build(sluice, config)
    assert "4 files (4 written, 0 unchanged)" in line, line
    keys = s3.object_keys(".sluice/cubes/sales/")
    assert f".sluice/cubes/sales/{version}/manifest.json" in keys
    assert ".sluice/cubes/sales/current.json" in keys
    assert len([k for k in keys if k.endswith(".cube")]) == 4
    manifest = json.loads(s3.aws("s3", "cp", f"s3://{BUCKET}/.sluice/cubes/sales/{version}/manifest.json",
                                 "-").stdout)
    record_size = manifest["schema"]["record_size"]

    server = sluice.serve(config)
    with requests.Session() as http:
        proxy.requests.clear()
        for country, c in (("DE", 0), ("FR", 1)):
            for s, status in enumerate(STATUSES):
                for day in (1, 2, 31):
                    before = len(proxy.requests)
                    reply = http.get(f"{server.url}/v1/cubes/sales/{country}/2026-02",
                                     params={"status": status, "day": day}, timeout=10)
                    # (The refresh thread reads current.json every 50 ms beside the lookups.)
                    reads = [r for r in proxy.requests[before:] if r.target.endswith(".cube")]
                    assert [r.method for r in reads] == ["GET"], [(r.method, r.target) for r in reads]
                    ranges = [v for k, v in reads[0].headers if k.lower() == "range"]
                    assert ranges == [_range_of(manifest, country, s, day, record_size)], reads[0].headers
                    if day % 2 == 0:
                        assert reply.status_code == 404 and reply.json()["error"]["code"] == "no_data"
                        continue
                    assert reply.status_code == 200, reply.text
                    orders = c * 1000 + 100 + s * 10 + day
                    assert reply.text == f'{{"orders":{orders},"revenue":{orders}.{day:02d}}}'
                    assert reply.headers["cache-control"] == "public, max-age=300"
                    assert reply.headers["etag"].startswith(f'"{version}-')
        # A slice is one ranged GET of the records side by side.
        before = len(proxy.requests)
        reply = http.get(f"{server.url}/v1/cubes/sales/FR/2026-01",
                         params={"status": "shipped", "day": "1..31"}, timeout=10)
        assert reply.status_code == 200
        assert len([r for r in proxy.requests[before:] if r.target.endswith(".cube")]) == 1
        body = reply.json()
        assert len(body) == 31 and body["2"] is None and body["31"]["orders"] == 1000 + 20 + 31

        # A rebuild switches the readers to the new version.
        make_cells(db, bump=5)
        second, _ = build(sluice, config)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = http.get(f"{server.url}/v1/cubes/sales/DE/2026-01", params={"status": "open", "day": 3},
                             timeout=10)
            if reply.headers["etag"].startswith(f'"{second}-'):
                break
            time.sleep(0.05)
        assert reply.headers["etag"].startswith(f'"{second}-'), reply.headers
        assert reply.json()["orders"] == 3 + 5

        # The endpoint fails (SlowDown beyond the client's retries): 503, never cached.
        proxy.slow_down = 50
        reply = http.get(f"{server.url}/v1/cubes/sales/DE/2026-01", params={"status": "open", "day": 5},
                         timeout=30)
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "store_unavailable"
        assert reply.headers["cache-control"] == "no-store"
        proxy.slow_down = 0
        reply = http.get(f"{server.url}/v1/cubes/sales/DE/2026-01", params={"status": "open", "day": 5},
                         timeout=10)
        assert reply.status_code == 200 and reply.json()["orders"] == 5 + 5
    proxy.close()


def _range_of(manifest, country, status_position, day, record_size):
    entry = next(f for f in manifest["files"] if f["path"] == [country, "2026-02"])
    days = len(manifest["schema"]["file"][1]["values"])
    first = entry["data_offset"] + (status_position * days + (day - 1)) * record_size
    return f"bytes={first}-{first + record_size - 1}"
