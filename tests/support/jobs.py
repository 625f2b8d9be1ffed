"""Background export jobs (/v1/jobs) as a client uses them: submit, poll, download the result,
list, cancel, read the event stream (Server-Sent Events and WebSocket), and `sluice worker`
processes. Shared by tests/jobs (the SQLite queue) and tests/jobs/test_jobs_postgres.py; nothing
here depends on the queue's kind.

Test data: make_items_db() writes a small SQLite table of every kind of value (NULLs, quotes,
newlines, non-ASCII) that datasets over `items` export; SLOW_QUERY is an endless recursive CTE
whose `limit` sets how long a job runs (~1 M rows/s on the test machine).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import signal
import sqlite3
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import requests

from .http import ChunkedReader, raw_get
from .server import SANITIZER_REPORT, STOP_TIMEOUT_S, sluice_bin

FINAL_STATES = ("succeeded", "failed", "cancelled", "expired")
FINAL_EVENTS = FINAL_STATES
FORMATS = ("csv", "tsv", "jsonl", "json")
COMPRESSIONS = ("none", "gzip", "zstd")
SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}

# ------------------------------------------------------------------------------------------
# Test data and configs
# ------------------------------------------------------------------------------------------

ITEMS_QUERY = "SELECT id, name, country, amount, qty, created_at, note FROM items"
COUNTRIES = ["DE", "FR", "US", "PL", "Ω"]

# Rows without end (a recursive CTE): the request's `limit` decides how long the job runs.
SLOW_QUERY = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 4000000000)"
              " SELECT n AS id, printf('row %d of a slow export', n) AS label FROM c")


def make_items_db(path: Path, rows: int = 30_000, seed: int = 7) -> Path:
    """A SQLite database with table items(id, name, country, amount, qty, created_at, note):
    NULLs, quotes, separators, newlines and non-ASCII text among plain values."""
    rnd = random.Random(seed)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, country TEXT,"
                 " amount REAL, qty INTEGER, created_at TEXT, note TEXT)")
    notes = [None, "", "plain", 'with "quotes"', "semi;colon,comma", "tab\there",
             "line\nbreak", "ünïcödé ✓", "=1+2"]

    def row(i: int) -> tuple:
        return (i, f"item {i}", rnd.choice(COUNTRIES),
                None if i % 11 == 0 else round(rnd.uniform(-500, 5000), 2),
                rnd.randint(0, 50),
                f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                rnd.choice(notes))

    conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (row(i) for i in range(1, rows + 1)))
    conn.commit()
    conn.close()
    return path


def items_dataset(name: str = "items", source: str = "db", version_query: str | None = None,
                  query: str = ITEMS_QUERY) -> str:
    """A [[datasets]] over `items`: filters country (eq/in), amount (gte/lt), id (gt/lte);
    sortable id, amount."""
    text = (f'\n[[datasets]]\nname = "{name}"\nsource = "{source}"\nquery = "{query}"\n'
            'sortable = ["id", "amount"]\n')
    if version_query is not None:
        text += f'version_query = "{version_query}"\n'
    text += ('[datasets.filters.country]\n'
             '[datasets.filters.amount]\ntype = "decimal"\noperators = ["gte", "lt"]\n'
             '[datasets.filters.id]\ntype = "int"\noperators = ["gt", "lte"]\n')
    return text


def slow_dataset(name: str = "slow", source: str = "db") -> str:
    return (f'\n[[datasets]]\nname = "{name}"\nsource = "{source}"\nquery = "{SLOW_QUERY}"\n'
            'sortable = ["id"]\n')


def jobs_config(db: Path, store: Path, queue: str | None = "", server: str = "",
                datasets: str | None = None) -> str:
    """A config with [server] (listen, shutdown_grace_ms = 1000 unless `server` sets it),
    [sources.db] on `db`, [storage] on the folder `store`, and [queue] with the lines `queue`
    (None: no [queue] section at all, the default SQLite queue beside the config);
    `datasets` defaults to items + slow."""
    server_lines = server if "shutdown_grace_ms" in server else "shutdown_grace_ms = 1000\n" + server
    text = (f'[server]\nlisten = "127.0.0.1:0"\n{server_lines}\n'
            f'[sources.db]\nkind = "sqlite"\npath = "{db}"\n\n'
            f'[storage]\nkind = "local"\npath = "{store}"\n')
    if queue is not None:
        text += f"\n[queue]\n{queue}\n"
    text += datasets if datasets is not None else items_dataset() + slow_dataset()
    return text


# ------------------------------------------------------------------------------------------
# The jobs API
# ------------------------------------------------------------------------------------------

def submit(url: str, body, headers: dict[str, str] | None = None) -> requests.Response:
    """POST /v1/jobs with `body` (a dict is sent as JSON, bytes/str as they are)."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(f"{url}/v1/jobs", data=data, timeout=30,
                         headers={"Content-Type": "application/json", **(headers or {})})


