"""Background export jobs at scale: the PostgreSQL queue ([queue] kind = "postgres"), several
`sluice serve` and `sluice worker` processes sharing it, results in an S3 bucket (s3rver).

Everything is real: a private PostgreSQL cluster (support/pg.py's PgCluster, without the big
test table), s3rver behind the recording FaultProxy of support/s3.py (so the tests see every
S3 request the processes send: multipart uploads started, completed, aborted), `sluice serve`
processes with [queue] workers = 0 (they only accept jobs and stream events) and
`sluice worker` processes that run them. The queue's own tables (sluice_jobs,
sluice_job_events) are read with psycopg2 to learn what the API does not show (which worker
holds a job, every event).

s3rver implements neither ListMultipartUploads (NotImplemented) nor AbortMultipartUpload (405
MethodNotAllowed), so "no multipart upload stays open" is checked from both ends: each upload
s3rver started is a folder `<bucket>/._S3rver_uploads/<UploadId>` (holding its key) that
CompleteMultipartUpload removes; an upload is open when its folder remains and no
AbortMultipartUpload (DELETE ?uploadId=...) for it went through the proxy.

    SLUICE_BIN=build/release/sluice /usr/bin/python3 -m pytest -q tests/jobs/test_jobs_postgres.py
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import random
import re
import signal
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import requests

from support.jobs import (SseStream, Worker, cancel, decompress, get_job, items_dataset,
                          raw_body, stop_workers, streaming_export, submit_ok, wait_job)
from support.pg import DB_NAME, PgCluster, dataset_toml
from support.s3 import BUCKET, KEY_ID, SECRET, FaultProxy, S3rver, have_tools, s3_env, \
    storage_config
from support.server import SluiceServer, serve, stop_all

DATA_DB = DB_NAME  # the source data: items, tick()

# Steady, slow rows: tick() sleeps SLEEP_MS every EVERY rows, so the job streams rows at a
# known pace (~5,500 rows/s, ~3 MB/s of CSV on the test machine) for as long as `limit` asks,
# never materializing (generate_series in the select list). 560 bytes of padding per row make
# the object large enough for a multipart upload (parts of 8 MiB) within a few seconds.
TICK_SQL = """
CREATE FUNCTION tick(g int, every int, ms float8) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF g % every = 0 THEN PERFORM pg_sleep(ms / 1000.0); END IF;
  RETURN g;
END $$;
"""
SLOW_QUERY = ("SELECT tick(g, 100, 15) AS id, md5(g::text) AS h, repeat(md5(g::text), 16) AS pad "
              "FROM (SELECT generate_series(1, 100000000) AS g) AS s")
# The same rows at full speed: the baseline of a slow job's result.
FAST_QUERY = ("SELECT g AS id, md5(g::text) AS h, repeat(md5(g::text), 16) AS pad "
              "FROM (SELECT generate_series(1, 100000000) AS g) AS s")
SLOW_ROWS = 60_000  # ~10 s, ~35 MB (5 parts)
PART = 8 << 20

ITEMS_ROWS = 5_000
ITEMS_SQL = f"""
CREATE TABLE items AS
SELECT g AS id, 'item ' || g AS name, (ARRAY['DE', 'FR', 'US', 'PL', 'Ω'])[1 + g % 5] AS country,
       CASE WHEN g % 11 = 0 THEN NULL ELSE round(((g * 37) % 550000) / 100.0 - 500, 2) END::numeric(10, 2) AS amount,
       g % 51 AS qty,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute' AS created_at,
       (ARRAY[NULL, '', 'plain', 'with "quotes"', 'semi;colon,comma', E'tab\\there',
              E'line\\nbreak', 'ünïcödé ✓', '=1+2'])[1 + g % 9] AS note
FROM generate_series(1, {ITEMS_ROWS}) g;
ALTER TABLE items ADD PRIMARY KEY (id);
ANALYZE items;
"""

# Timings of the brief: a lease of 2 s renewed every 200 ms, sweeps every 200 ms; a short
# backoff (with full jitter, 50-100 ms) so the retry after a lapsed lease is quick.
QUEUE_TIMINGS = ("lease_ms = 2000\nprogress_interval_ms = 200\nsweep_interval_ms = 200\n"
                 "backoff_ms = 100\npoll_interval_ms = 200\n")

WORKER_LINE = re.compile(r"jobs: worker (\S+) runs up to (\d+) job")


# --------------------------------------------------------------------------------------------
# The cluster, the bucket
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster with the source data (items, tick()) in DATA_DB."""
    cluster = PgCluster()
    try:
        cluster.initdb()
        cluster.start()
        cluster.psql(f"CREATE DATABASE {DATA_DB}", dbname="postgres")
        cluster.psql(TICK_SQL + ITEMS_SQL)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def queue_db(pg, request) -> Iterator[str]:
    """A fresh, empty database for the test's queue (the processes create the tables)."""
    name = "queue_" + re.sub(r"[^a-z0-9]", "_", request.node.name.lower())[:40]
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", dbname="postgres")
    pg.psql(f"CREATE DATABASE {name}", dbname="postgres")
    yield name
    pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", dbname="postgres")


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3rver]:
    missing = have_tools()
    assert missing is None, f"these tests need {missing}"
    endpoint = S3rver(tmp_path_factory.mktemp("jobs-s3") / "s3rver").start()
    yield endpoint
    endpoint.stop()


