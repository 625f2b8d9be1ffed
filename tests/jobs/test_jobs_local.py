"""Background export jobs on the embedded default: the SQLite queue file and a local folder store.

What a job produces must be what the streaming export of the same request sends (byte for byte
uncompressed, the same bytes after decompression for gzip/zstd), with its size, rows and
SHA-256 in the job; the jobs API must refuse bad requests before anything is queued, replay
idempotent submissions, reuse results of the same data version, stream the job's events (SSE
and WebSocket, resumable), cancel running and queued jobs without leaving bytes in the store,
expire results, and let `sluice worker` processes share the queue (and hand jobs back when
they stop). Every server and worker runs the real binary ($SLUICE_BIN).
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time

import pytest
import requests

from support.digests import sha256
from support.http import assert_json_error
from support.metrics import wait_until
from support.server import run_sluice, serve, stop_and_check
from support.jobs import (
    COMPRESSIONS,
    FORMATS,
    SUFFIX,
    SseStream,
    all_job_ids,
    assert_event_sequence,
    cancel,
    decompress,
    download_result,
    get_job,
    items_dataset,
    jobs_config,
    job_files,
    list_jobs,
    raw_body,
    result_path,
    result_response,
    slow_dataset,
    sse_events,
    streaming_export,
    submit,
    submit_ok,
    temp_files,
    wait_job,
    wait_progress,
    ws_events,
)

from .conftest import FAST_QUEUE, ITEMS_ROWS


def now_ms() -> int:
    return int(time.time() * 1000)


def count_rows(db, where: str = "1 = 1", params: tuple = ()) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()[0]


def succeeded_lines(log: str, job_id: str | None = None) -> list[str]:
    return [line for line in log.splitlines()
            if " succeeded: " in line and (job_id is None or job_id in line)]


# ------------------------------------------------------------------------------------------
# 1. Every format and compression: the result is the streaming export
# ------------------------------------------------------------------------------------------

# Per format, a request using its output options, and the rows it selects (SQL over items).
REQUESTS = {
    "csv": ({"filters": {"country": ["DE", "Ω"]}, "order": "id", "delimiter": ";", "bom": True},
            "country IN ('DE', 'Ω')"),
    "tsv": ({"filters": {"amount.gte": 100}, "order": "id", "header": False},
            "amount >= 100"),
    "jsonl": ({"columns": ["id", "name", "note", "amount"], "order": "id", "limit": 20000},
              "id <= 20000"),
    "json": ({"filters": {"id.gt": 5000, "country": "FR"}, "order": "id"},
             "id > 5000 AND country = 'FR'"),
}


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_result_is_the_streaming_export(shared_env, fmt, compression):
    url = shared_env.url
    params, where = REQUESTS[fmt]
    body = {"dataset": "items", "format": fmt, "compression": compression, **params}
    queued = submit_ok(url, body)
    assert queued["state"] in ("queued", "running", "succeeded"), queued
    assert queued["dataset"] == "items"
    assert queued["request"]["format"] == fmt
    assert queued["request"]["compression"] == compression
    assert queued["request"]["file_name"] == f"items.{fmt}{SUFFIX[compression]}"
    assert queued["links"] == {"self": f"/v1/jobs/{queued['id']}",
                               "events": f"/v1/jobs/{queued['id']}/events",
                               "result": f"/v1/jobs/{queued['id']}/result"}
    job = wait_job(url, queued["id"])
    assert job["state"] == "succeeded", job
    assert job["error"] is None and job["attempt"] == 1, job
    result = job["result"]
    assert result["url"] == f"/v1/jobs/{job['id']}/result", result
    assert result["file_name"] == f"items.{fmt}{SUFFIX[compression]}"

    data = download_result(url, job)
    assert len(data) == result["size"], (len(data), result)
    assert sha256(data) == result["sha256"], result
    assert result_path(shared_env.store, job).read_bytes() == data
    rows = count_rows(shared_env.db, where)
    assert rows > 1000
    assert result["rows"] == rows, (result, rows)
    assert job["progress"] == {"rows": rows, "bytes": len(data)}, job["progress"]

    expected = streaming_export(url, body)
    if compression == "none":
        assert data == expected, "the result differs from the streaming export"
    else:
        # A streaming download is flushed whenever the database has nothing ready (so the
        # client can decode what arrived), which depends on timing; a job's result is
        # compressed in fixed blocks without flushes. The content is the same.
        assert decompress(data, compression) == decompress(expected, compression)
        # ... and a second job of the same request gives the very same bytes.
        again = wait_job(url, submit_ok(url, body)["id"])
        assert again["result"]["sha256"] == result["sha256"], (again["result"], result)


def test_default_queue_is_sqlite_beside_the_config(shared_env):
    """Without [queue], the jobs live in sluice-jobs.db beside the config."""
    job = wait_job(shared_env.url, submit_ok(shared_env.url, {"dataset": "items", "limit": 5})["id"])
    assert job["state"] == "succeeded"
    queue_file = shared_env.folder / "sluice-jobs.db"
    with sqlite3.connect(f"file:{queue_file}?mode=ro", uri=True) as conn:
        states = dict(conn.execute("SELECT id, state FROM sluice_jobs").fetchall())
    assert states.get(job["id"]) == "succeeded", states


def test_result_download_headers_range_and_etag(shared_env):
    url = shared_env.url
    job = wait_job(url, submit_ok(url, {"dataset": "items", "format": "jsonl", "limit": 3000,
                                        "file_name": "my export ü.jsonl"})["id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["file_name"] == "my export ü.jsonl"
    full = result_response(url, job)
    assert full.status_code == 200
    data = raw_body(full)
    assert len(data) == job["result"]["size"]
    assert full.headers["Content-Length"] == str(len(data))
    disposition = full.headers.get("Content-Disposition", "")
    assert "attachment" in disposition and "my%20export%20%C3%BC.jsonl" in disposition, disposition
    etag = full.headers["ETag"]

    part = result_response(url, job, {"Range": "bytes=100-199"})
    assert part.status_code == 206, part.headers
    assert raw_body(part) == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"

    same = result_response(url, job, {"If-None-Match": etag})
    assert same.status_code == 304, same.headers
    assert raw_body(same) == b""

    head = result_response(url, job, method="HEAD")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))


def test_results_are_hidden_from_store_listings(shared_env):
    """Results live under the reserved .sluice/ folder: an archive of the whole store does not
    list them, and naming one is refused."""
    url = shared_env.url
    job = wait_job(url, submit_ok(url, {"dataset": "items", "limit": 50})["id"])
    assert result_path(shared_env.store, job).is_file()
    (shared_env.store / "public").mkdir(exist_ok=True)
    (shared_env.store / "public" / "a.txt").write_bytes(b"hello")
    created = requests.post(f"{url}/v1/archives", json={"prefix": "", "whole_store": True}, timeout=30)
    assert created.status_code == 201, created.text
    assert created.json()["entries"] == 1, created.json()
    key = f".sluice/jobs/{job['id']}/1/{job['result']['file_name']}"
    refused = requests.post(f"{url}/v1/archives", json={"entries": [{"key": key}]}, timeout=30)
    assert 400 <= refused.status_code < 500, refused.text


# ------------------------------------------------------------------------------------------
# 2. Prefer: respond-async on an export URL
# ------------------------------------------------------------------------------------------

def test_prefer_respond_async_queues_the_export(shared_env):
    url = shared_env.url
    before = set(all_job_ids(url))
    target = "/v1/exports/items.jsonl.gz?country=DE,FR&order=-id&columns=id,country,note"
    response = requests.get(f"{url}{target}", headers={"Prefer": "respond-async"}, timeout=30)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Content-Location"] == f"/v1/jobs/{job['id']}"
    assert response.headers["Content-Type"].startswith("application/json")
    assert job["request"]["format"] == "jsonl" and job["request"]["compression"] == "gzip", job
    assert job["request"]["params"] == {"country": "DE,FR", "order": "-id",
                                        "columns": "id,country,note"}, job["request"]
    job = wait_job(url, job["id"])
    assert job["state"] == "succeeded", job
    data = download_result(url, job)
    assert sha256(data) == job["result"]["sha256"]
    expected = raw_body(requests.get(f"{url}{target}", timeout=60, stream=True,
                                     headers={"Accept-Encoding": "identity"}))
    assert decompress(data, "gzip") == decompress(expected, "gzip")
    assert job["result"]["rows"] == count_rows(shared_env.db, "country IN ('DE', 'FR')")

    # A plain .csv URL queues an uncompressed result, whatever Accept-Encoding says.
    target = "/v1/exports/items.csv?amount.lt=0&order=id"
    response = requests.get(f"{url}{target}", timeout=30,
                            headers={"Prefer": "respond-async", "Accept-Encoding": "gzip"})
    assert response.status_code == 202, response.text
    job = wait_job(url, response.json()["id"])
    assert job["state"] == "succeeded" and job["request"]["compression"] == "none", job
    assert download_result(url, job) == raw_body(
        requests.get(f"{url}{target}", timeout=60, stream=True,
                     headers={"Accept-Encoding": "identity"}))

    # Without the preference, and for HEAD, the export streams as ever: nothing is queued.
    plain = requests.get(f"{url}/v1/exports/items.csv?limit=3", timeout=30)
    assert plain.status_code == 200 and plain.text.count("\n") == 4
    head = requests.head(f"{url}/v1/exports/items.csv?limit=3", timeout=30,
                         headers={"Prefer": "respond-async"})
    assert head.status_code == 200, head.headers
    assert len(set(all_job_ids(url)) - before) == 2  # the two Prefer GETs only


# ------------------------------------------------------------------------------------------
# 3. Invalid requests: 4xx JSON errors, nothing queued
# ------------------------------------------------------------------------------------------

INVALID = [
    ({"dataset": "nope"}, 404, "unknown_dataset", ["nope"]),
    ({"dataset": "items", "filters": {"colour": "red"}}, 400, None, ["colour"]),
    ({"dataset": "items", "filters": {"amount.gte": "lots"}}, 400, None, ["amount"]),
    ({"dataset": "items", "filters": {"country": []}}, 400, "invalid_field", ["country"]),
    ({"dataset": "items", "format": "xml"}, 400, "invalid_field", ["format"]),
    ({"dataset": "items", "format": 3}, 400, "invalid_field", ["format"]),
    ({"dataset": "items", "compression": "brotli"}, 400, "invalid_field", ["compression"]),
    ({"dataset": "items", "colour": "red"}, 400, "unknown_field", ["colour"]),
    (b'{"dataset": "items",', 400, "invalid_json", []),
    (b"", 400, "invalid_json", []),
    (b'["items"]', 400, "invalid_json", []),
    ({}, 400, "invalid_field", ["dataset"]),
    ({"dataset": "items", "run_at": "tomorrow"}, 400, "invalid_field", ["run_at"]),
    ({"dataset": "items", "run_at": "2026-12-07T10:00:00+01:00"}, 400, "invalid_field", ["run_at"]),
    ({"dataset": "items", "run_at": -5}, 400, "invalid_field", ["run_at"]),
    ({"dataset": "items", "priority": 101}, 400, "invalid_field", ["priority"]),
    ({"dataset": "items", "priority": -101}, 400, "invalid_field", ["priority"]),
    ({"dataset": "items", "priority": "high"}, 400, "invalid_field", ["priority"]),
    ({"dataset": "items", "expires_in": 7200}, 400, "invalid_field", ["expires_in"]),
    ({"dataset": "items", "expires_in": 0}, 400, "invalid_field", ["expires_in"]),
    ({"dataset": "items", "max_attempts": 0}, 400, "invalid_field", ["max_attempts"]),
    ({"dataset": "items", "file_name": "../up.csv"}, 400, "invalid_field", ["file_name"]),
    ({"dataset": "items", "file_name": ".hidden.csv"}, 400, "invalid_field", ["file_name"]),
    ({"dataset": "items", "limit": -1}, 400, "invalid_field", ["limit"]),
    ({"dataset": "items", "order": "name"}, 400, None, []),
    ({"dataset": "items", "columns": ["id", "nope"]}, 400, None, ["nope"]),
]


def test_invalid_requests_queue_nothing(start_jobs):
    env = start_jobs(queue=FAST_QUEUE + "result_ttl_s = 60\nmax_result_ttl_s = 3600\n")
    url = env.url
    for body, status, code, mentions in INVALID:
        response = submit(url, body)
        try:
            assert_json_error(response, status, code, mentions)
        except AssertionError as error:
            raise AssertionError(f"body {body!r}: {error}") from None
    # An over-long Idempotency-Key.
    assert_json_error(submit(url, {"dataset": "items"}, {"Idempotency-Key": "k" * 256}), 400,
                      "invalid_idempotency_key")
    # Export URLs with Prefer: respond-async are checked the same way.
    for target, status in (("/v1/exports/nope.csv", 404), ("/v1/exports/items.csv?colour=1", 400),
                           ("/v1/exports/items.csv?order=name", 400),
                           ("/v1/exports/items.xml", 404)):
        response = requests.get(f"{url}{target}", headers={"Prefer": "respond-async"}, timeout=30)
        assert response.status_code == status, (target, response.status_code, response.text)
        assert_json_error(response, status)

    listing = list_jobs(url)
    assert listing.status_code == 200, listing.text
    assert listing.json() == {"jobs": [], "next": None}
    with sqlite3.connect(f"file:{env.folder / 'sluice-jobs.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM sluice_jobs").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM sluice_job_events").fetchone()[0] == 0


def test_run_at_with_impossible_date_is_refused(start_jobs):
    """An RFC 3339 time whose fields are out of range (month 13, Feb 30, hour 25) is garbage,
    not a time that some normalisation makes of it."""
    env = start_jobs()
    for text in ("2026-13-01T00:00:00Z", "2026-02-30T10:00:00Z", "2026-12-07T25:61:00Z"):
        response = submit(env.url, {"dataset": "items", "run_at": text})
        assert response.status_code == 400, (text, response.status_code, response.text)
    assert all_job_ids(env.url) == []


def test_unknown_job_ids(start_jobs):
    env = start_jobs()
    for target in ("/v1/jobs/0123456789abcdef0123456789abcdef", "/v1/jobs/nope",
                   "/v1/jobs/0123456789abcdef0123456789abcdef/events",
                   "/v1/jobs/0123456789abcdef0123456789abcdef/result"):
        assert_json_error(requests.get(f"{env.url}{target}", timeout=10), 404, "job_not_found")
    assert_json_error(cancel(env.url, "0123456789abcdef0123456789abcdef"), 404, "job_not_found")
    assert_json_error(cancel(env.url, "NOT-AN-ID"), 404, "job_not_found")


# ------------------------------------------------------------------------------------------
# 4. Idempotency-Key
# ------------------------------------------------------------------------------------------

def test_idempotency_key(start_jobs):
    env = start_jobs()
    url = env.url
    body = {"dataset": "items", "format": "csv", "filters": {"country": "PL"}, "order": "id"}
    first = submit(url, body, {"Idempotency-Key": "order-42"})
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    second = submit(url, body, {"Idempotency-Key": "order-42"})
    assert second.status_code == 202, second.text
    assert second.headers.get("Idempotent-Replayed") == "true", second.headers
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Content-Location"] == first.headers["Content-Location"]
    job = wait_job(url, first.json()["id"])
    assert job["state"] == "succeeded"
    # Replayed after it finished: the same job, as it is now.
    third = submit(url, body, {"Idempotency-Key": "order-42"})
    assert third.status_code == 202 and third.json()["id"] == job["id"]
    assert third.json()["state"] == "succeeded"

    other = submit(url, {**body, "filters": {"country": "DE"}}, {"Idempotency-Key": "order-42"})
    error = assert_json_error(other, 422, "idempotency_key_reused")
    assert error.get("job_id") == job["id"], error
    # The same key through an export URL asking something else: also refused.
    async_other = requests.get(f"{url}/v1/exports/items.csv?country=US",
                               headers={"Prefer": "respond-async", "Idempotency-Key": "order-42"},
                               timeout=30)
    assert_json_error(async_other, 422, "idempotency_key_reused")

    # Another key is another job.
    fresh = submit_ok(url, body, {"Idempotency-Key": "order-43"})
    assert fresh["id"] != job["id"]
    assert sorted(all_job_ids(url)) == sorted([job["id"], fresh["id"]])
    assert len(succeeded_lines(env.log(), job["id"])) == 1


def test_idempotency_key_concurrent_submissions(start_jobs):
    """Eight clients send the same keyed request at once: one job, created once."""
    env = start_jobs()
    body = {"dataset": "items", "limit": 10}
    answers: list = [None] * 8

    def send(i: int) -> None:
        answers[i] = submit(env.url, body, {"Idempotency-Key": "same-for-all"})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(answers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(a is not None and a.status_code == 202 for a in answers), answers
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert len(all_job_ids(env.url)) == 1


# ------------------------------------------------------------------------------------------
# 5. Data-version reuse
# ------------------------------------------------------------------------------------------

VERSIONED = (items_dataset("items", version_query="SELECT count(*), max(id) FROM items") +
             items_dataset("items_plain"))


def test_same_data_version_reuses_the_result(start_jobs):
    env = start_jobs(datasets=VERSIONED, own_db=True)
    url = env.url
    body = {"dataset": "items", "format": "csv", "filters": {"country": "DE"}, "order": "id"}
    first = wait_job(url, submit_ok(url, body)["id"])
    assert first["state"] == "succeeded", first
    assert first["data_version"] == f"{ITEMS_ROWS}|{ITEMS_ROWS}", first

    reused = submit_ok(url, body)
    assert reused["id"] != first["id"]
    assert reused["state"] == "succeeded", f"not completed at once: {reused}"
    assert reused["data_version"] == first["data_version"]
    for key in ("sha256", "size", "rows", "file_name"):
        assert reused["result"][key] == first["result"][key], (key, reused, first)
    assert reused["result"]["url"] == f"/v1/jobs/{reused['id']}/result"
    assert download_result(url, reused) == download_result(url, first)
    assert [e.event for e in sse_events(env.port, reused["id"])] == ["queued", "succeeded"]
    # No second export: one "succeeded" line, one object (the first job's).
    time.sleep(0.3)
    assert len(succeeded_lines(env.log())) == 1, succeeded_lines(env.log())
    assert job_files(env.store, reused["id"]) == []
    assert len(job_files(env.store, first["id"])) == 1

    # Another request is another export.
    other = wait_job(url, submit_ok(url, {**body, "filters": {"country": "FR"}})["id"])
    assert other["state"] == "succeeded" and other["result"]["sha256"] != first["result"]["sha256"]
    assert len(succeeded_lines(env.log())) == 2

    # The data changes: the version query changes, the job runs again, the result differs.
    with sqlite3.connect(env.db) as conn:
        conn.execute("INSERT INTO items VALUES (?, 'new item', 'DE', 1.5, 1, "
                     "'2026-12-07T00:00:00Z', 'added')", (ITEMS_ROWS + 1,))
    changed = submit_ok(url, body)
    assert changed["data_version"] == f"{ITEMS_ROWS + 1}|{ITEMS_ROWS + 1}", changed
    changed = wait_job(url, changed["id"])
    assert changed["state"] == "succeeded" and changed["attempt"] == 1, changed
    assert changed["result"]["sha256"] != first["result"]["sha256"]
    assert changed["result"]["rows"] == first["result"]["rows"] + 1
    assert len(succeeded_lines(env.log(), changed["id"])) == 1
    # ... and that new result is what the next identical job gets.
    again = submit_ok(url, body)
    assert again["state"] == "succeeded" and again["result"]["sha256"] == changed["result"]["sha256"]

    # Without version_query: never reused.
    plain_body = {**body, "dataset": "items_plain"}
    a = wait_job(url, submit_ok(url, plain_body)["id"])
    b_queued = submit_ok(url, plain_body)
    assert b_queued["state"] != "succeeded" or b_queued["attempt"] == 1, b_queued
    b = wait_job(url, b_queued["id"])
    assert a["state"] == b["state"] == "succeeded"
    assert "data_version" not in a and "data_version" not in b
    assert len(succeeded_lines(env.log(), a["id"])) == 1
    assert len(succeeded_lines(env.log(), b["id"])) == 1
    assert len(job_files(env.store, b["id"])) == 1


def test_reused_result_keeps_the_requested_file_name(start_jobs):
    """Two jobs asking the same rows under different names: the second may reuse the bytes, but
    what it hands out must carry the name it asked for (result.file_name, Content-Disposition)."""
    env = start_jobs(datasets=VERSIONED)
    body = {"dataset": "items", "format": "csv", "filters": {"country": "US"}}
    first = wait_job(env.url, submit_ok(env.url, {**body, "file_name": "first.csv"})["id"])
    assert first["state"] == "succeeded"
    second = wait_job(env.url, submit_ok(env.url, {**body, "file_name": "second.csv"})["id"])
    assert second["request"]["file_name"] == "second.csv"
    assert second["result"]["file_name"] == "second.csv", second
    disposition = result_response(env.url, second).headers.get("Content-Disposition", "")
    assert "second.csv" in disposition, disposition


# ------------------------------------------------------------------------------------------
# 6. Events: Server-Sent Events and WebSocket
# ------------------------------------------------------------------------------------------

def test_events_sse_and_websocket(start_jobs):
    env = start_jobs()
    url, port = env.url, env.port
    rows = 1_500_000
    job = submit_ok(url, {"dataset": "slow", "limit": rows, "run_at": now_ms() + 1500})
    assert job["state"] == "queued"
    job_id = job["id"]

    # Live clients, connected before the job starts: a WebSocket (in a thread), SSE, and an
    # SSE client that leaves after `started` and comes back with Last-Event-ID.
    ws_live: dict = {}
    ws_thread = threading.Thread(
        target=lambda: ws_live.setdefault("events", ws_events(port, job_id)), daemon=True)
    ws_thread.start()
    leaver = SseStream(port, job_id)
    assert leaver.status == 200
    assert leaver.response.header("content-type") == "text/event-stream"
    first_part = [leaver.next(), leaver.next()]
    assert leaver.retry == 1000
    leaver.close()
    assert [e.event for e in first_part] == ["queued", "started"], first_part
    live = sse_events(port, job_id)
    rest = sse_events(port, job_id, last_event_id=first_part[-1].id)
    ws_thread.join(timeout=60)
    assert "events" in ws_live, "the WebSocket client got nothing"

    assert_event_sequence(live)
    progress = [e for e in live if e.event == "progress"]
    assert progress, f"no progress event during a {rows}-row job: {live}"
    assert [e.data["rows"] for e in progress] == sorted(e.data["rows"] for e in progress)
    done = live[-1].data
    assert done["rows"] == rows and done["url"] == f"/v1/jobs/{job_id}/result", done
    final = get_job(url, job_id)
    assert done["sha256"] == final["result"]["sha256"] and done["size"] == final["result"]["size"]
    assert live[1].data["attempt"] == 1 and live[1].data["state"] == "running"

    # The reconnecting client: exactly what came after its last id.
    assert rest and rest[0].id > first_part[-1].id
    assert_event_sequence(first_part + rest)
    assert [e.id for e in rest if e.event != "progress"] == \
        [e.id for e in live if e.id > first_part[-1].id and e.event != "progress"]

    # The WebSocket saw the same events as the SSE client (progress events may be merged).
    ws_live_events = ws_live["events"]
    assert_event_sequence(ws_live_events)
    assert [(e.id, e.event) for e in ws_live_events if e.event != "progress"] == \
        [(e.id, e.event) for e in live if e.event != "progress"]
    assert ws_live_events[-1].data == done

    # Replays of the finished job, from the start and from every id: the events after it.
    replay = sse_events(port, job_id)
    assert replay[0].event == "queued" and replay[-1].event == "succeeded"
    by_id = {e.id: e for e in live}
    for event in replay:
        if event.id in by_id:
            assert (event.event, event.data) == (by_id[event.id].event, by_id[event.id].data)
    for after in [0] + [e.id for e in live[:-1]]:
        expected = [(e.id, e.event) for e in replay if e.id > after]
        assert [(e.id, e.event) for e in sse_events(port, job_id, last_event_id=after)] == \
            expected, f"SSE after {after}"
        assert [(e.id, e.event) for e in sse_events(port, job_id, query=f"last_event_id={after}")] \
            == expected, f"SSE ?last_event_id={after}"
    for after in (0, live[0].id, live[1].id, live[-2].id):
        expected = [(e.id, e.event) for e in replay if e.id > after]
        assert [(e.id, e.event) for e in ws_events(port, job_id, last_event_id=after)] == \
            expected, f"WebSocket ?last_event_id={after}"
        assert [(e.id, e.event) for e in ws_events(port, job_id, header_last_event_id=after)] == \
            expected, f"WebSocket Last-Event-ID: {after}"

    bad = requests.get(f"{url}/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"},
                       timeout=10)
    assert_json_error(bad, 400, "invalid_last_event_id")


def test_event_stream_resumed_after_the_final_event_ends(start_jobs):
    """A client that reconnects after the final event (an EventSource reconnects whenever the
    stream ends, sending the last id it saw) must not be held open forever: the job will never
    have another event. The stream must end at once (or 204, which stops an EventSource); the
    WebSocket must close."""
    env = start_jobs()
    job = wait_job(env.url, submit_ok(env.url, {"dataset": "items", "limit": 10})["id"])
    last = sse_events(env.port, job["id"])[-1]
    assert last.event == "succeeded"
    problems = []
    stream = SseStream(env.port, job["id"], last_event_id=last.id, timeout=3)
    try:
        if stream.status == 200:
            try:
                events = stream.all()
                if events or not stream.ended:
                    problems.append(f"SSE after the final event: {events}, ended={stream.ended}")
            except socket.timeout:
                problems.append(f"SSE with Last-Event-ID {last.id} (the final event) still open "
                                "after 3 s")
        elif stream.status != 204:
            problems.append(f"SSE after the final event: status {stream.status}")
    finally:
        stream.close()
    try:
        events = ws_events(env.port, job["id"], last_event_id=last.id, timeout=3)
        if events:
            problems.append(f"WebSocket after the final event: {events}")
    except (TimeoutError, asyncio.TimeoutError):
        problems.append(f"WebSocket with last_event_id {last.id} (the final event) still open "
                        "after 3 s")
    assert not problems, problems


# ------------------------------------------------------------------------------------------
# 7. Cancel
# ------------------------------------------------------------------------------------------

def assert_cancel_again_is_a_no_op(env, job_id: str) -> None:
    """DELETE of a cancelled job changes nothing: no new event, the same job. (Its status is
    test_cancel_of_a_cancelled_job_is_409's business.)"""
    events = sse_events(env.port, job_id)
    before = get_job(env.url, job_id)
    again = cancel(env.url, job_id)
    assert again.status_code in (200, 409), again.text
    assert get_job(env.url, job_id) == before
    assert sse_events(env.port, job_id) == events


def test_cancel_running_job(start_jobs):
    env = start_jobs(queue=FAST_QUEUE + "workers = 1\n")
    url = env.url
    job_id = submit_ok(url, {"dataset": "slow", "format": "csv", "compression": "gzip"})["id"]
    running = wait_progress(url, job_id, rows=1)
    assert running["started_at"] is not None
    watcher = SseStream(env.port, job_id, timeout=10)
    assert [watcher.next().event, watcher.next().event] == ["queued", "started"]
    assert temp_files(env.store), "the running export writes a temporary file"

    started = time.monotonic()
    response = cancel(url, job_id)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    assert elapsed < 1.0, elapsed
    job = get_job(url, job_id)
    assert job["state"] == "cancelled" and job["finished_at"] is not None and job["result"] is None

    rest = watcher.all()
    watcher.close()
    assert rest and rest[-1].event == "cancelled", rest
    assert rest[-1].data == {"state": "cancelled", "was": "running"}, rest[-1]
    assert time.monotonic() - started < 2.0, "the event stream did not end with the cancel"
    assert [e.event for e in sse_events(env.port, job_id)][-1] == "cancelled"

    # The worker stops: the export ends, nothing published, no temporary file left.
    deadline = time.monotonic() + 5
    while "stopped: the job was cancelled" not in env.log():
        assert time.monotonic() < deadline, f"the worker did not stop the export\n{env.log()}"
        time.sleep(0.05)
    assert job_files(env.store, job_id) == []
    assert temp_files(env.store) == []
    rows_then = get_job(url, job_id)["progress"]["rows"]
    time.sleep(0.3)
    assert get_job(url, job_id)["progress"]["rows"] == rows_then
    assert_json_error(result_response(url, job), 409, "job_not_succeeded")
    assert_cancel_again_is_a_no_op(env, job_id)

    # The only slot is free again: the next job runs at once.
    after = wait_job(url, submit_ok(url, {"dataset": "items", "limit": 100})["id"], timeout=10)
    assert after["state"] == "succeeded"
    assert succeeded_lines(env.log(), job_id) == []


def test_cancel_queued_job(start_jobs):
    env = start_jobs()
    url = env.url
    run_at = now_ms() + 1500
    job = submit_ok(url, {"dataset": "items", "limit": 10, "run_at": run_at})
    assert job["state"] == "queued" and job["run_at"].endswith("Z")
    response = cancel(url, job["id"])
    assert response.status_code == 200 and response.json()["state"] == "cancelled", response.text
    time.sleep((run_at - now_ms()) / 1000 + 0.6)  # past run_at and several polls
    job = get_job(url, job["id"])
    assert job["state"] == "cancelled" and job["attempt"] == 0 and job["started_at"] is None, job
    assert [e.event for e in sse_events(env.port, job["id"])] == ["queued", "cancelled"]
    assert job_files(env.store, job["id"]) == []
    assert_json_error(result_response(url, job), 409, "job_not_succeeded")
    assert_cancel_again_is_a_no_op(env, job["id"])
    # A finished job cannot be cancelled.
    done = wait_job(url, submit_ok(url, {"dataset": "items", "limit": 10})["id"])
    error = assert_json_error(cancel(url, done["id"]), 409, "job_finished")
    assert error.get("state") == "succeeded"
    assert get_job(url, done["id"])["state"] == "succeeded"


def test_a_repeated_cancel_answers_the_same_and_adds_no_event(start_jobs):
    """docs/API.md: a job already cancelled answers 200 again (a repeated DELETE is harmless);
    one that succeeded is 409 job_finished."""
    env = start_jobs()
    job = submit_ok(env.url, {"dataset": "items", "run_at": now_ms() + 60_000})
    first = cancel(env.url, job["id"])
    assert first.status_code == 200
    again = cancel(env.url, job["id"])
    assert again.status_code == 200, again.text
    assert again.json()["state"] == "cancelled"
    assert again.json()["finished_at"] == first.json()["finished_at"]
    done = wait_job(env.url, submit_ok(env.url, {"dataset": "items", "limit": 1})["id"])
    assert done["state"] == "succeeded"
    error = assert_json_error(cancel(env.url, done["id"]), 409, "job_finished")
    assert error.get("state") == "succeeded", error


def test_priority_decides_what_runs_next(start_jobs):
    env = start_jobs(queue=FAST_QUEUE + "workers = 1\n")
    url = env.url
    blocker = submit_ok(url, {"dataset": "slow", "limit": 1_000_000})
    wait_progress(url, blocker["id"])
    low = submit_ok(url, {"dataset": "items", "limit": 1, "priority": -5})
    high = submit_ok(url, {"dataset": "items", "limit": 2, "priority": 50})
    normal = submit_ok(url, {"dataset": "items", "limit": 3})
    assert (low["priority"], high["priority"], normal["priority"]) == (-5, 50, 0)
    done = [wait_job(url, job["id"]) for job in (low, high, normal)]
    assert all(job["state"] == "succeeded" for job in done), done
    order = [job["priority"] for job in sorted(done, key=lambda job: job["started_at"])]
    assert order == [50, 0, -5], done


# ------------------------------------------------------------------------------------------
# 8. Listing
# ------------------------------------------------------------------------------------------

def test_list_jobs(start_jobs):
    env = start_jobs(datasets=items_dataset() + slow_dataset())
    url = env.url
    later = now_ms() + 3_600_000
    ids = []  # oldest first
    states = {}
    for i in range(3):
        ids.append(submit_ok(url, {"dataset": "items", "limit": 5 + i})["id"])
        states[ids[-1]] = "succeeded"
    for i in range(4):
        ids.append(submit_ok(url, {"dataset": "slow" if i % 2 else "items", "limit": i + 1,
                                   "run_at": later})["id"])
        states[ids[-1]] = "queued"
    ids.append(submit_ok(url, {"dataset": "items", "limit": 99, "run_at": later})["id"])
    assert cancel(url, ids[-1]).status_code == 200
    states[ids[-1]] = "cancelled"
    for job_id in ids[:3]:
        wait_job(url, job_id)
    newest_first = ids[::-1]

    everything = list_jobs(url).json()
    assert [j["id"] for j in everything["jobs"]] == newest_first
    assert everything["next"] is None
    assert {j["id"]: j["state"] for j in everything["jobs"]} == states
    for state in ("queued", "succeeded", "cancelled", "failed"):
        page = list_jobs(url, {"state": state}).json()
        assert [j["id"] for j in page["jobs"]] == [i for i in newest_first if states[i] == state]
    slow = list_jobs(url, {"dataset": "slow"}).json()["jobs"]
    assert [j["id"] for j in slow] == [ids[6], ids[4]]

    def follow(first: dict) -> tuple[list[str], list[str]]:
        seen, links = [], []
        response = list_jobs(url, first)
        while True:
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["jobs"]) <= int(first["limit"])
            seen += [j["id"] for j in page["jobs"]]
            if page["next"] is None:
                return seen, links
            links.append(page["next"])
            assert len(links) < 20
            response = list_jobs(url, page["next"])

    seen, links = follow({"limit": 3})
    assert seen == newest_first
    assert links[0] == f"/v1/jobs?before={newest_first[2]}&limit=3", links
    seen, _ = follow({"limit": 2, "state": "queued"})
    assert seen == [i for i in newest_first if states[i] == "queued"]
    assert list_jobs(url, {"before": ids[3], "limit": 10}).json()["jobs"] == \
        list_jobs(url, {"limit": 10}).json()["jobs"][len(ids) - 3:]

    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"limit": -1},
                   {"state": "done"}, {"before": "nope"}, {"colour": "red"}):
        assert_json_error(list_jobs(url, params), 400)
    assert len(list_jobs(url, {"limit": 1000}).json()["jobs"]) == len(ids)


