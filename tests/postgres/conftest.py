"""Fixtures for the PostgreSQL tests: a private PostgreSQL 15 cluster, the real `sluice`
binary, real clients and sockets.

The session starts one throw-away cluster (support/pg.py) when the first test needs it, loads
the test data once and stops the cluster at the end of the session, whatever happened. Tests
may stop it (immediate mode) and start it again on the same port and folder.

Every test starts its own `sluice serve` with its own config (the `start_sluice` fixture of
tests/conftest.py). The expected data always comes from `psql` on the unix socket, with the
session settings Sluice uses, so PostgreSQL's own text output is the baseline. Run with
Debian's Python, alone or with the other suites (see tests/conftest.py):

    /usr/bin/python3 -m pytest -q tests/postgres
"""

from __future__ import annotations

from typing import Iterator

import pytest

from support.csv import CsvTable, parse_csv
from support.pg import ALL_TYPES_QUERY, BIG_QUERY, BigBaseline, PgCluster, loaded_cluster, \
    standard_config
from support.server import SluiceServer


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """The session's private cluster with the test data loaded (all_types, t, big)."""
    with loaded_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_up(pg) -> PgCluster:
    """The session cluster, started again if an earlier test left it stopped."""
    if not pg.running:
        pg.restart()
    return pg


@pytest.fixture(scope="session")
def all_types_baseline(pg) -> CsvTable:
    """psql's CSV of all_types, parsed: header and rows with None for NULL."""
    return parse_csv(pg.copy_csv(ALL_TYPES_QUERY), line_end=b"\n")


@pytest.fixture(scope="session")
def big_baseline(pg) -> BigBaseline:
    """psql's CSV of the whole big table, with an index of where each id's line starts."""
    return BigBaseline.from_csv(pg.copy_csv(BIG_QUERY))


@pytest.fixture
def sluice(pg_up, start_sluice) -> SluiceServer:
    """A Sluice with the standard datasets (types, big, endless) on the session cluster."""
    return start_sluice(standard_config(pg_up))
