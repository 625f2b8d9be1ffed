"""Conditional requests on archive downloads and stored files (RFC 9110 13): a stable ETag,
If-None-Match → 304 without a body (weak comparison, "*", lists, HEAD), If-Match → 412 (strong
comparison), If-Range with Range; curl's own --etag-save / --etag-compare revalidation.

Archives run on the suite's shared server; files on a server of their own with a link secret.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from support.archives import create_archive, write_config
from support.http import assert_json_error
from support.server import SluiceServer, run_sluice, serve, stop_and_check

SECRET = "conditional-secret-0123456789abcdef"
ENV = dict(os.environ, SLUICE_LINK_SECRET=SECRET)


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> requests.Response:
    return requests.request(method, url, headers=headers or {}, timeout=120)


def assert_not_modified(response: requests.Response, etag: str) -> None:
    assert response.status_code == 304, (response.status_code, response.text[:300])
    assert response.content == b""
    assert response.headers["ETag"] == etag
    assert "Content-Range" not in response.headers


def curl_revalidate(url: str, tmp: Path, name: str) -> tuple[str, int, Path]:
    """curl's revalidation: the first run saves the ETag, the second sends it as If-None-Match.
    Returns (saved ETag, second status, second output)."""
    tags = tmp / f"{name}.etag"
    first = subprocess.run(["curl", "-sS", "-o", str(tmp / f"{name}.1"), "--etag-save", str(tags),
                            "-w", "%{http_code}", url], capture_output=True, timeout=120)
    assert first.stdout == b"200", first.stderr
    second_out = tmp / f"{name}.2"
    second = subprocess.run(["curl", "-sS", "-o", str(second_out), "--etag-compare", str(tags),
                             "-w", "%{http_code} %{size_download}", url],
                            capture_output=True, timeout=120)
    status, size = second.stdout.decode().split()
    assert int(size) == 0 or int(status) != 304, second.stdout
    return tags.read_text().strip(), int(status), second_out


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored(server, store) -> tuple[str, str]:
    """An all-stored archive (Content-Length, Range, strong ETag): its URL and ETag."""
    for i in range(3):
        store.put(f"cond/stored/f{i}.bin", os.urandom(50_000 + i))
    created = create_archive(server, {"name": "cond", "prefix": "cond/stored/", "method": "store"})
    url = server.url + created["url"]
    first = get(url)
    assert first.status_code == 200
    return url, first.headers["ETag"]


def test_archive_etag_is_strong_and_stable(stored):
    url, etag = stored
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert get(url).headers["ETag"] == etag
    assert get(url, method="HEAD").headers["ETag"] == etag


def test_archive_if_none_match_answers_304_without_body(stored):
    url, etag = stored
    for value in (etag, f"W/{etag}", "*", f'"other", {etag}', f'"x",W/{etag}'):
        assert_not_modified(get(url, {"If-None-Match": value}), etag)
        assert_not_modified(get(url, {"If-None-Match": value}, method="HEAD"), etag)
    for value in ('"other"', etag.strip('"'), f'"{etag}"'):
        changed = get(url, {"If-None-Match": value})
        assert changed.status_code == 200 and len(changed.content) > 150_000, value
    # If-None-Match wins over Range: the client has the whole thing already.
    assert_not_modified(get(url, {"If-None-Match": etag, "Range": "bytes=0-9"}), etag)


def test_archive_if_match_is_strong_and_fails_with_412(stored):
    url, etag = stored
    for value in (etag, "*", f'"x", {etag}'):
        assert get(url, {"If-Match": value}).status_code == 200, value
    for value in ('"other"', f"W/{etag}"):
        failed = get(url, {"If-Match": value})
        assert_json_error(failed, 412, "precondition_failed", ["If-Match"])
        assert failed.headers["ETag"] == etag
    # If-Match is evaluated before If-None-Match.
    assert get(url, {"If-Match": '"other"', "If-None-Match": etag}).status_code == 412


def test_archive_if_range_resumes_only_the_same_bytes(stored):
    url, etag = stored
    whole = get(url).content
    partial = get(url, {"Range": "bytes=100-199", "If-Range": etag})
    assert partial.status_code == 206 and partial.content == whole[100:200]
    for other in ('"other"', f"W/{etag}"):
        full = get(url, {"Range": "bytes=100-199", "If-Range": other})
        assert full.status_code == 200 and full.content == whole, other


def test_archive_etag_changes_with_the_content(idle, store):
    store.put("cond/changing/a.txt", b"first version")
    body = {"name": "changing", "prefix": "cond/changing/", "method": "store"}
    first = create_archive(idle, body)
    etag = get(idle.url + first["url"]).headers["ETag"]
    time.sleep(0.01)
    store.put("cond/changing/a.txt", b"second version, longer")
    # The old archive refuses to send other bytes; a new one over the new content has a new tag.
    assert get(idle.url + first["url"], {"If-None-Match": etag}).status_code == 409
    second = create_archive(idle, body)
    response = get(idle.url + second["url"], {"If-None-Match": etag})
    assert response.status_code == 200 and response.headers["ETag"] != etag


def test_deflated_archive_has_a_weak_etag(idle, store):
    store.put("cond/text/notes.txt", b"compressible text\n" * 5000)
    created = create_archive(idle, {"name": "text", "prefix": "cond/text/", "method": "deflate"})
    url = idle.url + created["url"]
    first = get(url)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"'), etag
    assert "Accept-Ranges" not in first.headers
    assert_not_modified(get(url, {"If-None-Match": etag}), etag)
    assert_not_modified(get(url, {"If-None-Match": etag[2:]}), etag)  # weak comparison
    assert get(url, {"If-Match": etag}).status_code == 412  # strong comparison never matches


def test_curl_revalidates_an_archive(stored, tmp_path):
    url, etag = stored
    saved, status, second = curl_revalidate(url, tmp_path, "archive")
    assert saved == etag
    assert status == 304
    assert not second.exists() or second.stat().st_size == 0


def test_a_large_archive_revalidates_without_sending_it(idle, store):
    """The issue's case: a 112 MB archive was sent again on every revalidation."""
    store.sparse("cond/large/big.bin", 112 << 20, {0: b"start", (112 << 20) - 3: b"end"})
    created = create_archive(idle, {"name": "large", "prefix": "cond/large/", "method": "store"})
    url = idle.url + created["url"]
    head = get(url, method="HEAD")
    assert int(head.headers["Content-Length"]) > 112 << 20
    started = time.monotonic()
    with requests.get(url, headers={"If-None-Match": head.headers["ETag"]}, stream=True,
                      timeout=60) as response:
        assert response.status_code == 304
        assert response.raw.read() == b""
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------------------------
# Stored files (presigned links)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(store, tmp_path_factory) -> Iterator[SluiceServer]:
    base = tmp_path_factory.mktemp("conditional-files")
    srv = serve(write_config(base / "sluice.toml", store.root), base / "stderr.log", env=ENV)
    (base / "presign.toml").write_text(
        f"[server]\nlisten = \"127.0.0.1:{srv.port}\"\n\n"
        f"[storage]\nkind = \"local\"\npath = \"{store.root}\"\n", "utf-8")
    srv.presign_config = base / "presign.toml"
    yield srv
    stop_and_check(srv, timeout=20)