def test_list_next_link_keeps_the_dataset_filter(start_jobs):
    """Following `next` of GET /v1/jobs?dataset=items must stay within dataset items."""
    env = start_jobs()
    later = now_ms() + 3_600_000
    for i in range(3):
        submit_ok(env.url, {"dataset": "items", "limit": 1, "run_at": later})
        submit_ok(env.url, {"dataset": "slow", "limit": 1, "run_at": later})
    page = list_jobs(env.url, {"dataset": "items", "limit": 2}).json()
    assert page["next"] is not None
    assert "dataset=items" in page["next"], page["next"]
    second = list_jobs(env.url, page["next"]).json()
    assert {j["dataset"] for j in second["jobs"]} == {"items"}, second


# ------------------------------------------------------------------------------------------
# 9. Results expire
# ------------------------------------------------------------------------------------------

def test_result_expires(start_jobs):
    env = start_jobs()
    url = env.url
    job = wait_job(url, submit_ok(url, {"dataset": "items", "limit": 500, "expires_in": 1})["id"])
    assert job["state"] == "succeeded", job
    path = result_path(env.store, job)
    assert path.is_file()
    succeeded_id = sse_events(env.port, job["id"])[-1].id
    started = time.monotonic()
    job = wait_job(url, job["id"], states=("expired",), timeout=5)
    assert time.monotonic() - started < 3.5
    assert job["result"]["url"] is None and job["result"]["sha256"], job
    assert_json_error(result_response(url, job), 410, "result_expired")
    assert not path.exists()
    assert job_files(env.store, job["id"]) == []
    assert [e.event for e in sse_events(env.port, job["id"], last_event_id=succeeded_id)] == \
        ["expired"]
    # The sweep logs once it has deleted the files, a moment after the job shows as expired.
    wait_until(lambda: "1 result(s) expired" in env.log(), 10, "the sweep's log line")
    assert_json_error(cancel(url, job["id"]), 409, "job_finished")


