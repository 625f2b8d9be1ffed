"""Fixtures and helpers for the cube tests (`[[cubes]]`, `sluice cube build`, `/v1/cubes`).

Every environment (CubeEnv) is a folder of its own: the config, a local folder store, the
SQLite source when the test owns one, the servers' logs. `sluice cube build` and `sluice serve`
are the real binary ($SLUICE_BIN). The expected answers never come from the cube's own query:
they are aggregates computed here, with sqlite3 (or psycopg2 for PostgreSQL) over the raw rows.

    SLUICE_BIN=build/release/sluice /usr/bin/python3 -m pytest -q tests/cubes
"""

from __future__ import annotations

import http.client
import json
import random
import re
import sqlite3
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from support.metrics import wait_until
from support.server import SluiceServer, run_sluice, serve, stop_all

# --------------------------------------------------------------------------------------------
# `sluice cube build`
# --------------------------------------------------------------------------------------------

BUILD_LINE = re.compile(
    r"^cube (?P<cube>\S+): published version (?P<version>v[0-9a-f]{20})(?P<incremental> \(incremental\))?: "
    r"(?P<rows>\d+) rows in "
    r"[0-9.]+ s \([0-9.]+ rows/s; [^)]*\), (?P<cells>\d+) cells in (?P<files>\d+) files "
    r"\((?P<written>\d+) written, (?P<unchanged>\d+) unchanged\), (?P<bytes>\d+) bytes stored, "
    r"(?P<record_size>\d+) bytes per record(?:; deleted (?P<deleted>\d+) old version\(s\))?$")


@dataclass
class Build:
    cube: str
    version: str
    rows: int
    cells: int
    files: int
    written: int
    unchanged: int
    bytes_stored: int
    record_size: int
    deleted: int
    line: str
    incremental: bool = False

    @classmethod
    def parse(cls, line: str) -> "Build":
        match = BUILD_LINE.match(line)
        assert match, f"unexpected build line: {line!r}"
        g = match.groupdict()
        return cls(g["cube"], g["version"], int(g["rows"]), int(g["cells"]), int(g["files"]),
                   int(g["written"]), int(g["unchanged"]), int(g["bytes"]),
                   int(g["record_size"]), int(g["deleted"] or 0), line, bool(g["incremental"]))


class CubeEnv:
    """A folder with a config (sluice.toml unless told), a store (store/) and its servers."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = folder / "store"
        self.store.mkdir(exist_ok=True)
        self.config = folder / "sluice.toml"
        self.servers: list[SluiceServer] = []

    # -- config and builds ------------------------------------------------------------------

    def write_config(self, text: str, name: str = "sluice.toml") -> Path:
        path = self.folder / name
        path.write_text(text, "utf-8")
        return path

    def build(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess:
        return run_sluice("cube", "build", *args, "--config", str(config or self.config),
                          timeout=120)

    def build_ok(self, name: str, config: Path | None = None) -> Build:
        result = self.build(name, config=config)
        out = result.stdout.decode("utf-8", "replace")
        err = result.stderr.decode("utf-8", "replace")
        assert result.returncode == 0, f"cube build {name} exited {result.returncode}\n{out}\n{err}"
        lines = out.splitlines()
        assert len(lines) == 1, f"one line expected from cube build {name}: {out!r}"
        build = Build.parse(lines[0])
        assert build.cube == name
        return build

    def build_fails(self, name: str, config: Path | None = None) -> str:
        """The build must exit 1 with `sluice: cube "NAME": ...` and publish nothing; returns
        stderr."""
        result = self.build(name, config=config)
        out = result.stdout.decode("utf-8", "replace")
        err = result.stderr.decode("utf-8", "replace")
        assert result.returncode == 1, f"expected exit 1, got {result.returncode}\n{out}\n{err}"
        assert "published" not in out, out
        assert f'sluice: cube "{name}": ' in err, err
        return err

    # -- the store --------------------------------------------------------------------------

    def cube_dir(self, name: str) -> Path:
        return self.store / ".sluice" / "cubes" / name

    def pointer(self, name: str) -> dict:
        return json.loads((self.cube_dir(name) / "current.json").read_text("utf-8"))

    def manifest(self, name: str, version: str | None = None) -> dict:
        version = version or self.pointer(name)["version"]
        return json.loads((self.cube_dir(name) / version / "manifest.json").read_text("utf-8"))

    def version_dirs(self, name: str) -> list[str]:
        return sorted(p.name for p in self.cube_dir(name).iterdir() if p.is_dir())

    def files_of(self, name: str, version: str) -> list[str]:
        folder = self.cube_dir(name) / version
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def assert_version_complete(self, name: str, version: str) -> dict:
        """The version's manifest is there and every object it refers to exists with its size."""
        manifest = self.manifest(name, version)
        assert manifest["version"] == version
        for entry in manifest["files"]:
            path = self.store / entry["key"]
            assert path.is_file(), f"{entry['key']} of version {version} is missing"
            assert path.stat().st_size == entry["size"], entry
        return manifest

    # -- servers ----------------------------------------------------------------------------

    def serve(self, config: Path | None = None, name: str = "serve", **kwargs) -> SluiceServer:
        server = serve(config or self.config, self.folder / f"{name}-{len(self.servers)}.log",
                       "--listen", "127.0.0.1:0", **kwargs)
        self.servers.append(server)
        return server


