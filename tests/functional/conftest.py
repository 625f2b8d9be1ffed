"""Fixtures for the functional tests: the real `sluice` binary, real clients, real sockets.

The session starts one `sluice demo` (2,000,000 generated orders in a temporary folder) and keeps
it running for every test that only needs the demo datasets. Tests that need their own settings
(shutdown grace, a fresh process whose RSS and counters are theirs alone) start a `sluice serve`
with a config written next to the test, pointing at the session demo's orders.db.

The expected data always comes straight from orders.db through Python's sqlite3 module
(support/demo.py). Run with Debian's Python (it has pytest and requests), alone or with the
other suites (see tests/conftest.py):

    /usr/bin/python3 -m pytest -q tests/functional
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from support.demo import (
    ORDERS_COLUMNS,
    ORDERS_QUERY,
    STARTUP_TIMEOUT_S,
    Demo,
    RowDigest,
    config_for,
    sqlite_connect,
    sqlite_digest,
)
from support.metrics import metrics, wait_until
from support.server import SluiceServer, stop_and_check


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Iterator[Demo]:
    """`sluice demo` with the default 2,000,000 rows, generated once per session, served."""
    base = tmp_path_factory.mktemp("sluice-demo")
    folder = base / "demo"
    server = SluiceServer(["demo", "--dir", str(folder), "--listen", "127.0.0.1:0"],
                          base / "demo-server.stderr.log", startup_timeout=STARTUP_TIMEOUT_S)
    db = folder / "orders.db"
    with sqlite_connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert rows == 2_000_000, f"the default demo has 2,000,000 orders, got {rows}"
    yield Demo(folder, db, folder / "sluice.toml", server, rows)
    stop_and_check(server)


@pytest.fixture
def server(demo) -> SluiceServer:
    """The shared demo server; checks that it is still alive and idle before each test."""
    demo.server.assert_alive()
    wait_until(lambda: metrics(demo.url)["sluice_active_streams"] == 0, timeout=10,
               message="streams of an earlier test are still running")
    return demo.server


@pytest.fixture
def start_server(demo, start_sluice) -> Callable[..., SluiceServer]:
    """Factory: start_server(server_section="shutdown_grace_ms = 500\\n", datasets="...") -> its
    own `sluice serve` on the demo database; `datasets` is TOML appended to the demo's."""

    def start(server_section: str = "", name: str = "custom", datasets: str = "") -> SluiceServer:
        return start_sluice(config_for(demo, server_section) + datasets, name=name, listen=None)

    return start


@pytest.fixture(scope="session")
def orders_digest(demo) -> RowDigest:
    """The digest of the whole orders table (canonical values, NULL kept apart from '')."""
    return sqlite_digest(demo.db, ORDERS_COLUMNS, ORDERS_QUERY)
