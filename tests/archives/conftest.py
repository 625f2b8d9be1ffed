"""Fixtures for the archive tests: one `sluice serve` over a local object store, real readers.

The session starts one server whose `[storage]` folder is a temporary directory; every test
writes its own objects under its own prefix and creates archives through the HTTP API. The
helpers (support/archives.py) check them with the real tools. Big inputs (> 4 GiB) are sparse
files made with truncate, so they cost no disk space.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from support.archives import Store, write_config
from support.metrics import wait_until
from support.server import SluiceServer, serve, stop_and_check


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Store:
    return Store(tmp_path_factory.mktemp("objects"))


@pytest.fixture(scope="session")
def server(store, tmp_path_factory) -> Iterator[SluiceServer]:
    base = tmp_path_factory.mktemp("server")
    srv = serve(write_config(base / "sluice.toml", store.root), base / "stderr.log")
    yield srv
    stop_and_check(srv, timeout=20)


@pytest.fixture
def idle(server) -> SluiceServer:
    """The shared server, once no archive of an earlier test is still running."""
    wait_until(lambda: server.metrics()["sluice_active_archives"] == 0, 10, "idle server")
    return server