@pytest.fixture
def cube_env(tmp_path) -> Iterator[Callable[..., CubeEnv]]:
    """Factory: cube_env(name="env", folder=None) -> a CubeEnv in the test's tmp folder (or in
    `folder`). Its servers are stopped at the end (SIGTERM, exit 0)."""
    envs: list[CubeEnv] = []

    def make(name: str = "env", folder: Path | None = None) -> CubeEnv:
        env = CubeEnv(folder or tmp_path / name)
        envs.append(env)
        return env

    yield make
    stop_all([server for env in envs for server in env.servers])


def served_version(server: SluiceServer, cube: str) -> str | None:
    return requests.get(f"{server.url}/v1/cubes/{cube}", timeout=10).json().get("version")


def wait_serving(server: SluiceServer, cube: str, version: str, timeout: float = 10.0) -> None:
    wait_until(lambda: served_version(server, cube) == version, timeout,
               f"{cube} served at version {version}")


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def lookup_target(cube: str, path: list[str] | tuple[str, ...], params: dict[str, str]) -> str:
    target = f"/v1/cubes/{quote(cube)}" + "".join("/" + quote(v) for v in path)
    if params:
        target += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    return target


@dataclass
class Reply:
    status: int
    headers: dict[str, str]                 # names in lower case
    header_list: list[tuple[str, str]]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):
        """The body with decimals kept exact (Decimal), keys in the order sent."""
        return json.loads(self.text, parse_float=Decimal)

    def header_count(self, name: str) -> int:
        return sum(1 for key, _ in self.header_list if key.lower() == name.lower())


class Http:
    """One keep-alive HTTP/1.1 connection (http.client): the target is sent as given."""

    def __init__(self, server: SluiceServer, timeout: float = 15.0):
        self.host, self.port, self.timeout = server.host, server.port, timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, target: str, headers: dict[str, str] | None = None,
                method: str = "GET") -> Reply:
        for attempt in range(2):
            try:
                self.conn.request(method, target, headers=headers or {})
                response = self.conn.getresponse()
                body = response.read()
                pairs = response.getheaders()
                return Reply(response.status, {k.lower(): v for k, v in pairs}, pairs, body)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def assert_error(reply: Reply, status: int, code: str, mentions: tuple[str, ...] = ()) -> dict:
    """A JSON error of this status and code, with the request id, naming `mentions`; never
    cacheable (no-store, no ETag) unless it is the cacheable no_data, whose body a CDN shares
    between clients and so carries no request id."""
    assert reply.status == status, f"expected {status} {code}, got {reply.status}: {reply.text[:400]}"
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    body = reply.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    if code == "no_data":
        assert "request_id" not in error, error
    else:
        assert error["request_id"] == reply.headers.get("x-request-id"), (error, reply.headers)
    for text in mentions:
        assert text in error["message"], f"{text!r} not named in {error['message']!r}"
    if code != "no_data":
        assert reply.headers.get("cache-control") == "no-store", reply.headers
        assert reply.header_count("cache-control") == 1, reply.header_list
        assert "etag" not in reply.headers, reply.headers
    return error