def submit_ok(url: str, body, headers: dict[str, str] | None = None) -> dict:
    """submit() that must be accepted: 202, Location = Content-Location = /v1/jobs/{id}."""
    response = submit(url, body, headers)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Content-Location"] == f"/v1/jobs/{job['id']}", response.headers
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}", response.headers
    return job


def get_job(url: str, job_id: str) -> dict:
    response = requests.get(f"{url}/v1/jobs/{job_id}", timeout=30)
    assert response.status_code in (200, 202), response.text
    job = response.json()
    final = job["state"] in FINAL_STATES
    assert response.status_code == (200 if final else 202), (response.status_code, job)
    if not final:
        assert response.headers.get("X-Progress", "").startswith(job["state"]), response.headers
        assert response.headers.get("Retry-After") in ("1", "2"), response.headers
    return job


def wait_job(url: str, job_id: str, states: Iterable[str] = FINAL_STATES,
             timeout: float = 60.0, interval: float = 0.05) -> dict:
    """Polls the job until its state is one of `states`; returns it."""
    states = tuple(states)
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(url, job_id)
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {job}")
        time.sleep(interval)


def wait_progress(url: str, job_id: str, rows: int = 1, timeout: float = 30.0) -> dict:
    """Waits until the job is running and reported at least `rows` rows."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(url, job_id)
        if job["state"] == "running" and job["progress"]["rows"] >= rows:
            return job
        assert job["state"] in ("queued", "running"), job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} reported no progress in {timeout} s: {job}")
        time.sleep(0.05)


def list_jobs(url: str, params: dict | str | None = None) -> requests.Response:
    if isinstance(params, str):  # a `next` link or a raw query
        target = params if params.startswith("/") else f"/v1/jobs?{params}"
        return requests.get(f"{url}{target}", timeout=30)
    return requests.get(f"{url}/v1/jobs", params=params, timeout=30)


def all_job_ids(url: str) -> list[str]:
    response = list_jobs(url, {"limit": 1000})
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


def cancel(url: str, job_id: str) -> requests.Response:
    return requests.delete(f"{url}/v1/jobs/{job_id}", timeout=30)


def result_response(url: str, job: dict, headers: dict[str, str] | None = None,
                    method: str = "GET") -> requests.Response:
    """The job's result through its result.url (this server's /v1/jobs/{id}/result)."""
    target = job["result"]["url"] if job.get("result") and job["result"]["url"] else \
        f"/v1/jobs/{job['id']}/result"
    full = target if target.startswith("http") else f"{url}{target}"
    return requests.request(method, full, timeout=60, stream=True,
                            headers={"Accept-Encoding": "identity", **(headers or {})})


def raw_body(response: requests.Response) -> bytes:
    """The body exactly as sent (no Content-Encoding decoding)."""
    return response.raw.read(decode_content=False)


def download_result(url: str, job: dict) -> bytes:
    response = result_response(url, job)
    assert response.status_code == 200, response.text
    return raw_body(response)


def export_params(body: dict) -> list[tuple[str, str]]:
    """The query string of a streaming export asking what the job body asks."""
    params = []
    for name, value in (body.get("filters") or {}).items():
        params.append((name, ",".join(map(scalar, value)) if isinstance(value, list)
                       else scalar(value)))
    for name in ("columns", "order"):
        if name in body:
            value = body[name]
            params.append((name, ",".join(value) if isinstance(value, list) else value))
    for name in ("limit", "header", "bom", "delimiter", "line_ending"):
        if name in body:
            params.append((name, scalar(body[name])))
    return params


def scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export_target(body: dict) -> str:
    """/v1/exports/{dataset}.{format}[.gz|.zst]?... for the job body `body`."""
    fmt = body.get("format", "csv")
    suffix = SUFFIX[body.get("compression", "none")]
    query = urllib.parse.urlencode(export_params(body), safe=",")
    return f"/v1/exports/{body['dataset']}.{fmt}{suffix}" + (f"?{query}" if query else "")


def streaming_export(url: str, body: dict) -> bytes:
    response = requests.get(f"{url}{export_target(body)}", timeout=120, stream=True,
                            headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200, response.text[:500]
    return raw_body(response)


def decompress(data: bytes, compression: str) -> bytes:
    """The bytes of a result; with gzip/zstd, also checks it is one complete, valid stream."""
    if compression == "none":
        return data
    if compression == "gzip":
        return gzip.decompress(data)
    done = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


# ------------------------------------------------------------------------------------------
# Event streams
# ------------------------------------------------------------------------------------------

@dataclass
class Event:
    id: int
    event: str
    data: dict


class SseStream:
    """GET /v1/jobs/{id}/events over a raw socket, parsed as Server-Sent Events as they come."""

    def __init__(self, url_port: int, job_id: str, last_event_id: int | str | None = None,
                 query: str = "", timeout: float = 30.0):
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        target = f"/v1/jobs/{job_id}/events" + (f"?{query}" if query else "")
        self.response = raw_get(url_port, target, headers=headers, timeout=timeout)
        self.status = self.response.status
        self.reader = ChunkedReader(self.response) if self.status == 200 else None
        self.text = ""
        self.retry: int | None = None
        self.ended = False  # the server ended the body (the final chunk came)

    def next(self) -> Event | None:
        """The next event; None when the stream ended."""
        assert self.reader is not None, f"status {self.status}"
        while True:
            while "\n\n" not in self.text:
                chunk = self.reader.read_chunk()
                if not chunk:  # b'' (the end) or None (cut)
                    self.ended = chunk == b""
                    return None
                self.text += chunk.decode("utf-8")
            block, self.text = self.text.split("\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            if "retry" in fields:
                self.retry = int(fields["retry"])
            if "event" in fields:
                assert "id" in fields and "data" in fields, block
                return Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))

    def all(self) -> list[Event]:
        events = []
        while (event := self.next()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        self.response.close()


def sse_events(port: int, job_id: str, last_event_id: int | str | None = None,
               query: str = "", timeout: float = 30.0) -> list[Event]:
    """Every event the stream sends until the server ends it (after a final event)."""
    stream = SseStream(port, job_id, last_event_id, query, timeout)
    try:
        assert stream.status == 200, stream.response.head
        events = stream.all()
        assert stream.ended, f"the event stream was cut: {events}"
        return events
    finally:
        stream.close()


async def _ws_collect(uri: str, headers: dict[str, str], timeout: float) -> list[Event]:
    import websockets  # Debian's python3-websockets (10.4)

    events = []
    async with websockets.connect(uri, extra_headers=headers, open_timeout=timeout,
                                  close_timeout=timeout) as socket:
        while True:
            try:
                message = await asyncio.wait_for(socket.recv(), timeout)
            except websockets.ConnectionClosedOK:
                break
            assert isinstance(message, str), message
            parsed = json.loads(message)
            events.append(Event(parsed["id"], parsed["event"], parsed["data"]))
    return events


def ws_events(port: int, job_id: str, last_event_id: int | None = None,
              header_last_event_id: int | None = None, timeout: float = 30.0) -> list[Event]:
    """Every message of the WebSocket on /v1/jobs/{id}/events until the server closes it."""
    query = f"?last_event_id={last_event_id}" if last_event_id is not None else ""
    headers = {}
    if header_last_event_id is not None:
        headers["Last-Event-ID"] = str(header_last_event_id)
    uri = f"ws://127.0.0.1:{port}/v1/jobs/{job_id}/events{query}"
    return asyncio.run(_ws_collect(uri, headers, timeout))


def assert_event_sequence(events: list[Event], final: str = "succeeded") -> None:
    """queued, started, (progress)*, then `final`, ids strictly increasing; nothing after."""
    types = [event.event for event in events]
    ids = [event.id for event in events]
    assert ids == sorted(set(ids)), ids
    assert types[:2] == ["queued", "started"], types
    assert types[-1] == final, types
    assert all(t == "progress" for t in types[2:-1]), types


# ------------------------------------------------------------------------------------------
# The store
# ------------------------------------------------------------------------------------------

def job_files(store: Path, job_id: str) -> list[Path]:
    """Files (not folders) under .sluice/jobs/{id}/ of a local store."""
    folder = store / ".sluice" / "jobs" / job_id
    return sorted(p for p in folder.rglob("*") if not p.is_dir()) if folder.exists() else []


def temp_files(store: Path) -> list[Path]:
    folder = store / ".sluice" / "tmp"
    return sorted(p for p in folder.rglob("*") if not p.is_dir()) if folder.exists() else []


def result_path(store: Path, job: dict) -> Path:
    """Where a local store keeps the job's result: .sluice/jobs/{id}/{attempt}/{file_name}."""
    return store / ".sluice" / "jobs" / job["id"] / str(job["attempt"]) / job["result"]["file_name"]