def s3_client(endpoint: str):
    """botocore's S3 client straight on s3rver (not through the proxy)."""
    import botocore.session
    from botocore.config import Config as BotoConfig

    session = botocore.session.Session()
    return session.create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))


@dataclass
class Bucket:
    """The bucket as the tests inspect it: listings, the uploads s3rver holds, the requests the
    Sluice processes sent (through the proxy)."""
    s3: S3rver
    proxy: FaultProxy

    def __post_init__(self):
        self.client = s3_client(self.s3.endpoint)

    def keys(self, prefix: str) -> list[str]:
        keys, token = [], None
        while True:
            args = {"Bucket": BUCKET, "Prefix": prefix}
            if token:
                args["ContinuationToken"] = token
            page = self.client.list_objects_v2(**args)
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def exists(self, key: str) -> bool:
        return key in self.keys(key)

    def list_multipart_uploads_supported(self) -> bool:
        from botocore.exceptions import ClientError
        try:
            self.client.list_multipart_uploads(Bucket=BUCKET)
            return True
        except ClientError as error:
            assert error.response["Error"]["Code"] == "NotImplemented", error.response
            return False

    def started_uploads(self, prefix: str) -> dict[str, str]:
        """UploadId -> key of the multipart uploads s3rver started and did not complete."""
        folder = self.s3.directory / BUCKET / "._S3rver_uploads"
        uploads = {}
        if folder.is_dir():
            for upload in folder.iterdir():
                key_file = upload / "key"
                if key_file.is_file():
                    key = key_file.read_text("utf-8")
                    if key.startswith(prefix):
                        uploads[upload.name] = key
        return uploads

    def requests_for(self, prefix: str) -> list[tuple[str, str, dict[str, list[str]]]]:
        """(method, key, query) of every request the proxy forwarded for keys under prefix."""
        out = []
        for recorded in list(self.proxy.requests):
            parts = urllib.parse.urlsplit(recorded.target)
            path = urllib.parse.unquote(parts.path)
            if not path.startswith(f"/{BUCKET}/"):
                continue
            key = path[len(BUCKET) + 2:]
            if key.startswith(prefix):
                out.append((recorded.method, key,
                            urllib.parse.parse_qs(parts.query, keep_blank_values=True)))
        return out

    def aborted_upload_ids(self, prefix: str) -> set[str]:
        return {query["uploadId"][0] for method, _, query in self.requests_for(prefix)
                if method == "DELETE" and "uploadId" in query}

    def initiated_keys(self, prefix: str) -> list[str]:
        return [key for method, key, query in self.requests_for(prefix)
                if method == "POST" and "uploads" in query]

    def completed_keys(self, prefix: str) -> list[str]:
        return [key for method, key, query in self.requests_for(prefix)
                if method == "POST" and "uploadId" in query]

    def open_uploads(self, prefix: str) -> dict[str, str]:
        """Uploads under prefix neither completed nor aborted: UploadId -> key."""
        aborted = self.aborted_upload_ids(prefix)
        return {upload: key for upload, key in self.started_uploads(prefix).items()
                if upload not in aborted}


class KeyWatcher:
    """Lists a prefix of the bucket every 100 ms in a thread, remembering every key seen (and
    whether the job had succeeded at that moment, from `succeeded()`)."""

    def __init__(self, bucket: Bucket, prefix: str):
        self.bucket, self.prefix = bucket, prefix
        self.seen: dict[str, float] = {}
        self.listings = 0
        self._stop = threading.Event()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        client = s3_client(self.bucket.s3.endpoint)
        while not self._stop.is_set():
            try:
                page = client.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix)
                now = time.time()
                for item in page.get("Contents", []):
                    self.seen.setdefault(item["Key"], now)
                self.listings += 1
            except Exception as error:  # noqa: BLE001 - reported by stop()
                self.errors.append(repr(error))
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self.errors, self.errors[:3]
        assert self.listings >= 3, f"the bucket was listed only {self.listings} times"
        return self.seen


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