# --------------------------------------------------------------------------------------------
# Comparing records
# --------------------------------------------------------------------------------------------

def cents(value: int | None) -> Decimal | None:
    """An exact decimal of scale 2 from integer cents (0 is 0.00)."""
    return None if value is None else Decimal(value).scaleb(-2)


def price(value: float | None) -> Decimal | None:
    """A REAL with at most 2 decimals as the decimal of scale 2 it stands for (10.5 -> 10.50)."""
    return None if value is None else Decimal(repr(value)).quantize(Decimal("0.01"))


def assert_record(got, want: dict | None, where: str) -> None:
    """Sluice's record (parsed with Decimal floats) against the expected one: the metrics in
    their configured order; ints exact, decimals exact and with their scale in the text,
    floats to the last bit, texts exact, NULL as null. `want` None: no data (null)."""
    if want is None:
        assert got is None, f"{where}: expected no data, got {got}"
        return
    assert isinstance(got, dict), f"{where}: expected a record, got {got!r}"
    assert list(got) == list(want), f"{where}: metrics {list(got)} != {list(want)}"
    for name, expected in want.items():
        value = got[name]
        label = f"{where}: {name}"
        if expected is None:
            assert value is None, f"{label}: expected null, got {value!r}"
        elif isinstance(expected, Decimal):
            assert isinstance(value, Decimal), f"{label}: expected {expected}, got {value!r}"
            assert value == expected, f"{label}: expected {expected}, got {value}"
            assert value.as_tuple().exponent == expected.as_tuple().exponent, (
                f"{label}: {value} does not show the scale of {expected}")
        elif isinstance(expected, float):
            assert isinstance(value, (Decimal, int)) and not isinstance(value, bool), (
                f"{label}: expected {expected!r}, got {value!r}")
            assert float(value) == expected, f"{label}: expected {expected!r}, got {value}"
        elif isinstance(expected, int):
            assert type(value) is int, f"{label}: expected the integer {expected}, got {value!r}"
            assert value == expected, f"{label}: expected {expected}, got {value}"
        else:
            assert value == expected, f"{label}: expected {expected!r}, got {value!r}"


def assert_body_record(got, want: dict | None, where: str, levels: int = 1) -> None:
    """A record with `levels` body dimensions: {body value: ... record} nested, holding only
    the keys present."""
    if want is None:
        assert got is None, f"{where}: expected no data, got {got}"
        return
    assert isinstance(got, dict), f"{where}: expected a map, got {got!r}"
    assert sorted(got) == sorted(want), f"{where}: body keys {sorted(got)} != {sorted(want)}"
    for key, inner in want.items():
        if levels == 1:
            assert_record(got[key], inner, f"{where} [{key}]")
        else:
            assert_body_record(got[key], inner, f"{where} [{key}]", levels - 1)


# --------------------------------------------------------------------------------------------
# The shop: generated orders in SQLite
# --------------------------------------------------------------------------------------------

COUNTRIES = ["DE", "FR", "US", "New Zealand", "São Tomé", "Bosnia/Herz"]
MONTHS = ["2026-01", "2026-02", "2026-03"]
STATUSES = ["paid", "open", "refunded", "cancelled", "on hold", "pending..review"]
PRODUCTS = ["Laptop", "Tablet", "Phone", "Über-Kabel", 'Cable "HD"\\']
NOTES = [None, "plain", 'say "hi"', "back\\slash", "tab\there", "ünïcödé ✓", "ctl\x01end", "",
         "zz top", "line\nbreak"]