# ------------------------------------------------------------------------------------------
# `sluice worker`
# ------------------------------------------------------------------------------------------

class Worker:
    """A `sluice worker --config CONFIG [--workers N]` process, its stderr in `log_path`."""

    def __init__(self, config: Path, log_path: Path, workers: int | None = None,
                 env: dict[str, str] | None = None):
        args = [sluice_bin(), "worker", "--config", str(config)]
        if workers is not None:
            args += ["--workers", str(workers)]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._log,
                                     stdin=subprocess.DEVNULL, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text("utf-8", "replace")

    def wait_log(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in (log := self.log_text()):
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode} before logging "
                                     f"{text!r}\n{log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker did not log {text!r} in {timeout} s\n{log}")
            time.sleep(0.05)
        return log

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait; returns the exit code (kills and fails on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"worker did not exit within {timeout} s of SIGTERM\n"
                                 f"{self.log_text()}")
        self._log.close()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


def stop_workers(workers: Iterable[Worker]) -> list[str]:
    """The standard teardown of `sluice worker` processes: each still running must exit 0 on
    SIGTERM (one a test left stopped is continued first); one that already exited must have
    exited 0 or by the test's SIGKILL; no log may hold a sanitizer report. Returns the problems
    (the caller stops its servers too before it fails)."""
    errors = []
    for worker in workers:
        try:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGCONT)
                rc = worker.stop()
                if rc != 0:
                    errors.append(f"worker exited with {rc}\n{worker.log_text()[-3000:]}")
            elif worker.proc.returncode not in (0, -signal.SIGKILL):  # not the test's doing
                errors.append(f"worker died with {worker.proc.returncode}\n"
                              f"{worker.log_text()[-3000:]}")
            if SANITIZER_REPORT.search(worker.log_text()):
                errors.append(f"sanitizer report in a worker's log\n{worker.log_text()[-6000:]}")
        except AssertionError as error:
            errors.append(str(error))
        finally:
            worker.kill()
    return errors