def test_retention_forgets_finished_jobs(start_jobs):
    env = start_jobs(queue=FAST_QUEUE + "retention_s = 1\nresult_ttl_s = 1\n")
    url = env.url
    cancelled = submit_ok(url, {"dataset": "items", "run_at": now_ms() + 60_000})
    assert cancel(url, cancelled["id"]).status_code == 200
    done = wait_job(url, submit_ok(url, {"dataset": "items", "limit": 5})["id"])
    kept = submit_ok(url, {"dataset": "items", "run_at": now_ms() + 60_000})
    deadline = time.monotonic() + 6
    while set(all_job_ids(url)) != {kept["id"]}:
        assert time.monotonic() < deadline, list_jobs(url).json()
        time.sleep(0.1)
    for job in (cancelled, done):
        assert_json_error(requests.get(f"{url}/v1/jobs/{job['id']}", timeout=10), 404,
                          "job_not_found")
        assert_json_error(requests.get(f"{url}/v1/jobs/{job['id']}/events", timeout=10), 404)
    assert job_files(env.store, done["id"]) == []
    with sqlite3.connect(f"file:{env.folder / 'sluice-jobs.db'}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM sluice_job_events WHERE job_id IN (?, ?)",
                            (cancelled["id"], done["id"])).fetchone()[0] == 0