@dataclass
class Deployment:
    """Configs and processes of one test: serve processes and worker processes on one
    PostgreSQL queue database and one bucket (through the proxy)."""
    tmp: Path
    pg: PgCluster
    queue_db: str
    bucket: Bucket
    servers: list[SluiceServer] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # worker pid -> worker identity

    def config(self, queue_extra: str = QUEUE_TIMINGS, name: str = "sluice") -> Path:
        path = self.tmp / f"{name}.toml"
        path.write_text(
            '[server]\nlisten = "127.0.0.1:0"\nshutdown_grace_ms = 2000\n\n'
            + storage_config(self.bucket.proxy.endpoint) + "\n"
            + f'[sources.pg]\nkind = "postgres"\nurl = "{self.pg.conninfo(DATA_DB)}"\n'
            + "pool_size = 30\n\n"
            + dataset_toml("slow", "pg", SLOW_QUERY)
            + dataset_toml("fast", "pg", FAST_QUERY)
            + items_dataset("items", "pg")
            + f'\n[queue]\nkind = "postgres"\nurl = "{self.pg.conninfo(self.queue_db)}"\n'
            + "workers = 0\npool_size = 8\n" + queue_extra, "utf-8")
        return path

    def serve(self, config: Path) -> SluiceServer:
        server = serve(config, self.tmp / f"serve-{len(self.servers)}.stderr.log", env=s3_env())
        self.servers.append(server)
        return server

    def worker(self, config: Path, slots: int = 1) -> Worker:
        worker = Worker(config, self.tmp / f"worker-{len(self.workers)}.stderr.log", slots,
                        env=s3_env())
        self.workers.append(worker)
        log = worker.wait_log("runs up to", timeout=30)
        match = WORKER_LINE.search(log)
        assert match and int(match.group(2)) == slots, log
        self.names[worker.pid] = match.group(1)
        assert f":{worker.pid}:" in match.group(1), match.group(1)
        return worker

    def worker_named(self, name: str) -> Worker:
        for worker in self.workers:
            if self.names.get(worker.pid) == name:
                return worker
        raise AssertionError(f"no worker of this test is {name!r}: {self.names}")

    def query(self, sql: str, params: tuple = (), dbname: str | None = None) -> list[tuple]:
        """Rows of one statement on the queue's database (autocommit, own connection)."""
        conn = self.pg.connect(dbname or self.queue_db)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def row(self, job_id: str) -> dict:
        rows = self.query("SELECT state, attempt, worker, rows, bytes, created_at, started_at,"
                          " finished_at, lease_until, result_key FROM sluice_jobs WHERE id = %s",
                          (job_id,))
        found = rows[0] if rows else None
        assert found is not None, f"no row for {job_id}"
        names = ["state", "attempt", "worker", "rows", "bytes", "created_at", "started_at",
                 "finished_at", "lease_until", "result_key"]
        return dict(zip(names, found))

    def events(self, job_id: str) -> list[tuple[int, str, dict]]:
        rows = self.query("SELECT seq, type, data FROM sluice_job_events WHERE job_id = %s"
                          " ORDER BY seq", (job_id,))
        return [(seq, kind, json.loads(data)) for seq, kind, data in rows]

    def stop(self) -> None:
        errors = stop_workers(self.workers)
        try:
            stop_all(self.servers)
        except AssertionError as error:
            errors.append(str(error))
        assert not errors, "\n".join(errors)


