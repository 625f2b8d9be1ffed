"""Fixtures for the background-job tests: the real `sluice serve` (and `sluice worker`) over the
embedded default, a SQLite queue file and a local folder store, with small generated SQLite
source databases (support/jobs.py).

Every environment (JobsEnv) has a folder of its own: the config, the queue file beside it (the
default `sluice-jobs.db` unless [queue] path says otherwise), the store folder, the server's
log. The expected bytes always come from the same server's streaming export of the same request,
the expected rows from sqlite3.

    SLUICE_BIN=build/release/sluice /usr/bin/python3 -m pytest -q tests/jobs
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from support.jobs import Worker, jobs_config, make_items_db, stop_workers
from support.server import SluiceServer, serve, stop_all

ITEMS_ROWS = 30_000

# Fast timings for tests: short poll and sweep, heartbeats (progress events) every 100 ms.
FAST_QUEUE = ("poll_interval_ms = 100\nsweep_interval_ms = 200\nprogress_interval_ms = 100\n"
              "lease_ms = 2000\nbackoff_ms = 0\n")


@dataclass
class JobsEnv:
    folder: Path
    config: Path
    store: Path
    db: Path
    server: SluiceServer | None = None
    workers: list[Worker] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def log(self) -> str:
        return self.server.log_text()

    def worker(self, workers: int | None = None, name: str = "worker") -> Worker:
        """Starts `sluice worker --config` on this env's config (the same queue and store)."""
        worker = Worker(self.config, self.folder / f"{name}-{len(self.workers)}.stderr.log",
                        workers)
        self.workers.append(worker)
        return worker


@pytest.fixture(scope="session")
def items_db(tmp_path_factory) -> Path:
    """The session's read-only source: items with ITEMS_ROWS rows."""
    return make_items_db(tmp_path_factory.mktemp("jobs-data") / "items.db", ITEMS_ROWS)


def _start_env(folder: Path, db: Path, queue: str | None, server: str, datasets: str | None,
               start_server: bool) -> JobsEnv:
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "store"
    store.mkdir(exist_ok=True)
    config = folder / "sluice.toml"
    config.write_text(jobs_config(db, store, queue, server, datasets), "utf-8")
    env = JobsEnv(folder, config, store, db)
    if start_server:
        env.server = serve(config, folder / "serve.stderr.log")
    return env


@pytest.fixture
def start_jobs(tmp_path, items_db) -> Iterator[Callable[..., JobsEnv]]:
    """Factory: start_jobs(queue=FAST_QUEUE, server="", datasets=None, own_db=False,
    name="env", start_server=True) -> a JobsEnv with `sluice serve` running. `queue` is the
    [queue] body (None: no [queue] section); own_db copies items.db into the env's folder (for
    tests that change or break the data). Servers are stopped at the end (SIGTERM, exit 0),
    workers too."""
    envs: list[JobsEnv] = []

    def start(queue: str | None = FAST_QUEUE, server: str = "", datasets: str | None = None,
              own_db: bool = False, name: str = "env", start_server: bool = True) -> JobsEnv:
        folder = tmp_path / name
        db = items_db
        if own_db:
            folder.mkdir(parents=True, exist_ok=True)
            db = folder / "items.db"
            shutil.copyfile(items_db, db)
        env = _start_env(folder, db, queue, server, datasets, start_server)
        envs.append(env)
        return env

    yield start
    errors = stop_workers([worker for env in envs for worker in env.workers])
    stop_all([env.server for env in envs if env.server is not None])
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory, items_db) -> Iterator[JobsEnv]:
    """One server for the tests that only submit and compare (no [queue] section: the default
    SQLite queue beside the config, the default timings)."""
    env = _start_env(tmp_path_factory.mktemp("jobs-shared"), items_db, None, "", None, True)
    yield env
    stop_all([env.server])