def test_serve_without_workers_still_sweeps(start_jobs):
    """docs/CONFIG.md sweep_interval_ms: "how often each process requeues jobs whose lease
    lapsed, deletes expired results and forgets old jobs" -- also a serve with workers = 0."""
    env = start_jobs(queue=FAST_QUEUE + "workers = 0\n")
    worker = env.worker(workers=1)
    job = wait_job(env.url, submit_ok(env.url, {"dataset": "items", "limit": 5,
                                                "expires_in": 1})["id"], timeout=15)
    assert job["state"] == "succeeded"
    assert worker.stop() == 0
    time.sleep(2.5)
    job = get_job(env.url, job["id"])
    assert job["state"] == "expired", "no process swept: the result outlives its expiry"
    assert job_files(env.store, job["id"]) == []


# ------------------------------------------------------------------------------------------
# 10. `sluice worker`
# ------------------------------------------------------------------------------------------

def test_worker_process_runs_jobs_of_serve(start_jobs):
    env = start_jobs(queue=FAST_QUEUE + "workers = 0\n", server="shutdown_grace_ms = 300\n")
    url = env.url
    assert "jobs: worker" not in env.log()  # serve runs no jobs itself
    body = {"dataset": "items", "format": "tsv", "order": "id", "filters": {"country": "US"}}
    job_id = submit_ok(url, body)["id"]
    time.sleep(0.5)
    assert get_job(url, job_id)["state"] == "queued"

    worker = env.worker(workers=1, name="first")
    job = wait_job(url, job_id, timeout=15)
    assert job["state"] == "succeeded", job
    assert f"jobs: {job_id} succeeded: " in worker.log_text()
    assert succeeded_lines(env.log()) == []
    started = [e for e in sse_events(env.port, job_id) if e.event == "started"]
    assert f":{worker.pid}:" in started[0].data["worker"], started
    assert download_result(url, job) == streaming_export(url, body)

    # A long job on this worker; SIGTERM with a short grace: the job is handed back and the
    # next worker completes it.
    rows = 4_000_000
    long_id = submit_ok(url, {"dataset": "slow", "limit": rows})["id"]
    wait_progress(url, long_id, rows=1, timeout=15)
    second = env.worker(workers=1, name="second")
    second.wait_log("runs up to 1 job(s)")
    stopped_at = time.monotonic()
    rc = worker.stop(timeout=10)
    assert rc == 0, worker.log_text()
    assert time.monotonic() - stopped_at < 5
    log = worker.log_text()
    assert f"jobs: {long_id} handed back at shutdown" in log, log
    assert f"{long_id} succeeded" not in log

    job = wait_job(url, long_id, timeout=60)
    assert job["state"] == "succeeded", job
    assert job["result"]["rows"] == rows
    assert f"jobs: {long_id} succeeded: {rows} rows" in second.log_text()
    events = sse_events(env.port, long_id)
    kinds = [e.event for e in events if e.event != "progress"]
    assert kinds == ["queued", "started", "queued", "started", "succeeded"], kinds
    workers = [e.data["worker"] for e in events if e.event == "started"]
    assert f":{worker.pid}:" in workers[0] and f":{second.pid}:" in workers[1], workers
    assert job["attempt"] == 1  # a hand-back does not count as an attempt
    assert len(job_files(env.store, long_id)) == 1
    assert temp_files(env.store) == []


