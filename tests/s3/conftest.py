"""Fixtures for the S3 tests: a real S3 endpoint process (s3rver, from npm: tests/s3/package.json)
with one bucket, AWS's own client (`aws`) to put and inspect objects, and Sluice configured with
`[storage] kind = "s3"`.

Each test gets its own s3rver (a fresh bucket, its own port), so faults (killing the endpoint,
restarting it) never reach another test. A SQLite database of ROWS rows is shared: the source
of exports written into the store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from support.s3 import S3rver, have_tools, s3_env, storage_config
from support.server import SANITIZER_REPORT, SluiceServer, run_sluice, serve, stop_all

ROWS = 400_000  # ~44 MB of CSV: a multipart upload of 6 parts (8 MiB each)


@dataclass
class Database:
    path: Path

    def datasets(self) -> str:
        return f"""
[sources.lite]
kind = "sqlite"
path = "{self.path}"

[[datasets]]
name = "rows"
source = "lite"
query = "SELECT id, pad FROM rows ORDER BY id"

[datasets.filters.id]
type = "int"
operators = ["eq", "lte"]
"""


@pytest.fixture(scope="session")
def database(tmp_path_factory) -> Database:
    missing = have_tools()
    assert missing is None, f"the S3 tests need {missing}"
    db = tmp_path_factory.mktemp("s3db") / "rows.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, pad TEXT NOT NULL)")
        conn.executemany("INSERT INTO rows VALUES (?, ?)",
                         ((i, f"{i:0100d}") for i in range(1, ROWS + 1)))
    return Database(db)


@pytest.fixture
def s3(tmp_path) -> Iterator[S3rver]:
    endpoint = S3rver(tmp_path / "s3rver").start()
    yield endpoint
    endpoint.stop()


@dataclass
class S3Sluice:
    """Writes configs for Sluice on an endpoint and runs its commands with S3 credentials."""
    tmp: Path
    database: Database
    started: list[SluiceServer]

    def config(self, endpoint: str, storage_extra: str = "", server: str = "",
               name: str = "sluice") -> Path:
        path = self.tmp / f"{name}.toml"
        path.write_text(f"[server]\nlisten = \"127.0.0.1:0\"\n{server}\n"
                        + storage_config(endpoint, extra=storage_extra)
                        + self.database.datasets(), "utf-8")
        return path

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
        """A sluice command to its end; a sanitizer report in its stderr fails the test (the
        suite also runs against the ASan+UBSan binary), whatever the exit code."""
        done = run_sluice(*args, env=env or s3_env(), timeout=timeout)
        report = SANITIZER_REPORT.search(done.stderr.decode(errors="replace"))
        assert report is None, done.stderr.decode(errors="replace")[-4000:]
        return done

    def serve(self, config: Path, env: dict[str, str] | None = None) -> SluiceServer:
        server = serve(config, self.tmp / f"{config.stem}.stderr.log", env=env or s3_env())
        self.started.append(server)
        return server


@pytest.fixture
def sluice(tmp_path, database) -> Iterator[S3Sluice]:
    helper = S3Sluice(tmp_path, database, [])
    yield helper
    stop_all(helper.started)