DAYS = [f"2026-01-{d:02d}" for d in range(1, 32)]
HOURS = list(range(0, 23, 2))
# (country, month) pairs with no orders: no file, though each value exists on its own.
ABSENT = {("New Zealand", "2026-01"), ("New Zealand", "2026-02"), ("Bosnia/Herz", "2026-02")}
# Days no order has (empty cells in every file); day 31 and hour 22 hold only the edge rows.
EMPTY_DAYS = {"2026-01-02", "2026-01-09", "2026-01-16", "2026-01-23", "2026-01-30"}
RANDOM_DAYS = [d for d in DAYS if d not in EMPTY_DAYS and d != "2026-01-31"]
RANDOM_HOURS = HOURS[:-1]
SHOP_ROWS = 4000
MAX_CENTS = 999_999_999_999_999_999  # 9999999999999999.99, the largest decimal(18, 2)

# Orders on day 31 / hour 22, each cell of its own: the edge values of the metrics.
EDGE_ROWS = [
    # country, month, status, day, product, hour, total_cents, qty, note, price
    ("US", "2026-03", "refunded", "2026-01-31", "Laptop", 22, MAX_CENTS, 3, "exactly 16 bytes", 10.5),
    ("FR", "2026-01", "paid", "2026-01-31", "Tablet", 22, -MAX_CENTS, 4, "min", 0.01),
    ("DE", "2026-02", "open", "2026-01-31", "Phone", 22, 1234, None, None, 99.9),
    ("DE", "2026-02", "open", "2026-01-31", "Laptop", 22, -1234, None, None, 0.0),
    ("DE", "2026-03", "open", "2026-01-31", "Tablet", 22, -5, 1, "tiny", 0.1),
    ("FR", "2026-02", "cancelled", "2026-01-31", "Phone", 22, None, None, None, None),
    ("DE", "2026-01", "paid", "2026-01-31", "Über-Kabel", 22, 1050, 7, "ten fifty", 10.5),
    ("São Tomé", "2026-02", "on hold", "2026-01-31", "Laptop", 22, 0, 2, "", 1000.0),
]

SHOP_SCHEMA = """
CREATE TABLE orders (
  id INTEGER PRIMARY KEY, country TEXT, month TEXT, status TEXT, day TEXT, product TEXT,
  hour INTEGER, total_cents INTEGER, qty INTEGER, note TEXT, price REAL)
"""


def shop_rows(seed: int = 7) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    pairs = [(c, m) for c in COUNTRIES for m in MONTHS if (c, m) not in ABSENT]
    for i in range(1, SHOP_ROWS + 1):
        country, month = rng.choice(pairs)
        roll = rng.random()
        total = None if roll < 0.1 else 0 if roll < 0.2 else rng.randint(-50_000, 500_000)
        qty = None if rng.random() < 0.05 else rng.randint(1, 20)
        rows.append((i, country, month, rng.choice(STATUSES), rng.choice(RANDOM_DAYS),
                     rng.choice(PRODUCTS), rng.choice(RANDOM_HOURS), total, qty,
                     rng.choice(NOTES), round(rng.uniform(0, 999.99), 2)))
    for j, edge in enumerate(EDGE_ROWS):
        rows.append((SHOP_ROWS + 1 + j, *edge))
    return rows


def make_shop_db(path: Path, seed: int = 7) -> Path:
    with sqlite3.connect(path) as db:
        db.execute(SHOP_SCHEMA)
        db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?)", shop_rows(seed))
    db.close()
    return path


def source_toml(db: Path, store: Path, name: str = "shop") -> str:
    return (f'[sources.{name}]\nkind = "sqlite"\npath = "{db}"\n\n'
            f'[storage]\npath = "{store}"\n\n')


