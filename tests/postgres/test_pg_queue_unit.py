"""The PostgreSQL job queue's unit tests (src/queue/pg_job_queue_test.cpp, GoogleTest) on the
session's private cluster: they skip themselves unless SLUICE_TEST_PG_URL names a database, so
this runs the unit-test binary with one, in a database of its own, and checks that they ran.

The binary is $SLUICE_TESTS_BIN, by default `sluice_tests` beside $SLUICE_BIN (build/release).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from support.server import SLUICE_BIN

SLUICE_TESTS_BIN = Path(os.environ.get("SLUICE_TESTS_BIN", SLUICE_BIN.parent / "sluice_tests"))
QUEUE_DB = "sluice_queue_unit"


def unit_test_binary() -> str:
    assert SLUICE_TESTS_BIN.is_file() and os.access(SLUICE_TESTS_BIN, os.X_OK), (
        f"unit-test binary not found at {SLUICE_TESTS_BIN}: build it with "
        "`cmake --preset release && ninja -C build/release sluice_tests` or set SLUICE_TESTS_BIN")
    return str(SLUICE_TESTS_BIN)


@pytest.fixture
def queue_db(pg_up) -> str:
    """A fresh database for the queue tests (each test makes a schema of its own in it)."""
    pg_up.psql(f"DROP DATABASE IF EXISTS {QUEUE_DB} WITH (FORCE)", dbname="postgres")
    pg_up.psql(f"CREATE DATABASE {QUEUE_DB}", dbname="postgres")
    yield QUEUE_DB
    pg_up.psql(f"DROP DATABASE IF EXISTS {QUEUE_DB} WITH (FORCE)", dbname="postgres")


@pytest.mark.parametrize("address", ["unix_conninfo", "tcp_url"])
def test_pg_job_queue_unit_tests_pass_on_postgres(pg_up, queue_db, address):
    url = pg_up.conninfo(queue_db) if address == "unix_conninfo" else pg_up.tcp_url(queue_db)
    env = dict(os.environ, SLUICE_TEST_PG_URL=url)
    argv = [unit_test_binary(), "--gtest_filter=PgJobQueue*", "--gtest_color=no"]
    result = subprocess.run(argv, capture_output=True, timeout=300, env=env,
                            stdin=subprocess.DEVNULL)
    output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"sluice_tests exited with {result.returncode}\n{output}"
    passed = re.search(r"^\[  PASSED  \] (\d+) tests?\.", output, re.MULTILINE)
    assert passed, f"no PASSED line\n{output}"
    ran = len(re.findall(r"^\[ RUN      \] PgJobQueue", output, re.MULTILINE))
    assert int(passed.group(1)) > 0 and int(passed.group(1)) == ran, output
    assert "[  SKIPPED ]" not in output, f"tests skipped: is SLUICE_TEST_PG_URL passed?\n{output}"
    assert "[  FAILED  ]" not in output, output
