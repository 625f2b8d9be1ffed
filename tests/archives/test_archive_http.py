"""The archive endpoints over HTTP: creation and its errors, Content-Length, Range and If-Range,
HEAD, objects that change, restarts and several servers sharing one store."""

from __future__ import annotations

import io
import json
import os
import random
import socket
import zipfile

import pytest
import requests

from support.archives import create_archive, write_config
from support.http import assert_head_has_no_body, assert_json_error, head_then_get
from support.metrics import wait_until
from support.server import SluiceServer, serve, stop_and_check


def post(server: SluiceServer, body) -> requests.Response:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(f"{server.url}/v1/archives", data=data, timeout=60)


def assert_error(response: requests.Response, status: int, code: str, *mentions: str) -> None:
    assert_json_error(response, status, code, mentions)


def url_of(server: SluiceServer, created: dict) -> str:
    return server.url + created["url"]


@pytest.fixture(scope="module")
def photos(store):
    rng = random.Random(5)
    for i in range(12):
        store.put(f"http/photos/IMG_{i:02d}.jpg", rng.randbytes(rng.choice([0, 1, 1000, 70_000, 300_000, 1_200_000])))
    return "http/photos/"


def test_create_validates_the_body_naming_the_field(idle, store):
    store.put("http/exists.txt", b"x")
    assert_error(post(idle, "{not json"), 400, "invalid_archive", "body")
    assert_error(post(idle, {"prefix": "http/", "colour": "red"}), 400, "invalid_archive", "colour")
    assert_error(post(idle, {"name": "x"}), 400, "invalid_archive", "entries")
    assert_error(post(idle, {"entries": [{"key": "http/exists.txt"}, {"key": "../etc/passwd"}]}),
                 400, "invalid_archive", "entries[1].key")
    assert_error(post(idle, {"entries": [{"key": "http/exists.txt"}, {"key": "http/missing.jpg"}]}),
                 404, "object_not_found", "entries[1].key", "http/missing.jpg")
    assert_error(post(idle, {"entries": [{"key": ".sluice/archives/x.json"}]}), 400,
                 "invalid_archive", "reserved")
    assert_error(post(idle, {"prefix": "", "method": "brotli"}), 400, "invalid_archive", "method")
    too_many = {"entries": [{"key": "http/exists.txt"}] * 100_001}
    assert_error(post(idle, too_many), 413, "too_many_entries", "100000")
    big = requests.post(f"{idle.url}/v1/archives", data=b"x" * (17 << 20), timeout=60)
    assert big.status_code == 413


def test_unknown_archive_is_404(idle):
    for target in ("0123456789abcdef0123456789abcdef.zip", "nothing.zip", "..%2f..%2fetc.zip", "x"):
        assert_error(requests.get(f"{idle.url}/v1/archives/{target}", timeout=10), 404,
                     "unknown_archive")


def test_known_length_etag_head_and_ranges(idle, photos):
    created = create_archive(idle, {"name": "photos", "prefix": photos, "method": "store"})
    url = url_of(idle, created)
    whole = requests.get(url, timeout=60)
    assert whole.status_code == 200
    assert int(whole.headers["Content-Length"]) == len(whole.content) == created["size"]
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "application/zip"
    assert whole.headers["Content-Disposition"] == 'attachment; filename="photos.zip"'
    etag = whole.headers["ETag"]
    # HEAD then GET on one connection, off the wire: no body bytes after the HEAD response's
    # headers (requests never reads them), the same Content-Length and ETag as the GET.
    pair = head_then_get(idle.port, created["url"])
    assert_head_has_no_body(pair)
    assert pair.head_headers["content-length"] == whole.headers["Content-Length"]
    assert pair.head_headers["etag"] == etag
    assert pair.get_body == whole.content
    body = whole.content
    length = len(body)
    rng = random.Random(1)
    for _ in range(25):
        a = rng.randrange(length)
        b = rng.randrange(a, length)
        part = requests.get(url, headers={"Range": f"bytes={a}-{b}"}, timeout=60)
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes {a}-{b}/{length}"
        assert int(part.headers["Content-Length"]) == len(part.content) == b - a + 1
        assert part.content == body[a:b + 1]
    suffix = requests.get(url, headers={"Range": "bytes=-100"}, timeout=10)
    assert suffix.status_code == 206 and suffix.content == body[-100:]
    # If-Range: the current tag resumes, any other answer is the whole body.
    resumed = requests.get(url, headers={"Range": "bytes=10-", "If-Range": etag}, timeout=60)
    assert resumed.status_code == 206 and resumed.content == body[10:]
    stale = requests.get(url, headers={"Range": "bytes=10-", "If-Range": '"old"'}, timeout=60)
    assert stale.status_code == 200 and stale.content == body
    unsatisfiable = requests.get(url, headers={"Range": f"bytes={length}-"}, timeout=10)
    assert_error(unsatisfiable, 416, "range_not_satisfiable")
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{length}"
    # The same archive again is the same bytes (CRCs now come from the cache).
    assert requests.get(url, timeout=60).content == body