def test_cancel_reaches_a_job_in_a_worker_process(start_jobs):
    """docs/API.md: a running export stops within a second on every worker; across processes
    the SQLite queue is not notified, the worker's next heartbeat is refused."""
    env = start_jobs(queue=FAST_QUEUE + "workers = 0\n", server="shutdown_grace_ms = 300\n")
    worker = env.worker(workers=1)
    job_id = submit_ok(env.url, {"dataset": "slow", "compression": "zstd"})["id"]
    wait_progress(env.url, job_id, rows=1, timeout=15)
    watcher = SseStream(env.port, job_id, last_event_id=2, timeout=10)  # (polled by serve)
    assert cancel(env.url, job_id).status_code == 200
    cancelled_at = time.monotonic()
    worker.wait_log(f"jobs: {job_id} attempt 1 stopped: the job was cancelled", timeout=5)
    assert time.monotonic() - cancelled_at < 1.5
    events = watcher.all()
    watcher.close()
    assert events[-1].event == "cancelled", events
    assert job_files(env.store, job_id) == [] and temp_files(env.store) == []
    # The worker is free for the next job.
    assert wait_job(env.url, submit_ok(env.url, {"dataset": "items", "limit": 5})["id"],
                    timeout=10)["state"] == "succeeded"


def test_serve_hands_running_jobs_back_at_shutdown(start_jobs):
    env = start_jobs(queue=FAST_QUEUE + "workers = 1\n", server="shutdown_grace_ms = 300\n")
    rows = 3_000_000
    job_id = submit_ok(env.url, {"dataset": "slow", "limit": rows})["id"]
    wait_progress(env.url, job_id, rows=1)
    first = env.server
    stopping = time.monotonic()
    assert first.stop() == 0, first.log_tail()
    assert time.monotonic() - stopping < 5
    assert f"jobs: {job_id} handed back at shutdown" in first.log_text()
    with sqlite3.connect(f"file:{env.folder / 'sluice-jobs.db'}?mode=ro", uri=True) as conn:
        state, attempt = conn.execute("SELECT state, attempt FROM sluice_jobs WHERE id = ?",
                                      (job_id,)).fetchone()
    assert (state, attempt) == ("queued", 0)
    assert temp_files(env.store) == []

    env.server = serve(env.config, env.folder / "serve-again.stderr.log")
    job = wait_job(env.url, job_id, timeout=60)
    assert job["state"] == "succeeded" and job["attempt"] == 1, job
    assert job["result"]["rows"] == rows


