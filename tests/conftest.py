"""Fixtures shared by every functional suite (tests/functional, tests/postgres, tests/archives),
which run in one pytest session:

    /usr/bin/python3 -m pytest -q tests

The binary is $SLUICE_BIN, by default build/release/sluice. The helpers are in tests/support
(`from support.http import raw_get`); each suite's own fixtures are in its conftest.py. Each
server's stderr is kept in the test's tmp folder (pytest prints the path on failures).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import pytest

from support.server import SluiceServer, serve, stop_all


@pytest.fixture
def start_sluice(tmp_path) -> Iterator[Callable[..., SluiceServer]]:
    """Factory: start_sluice(config_text, name="sluice", listen="127.0.0.1:0") -> a `sluice serve`
    with that config (written to the test's tmp folder), on `--listen` unless listen is None
    (then the config's own). Every server is stopped at the end of the test: SIGTERM, and it
    must exit 0 in time."""
    started: list[SluiceServer] = []

    def start(config_text: str, name: str = "sluice",
              listen: str | None = "127.0.0.1:0") -> SluiceServer:
        config = tmp_path / f"{name}.toml"
        config.write_text(config_text, "utf-8")
        args = ["--listen", listen] if listen else []
        server = serve(config, tmp_path / f"{name}.stderr.log", *args)
        started.append(server)
        return server

    yield start
    stop_all(started)


def pytest_collection_modifyitems(config, items) -> None:
    """scripts/test.sh runs a named subset of the files against the AddressSanitizer binary first,
    then everything against the release binary. $SLUICE_ALREADY_RAN_SANITIZED lists those files
    (space-separated, relative to the repository): their tests are not run a second time, except
    the ones marked `release_rss`, whose RSS checks mean nothing under ASan (they skip them
    there) and so must run against the release binary."""
    already = set(os.environ.get("SLUICE_ALREADY_RAN_SANITIZED", "").split())
    if not already:
        return
    root = config.rootpath
    keep, skip = [], []
    for item in items:
        ran = str(item.path.relative_to(root)) in already
        (skip if ran and item.get_closest_marker("release_rss") is None else keep).append(item)
    if skip:
        config.hook.pytest_deselected(items=skip)
        items[:] = keep
