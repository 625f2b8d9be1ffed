"""The life of an archive: `expires_in` and `expires_at`, 410 after expiry, the sweeper (404 once
swept, only expired manifests removed), DELETE, the description at /v1/archives/{id}, limits on
entries and manifest size, empty selections, the whole store only with its flag, random ids.

A server of its own with a small [archives] config (20 entries, 8 KiB manifests) and a sweeper
that does not run during the tests; the sweeper test starts a second server over the same store
whose sweeper runs every second, as a second serve process sharing a store would.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
import requests

from support.archives import Store, write_config
from support.http import assert_json_error
from support.metrics import wait_until
from support.server import SluiceServer, serve, stop_and_check

MAX_ENTRIES = 20
MAX_MANIFEST = 8192


def config(path: Path, store: Path, archives: str) -> Path:
    write_config(path, store)
    path.write_text(path.read_text() + "\n[archives]\n" + archives, "utf-8")
    return path


@pytest.fixture(scope="module")
def life(tmp_path_factory) -> Iterator[tuple[SluiceServer, Store]]:
    base = tmp_path_factory.mktemp("lifecycle")
    store = Store(base / "objects")
    store.root.mkdir()
    srv = serve(config(base / "sluice.toml", store.root,
                       f"max_entries = {MAX_ENTRIES}\nmax_manifest_bytes = {MAX_MANIFEST}\n"
                       "max_expires_in_s = 172800\nsweep_interval_s = 86400\n"),
                base / "stderr.log")
    yield srv, store
    stop_and_check(srv, timeout=20)


def post(server: SluiceServer, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/v1/archives", data=json.dumps(body), timeout=60)


def created(server: SluiceServer, body: dict) -> dict:
    response = post(server, body)
    assert response.status_code == 201, response.text
    return response.json()


def instant(text: str) -> float:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def lifetime(answer: dict) -> float:
    return instant(answer["expires_at"]) - instant(answer["created_at"])


def manifest_path(store: Store, archive_id: str) -> Path:
    return store.root / ".sluice" / "archives" / f"{archive_id}.json"


# --------------------------------------------------------------------------------------------
# expires_in / expires_at / 410
# --------------------------------------------------------------------------------------------

def test_expires_in_default_number_and_text(life):
    server, store = life
    store.put("exp/a.txt", b"a")
    base = {"prefix": "exp/"}
    assert lifetime(created(server, base)) == 86_400  # the default: 24 h
    assert lifetime(created(server, {**base, "expires_in": 3600})) == 3600
    assert lifetime(created(server, {**base, "expires_in": "2h"})) == 7200
    assert lifetime(created(server, {**base, "expires_in": "2d"})) == 172_800  # the maximum
    assert abs(instant(created(server, base)["expires_at"]) - (time.time() + 86_400)) < 30
    assert_json_error(post(server, {**base, "expires_in": "3d"}), 400, "invalid_archive",
                      ["expires_in", "172800", "max_expires_in_s"])
    for bad in (0, -1, "1w", "24 h", 1.5, True):
        assert_json_error(post(server, {**base, "expires_in": bad}), 400, "invalid_archive",
                          ["expires_in"])


def test_an_expired_archive_answers_410_until_swept(life):
    server, store = life
    store.put("short/a.txt", b"short-lived")
    answer = created(server, {"prefix": "short/", "expires_in": 1})
    url = server.url + answer["url"]
    assert requests.get(url, timeout=30).status_code == 200
    wait_until(lambda: time.time() >= instant(answer["expires_at"]) + 0.2, 5, "expiry")
    for method in ("GET", "HEAD"):
        gone = requests.request(method, url, timeout=30)
        assert gone.status_code == 410, (method, gone.status_code)
    assert_json_error(requests.get(url, timeout=30), 410, "archive_expired", ["expired at"])
    assert_json_error(requests.get(f"{server.url}/v1/archives/{answer['id']}", timeout=30), 410,
                      "archive_expired")
    assert manifest_path(store, answer["id"]).is_file()  # this server's sweeper has not run


def test_manifests_from_before_expiry_get_the_default_lifetime(life):
    """Manifests written before archives expired have no expires_at: they live the default
    lifetime (24 h) from their creation, so old links stop working instead of living forever."""
    server, store = life
    store.put("legacy/a.txt", b"legacy")
    stat = (store.root / "legacy" / "a.txt").stat()
    (store.root / ".sluice" / "archives").mkdir(parents=True, exist_ok=True)
    for age, status in ((3600, 200), (2 * 86_400, 410)):
        archive_id = secrets.token_hex(16)
        manifest = {"version": 1, "id": archive_id, "name": "legacy",
                    "created": int(time.time()) - age,
                    "entries": [{"key": "legacy/a.txt", "name": "a.txt", "size": stat.st_size,
                                 "mtime_ns": stat.st_mtime_ns, "etag": "", "method": "store"}]}
        manifest_path(store, archive_id).write_text(json.dumps(manifest))
        response = requests.get(f"{server.url}/v1/archives/{archive_id}.zip", timeout=30)
        assert response.status_code == status, (age, response.text[:200])
        if status == 200:
            described = requests.get(f"{server.url}/v1/archives/{archive_id}", timeout=30).json()
            assert instant(described["expires_at"]) == manifest["created"] + 86_400


# --------------------------------------------------------------------------------------------
# DELETE and the description
# --------------------------------------------------------------------------------------------

def test_delete_then_404(life):
    server, store = life
    store.put("del/a.txt", b"delete me")
    answer = created(server, {"prefix": "del/"})
    url = server.url + answer["url"]
    assert requests.get(url, timeout=30).status_code == 200  # (now cached in memory too)
    deleted = requests.delete(f"{server.url}/v1/archives/{answer['id']}", timeout=30)
    assert deleted.status_code == 204 and deleted.content == b""
    assert not manifest_path(store, answer["id"]).exists()
    assert_json_error(requests.get(url, timeout=30), 404, "unknown_archive")
    assert_json_error(requests.get(f"{server.url}/v1/archives/{answer['id']}", timeout=30), 404,
                      "unknown_archive")
    assert_json_error(requests.delete(f"{server.url}/v1/archives/{answer['id']}", timeout=30),
                      404, "unknown_archive")
    assert_json_error(requests.delete(f"{server.url}/v1/archives/{secrets.token_hex(16)}",
                                      timeout=30), 404, "unknown_archive")
    assert_json_error(requests.delete(f"{server.url}/v1/archives/not-an-id", timeout=30), 404,
                      "unknown_archive")
    # The object itself is untouched.
    assert (store.root / "del" / "a.txt").read_bytes() == b"delete me"
    # {id}.zip names the same archive.
    other = created(server, {"prefix": "del/"})
    assert requests.delete(server.url + other["url"], timeout=30).status_code == 204


def test_an_archive_deleted_by_another_process_is_gone_here_too(life):
    server, store = life
    store.put("other/a.txt", b"x")
    answer = created(server, {"prefix": "other/"})
    url = server.url + answer["url"]
    assert requests.get(url, timeout=30).status_code == 200
    manifest_path(store, answer["id"]).unlink()  # as another server's DELETE or sweeper would
    assert requests.get(url, timeout=30).status_code == 404


def test_the_id_without_zip_describes_the_archive(life):
    server, store = life
    store.put("desc/a.bin", b"1" * 1000)
    store.put("desc/b.bin", b"2" * 2000)
    answer = created(server, {"name": "described", "prefix": "desc/", "method": "store"})
    response = requests.get(f"{server.url}/v1/archives/{answer['id']}", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    described = response.json()
    assert described == answer  # the creation's answer, again
    assert described["url"] == f"/v1/archives/{answer['id']}.zip"
    assert described["name"] == "described.zip" and described["entries"] == 2
    zipped = requests.get(server.url + described["url"], timeout=30)
    assert int(zipped.headers["Content-Length"]) == described["size"] == len(zipped.content)
    assert set(described) == {"id", "url", "name", "entries", "ranges", "size", "created_at",
                              "expires_at"}


def test_ids_are_128_random_bits_in_url_safe_hex(life):
    server, store = life
    store.put("ids/a.txt", b"a")
    ids = {created(server, {"prefix": "ids/"})["id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[0-9a-f]{32}", archive_id) for archive_id in ids)


# --------------------------------------------------------------------------------------------
# Limits, empty selections, the whole store
# --------------------------------------------------------------------------------------------

def test_limits_on_entries_and_manifest_size(life):
    server, store = life
    for i in range(MAX_ENTRIES + 1):
        store.put(f"many/f{i:02d}.txt", b"x")
    error = assert_json_error(post(server, {"prefix": "many/"}), 413, "too_many_entries",
                              [str(MAX_ENTRIES), "max_entries"])
    assert error["limit"] == "max_entries" and error["max"] == str(MAX_ENTRIES)
    keys = [{"key": f"many/f{i:02d}.txt"} for i in range(MAX_ENTRIES + 1)]
    assert_json_error(post(server, {"entries": keys}), 413, "too_many_entries", ["max_entries"])
    assert created(server, {"entries": keys[:MAX_ENTRIES]})["entries"] == MAX_ENTRIES
    # Long keys: 8 entries of ~1000-byte keys and names pass no entry limit but the manifest's.
    long_keys = []
    for i in range(8):
        key = f"long/{i}/" + "/".join(["d" * 240] * 3) + f"/{'n' * 200}.txt"
        store.put(key, b"y")
        long_keys.append({"key": key})
    error = assert_json_error(post(server, {"entries": long_keys}), 413, "manifest_too_large",
                              [str(MAX_MANIFEST), "max_manifest_bytes"])
    assert error["limit"] == "max_manifest_bytes"
    assert created(server, {"entries": long_keys[:2]})["entries"] == 2


def test_a_selection_of_nothing_is_an_error_not_an_empty_zip(life):
    server, store = life
    store.put("photos/2024/a.jpg", b"jpeg")
    error = assert_json_error(post(server, {"prefix": "photo/2024/"}), 422, "empty_selection",
                              ["photo/2024/"])
    assert error["prefix"] == "photo/2024/"
    assert_json_error(post(server, {"entries": []}), 422, "empty_selection", ["entries"])
    missing = assert_json_error(
        post(server, {"entries": [{"key": "photos/2024/a.jpg"}, {"key": "photos/2024/b.jpg"}]}),
        404, "object_not_found", ["entries[1].key", "photos/2024/b.jpg"])
    assert missing["key"] == "photos/2024/b.jpg"


def test_the_whole_store_only_with_the_flag(tmp_path):
    store = Store(tmp_path / "objects")
    store.put("a.txt", b"a")
    store.put("dir/b.txt", b"b")
    srv = serve(config(tmp_path / "sluice.toml", store.root, ""), tmp_path / "stderr.log")
    try:
        error = assert_json_error(post(srv, {"prefix": ""}), 422, "whole_store_required",
                                  ['"whole_store": true'])
        assert error["field"] == "whole_store"
        assert_json_error(post(srv, {"prefix": "", "whole_store": False}), 422,
                          "whole_store_required")
        assert_json_error(post(srv, {"prefix": "dir/", "whole_store": True}), 400,
                          "invalid_archive", ["whole_store"])
        whole = created(srv, {"prefix": "", "whole_store": True})
        assert whole["entries"] == 2  # not the manifests under .sluice/
    finally:
        stop_and_check(srv, timeout=20)


# --------------------------------------------------------------------------------------------
# The sweeper
# --------------------------------------------------------------------------------------------

def test_the_sweeper_removes_only_expired_manifests(life, tmp_path):
    server, store = life
    store.put("sweep/a.txt", b"sweep")
    expiring = [created(server, {"prefix": "sweep/", "expires_in": 1}) for _ in range(5)]
    keeping = created(server, {"prefix": "sweep/", "expires_in": 3600})
    folder = store.root / ".sluice" / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    stranger = folder / "notes.txt"  # not a manifest: never the sweeper's to delete
    stranger.write_text("keep")
    cube = store.put(".sluice/cubes/sales/v1/manifest.json", b"{}")
    wait_until(lambda: time.time() >= max(instant(a["expires_at"]) for a in expiring) + 0.2, 5,
               "expiry")
    for answer in expiring:
        assert requests.get(server.url + answer["url"], timeout=30).status_code == 410
    # A second serve process over the same store; its sweeper reads 2 manifests a second.
    sweeper = serve(config(tmp_path / "sweeper.toml", store.root,
                           "sweep_interval_s = 1\nsweep_batch = 2\n"), tmp_path / "sweeper.log")
    try:
        wait_until(lambda: not any(manifest_path(store, a["id"]).exists() for a in expiring), 60,
                   "expired manifests swept")
        for answer in expiring:
            assert_json_error(requests.get(server.url + answer["url"], timeout=30), 404,
                              "unknown_archive")
        assert manifest_path(store, keeping["id"]).is_file()
        assert requests.get(server.url + keeping["url"], timeout=30).status_code == 200
        assert stranger.read_text() == "keep" and cube.read_bytes() == b"{}"
        assert (store.root / "sweep" / "a.txt").read_bytes() == b"sweep"
        assert sweeper.metrics()["sluice_archives_swept_total"] >= len(expiring)
        assert "archive sweeper: deleted" in sweeper.log_text()
    finally:
        stop_and_check(sweeper, timeout=20)