def test_lapsed_lease_of_a_killed_worker(start_jobs):
    """A worker killed with SIGKILL renews nothing: after lease_ms the sweeper of another process
    (the surviving worker's or the server's: whichever passes first) queues the job again
    (attempt counted, event retrying with lease_lapsed) and it runs."""
    env = start_jobs(queue=FAST_QUEUE + "workers = 0\n")
    doomed = env.worker(workers=1, name="killed")
    rows = 1_500_000
    job_id = submit_ok(env.url, {"dataset": "slow", "limit": rows})["id"]
    wait_progress(env.url, job_id, rows=1, timeout=15)
    survivor = env.worker(workers=1, name="survivor")
    survivor.wait_log("runs up to 1 job(s)")
    doomed.kill()
    job = wait_job(env.url, job_id, timeout=30)
    assert job["state"] == "succeeded" and job["attempt"] == 2, job
    assert job["result"]["rows"] == rows
    kinds = [(e.event, e.data.get("error", {}).get("code")) for e in sse_events(env.port, job_id)
             if e.event != "progress"]
    assert kinds == [("queued", None), ("started", None), ("retrying", "lease_lapsed"),
                     ("started", None), ("succeeded", None)], kinds
    assert "1 lapsed lease(s) requeued" in survivor.log_text() + env.log()
    assert len(job_files(env.store, job_id)) == 1


