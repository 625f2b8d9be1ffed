"""The `sluice demo` orders database as the source of truth for tests/functional: the expected
data always comes straight from orders.db through Python's sqlite3 module."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .csv import csv_rows_with_nulls
from .server import SluiceServer

STARTUP_TIMEOUT_S = 180.0  # the session demo generates 2,000,000 rows first

# The demo's orders columns, in order, and how a value of each is normalised for comparison.
ORDERS_COLUMNS = ["id", "created_at", "email", "country", "status", "amount", "quantity", "note"]
ORDERS_QUERY = (
    "SELECT id, created_at, email, country, status, amount, quantity, note FROM orders"
)
INT_COLUMNS = {"id", "quantity"}
NUMBER_COLUMNS = {"amount"}


@dataclass
class Demo:
    dir: Path
    db: Path
    config: Path
    server: SluiceServer
    rows: int

    @property
    def url(self) -> str:
        return self.server.url


def config_for(demo: Demo, server_section: str = "") -> str:
    """The demo's config with our own [server] section, its source path made absolute."""
    text = demo.config.read_text("utf-8")
    rest = text[text.index("[sources.demo]"):]
    rest = rest.replace('path = "orders.db"', f'path = "{demo.db}"', 1)
    assert str(demo.db) in rest
    # Other relative paths (the object store) are made absolute too.
    rest = rest.replace('path = "objects"', f'path = "{demo.db.parent / "objects"}"', 1)
    return "[server]\nlisten = \"127.0.0.1:0\"\n" + server_section + "\n" + rest


# --------------------------------------------------------------------------------------------
# orders.db through sqlite3
# --------------------------------------------------------------------------------------------

def sqlite_connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def canonical_value(column: str, value):
    """One value in a form that server output and sqlite3 results share.

    NULL stays None and '' stays ''. Numbers compare by value: SQLite hands out REAL amounts
    (and the 1% of whole amounts it stores as INTEGER); the server prints them as text."""
    if value is None:
        return None
    if column in INT_COLUMNS:
        return int(value)
    if column in NUMBER_COLUMNS:
        return repr(float(value))
    return value


def canonical_row(columns: list[str], row) -> tuple:
    if columns == ORDERS_COLUMNS:
        return canonical_orders_row(row)
    return tuple(canonical_value(c, v) for c, v in zip(columns, row))


def canonical_orders_row(r) -> tuple:
    """canonical_row for the full orders column list, unrolled (2,000,000 rows per export)."""
    return (int(r[0]), r[1], r[2], r[3], r[4], None if r[5] is None else repr(float(r[5])),
            int(r[6]), r[7])


class RowDigest:
    """Order-independent digest of a multiset of rows: count plus a sum of row hashes."""

    MOD = 1 << 64

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def add(self, row: tuple) -> None:
        # hash() of a tuple of str/int/None is fast and stable within one process, which is
        # where both sides of a comparison are computed.
        self.total = (self.total + hash(row)) % self.MOD
        self.count += 1

    def add_all(self, rows: Iterable[tuple]) -> "RowDigest":
        total = self.total
        count = 0
        for row in rows:
            total += hash(row)
            count += 1
        self.total = total % self.MOD
        self.count += count
        return self

    def __eq__(self, other) -> bool:
        return (self.count, self.total) == (other.count, other.total)

    def __repr__(self) -> str:
        return f"RowDigest(count={self.count}, sum={self.total:016x})"


def sqlite_rows(db: Path, sql: str, params: Iterable = ()) -> list[tuple]:
    with sqlite_connect(db) as conn:
        return conn.execute(sql, tuple(params)).fetchall()


def sqlite_digest(db: Path, columns: list[str], sql: str, params: Iterable = ()) -> RowDigest:
    with sqlite_connect(db) as conn:
        cursor = conn.execute(sql, tuple(params))
        return RowDigest().add_all(canonical_row(columns, row) for row in cursor)


def assert_rows_of_the_table(db: Path, rows: list[tuple], count: int, where: str = "1 = 1",
                             params: Iterable = (), columns: list[str] = ORDERS_COLUMNS) -> None:
    """`rows` (canonical, as parse_csv_table / parse_jsonl_table give them) are `count` distinct
    rows of `SELECT columns FROM orders WHERE where`, each equal to the table's row with its id
    (read with sqlite3). For exports whose rows are the source's choice (a limit, no order)."""
    assert len(rows) == count, f"{len(rows)} rows, expected {count}"
    position = columns.index("id")
    ids = [row[position] for row in rows]
    assert len(set(ids)) == len(ids), "an id came twice"
    found: list[tuple] = []
    with sqlite_connect(db) as conn:
        for start in range(0, len(ids), 30000):
            part = ids[start:start + 30000]
            found += conn.execute(
                f"SELECT {', '.join(columns)} FROM orders WHERE ({where}) AND id IN "
                f"({', '.join('?' for _ in part)})", (*params, *part)).fetchall()
    by_id = lambda row: row[position]  # noqa: E731 - ids are unique: no None is compared
    expected = sorted((canonical_row(columns, r) for r in found), key=by_id)
    assert len(expected) == len(rows), (
        f"{len(rows) - len(expected)} exported ids are not rows of the selection")
    assert sorted(rows, key=by_id) == expected, "exported rows differ from the table's"


# --------------------------------------------------------------------------------------------
# Server output as canonical rows
# --------------------------------------------------------------------------------------------

def parse_csv_table(text: str, columns: list[str] | None = None) -> tuple[list[str], list[tuple]]:
    """(header, canonical rows) of a whole CSV body."""
    rows_iter = csv_rows_with_nulls(text)
    header = next(rows_iter)
    assert all(h is not None for h in header)
    names = columns or header
    return header, [canonical_row(names, row) for row in rows_iter]


def parse_jsonl_table(text: str) -> tuple[list[str], list[tuple]]:
    assert text == "" or text.endswith("\n"), "JSON Lines body does not end with a newline"
    keys: list[str] | None = None
    rows = []
    for line in text.split("\n")[:-1]:
        obj = json.loads(line)
        assert isinstance(obj, dict)
        if keys is None:
            keys = list(obj)
        assert list(obj) == keys, f"keys differ between lines: {list(obj)} vs {keys}"
        rows.append(canonical_row(keys, [obj[k] for k in keys]))
    return keys or [], rows
