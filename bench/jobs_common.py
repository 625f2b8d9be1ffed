#!/usr/bin/python3
"""Shared helpers of the background-job benchmarks (bench/jobs_export.py, bench/jobs_sse.py).

A job benchmark serves a cached demo database (bench/export_common.py, WORK/demo-<rows>/) with a
config of its own, written into a fresh run folder: the demo's source by absolute path, the
demo's [[datasets]] it needs (copied verbatim from the demo's sluice.toml, so they are the ones
the export benchmarks serve), [storage] kind = "local" and a [queue] (SQLite) in the run folder.
"""

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib
import zlib
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402

FINAL_EVENTS = ("succeeded", "failed", "cancelled", "expired")


def stage_binary(source, work, name):
    """Copies the sluice binary into WORK/NAME (common.stage_copy), so a rebuild of
    build/release during the run cannot change what is measured (or make a server fail to
    start)."""
    return common.stage_copy(Path(source), work, name)


def dataset_blocks(demo_config, names):
    """The text of the demo config's [[datasets]] blocks named `names`, in that order (each block
    with its sub-tables: from its `[[datasets]]` line to the next one)."""
    text = Path(demo_config).read_text()
    blocks = {}
    current = None
    for line in text.splitlines(keepends=True):
        if line.strip() == "[[datasets]]":
            current = [line]
            blocks[len(blocks)] = current
        elif current is not None:
            current.append(line)
    by_name = {}
    for lines in blocks.values():
        block = "".join(lines)
        name = tomllib.loads(block)["datasets"][0]["name"]
        by_name[name] = block
    missing = [n for n in names if n not in by_name]
    if missing:
        sys.exit(f"{demo_config}: no [[datasets]] named {', '.join(missing)}")
    return "".join(by_name[n] for n in names)


def toml_string(value):
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(run_dir, demo_folder, datasets, storage, workers=1, queue_extra=None,
                 server_extra=None):
    """Writes RUN_DIR/sluice.toml; returns (config path, queue database path)."""
    run_dir = Path(run_dir)
    queue_db = run_dir / "queue" / "jobs.db"
    queue_db.parent.mkdir(parents=True, exist_ok=True)  # sluice creates the file, not its folder
    Path(storage).mkdir(parents=True, exist_ok=True)
    lines = ["# Written by bench/jobs_*.py for one run; the demo's own config is left alone.", "",
             "[server]", 'listen = "127.0.0.1:0"']
    for key, value in (server_extra or {}).items():
        lines.append(f"{key} = {value}")
    lines += ["", "[sources.demo]", 'kind = "sqlite"',
              f"path = {toml_string((Path(demo_folder) / 'orders.db').resolve())}", "",
              "[storage]", 'kind = "local"', f"path = {toml_string(Path(storage).resolve())}", "",
              "[queue]", 'kind = "sqlite"', f"path = {toml_string(queue_db)}",
              f"workers = {int(workers)}"]
    for key, value in (queue_extra or {}).items():
        lines.append(f"{key} = {value}")
    lines.append("")
    config = run_dir / "sluice.toml"
    config.write_text("\n".join(lines) + "\n" + dataset_blocks(Path(demo_folder) / "sluice.toml",
                                                                datasets))
    with open(config, "rb") as handle:
        tomllib.load(handle)  # fails here, not in the server, if the text is not TOML
    return config, queue_db