def test_two_serves_share_one_sqlite_queue(start_jobs):
    """Two `sluice serve` on one config (one queue file, one store), two slots each: every job
    runs exactly once, whichever server took it, and both servers show every job."""
    env = start_jobs()
    other = serve(env.config, env.folder / "other.stderr.log")
    try:
        urls = [env.url, other.url] * 8 + [env.url]
        ids = [submit_ok(url, {"dataset": "items", "limit": 100 + i})["id"]
               for i, url in enumerate(urls[:-1])]
        for i, job_id in enumerate(ids):
            job = wait_job(urls[i + 1], job_id, timeout=30)  # asked on the other server
            assert job["state"] == "succeeded" and job["attempt"] == 1, job
            assert job["result"]["rows"] == 100 + i
        time.sleep(0.3)
        logs = env.log() + other.log_text()
        for job_id in ids:
            assert len(succeeded_lines(logs, job_id)) == 1, job_id
        assert sorted(all_job_ids(env.url)) == sorted(all_job_ids(other.url)) == sorted(ids)
    finally:
        stop_and_check(other)


def test_slots_run_jobs_in_parallel(start_jobs):
    env = start_jobs()  # workers = 2 (the default)
    a = submit_ok(env.url, {"dataset": "slow", "limit": 2_000_000})
    b = submit_ok(env.url, {"dataset": "slow", "limit": 2_000_000})
    deadline = time.monotonic() + 10
    while {get_job(env.url, a["id"])["state"], get_job(env.url, b["id"])["state"]} != {"running"}:
        assert time.monotonic() < deadline, "the two jobs never ran at the same time"
        time.sleep(0.02)
    for job in (a, b):
        assert wait_job(env.url, job["id"])["state"] == "succeeded"


