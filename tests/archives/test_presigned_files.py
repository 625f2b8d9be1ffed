"""Presigned links to stored objects: GET /v1/files/{key}?expires=..&sig=.. and `sluice presign`.

A server of its own (the shared one has no link secret, so it shows links_disabled) over the
suite's store, with SLUICE_LINK_SECRET and SLUICE_LINK_SECRET_PREVIOUS in its environment. Links
come from the real `sluice presign` where the point is the CLI, and are signed here (HMAC-SHA-256
of "GET\\n" + key + "\\n" + expires) where a test needs an expired or tampered one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest
import requests

from support.archives import write_config
from support.digests import sha256, sha256_file
from support.http import (assert_head_has_no_body, head_then_get, raw_connect, raw_get,
                          read_fixed_body)
from support.metrics import wait_until
from support.server import SluiceServer, run_sluice, serve, stop_and_check

SECRET = "current-secret-0123456789abcdef"
PREVIOUS = "previous-secret-fedcba9876543210"
ENV = dict(os.environ, SLUICE_LINK_SECRET=SECRET, SLUICE_LINK_SECRET_PREVIOUS=PREVIOUS)


@pytest.fixture(scope="module")
def files(store, tmp_path_factory) -> Iterator[SluiceServer]:
    base = tmp_path_factory.mktemp("files-server")
    srv = serve(write_config(base / "sluice.toml", store.root), base / "stderr.log", env=ENV)
    # The configuration `sluice presign` reads: the same store, the port the server bound.
    (base / "presign.toml").write_text(
        f"[server]\nlisten = \"127.0.0.1:{srv.port}\"\n\n"
        f"[storage]\nkind = \"local\"\npath = \"{store.root}\"\n", "utf-8")
    srv.presign_config = base / "presign.toml"
    yield srv
    stop_and_check(srv, timeout=20)


def presign(server: SluiceServer, key: str, *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_sluice("presign", key, "--config", str(server.presign_config), *args,
                      env=ENV if env is None else env, timeout=30)


def presigned(server: SluiceServer, key: str, *args: str) -> str:
    result = presign(server, key, *args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def sign(secret: str, key: str, expires: int) -> str:
    message = f"GET\n{key}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def link(server: SluiceServer, key: str, expires: int | None = None, secret: str = SECRET,
         sig: str | None = None, signed_key: str | None = None) -> str:
    expires = int(time.time()) + 600 if expires is None else expires
    if sig is None:
        sig = sign(secret, key if signed_key is None else signed_key, expires)
    return f"{server.url}/v1/files/{quote(key, safe='/')}?expires={expires}&sig={sig}"


def error_code(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "request_id"}, body
    assert response.headers["Content-Type"] == "application/json"
    return body["error"]["code"]


def put_random(store, key: str, size: int) -> bytes:
    data = random.Random(key).randbytes(size)
    store.put(key, data)
    return data


def test_presign_prints_a_link_that_curl_downloads_whole(files, store, tmp_path):
    key = "files/curl/report 2024/données été.csv"
    data = put_random(store, key, 3_000_000)
    url = presigned(files, key)
    assert url.startswith(
        f"http://127.0.0.1:{files.port}/v1/files/files/curl/report%202024/donn%C3%A9es%20%C3%A9t%C3%A9.csv"
        "?expires="), url
    out = tmp_path / "download.csv"
    subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True, timeout=60)
    assert sha256_file(out) == sha256(data)

    response = requests.get(url, timeout=60)
    assert response.status_code == 200
    assert response.content == data
    headers = response.headers
    assert headers["Content-Length"] == str(len(data))
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = headers["Content-Disposition"]
    assert disposition.startswith("attachment;"), disposition
    assert "filename*=UTF-8''donn%C3%A9es%20%C3%A9t%C3%A9.csv" in disposition, disposition
    path = store.root / key
    stat = path.stat()
    assert headers["ETag"] == f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
    assert headers["Last-Modified"] == time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(stat.st_mtime_ns // 1_000_000_000))
    assert headers["Accept-Ranges"] == "bytes"
    cache = headers["Cache-Control"]
    assert cache.startswith("private, max-age="), cache
    assert 3500 <= int(cache.split("=", 1)[1]) <= 3600, cache  # the default --expires 1h
    # The signature is a credential until the link expires: the access log leaves it out.
    wait_until(lambda: "sig=REDACTED" in files.log_text(), 10, "the download in the access log")
    assert url.split("sig=")[1] not in files.log_text()


def test_presign_expires_option(files, store):
    key = "files/cli/a.bin"
    put_random(store, key, 10)
    for value, seconds in (("30s", 30), ("15m", 900), ("7d", 604800)):
        url = presigned(files, key, "--expires", value)
        expires = int(url.split("expires=")[1].split("&")[0])
        assert abs(expires - (int(time.time()) + seconds)) <= 5, (value, url)
        assert requests.get(url, timeout=30).content == random.Random(key).randbytes(10)
    for bad in ("8d", "604801s", "1w", "abc", "0s"):
        result = presign(files, key, "--expires", bad)
        assert result.returncode != 0, bad
        assert "--expires" in result.stderr.decode(), result.stderr.decode()
    assert "7d" in presign(files, key, "--expires", "8d").stderr.decode()


def test_presign_without_the_secret_names_the_variable(files):
    env = {k: v for k, v in ENV.items() if not k.startswith("SLUICE_LINK_SECRET")}
    result = presign(files, "files/cli/a.bin", env=env)
    assert result.returncode == 1
    assert "SLUICE_LINK_SECRET" in result.stderr.decode(), result.stderr.decode()
    assert result.stdout == b""


def test_head_sends_the_headers_and_no_body(files, store):
    key = "files/head/movie.mp4"
    data = put_random(store, key, 200_000)
    target = link(files, key)[len(files.url):]
    result = head_then_get(files.port, target)
    assert_head_has_no_body(result)
    assert result.head_headers["content-length"] == str(len(data))
    assert result.head_headers["content-type"] == "video/mp4"
    assert result.head_headers["etag"] == result.get_headers["etag"]
    assert result.get_body == data


def test_ranges(files, store):
    key = "files/range/data.bin"
    data = put_random(store, key, 1_000_000)
    url = link(files, key)
    first = requests.get(url, headers={"Range": "bytes=0-9"}, timeout=30)
    assert first.status_code == 206
    assert first.content == data[:10]
    assert first.headers["Content-Range"] == f"bytes 0-9/{len(data)}"
    assert first.headers["Content-Length"] == "10"

    middle = requests.get(url, headers={"Range": "bytes=500000-"}, timeout=30)
    assert middle.status_code == 206
    assert middle.content == data[500000:]

    suffix = requests.get(url, headers={"Range": "bytes=-100"}, timeout=30)
    assert suffix.status_code == 206
    assert suffix.content == data[-100:]
    assert suffix.headers["Content-Range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"

    beyond = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=30)
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    assert error_code(beyond) == "range_not_satisfiable"

    several = requests.get(url, headers={"Range": "bytes=0-1,5-6"}, timeout=30)
    assert several.status_code == 200
    assert several.content == data


def test_if_range_resumes_only_with_the_current_etag(files, store):
    key = "files/ifrange/data.bin"
    data = put_random(store, key, 300_000)
    url = link(files, key)
    etag = requests.head(url, timeout=30).headers["ETag"]
    resumed = requests.get(url, headers={"Range": "bytes=100-", "If-Range": etag}, timeout=30)
    assert resumed.status_code == 206
    assert resumed.content == data[100:]
    stale = requests.get(url, headers={"Range": "bytes=100-", "If-Range": '"1-1"'}, timeout=30)
    assert stale.status_code == 200
    assert stale.content == data
    # The object rewritten (a new mtime): the old tag no longer resumes.
    time.sleep(0.02)
    data = put_random(store, key, 300_000)
    again = requests.get(url, headers={"Range": "bytes=100-", "If-Range": etag}, timeout=30)
    assert again.status_code == 200
    assert again.headers["ETag"] != etag


def test_if_none_match_answers_304(files, store):
    key = "files/304/page.json"
    put_random(store, key, 5000)
    url = link(files, key)
    etag = requests.get(url, timeout=30).headers["ETag"]
    for value in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        response = requests.get(url, headers={"If-None-Match": value}, timeout=30)
        assert response.status_code == 304, value
        assert response.content == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"].startswith("private, max-age=")
    assert requests.get(url, headers={"If-None-Match": '"other"'}, timeout=30).status_code == 200
    # On the wire: no body and no Content-Length: 0, and the connection goes on.
    raw = raw_get(files.port, url[len(files.url):], {"If-None-Match": etag})
    try:
        assert raw.status == 304
        assert raw.header("content-length") is None
        assert raw.buffered == b""
    finally:
        raw.close()


def test_expired_link_is_403_link_expired(files, store):
    key = "files/expired/a.txt"
    put_random(store, key, 100)
    response = requests.get(link(files, key, expires=int(time.time()) - 5), timeout=30)
    assert response.status_code == 403
    assert error_code(response) == "link_expired"
    # Still valid up to its second.
    assert requests.get(link(files, key, expires=int(time.time()) + 2), timeout=30).status_code == 200


def test_tampered_links_are_403_link_invalid(files, store):
    key = "files/tamper/a.txt"
    other = "files/tamper/b.txt"
    put_random(store, key, 100)
    put_random(store, other, 100)
    expires = int(time.time()) + 600
    good = sign(SECRET, key, expires)
    assert requests.get(link(files, key, expires, sig=good), timeout=30).status_code == 200
    flipped = good[:10] + ("0" if good[10] != "0" else "1") + good[11:]
    quoted = quote(key, safe="/")
    cases = {
        "signature": link(files, key, expires, sig=flipped),
        "key": link(files, other, expires, sig=good),
        "expires": link(files, key, expires + 1, sig=good),
        "upper-case signature": link(files, key, expires, sig=good.upper()),
        "other secret": link(files, key, expires, secret="not-the-secret"),
        "no sig": f"{files.url}/v1/files/{quoted}?expires={expires}",
        "no expires": f"{files.url}/v1/files/{quoted}?sig={good}",
        "nothing": f"{files.url}/v1/files/{quoted}",
        "two sigs": f"{files.url}/v1/files/{quoted}?expires={expires}&sig={good}&sig={good}",
    }
    for what, url in cases.items():
        response = requests.get(url, timeout=30)
        assert response.status_code == 403, what
        assert error_code(response) == "link_invalid", what
    # An expired link whose signature is wrong is invalid, not expired.
    past = int(time.time()) - 100
    response = requests.get(link(files, key, past, sig=sign(SECRET, key, past + 1)), timeout=30)
    assert error_code(response) == "link_invalid"


def test_the_previous_secret_is_still_accepted(files, store):
    key = "files/rotate/a.txt"
    data = put_random(store, key, 1000)
    response = requests.get(link(files, key, secret=PREVIOUS), timeout=30)
    assert response.status_code == 200
    assert response.content == data


def test_keys_with_spaces_utf8_and_slashes(files, store):
    for key in ("files/keys/a b/c d.txt", "files/keys/日本/ファイル 1.bin",
                "files/keys/deep/er/and/deeper/x+y=z&w.txt", "files/keys/100%.txt",
                "files/keys/semi;colon,comma'quote.txt"):
        data = put_random(store, key, 777)
        url = presigned(files, key)
        response = requests.get(url, timeout=30)
        assert response.status_code == 200, (key, response.text)
        assert response.content == data, key


def test_missing_object_is_404_only_for_signed_links(files):
    key = "files/missing/nope.bin"
    response = requests.get(link(files, key), timeout=30)
    assert response.status_code == 404
    assert error_code(response) == "object_not_found"
    unsigned = requests.get(link(files, key, sig="0" * 64), timeout=30)
    assert unsigned.status_code == 403
    assert error_code(unsigned) == "link_invalid"
    # Sluice's own objects and invalid keys are not served, even when signed (sent raw: HTTP
    # clients remove dot segments).
    for key in (".sluice/archives/x.json", "files/../archives", "files/a/./b", "files//b"):
        raw = raw_get(files.port, link(files, key)[len(files.url):])
        try:
            body = read_fixed_body(raw)
        finally:
            raw.close()
        assert raw.status in (400, 404), (key, raw.status, body)
        if raw.status == 404:
            assert json.loads(body)["error"]["code"] == "object_not_found", (key, body)


def test_other_methods_are_405(files):
    response = requests.post(f"{files.url}/v1/files/a/b", timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_without_a_secret_links_are_disabled(server):
    response = requests.get(f"{server.url}/v1/files/a/b.txt?expires=9999999999&sig=" + "0" * 64,
                            timeout=30)
    assert response.status_code == 404
    assert error_code(response) == "links_disabled"


def test_a_file_overwritten_in_place_during_the_download_is_cut(files, store):
    key = "files/overwrite/big.bin"
    size = 64 << 20
    path = store.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    block = random.Random(key).randbytes(1 << 20)
    with open(path, "wb") as handle:
        for _ in range(64):
            handle.write(block)
    time.sleep(0.05)  # the overwrite gets a later mtime than the write (coarse file clock)
    before = files.metrics()
    target = link(files, key)[len(files.url):]
    sock = raw_connect(files.port, rcvbuf=32768, timeout=30)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    received = len(body)
    while received < 1 << 20:  # a slow reader: the first MiB ...
        chunk = sock.recv(16384)
        assert chunk, "the connection ended early"
        received += len(chunk)
        time.sleep(0.001)
    with open(path, "r+b") as handle:  # ... then the file is rewritten in place, same size
        handle.seek(size - (8 << 20))
        handle.write(b"\xff" * (8 << 20))
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    sock.close()
    assert received < size, "the transfer of a file changed in place ended complete"
    wait_until(lambda: files.metrics()["sluice_files_aborted_total"]
               > before["sluice_files_aborted_total"], 10, "the download counted as aborted")
    assert "changed" in files.log_text()
    # A fresh link still serves the file as it is now.
    response = requests.get(link(files, key), timeout=120)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == sha256_file(path)


def test_metrics_count_completed_downloads(files, store):
    key = "files/metrics/m.bin"
    put_random(store, key, 50_000)
    before = files.metrics()["sluice_files_completed_total"]
    assert requests.get(link(files, key), timeout=30).status_code == 200
    wait_until(lambda: files.metrics()["sluice_files_completed_total"] == before + 1, 10,
               "one more completed download")