# The cube of the brief: one file per (country, month), a record per (status, day).
# SQLite has no exact decimal: the cents are summed as integers and handed over as the exact
# text "<cents>e-2"; `top_price` is a REAL with 2 decimals (10.5 must come out as 10.50).
SALES_QUERY = ("SELECT country, month, status, day, count(*) AS orders, "
               "sum(total_cents) || 'e-2' AS revenue, max(note) AS note, avg(qty) AS ratio, "
               "max(price) AS top_price FROM orders GROUP BY country, month, status, day")
SALES_METRICS = ['{name = "orders", type = "int64"}',
                 '{name = "revenue", type = "decimal", scale = 2}',
                 '{name = "note", type = "text", max_length = 16}',
                 '{name = "ratio", type = "float64"}',
                 '{name = "top_price", type = "decimal", scale = 2}']
SALES_MAX_SLICE = 16


def sales_cube(name: str = "sales", source: str = "shop", query: str = SALES_QUERY,
               extra: str = "", max_age_s: int = 300, keep_versions_s: int = 600,
               refresh_ms: int = 1000) -> str:
    escaped = query.replace("\\", "\\\\").replace('"', '\\"')
    return f"""
[[cubes]]
name = "{name}"
source = "{source}"
query = "{escaped}"
path = ["country", "month"]
file = ["status", {{name = "day", from = "2026-01-01", to = "2026-01-31", step = "day"}}]
metrics = [{", ".join(SALES_METRICS)}]
max_age_s = {max_age_s}
keep_versions_s = {keep_versions_s}
refresh_ms = {refresh_ms}
max_slice = {SALES_MAX_SLICE}
{extra}
"""


# With a body: a record per (declared status, hour), a map keyed by product in each.
BY_PRODUCT_QUERY = ("SELECT country, month, status, hour, product, count(*) AS orders, "
                    "sum(total_cents) || 'e-2' AS revenue, max(qty) AS max_qty FROM orders "
                    "GROUP BY country, month, status, hour, product")
DECLARED_STATUSES = ["paid", "open", "on hold", "refunded", "cancelled", "pending..review"]  # not sorted
BY_PRODUCT_MAX_SLICE = 12


def by_product_cube(name: str = "by_product") -> str:
    statuses = ", ".join(f'"{s}"' for s in DECLARED_STATUSES)
    return f"""
[[cubes]]
name = "{name}"
source = "shop"
query = "{BY_PRODUCT_QUERY}"
path = ["country", "month"]
file = [{{name = "status", values = [{statuses}]}}, {{name = "hour", from = 0, to = 22, step = 2}}]
body = ["product"]
metrics = [{{name = "orders", type = "int64"}}, {{name = "revenue", type = "decimal", scale = 2}}, {{name = "max_qty", type = "int64"}}]
max_age_s = 60
max_slice = {BY_PRODUCT_MAX_SLICE}
"""


# Two body dimensions: nested maps {product: {hour: record}}, only the keys present.
NESTED_QUERY = ("SELECT country, month, status, day, product, hour, count(*) AS orders, "
                "sum(total_cents) || 'e-2' AS revenue FROM orders "
                "GROUP BY country, month, status, day, product, hour")


def nested_cube(name: str = "nested") -> str:
    return f"""
[[cubes]]
name = "{name}"
source = "shop"
query = "{NESTED_QUERY}"
path = ["country", "month"]
file = ["status", {{name = "day", from = "2026-01-01", to = "2026-01-31", step = "day"}}]
body = ["product", "hour"]
metrics = [{{name = "orders", type = "int64"}}, {{name = "revenue", type = "decimal", scale = 2}}]
max_slice = 31
"""