def test_worker_command_line_and_config_checks(tmp_path, items_db):
    store = tmp_path / "store"
    store.mkdir()
    no_storage = tmp_path / "no-storage.toml"
    no_storage.write_text(f'[sources.db]\nkind = "sqlite"\npath = "{items_db}"\n' +
                          items_dataset(), "utf-8")
    done = run_sluice("worker", "--config", str(no_storage), timeout=30)
    assert done.returncode != 0 and b"[storage]" in done.stderr, done.stderr
    good = tmp_path / "good.toml"
    good.write_text(jobs_config(items_db, store, FAST_QUEUE + 'path = "q/jobs.db"\n'), "utf-8")
    (tmp_path / "q").mkdir()
    done = run_sluice("worker", "--config", str(good), "--workers", "0", timeout=30)
    assert done.returncode != 0, done
    done = run_sluice("check-config", str(good), timeout=30)
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "q" / "jobs.db") in done.stdout.decode(), done.stdout
    bad_queues = {
        "lease_ms = 1000\nprogress_interval_ms = 600\n": "lease_ms",
        "lease_ms = 999\n": "lease_ms",
        "progress_interval_ms = 49\n": "progress_interval_ms",
        "sweep_interval_ms = 99\n": "sweep_interval_ms",
        "colour = 1\n": "colour",
        'kind = "mysql"\n': "kind",
        'kind = "postgres"\npath = "x.db"\n': "path",
        'url = "postgresql://x"\n': "url",
        "result_ttl_s = 100\nmax_result_ttl_s = 50\n": "result_ttl_s",
        "workers = -1\n": "workers",
        "max_attempts = 0\n": "max_attempts",
    }
    for lines, key in bad_queues.items():
        config = tmp_path / "bad.toml"
        config.write_text(jobs_config(items_db, store, lines), "utf-8")
        done = run_sluice("check-config", str(config), timeout=30)
        assert done.returncode != 0, (lines, done.stdout)
        assert key in done.stderr.decode(), (lines, done.stderr)
    # [queue] without [storage]
    config = tmp_path / "queue-only.toml"
    config.write_text(no_storage.read_text("utf-8") + "\n[queue]\nworkers = 1\n", "utf-8")
    done = run_sluice("check-config", str(config), timeout=30)
    assert done.returncode != 0 and b"[storage]" in done.stderr, done.stderr


# ------------------------------------------------------------------------------------------
# 11. Failures
# ------------------------------------------------------------------------------------------

BROKEN = items_dataset() + (
    '\n[[datasets]]\nname = "doomed"\nsource = "db"\nquery = "SELECT id, label FROM doomed"\n'
    '\n[[datasets]]\nname = "breaks"\nsource = "db"\n'
    'query = "SELECT id, CASE WHEN id = 25000 THEN abs(-9223372036854775807 - 1) ELSE name END'
    ' AS name FROM items"\n'
    '\n[[datasets]]\nname = "versioned_doomed"\nsource = "db"\nquery = "SELECT id FROM items"\n'
    'version_query = "SELECT max(id) FROM doomed"\n')


def start_broken(start_jobs):
    """An env whose table `doomed` exists when the server starts (its columns are described
    then) and is dropped right after."""
    env = start_jobs(datasets=BROKEN, own_db=True, start_server=False)
    with sqlite3.connect(env.db) as conn:
        conn.execute("CREATE TABLE doomed (id INTEGER, label TEXT)")
        conn.execute("INSERT INTO doomed VALUES (1, 'one')")
    env.server = serve(env.config, env.folder / "serve.stderr.log")
    with sqlite3.connect(env.db) as conn:
        conn.execute("DROP TABLE doomed")
    return env


def test_query_failing_at_run_time_fails_the_job(start_jobs):
    """The table is gone: the query cannot run. A source error of this kind is not retryable
    (the same SQL fails again): failed after the first attempt, with the error."""
    env = start_broken(start_jobs)
    url = env.url
    # (The streaming export of the same dataset answers at once: 500 query_failed.)
    assert_json_error(requests.get(f"{url}/v1/exports/doomed.csv", timeout=10), 500)
    job = wait_job(url, submit_ok(url, {"dataset": "doomed", "max_attempts": 3})["id"],
                   timeout=10)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "source_error", job
    assert "doomed" in job["error"]["message"], job
    assert job["result"] is None and job["finished_at"] is not None
    events = sse_events(env.port, job["id"])
    assert events[-1].event == "failed", events
    assert events[-1].data["error"]["code"] == "source_error", events
    assert_json_error(result_response(url, job), 409, "job_not_succeeded")


def test_row_breaking_the_query_fails_the_job(start_jobs):
    """A row that breaks the query half-way (integer overflow at id 25000): failed, and none of
    the bytes written before stay in the store."""
    env = start_broken(start_jobs)
    job = wait_job(env.url, submit_ok(env.url, {"dataset": "breaks", "format": "jsonl"})["id"],
                   timeout=10)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "source_error" and "overflow" in job["error"]["message"], job
    assert job_files(env.store, job["id"]) == [] and temp_files(env.store) == []


def test_failing_version_query_refuses_the_job(start_jobs):
    env = start_broken(start_jobs)
    assert_json_error(submit(env.url, {"dataset": "versioned_doomed"}), 503,
                      "version_query_failed")
    assert all_job_ids(env.url) == []


def test_retryable_failure_uses_max_attempts(start_jobs):
    """A failure that may pass (the store cannot take the result) is retried, with backoff_ms =
    0 at once, until max_attempts; then failed with the last error."""
    env = start_jobs()
    url = env.url
    blocker = env.store / ".sluice" / "jobs"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"a file where the results' folder belongs")
    job = wait_job(url, submit_ok(url, {"dataset": "items", "limit": 100, "max_attempts": 3})["id"],
                   timeout=20)
    assert job["state"] == "failed", job
    assert job["attempt"] == 3 and job["max_attempts"] == 3, job
    assert job["error"]["code"] == "storage_error", job
    events = sse_events(env.port, job["id"])
    kinds = [e.event for e in events]
    assert kinds == ["queued", "started", "retrying", "started", "retrying", "started", "failed"], \
        kinds
    assert [e.data["attempt"] for e in events if e.event in ("retrying", "failed")] == [1, 2, 3]
    assert all(e.data["error"]["code"] == "storage_error" for e in events
               if e.event in ("retrying", "failed")), events
    assert temp_files(env.store) == []
    # The default of [queue] max_attempts (3 unless set): also retried.
    blocker.unlink()
    ok = wait_job(url, submit_ok(url, {"dataset": "items", "limit": 100})["id"])
    assert ok["state"] == "succeeded", ok