@pytest.fixture
def deploy(tmp_path, pg, queue_db, s3) -> Iterator[Deployment]:
    proxy = FaultProxy(s3.port)
    deployment = Deployment(tmp_path, pg, queue_db, Bucket(s3, proxy))
    try:
        yield deployment
    finally:
        try:
            deployment.stop()
        finally:
            proxy.close()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def wait_for(predicate, timeout: float, message: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (after {timeout} s)")
        time.sleep(interval)


def running_attempt(deploy: Deployment, job_id: str, attempt: int, min_bytes: int = 0,
                    timeout: float = 30.0) -> dict:
    """Waits until the job runs `attempt` and reported at least `min_bytes`; returns its row."""
    def ready():
        row = deploy.row(job_id)
        assert row["state"] in ("queued", "running"), row
        if row["state"] == "running" and row["attempt"] == attempt and row["bytes"] >= min_bytes:
            return row
        return None
    return wait_for(ready, timeout, f"job {job_id} attempt {attempt} never reached {min_bytes} bytes")


def result_via_redirect(server: SluiceServer, job: dict) -> bytes:
    """GET /v1/jobs/{id}/result → 303 to S3's presigned URL (the job's result.url) → the bytes."""
    response = requests.get(f"{server.url}/v1/jobs/{job['id']}/result", allow_redirects=False,
                            timeout=30)
    assert response.status_code == 303, (response.status_code, response.text)
    location = response.headers["Location"]
    assert location.startswith(server_s3_endpoint(job)), location
    assert "X-Amz-Signature=" in location, location
    download = requests.get(location, timeout=120, stream=True,
                            headers={"Accept-Encoding": "identity"})
    assert download.status_code == 200, download.text[:500]
    return raw_body(download)


def server_s3_endpoint(job: dict) -> str:
    url = job["result"]["url"]
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def download_presigned(job: dict) -> bytes:
    url = job["result"]["url"]
    assert url.startswith("http://") and "X-Amz-Signature=" in url, url
    response = requests.get(url, timeout=120, stream=True, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return raw_body(response)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def non_progress(events: list[tuple[int, str, dict]]) -> list[tuple[str, dict]]:
    return [(kind, data) for _, kind, data in events if kind != "progress"]


# SQL of PgJobQueue::succeed() (src/queue/pg_job_queue.cpp), the parameters as psycopg2's.
SUCCEED_SQL = """
WITH t AS MATERIALIZED (SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now),
j AS (
  UPDATE sluice_jobs SET state = 'succeeded', finished_at = (SELECT now FROM t), lease_until = 0,
    rows = %(rows)s::bigint, bytes = %(size)s::bigint, result_key = %(key)s::text,
    result_size = %(size)s::bigint, result_rows = %(rows)s::bigint,
    result_sha256 = %(sha)s::text, result_etag = %(etag)s::text,
    result_expires_at = %(expires)s::bigint, error_code = '', error_message = '',
    last_event = last_event + 1
  WHERE id = %(id)s::text AND attempt = %(attempt)s::int AND state = 'running'
  RETURNING id, last_event, finished_at),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, 'succeeded', %(data)s::text, finished_at FROM j)
SELECT pg_notify('sluice_jobs', id) FROM j
"""
HEARTBEAT_SQL = """
UPDATE sluice_jobs SET lease_until = (extract(epoch from clock_timestamp()) * 1000)::bigint + 2000,
  rows = 1, bytes = 1 WHERE id = %(id)s::text AND attempt = %(attempt)s::int AND state = 'running'
RETURNING 1
"""


def stale_write_rows(deploy: Deployment, job_id: str, attempt: int, statement: str,
                     commit: bool) -> int:
    """Runs the queue's fenced statement as attempt `attempt` in a transaction; returns the rows
    it changed (RETURNING rows); rolls back unless `commit`."""
    conn = deploy.pg.connect(deploy.queue_db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, {
                "id": job_id, "attempt": attempt, "rows": 7, "size": 7,
                "key": f".sluice/jobs/{job_id}/{attempt}/forged.csv", "sha": "0" * 64,
                "etag": "forged", "expires": 4102444800000, "data": '{"state":"succeeded"}'})
            changed = cur.rowcount
        (conn.commit if commit else conn.rollback)()
        return changed
    finally:
        conn.close()


def slow_body(rows: int = SLOW_ROWS, **extra) -> dict:
    return {"dataset": "slow", "format": "csv", "limit": rows, "max_attempts": 3, **extra}


def baseline(server: SluiceServer, rows: int) -> bytes:
    """The same rows exported by streaming (the fast dataset of the same columns)."""
    return streaming_export(server.url, {"dataset": "fast", "format": "csv", "limit": rows})


# --------------------------------------------------------------------------------------------
# 1. A worker killed mid-job: the lease lapses, the other worker runs attempt 2
# --------------------------------------------------------------------------------------------

def test_a_killed_worker_s_job_finishes_on_the_other_worker_after_the_lease_lapses(deploy):
    config = deploy.config()
    server = deploy.serve(config)
    deploy.worker(config)
    deploy.worker(config)
    expected = baseline(server, SLOW_ROWS)

    job = submit_ok(server.url, slow_body())
    prefix = f".sluice/jobs/{job['id']}/"
    watcher = KeyWatcher(deploy.bucket, prefix)
    # Mid-job, with at least one 8 MiB part uploaded: a multipart upload is open.
    first = running_attempt(deploy, job["id"], 1, min_bytes=PART + (2 << 20))
    assert first["rows"] < SLOW_ROWS * 0.8, f"the job ran too fast to be killed mid-way: {first}"
    victim = deploy.worker_named(first["worker"])
    survivor = next(w for w in deploy.workers if w is not victim)
    wait_for(lambda: deploy.bucket.initiated_keys(prefix), 5,
             "no multipart upload was started for attempt 1")
    victim.proc.kill()  # SIGKILL
    victim.proc.wait(timeout=10)
    killed_at = time.monotonic()

    done = wait_job(server.url, job["id"], timeout=90)
    elapsed = time.monotonic() - killed_at
    seen = watcher.stop()

    assert done["state"] == "succeeded", done
    assert done["attempt"] == 2, done
    row = deploy.row(job["id"])
    assert row["worker"] == deploy.names[survivor.pid], (row, deploy.names)
    # The lease (2 s) lapsed, the sweep (200 ms) requeued it, the survivor ran all of it again.
    assert elapsed < 60, elapsed

    # The events: attempt 1 on the victim, the lapse, attempt 2 on the survivor.
    events = non_progress(deploy.events(job["id"]))
    assert [kind for kind, _ in events] == ["queued", "started", "retrying", "started",
                                            "succeeded"], events
    assert events[1][1]["attempt"] == 1 and events[1][1]["worker"] == first["worker"], events
    assert events[2][1]["attempt"] == 1, events
    assert events[2][1]["error"]["code"] == "lease_lapsed", events
    assert first["worker"] in events[2][1]["error"]["message"], events
    assert events[3][1]["attempt"] == 2, events
    assert events[3][1]["worker"] == deploy.names[survivor.pid], events

    # The result is complete and right: the streaming export's bytes, through the 303 and S3.
    result = done["result"]
    assert result["rows"] == SLOW_ROWS, result
    assert result["size"] == len(expected), (result, len(expected))
    assert result["sha256"] == sha256(expected), result
    data = result_via_redirect(server, done)
    assert len(data) == result["size"] and sha256(data) == result["sha256"]
    assert data == expected

    # In the bucket: only attempt 2's object, while it ran and after.
    final_key = f"{prefix}2/{result['file_name']}"
    assert row["result_key"] == final_key, row
    assert deploy.bucket.keys(prefix) == [final_key]
    assert set(seen) <= {final_key}, f"other objects were visible meanwhile: {sorted(seen)}"
    assert survivor.log_text().count(f"jobs: {job['id']} succeeded") == 1, survivor.log_text()

    # Multipart uploads: attempt 2's was completed; attempt 1's cannot have been aborted by the
    # process that was killed, and nothing else aborts it.
    assert not deploy.bucket.list_multipart_uploads_supported()  # s3rver: see the docstring
    assert deploy.bucket.completed_keys(prefix) == [final_key]
    open_uploads = deploy.bucket.open_uploads(prefix)
    assert set(open_uploads.values()) <= {f"{prefix}1/{result['file_name']}"}, open_uploads
    # The killed attempt's upload may stay open (invisible: never a listed object): a process
    # killed with SIGKILL cannot abort it, and Sluice does not keep upload ids in the queue.
    # docs/CONFIG.md asks for the bucket's AbortIncompleteMultipartUpload lifecycle rule, which
    # removes such parts; s3rver has no lifecycle rules to test it with.


# --------------------------------------------------------------------------------------------
# 2. A paused worker resumes after its job was taken over: its late write is fenced off
# --------------------------------------------------------------------------------------------

def test_a_paused_worker_that_lost_its_lease_publishes_nothing_when_it_resumes(deploy):
    config = deploy.config()
    server = deploy.serve(config)
    deploy.worker(config)
    deploy.worker(config)
    expected = baseline(server, SLOW_ROWS)

    job = submit_ok(server.url, slow_body())
    job_id = job["id"]
    prefix = f".sluice/jobs/{job_id}/"
    first = running_attempt(deploy, job_id, 1, min_bytes=PART + (2 << 20))
    paused = deploy.worker_named(first["worker"])
    other = next(w for w in deploy.workers if w is not paused)
    paused.proc.send_signal(signal.SIGSTOP)
    try:
        # The lease lapses, the other worker's sweep requeues the job, the other worker runs it.
        second = running_attempt(deploy, job_id, 2, min_bytes=1, timeout=30)
        assert second["worker"] == deploy.names[other.pid], second

        # At the SQL level: succeed() and heartbeat() as attempt 1 change nothing now...
        assert stale_write_rows(deploy, job_id, 1, SUCCEED_SQL, commit=True) == 0
        assert stale_write_rows(deploy, job_id, 1, HEARTBEAT_SQL, commit=True) == 0
        # ... while the same statements as attempt 2 would apply (rolled back).
        assert stale_write_rows(deploy, job_id, 2, HEARTBEAT_SQL, commit=False) == 1
        assert stale_write_rows(deploy, job_id, 2, SUCCEED_SQL, commit=False) == 1
        assert deploy.row(job_id)["state"] == "running"

        done = wait_job(server.url, job_id, timeout=90)
        assert done["state"] == "succeeded" and done["attempt"] == 2, done
    finally:
        paused.proc.send_signal(signal.SIGCONT)

    # The resumed worker finds the job taken over, stops and publishes nothing.
    log = paused.wait_log(f"jobs: {job_id} attempt 1 stopped: the job was cancelled or taken "
                          "over; nothing published", timeout=15)
    assert f"jobs: {job_id} succeeded" not in log, log
    time.sleep(1.0)  # whatever it would still do, let it happen
    after = get_job(server.url, job_id)
    assert after["state"] == "succeeded" and after["attempt"] == 2, after
    assert after["result"]["sha256"] == done["result"]["sha256"] == sha256(expected), after
    assert after["result"]["rows"] == SLOW_ROWS, after
    assert download_presigned(after) == expected

    events = non_progress(deploy.events(job_id))
    assert [kind for kind, _ in events] == ["queued", "started", "retrying", "started",
                                            "succeeded"], events

    # Attempt 1's object never appeared; its multipart upload was aborted.
    final_key = f"{prefix}2/{done['result']['file_name']}"
    stale_key = f"{prefix}1/{done['result']['file_name']}"
    assert deploy.bucket.keys(prefix) == [final_key]
    assert not deploy.bucket.exists(stale_key)
    assert stale_key in deploy.bucket.initiated_keys(prefix), "attempt 1 had no multipart upload"
    wait_for(lambda: not deploy.bucket.open_uploads(prefix), 10,
             f"attempt 1's upload stays open: {deploy.bucket.open_uploads(prefix)}")
    assert deploy.bucket.completed_keys(prefix) == [final_key]


# --------------------------------------------------------------------------------------------
# 2b. SIGTERM: the worker hands its job back after the grace period, another one runs it
# --------------------------------------------------------------------------------------------

def test_a_worker_stopped_with_sigterm_hands_its_job_back_to_the_other_worker(deploy):
    config = deploy.config()  # [server] shutdown_grace_ms = 2000
    server = deploy.serve(config)
    deploy.worker(config)
    deploy.worker(config)
    expected = baseline(server, SLOW_ROWS)

    job = submit_ok(server.url, slow_body())
    job_id = job["id"]
    prefix = f".sluice/jobs/{job_id}/"
    watcher = KeyWatcher(deploy.bucket, prefix)
    first = running_attempt(deploy, job_id, 1, min_bytes=PART + (2 << 20))
    leaving = deploy.worker_named(first["worker"])
    staying = next(w for w in deploy.workers if w is not leaving)
    leaving.proc.send_signal(signal.SIGTERM)
    rc = leaving.proc.wait(timeout=15)
    assert rc == 0, leaving.log_text()[-3000:]
    log = leaving.log_text()
    assert "grace period over: handing back 1 running job(s)" in log, log
    assert f"jobs: {job_id} handed back at shutdown" in log, log

    done = wait_job(server.url, job_id, timeout=60)
    seen = watcher.stop()
    assert done["state"] == "succeeded", done
    # A hand-back does not count as an attempt: the other worker runs attempt 1 again.
    assert done["attempt"] == 1, done
    assert deploy.row(job_id)["worker"] == deploy.names[staying.pid]
    events = non_progress(deploy.events(job_id))
    assert [kind for kind, _ in events] == ["queued", "started", "queued", "started",
                                            "succeeded"], events
    assert events[1][1]["worker"] == first["worker"], events
    assert events[3][1]["worker"] == deploy.names[staying.pid], events
    assert done["result"]["sha256"] == sha256(expected) and done["result"]["rows"] == SLOW_ROWS
    assert download_presigned(done) == expected

    # Both runs wrote the same key (.../1/...): the first one's upload was aborted, the second
    # one's completed; nothing else was ever visible.
    final_key = f"{prefix}1/{done['result']['file_name']}"
    assert deploy.bucket.keys(prefix) == [final_key]
    assert set(seen) <= {final_key}, sorted(seen)
    assert deploy.bucket.initiated_keys(prefix) == [final_key, final_key]
    assert len(deploy.bucket.aborted_upload_ids(prefix)) == 1
    assert deploy.bucket.completed_keys(prefix) == [final_key]
    assert deploy.bucket.open_uploads(prefix) == {}


# --------------------------------------------------------------------------------------------
# 3. Cancel mid-job: the query stops within a second, the upload is aborted
# --------------------------------------------------------------------------------------------

def backends_of(deploy: Deployment, job_id: str) -> list[tuple]:
    return deploy.query(
        "SELECT pid, state, application_name, left(query, 60) FROM pg_stat_activity"
        " WHERE pid <> pg_backend_pid() AND (application_name = %s OR"
        " (state = 'active' AND query LIKE %s))",
        (f"sluice job-{job_id}", "%tick(g, 100, 15)%"), dbname=DATA_DB)


def test_cancel_mid_job_stops_the_query_aborts_the_upload_and_leaves_nothing(deploy):
    config = deploy.config()
    server = deploy.serve(config)
    deploy.worker(config)
    deploy.worker(config)

    job = submit_ok(server.url, slow_body())
    job_id = job["id"]
    prefix = f".sluice/jobs/{job_id}/"
    watcher = KeyWatcher(deploy.bucket, prefix)
    row = running_attempt(deploy, job_id, 1, min_bytes=PART + (2 << 20))
    runner = deploy.worker_named(row["worker"])
    backends = backends_of(deploy, job_id)
    assert any(b[1] == "active" and b[2] == f"sluice job-{job_id}" for b in backends), backends
    wait_for(lambda: deploy.bucket.initiated_keys(prefix), 5, "no multipart upload started")

    cancelled_at = time.monotonic()
    response = cancel(server.url, job_id)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled", response.json()
    wait_for(lambda: not backends_of(deploy, job_id), 1.0,
             f"the export's query still runs 1 s after the cancel: {backends_of(deploy, job_id)}",
             interval=0.01)
    gone_after = time.monotonic() - cancelled_at

    runner.wait_log(f"jobs: {job_id} attempt 1 stopped: the job was cancelled or taken over",
                    timeout=10)
    wait_for(lambda: not deploy.bucket.open_uploads(prefix), 10,
             f"the upload stays open: {deploy.bucket.open_uploads(prefix)}")
    assert deploy.bucket.aborted_upload_ids(prefix), "no AbortMultipartUpload was sent"
    assert deploy.bucket.completed_keys(prefix) == []
    time.sleep(0.5)
    seen = watcher.stop()
    assert seen == {} and deploy.bucket.keys(prefix) == [], seen

    job_now = get_job(server.url, job_id)
    assert job_now["state"] == "cancelled" and job_now["result"] is None, job_now
    assert job_now["attempt"] == 1, job_now
    assert non_progress(deploy.events(job_id))[-1][0] == "cancelled"
    assert [kind for kind, _ in non_progress(deploy.events(job_id))] == [
        "queued", "started", "cancelled"]
    assert f"jobs: {job_id} succeeded" not in runner.log_text()
    print(f"query gone {gone_after:.3f} s after the cancel")


# --------------------------------------------------------------------------------------------
# 4. Two serve and two worker processes, 200 jobs
# --------------------------------------------------------------------------------------------

def item_bodies(count: int, seed: int = 11) -> list[dict]:
    rnd = random.Random(seed)
    bodies = []
    for i in range(count):
        body = {"dataset": "items", "format": ["csv", "tsv", "jsonl", "json"][i % 4],
                "compression": ["none", "gzip", "zstd"][i % 3]}
        filters = {}
        kind = i % 6
        if kind == 0:
            filters["country"] = rnd.choice(["DE", "FR", "US", "PL", "Ω"])
        elif kind == 1:
            filters["country"] = rnd.sample(["DE", "FR", "US", "PL", "Ω"], 2)
        elif kind == 2:
            filters["amount.gte"] = rnd.randint(-500, 4000)
        elif kind == 3:
            low = rnd.randint(0, ITEMS_ROWS - 200)
            filters["id.gt"] = low
            filters["id.lte"] = low + rnd.randint(1, 1500)
        elif kind == 4:
            # (a string: a fractional JSON number is refused, see the test after this one)
            filters["amount.lt"] = f"{rnd.uniform(-400, 100):.2f}"
            filters["country"] = "DE"
        if filters:
            body["filters"] = filters
        if i % 5 == 0:
            body["columns"] = ["id", "name", "note"]
        if i % 7 == 0:
            body["order"] = "-amount,id"
            body["limit"] = rnd.randint(1, 300)
        if i % 9 == 0:
            body["limit"] = rnd.randint(0, 50)
        bodies.append(body)
    return bodies


def test_two_servers_and_two_workers_run_200_jobs_exactly_once(deploy):
    config = deploy.config()
    servers = [deploy.serve(config), deploy.serve(config)]
    workers = [deploy.worker(config, slots=4), deploy.worker(config, slots=4)]
    bodies = item_bodies(200)

    def submit_one(index: int) -> tuple[int, dict]:
        return index, submit_ok(servers[index % 2].url, bodies[index])

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        submitted = dict(pool.map(submit_one, range(len(bodies))))
    ids = [submitted[i]["id"] for i in range(len(bodies))]
    assert len(set(ids)) == len(ids)

    def finished(index: int) -> dict:
        return wait_job(servers[(index + 1) % 2].url, ids[index], timeout=120, interval=0.1)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(finished, range(len(ids))))
    took = time.monotonic() - started
    not_ok = [job for job in jobs if job["state"] != "succeeded"]
    assert not not_ok, not_ok[:3]
    assert [job["attempt"] for job in jobs] == [1] * len(jobs), \
        [(job["id"], job["attempt"]) for job in jobs if job["attempt"] != 1]

    # The queue's own record: one started and one succeeded event per job, nothing else but
    # queued and progress; each job's started event names one worker.
    counts = {(job_id, kind): n for job_id, kind, n in deploy.query(
        "SELECT job_id, type, count(*) FROM sluice_job_events GROUP BY 1, 2")}
    started_by = {job_id: json.loads(data)["worker"] for job_id, data in deploy.query(
        "SELECT job_id, data FROM sluice_job_events WHERE type = 'started'")}
    for job_id in ids:
        assert counts.get((job_id, "queued")) == 1, job_id
        assert counts.get((job_id, "started")) == 1, (job_id, counts.get((job_id, "started")))
        assert counts.get((job_id, "succeeded")) == 1, (job_id, counts.get((job_id, "succeeded")))
    kinds = {kind for _, kind in counts}
    assert kinds <= {"queued", "started", "progress", "succeeded"}, kinds

    # The workers' logs agree: each job succeeded once, on the worker its started event names.
    names = {deploy.names[w.pid]: w.log_text() for w in workers}
    for job_id in ids:
        runs = {name: log.count(f"jobs: {job_id} succeeded") for name, log in names.items()}
        assert sum(runs.values()) == 1, (job_id, runs)
        assert runs[started_by[job_id]] == 1, (job_id, runs, started_by[job_id])
    per_worker = {name: sum(1 for w in started_by.values() if w == name) for name in names}
    assert all(n > 0 for n in per_worker.values()), per_worker

    # Every result link downloads the right bytes: its sha256 and size, and the content of the
    # streaming export of the same request.
    def check(index: int) -> None:
        job, body = jobs[index], bodies[index]
        data = download_presigned(job)
        assert len(data) == job["result"]["size"], (job, len(data))
        assert sha256(data) == job["result"]["sha256"], job
        expected = streaming_export(servers[index % 2].url, dict(body, compression="none"))
        assert decompress(data, body.get("compression", "none")) == expected, (index, body)
        assert job["result"]["file_name"].startswith("items."), job

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(check, range(len(jobs))))

    # Only the 200 results are in the bucket under their jobs' prefixes.
    for job in jobs[:20]:
        assert deploy.bucket.keys(f".sluice/jobs/{job['id']}/") == [
            f".sluice/jobs/{job['id']}/1/{job['result']['file_name']}"]
    all_keys = deploy.bucket.keys(".sluice/jobs/")
    assert len([k for k in all_keys if k.split("/")[2] in set(ids)]) == len(ids)
    print(f"200 jobs through 2 serve + 2 worker processes in {took:.1f} s; per worker {per_worker}")