@pytest.mark.parametrize("seed", range(6))
def test_stitched_ranges_equal_the_body_for_random_manifests(idle, store, seed):
    rng = random.Random(seed)
    prefix = f"http/random{seed}/"
    entries = []
    for i in range(rng.randint(1, 40)):
        size = rng.choice([0, 1, 17, 4096, 65_535, 65_536, 65_537, 200_000, 2_000_000])
        key = f"{prefix}{rng.choice(['a', 'b', 'c'])}/{i}.bin"
        store.put(key, rng.randbytes(size))
        entries.append({"key": key, "path": rng.choice(["x.jpg", f"{i}.bin", "d/x.jpg", "../x.jpg"])})
    created = create_archive(idle, {"name": f"r{seed}", "entries": entries, "method": "store"})
    url = url_of(idle, created)
    length = created["size"]
    # Stitch the archive from random consecutive ranges, fetched before any full download:
    # the CRCs are computed on the way.
    pieces, at = [], 0
    while at < length:
        end = min(length, at + rng.randint(1, max(1, length // 3)))
        part = requests.get(url, headers={"Range": f"bytes={at}-{end - 1}"}, timeout=60)
        assert part.status_code == 206
        assert int(part.headers["Content-Length"]) == len(part.content) == end - at
        pieces.append(part.content)
        at = end
    whole = requests.get(url, timeout=60)
    assert int(whole.headers["Content-Length"]) == len(whole.content) == length
    assert b"".join(pieces) == whole.content
    with zipfile.ZipFile(io.BytesIO(whole.content)) as zf:
        assert zf.testzip() is None
        assert len(zf.infolist()) == len(entries)


def test_deflated_archives_stream_chunked_without_ranges(idle, store):
    store.put("http/text/a.txt", b"compress me\n" * 50_000)
    created = create_archive(idle, {"name": "t", "prefix": "http/text/", "method": "deflate"})
    assert created["size"] is None and created["ranges"] is False
    response = requests.get(url_of(idle, created), headers={"Range": "bytes=0-9"}, timeout=60)
    assert response.status_code == 200
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert "Accept-Ranges" not in response.headers
    # A weak ETag (revalidation with If-None-Match), never a strong one (If-Range, resumes).
    assert response.headers["ETag"].startswith('W/"'), response.headers
    assert len(response.content) < 100_000


def test_changed_or_vanished_objects_answer_409_or_410_before_the_first_byte(idle, store):
    store.put("http/volatile/a.txt", b"one")
    store.put("http/volatile/b.txt", b"two")
    created = create_archive(idle, {"name": "v", "prefix": "http/volatile/", "method": "store"})
    captured = (store.root / "http/volatile/a.txt").stat()
    store.put("http/volatile/a.txt", b"changed")
    # Size and modification time both differ from what the archive captured (no reliance on
    # the clock having ticked between the two writes).
    os.utime(store.root / "http/volatile/a.txt",
             ns=(captured.st_atime_ns, captured.st_mtime_ns + 1_000_000_000))
    assert_error(requests.get(url_of(idle, created), timeout=10), 409, "object_changed", "http/volatile/a.txt")
    (store.root / "http/volatile/a.txt").unlink()
    assert_error(requests.get(url_of(idle, created), timeout=10), 410, "object_gone", "http/volatile/a.txt")


def test_an_object_that_changes_mid_archive_aborts_the_transfer(idle, store):
    rng = random.Random(9)
    for i in range(6):
        store.put(f"http/midway/{i}.jpg", rng.randbytes(4_000_000))
    created = create_archive(idle, {"name": "m", "prefix": "http/midway/", "method": "store"})
    before = idle.metrics()["sluice_archives_aborted_total"]
    sock = socket.create_connection(("127.0.0.1", idle.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(f"GET {created['url']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = sock.recv(65536)
    # The archive is on its way (its headers and first bytes are here, the download counted):
    wait_until(lambda: idle.metrics()["sluice_active_archives"] == 1, 10, "the download")
    store.put("http/midway/5.jpg", b"replaced while the archive is on its way")
    sock.settimeout(30)
    while chunk := sock.recv(1 << 20):
        received += chunk
    sock.close()
    head, body = received.split(b"\r\n\r\n", 1)
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    assert len(body) < length, "a changed object must not produce a complete-looking archive"
    wait_until(lambda: idle.metrics()["sluice_archives_aborted_total"] > before, 10, "the abort")


def test_manifests_survive_a_restart_and_are_shared_between_servers(server, store, tmp_path):
    store.put("http/shared/a.jpg", b"a" * 1000)
    created = create_archive(server, {"name": "s", "prefix": "http/shared/", "method": "store"})
    first = requests.get(url_of(server, created), timeout=10)
    other = serve(write_config(tmp_path / "other.toml", store.root), tmp_path / "other.log")
    try:
        again = requests.get(other.url + created["url"], timeout=10)
        assert again.status_code == 200
        assert again.content == first.content
        assert again.headers["ETag"] == first.headers["ETag"]
    finally:
        stop_and_check(other, timeout=20)
    # The manifest is kept in the store, outside every listing.
    assert (store.root / ".sluice" / "archives" / f"{created['id']}.json").is_file()


def test_reserved_keys_stay_out_of_listings(tmp_path):
    root = tmp_path / "objects"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_bytes(b"a")
    (root / "top.txt").write_bytes(b"t")
    own = serve(write_config(tmp_path / "own.toml", root), tmp_path / "own.log")
    try:
        create_archive(own, {"name": "first", "prefix": "docs/"})  # writes .sluice/archives/...
        everything = create_archive(own, {"name": "all", "prefix": "", "whole_store": True,
                                             "method": "store"})
        listed = requests.get(own.url + everything["url"], timeout=30)
        with zipfile.ZipFile(io.BytesIO(listed.content)) as zf:
            assert zf.namelist() == ["docs/a.txt", "top.txt"]
    finally:
        stop_and_check(own, timeout=20)