def presigned(server: SluiceServer, key: str) -> str:
    done = run_sluice("presign", key, "--config", str(server.presign_config), env=ENV, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def test_file_if_none_match_and_if_match(files, store):
    store.put("cond/files/report.csv", b"a,b\n" * 30_000)
    url = presigned(files, "cond/files/report.csv")
    first = get(url)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and not etag.startswith("W/")
    for value in (etag, f"W/{etag}", "*", f'"x", {etag}'):
        assert_not_modified(get(url, {"If-None-Match": value}), etag)
        assert_not_modified(get(url, {"If-None-Match": value}, method="HEAD"), etag)
    assert get(url, {"If-None-Match": '"other"'}).content == first.content
    assert get(url, {"If-Match": etag}).content == first.content
    failed = get(url, {"If-Match": '"other"'})
    assert_json_error(failed, 412, "precondition_failed", ["If-Match"])
    assert failed.headers["ETag"] == etag
    assert get(url, {"If-Match": f"W/{etag}"}).status_code == 412
    partial = get(url, {"Range": "bytes=4-7", "If-Range": etag})
    assert partial.status_code == 206 and partial.content == first.content[4:8]
    assert get(url, {"Range": "bytes=4-7", "If-Range": '"other"'}).status_code == 200


def test_file_etag_changes_when_rewritten(files, store):
    path = store.put("cond/files/rewritten.txt", b"one")
    url = presigned(files, "cond/files/rewritten.txt")
    etag = get(url).headers["ETag"]
    path.write_bytes(b"two")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    again = get(url, {"If-None-Match": etag})
    assert again.status_code == 200 and again.content == b"two"
    assert again.headers["ETag"] != etag


def test_curl_revalidates_a_file(files, store, tmp_path):
    store.put("cond/files/data.bin", os.urandom(200_000))
    url = presigned(files, "cond/files/data.bin")
    saved, status, _ = curl_revalidate(url, tmp_path, "file")
    assert saved.startswith('"')
    assert status == 304