def test_a_fractional_number_in_filters_means_what_the_url_form_means(deploy):
    """{"amount.lt": 1.95} is the export URL's amount.lt=1.95 (docs/API.md: a filter value is a
    string, number, boolean or a list)."""
    config = deploy.config()
    server = deploy.serve(config)
    deploy.worker(config)
    body = {"dataset": "items", "format": "csv", "filters": {"amount.lt": 1.95, "country": "DE"}}
    response = requests.post(f"{server.url}/v1/jobs", json=body, timeout=30)
    assert response.status_code == 202, response.text
    done = wait_job(server.url, response.json()["id"], timeout=30)
    assert done["state"] == "succeeded", done
    assert download_presigned(done) == streaming_export(server.url, body)


# --------------------------------------------------------------------------------------------
# 5. LISTEN/NOTIFY: workers and event streams are woken at once
# --------------------------------------------------------------------------------------------

class SseRecorder:
    """Reads a job's SSE stream in a thread; records each event with its arrival time."""

    def __init__(self, server: SluiceServer, job_id: str):
        self.stream = SseStream(server.port, job_id, timeout=60)
        assert self.stream.status == 200, self.stream.response.head
        self.events: list[tuple[float, str, dict]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while (event := self.stream.next()) is not None:
                self.events.append((time.time(), event.event, event.data))
        except BaseException as error:  # noqa: BLE001 - reported by join()
            self.error = error

    def join(self, timeout: float) -> list[tuple[float, str, dict]]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the stream did not end: {self.events}"
        self.stream.close()
        assert self.error is None, self.error
        return self.events


def test_notify_wakes_idle_workers_and_event_streams_across_processes(deploy):
    # Polling every 10 s: anything faster than that came through LISTEN/NOTIFY.
    config = deploy.config(QUEUE_TIMINGS.replace("poll_interval_ms = 200",
                                                 "poll_interval_ms = 10000"))
    front, back = deploy.serve(config), deploy.serve(config)
    worker = deploy.worker(config, slots=2)
    time.sleep(1.0)  # the worker's first claim found nothing: it waits (10 s) for a wake-up

    # Enqueue-to-start latency on the idle worker, three times.
    latencies = []
    for _ in range(3):
        job = submit_ok(front.url, {"dataset": "items", "format": "csv",
                                    "filters": {"country": "FR"}})
        done = wait_job(front.url, job["id"], timeout=30, interval=0.02)
        assert done["state"] == "succeeded", done
        row = deploy.row(job["id"])
        latencies.append((row["started_at"] - row["created_at"]) / 1000.0)
        time.sleep(1.0)  # idle again, mid-way through a 10 s poll
    assert max(latencies) < 0.5, f"enqueue-to-start latencies {latencies} (poll: 10 s)"

    # A job that runs ~1.5 s on the worker, watched through the other serve process.
    job = submit_ok(front.url, slow_body(8_000))
    recorder = SseRecorder(back, job["id"])
    done = wait_job(front.url, job["id"], timeout=30, interval=0.05)
    assert done["state"] == "succeeded", done
    events = recorder.join(timeout=15)
    kinds = [kind for _, kind, _ in events]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "succeeded", kinds
    assert kinds.count("progress") >= 2, kinds  # progress also arrives while it runs
    row = deploy.row(job["id"])
    succeeded_arrival = events[-1][0]
    delay = succeeded_arrival - row["finished_at"] / 1000.0
    assert delay < 1.0, f"the succeeded event arrived {delay:.3f} s after the job finished"
    assert events[-1][2]["sha256"] == done["result"]["sha256"], events[-1]
    assert events[-1][2]["url"].startswith("http://") and "X-Amz-Signature=" in events[-1][2]["url"]
    assert download_presigned({"result": {"url": events[-1][2]["url"]}}) == baseline(front, 8_000)
    print(f"enqueue-to-start {[round(l * 1000) for l in latencies]} ms; "
          f"succeeded event {delay * 1000:.0f} ms after finished_at")
    assert worker.proc.poll() is None