def expected_nested(db: Path) -> dict[tuple[str, str, str, str], dict[str, dict[str, dict]]]:
    """Per cell (country, month, status, day): {product: {hour: record}}."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT country, month, status, day, product, CAST(hour AS TEXT), count(id), "
            "sum(total_cents) FROM orders GROUP BY hour, product, day, status, month, country"
        ).fetchall()
    out: dict = {}
    for country, month, status, day, product, hour, n, cents_sum in rows:
        out.setdefault((country, month, status, day), {}).setdefault(product, {})[hour] = {
            "orders": n, "revenue": cents(cents_sum)}
    return out


# A body with thousands of keys and few per record (the record lists its orders by id).
BY_ID_QUERY = ("SELECT country, month, status, day, id, total_cents || 'e-2' AS revenue, "
               "note FROM orders")


def by_id_cube(name: str = "by_id") -> str:
    return f"""
[[cubes]]
name = "{name}"
source = "shop"
query = "{BY_ID_QUERY}"
path = ["country", "month"]
file = ["status", {{name = "day", from = "2026-01-01", to = "2026-01-31", step = "day"}}]
body = ["id"]
metrics = [{{name = "revenue", type = "decimal", scale = 2}}, {{name = "note", type = "text", max_length = 16}}]
max_slice = 31
"""


def expected_by_id(db: Path) -> dict[tuple[str, str, str, str], dict[str, dict]]:
    """Per cell (country, month, status, day): {order id: record}."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT country, month, status, day, CAST(id AS TEXT), total_cents, "
                            "note FROM orders").fetchall()
    out: dict = {}
    for country, month, status, day, oid, total, note in rows:
        out.setdefault((country, month, status, day), {})[oid] = {"revenue": cents(total), "note": note}
    return out


def expected_sales(db: Path) -> dict[tuple[str, str, str, str], dict]:
    """Per cell (country, month, status, day): the record, from the raw orders (sum and count
    instead of avg, integer cents, Python's own rounding)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT country, month, status, day, count(id), sum(total_cents), max(note), "
            "sum(qty), count(qty), max(price) FROM orders GROUP BY day, status, month, country"
        ).fetchall()
    out = {}
    for country, month, status, day, n, cents_sum, note, qty_sum, qty_n, top in rows:
        out[(country, month, status, day)] = {
            "orders": n,
            "revenue": cents(cents_sum),
            "note": note,
            "ratio": qty_sum / qty_n if qty_n else None,
            "top_price": price(top),
        }
    return out


def expected_by_product(db: Path) -> dict[tuple[str, str, str, str], dict[str, dict]]:
    """Per cell (country, month, status, hour): {product: record}."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT country, month, status, CAST(hour AS TEXT), product, count(id), "
            "sum(total_cents), max(qty) FROM orders GROUP BY product, hour, status, month, country"
        ).fetchall()
    out: dict[tuple[str, str, str, str], dict[str, dict]] = {}
    for country, month, status, hour, product, n, cents_sum, max_qty in rows:
        out.setdefault((country, month, status, hour), {})[product] = {
            "orders": n, "revenue": cents(cents_sum), "max_qty": max_qty}
    return out


@dataclass
class Shop:
    """The module's read-only shop: its env, built cubes and one server."""
    env: CubeEnv
    db: Path
    server: SluiceServer
    builds: dict[str, Build] = field(default_factory=dict)


def shop_config(db: Path, store: Path) -> str:
    later = sales_cube(name="later")  # configured, never built
    return (source_toml(db, store) + sales_cube() + by_product_cube() + nested_cube() + by_id_cube()
            + later)


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Iterator[Shop]:
    """The shop database, cubes `sales`, `by_product`, `nested` and `by_id` built (`later` is
    not), one server."""
    env = CubeEnv(tmp_path_factory.mktemp("cubes-shop"))
    db = make_shop_db(env.folder / "shop.db")
    env.write_config(shop_config(db, env.store))
    builds = {name: env.build_ok(name) for name in ("sales", "by_product", "nested", "by_id")}
    server = env.serve()
    try:
        yield Shop(env, db, server, builds)
    finally:
        stop_all([server])