def filesystem_type(path):
    try:
        return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def request(server, method, path, body=None, headers=None, timeout=60):
    """One HTTP request on a fresh connection: (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json"} if payload is not None else {}
        all_headers.update(headers or {})
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def post_job(server, body):
    status, _, data = request(server, "POST", "/v1/jobs", body)
    if status != 202:
        raise RuntimeError(f"POST /v1/jobs {body}: HTTP {status}: {data[:300]!r}")
    return json.loads(data)


def get_job(server, job_id):
    status, _, data = request(server, "GET", f"/v1/jobs/{job_id}")
    if status not in (200, 202):
        raise RuntimeError(f"GET /v1/jobs/{job_id}: HTTP {status}: {data[:300]!r}")
    return json.loads(data)


def instant(text):
    """Seconds since the epoch of the API's RFC 3339 instants ("2026-12-07T08:07:50.737Z")."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait_sse(server, job_id, timeout):
    """Reads /v1/jobs/{id}/events until a final event. Returns (perf_counter and time.time()
    when the final event's blank line arrived, the events as (id, type, data) tuples)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("GET", f"/v1/jobs/{job_id}/events")
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"events of {job_id}: HTTP {response.status}")
        events = []
        fields = {}
        while True:
            line = response.readline()
            if not line:
                raise RuntimeError(f"events of {job_id}: the stream ended before a final event "
                                   f"(got {[e[1] for e in events]})")
            line = line.rstrip(b"\r\n").decode()
            if line:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
                continue
            if "event" in fields:
                events.append((int(fields.get("id", "0")), fields["event"], fields.get("data", "")))
                if fields["event"] in FINAL_EVENTS:
                    return time.perf_counter(), time.time(), events
            fields = {}
    finally:
        conn.close()


def wait_poll(server, job_id, timeout, interval):
    """GET /v1/jobs/{id} every `interval` s until the job ended. Returns (perf_counter,
    time.time() when the final state was seen, [])."""
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        while time.monotonic() < deadline:
            conn.request("GET", f"/v1/jobs/{job_id}")
            response = conn.getresponse()
            job = json.loads(response.read())
            if job["state"] in FINAL_EVENTS:
                return time.perf_counter(), time.time(), []
            time.sleep(interval)
    finally:
        conn.close()
    raise RuntimeError(f"job {job_id} still not finished after {timeout} s")


def queue_events(queue_db, job_id):
    """The job's event log as the queue stored it: [(seq, type)] (read-only, beside the server)."""
    with contextlib.closing(sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True,
                                            timeout=30)) as conn:
        return [(int(seq), kind) for seq, kind in conn.execute(
            "SELECT seq, type FROM sluice_job_events WHERE job_id = ? ORDER BY seq", (job_id,))]


def result_path(storage, job):
    """The stored result of a succeeded local-store job (.sluice/jobs/ID/ATTEMPT/FILE_NAME)."""
    return (Path(storage) / ".sluice" / "jobs" / job["id"] / str(job["attempt"]) /
            job["result"]["file_name"])


def remove_result(storage, job_id):
    """Deletes a job's result folder from the benchmark's own store (a 20M-row CSV is 1.7 GB;
    the server's sweeper would only delete it after result_ttl_s)."""
    shutil.rmtree(Path(storage) / ".sluice" / "jobs" / job_id, ignore_errors=True)


class Digest:
    """SHA-256 and size of bytes fed in; with gunzip=True also of their gzip-decoded content."""

    def __init__(self, gunzip=False):
        self.sha = hashlib.sha256()
        self.size = 0
        self.plain = hashlib.sha256() if gunzip else None
        self.plain_size = 0
        self.inflate = zlib.decompressobj(wbits=31) if gunzip else None

    def update(self, chunk):
        self.sha.update(chunk)
        self.size += len(chunk)
        if self.inflate is not None:
            while chunk:
                out = self.inflate.decompress(chunk, 1 << 22)
                self.plain.update(out)
                self.plain_size += len(out)
                chunk = self.inflate.unconsumed_tail
                if self.inflate.eof and self.inflate.unused_data:
                    # Concatenated gzip members are valid gzip: decode the next one too.
                    chunk = self.inflate.unused_data + chunk
                    self.inflate = zlib.decompressobj(wbits=31)

    def finish(self):
        if self.inflate is not None:
            out = self.inflate.flush()
            self.plain.update(out)
            self.plain_size += len(out)
        return self

    def summary(self):
        return {"size": self.size, "sha256": self.sha.hexdigest(),
                "plain_size": self.plain_size if self.plain else self.size,
                "plain_sha256": self.plain.hexdigest() if self.plain else self.sha.hexdigest()}


def digest_stream(argv, gunzip, timeout):
    """Size and SHA-256 of what argv writes to stdout (and of its gunzipped content)."""
    digest = Digest(gunzip)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{argv[0]}: still writing after {timeout} s")
    err = proc.stderr.read()
    if proc.wait(30) != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[:300]}")
    return digest.finish().summary()


def digest_file(path, gunzip):
    digest = Digest(gunzip)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.finish().summary()


def summary(values):
    """(median, min, max, spread %) where spread = (max - min) / median."""
    middle = common.median(values)
    spread = (max(values) - min(values)) / middle * 100 if middle else 0.0
    return middle, min(values), max(values), spread


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
