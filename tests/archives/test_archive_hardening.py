"""What an attacker found in archives (hardening issue): a listing that left the store through a
link, entry names that read wrong or that Windows cannot create, a quadratic request on an I/O
thread, and Range headers read too strictly."""

from __future__ import annotations

import json
import os
import threading
import time
import zipfile
from pathlib import Path

import requests

from support.archives import create_archive


def test_a_listing_never_follows_a_link_out_of_the_store(idle, store, tmp_path):
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    (outside / "deep" / "more.txt").write_text("more")
    os.symlink(outside, store.root / "etc_link")
    os.symlink("/", store.root / "root_link")
    store.put("linked/real.txt", b"real")
    os.symlink(outside, store.root / "linked" / "inner_link")
    try:
        for prefix in ("etc_link/", "etc_link/deep/", "root_link/etc/"):
            response = requests.post(f"{idle.url}/v1/archives",
                                     data=json.dumps({"name": "x", "prefix": prefix}), timeout=30)
            if response.status_code == 201:
                assert response.json()["entries"] == 0, (prefix, response.text)
            else:
                assert response.status_code == 400, (prefix, response.status_code, response.text)
        created = create_archive(idle, {"name": "linked", "prefix": "linked/", "method": "store"})
        assert created["entries"] == 1  # the link inside the folder is not walked either
        assert created["size"] < 1000  # no size of anything outside
    finally:
        for link in (store.root / "etc_link", store.root / "root_link",
                     store.root / "linked" / "inner_link"):
            link.unlink()


def test_names_that_read_wrong_or_windows_cannot_create_are_sanitised(idle, store, tmp_path):
    store.put("names/a.bin", b"a")
    body = {"name": "names", "entries": [
        {"key": "names/a.bin", "path": "invoice\u202egpj.exe"},
        {"key": "names/a.bin", "path": "CON"},
        {"key": "names/a.bin", "path": "dir/aux.txt"},
        {"key": "names/a.bin", "path": "trailing. "},
    ]}
    created = create_archive(idle, body)
    target = tmp_path / "names.zip"
    target.write_bytes(requests.get(idle.url + created["url"], timeout=30).content)
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
    assert names == ["invoice_gpj.exe", "_CON", "dir/_aux.txt", "trailing__"], names


def test_many_duplicate_names_neither_take_long_nor_stall_other_requests(idle, store):
    store.put("dup/same.jpg", b"x" * 100)
    body = json.dumps({"name": "dup", "entries": [{"key": "dup/same.jpg"}] * 20_000})
    result: dict[str, object] = {}

    def post() -> None:
        start = time.monotonic()
        response = requests.post(f"{idle.url}/v1/archives", data=body, timeout=120)
        result["status"] = response.status_code
        result["seconds"] = time.monotonic() - start
        result["body"] = response.json()

    poster = threading.Thread(target=post)
    poster.start()
    slowest = 0.0
    while poster.is_alive():
        start = time.monotonic()
        assert requests.get(f"{idle.url}/healthz", timeout=30).status_code == 200
        slowest = max(slowest, time.monotonic() - start)
    poster.join()
    assert result["status"] == 201, result
    assert result["body"]["entries"] == 20_000
    # Was 36 s, with a /healthz on another connection waiting 17.5 s.
    assert result["seconds"] < 10, result["seconds"]
    assert slowest < 1.0, f"a /healthz waited {slowest:.1f} s"


def test_range_units_are_case_insensitive_and_positions_unbounded(idle, store):
    store.put("ranges/data.bin", bytes(range(256)) * 40)
    created = create_archive(idle, {"name": "ranges", "prefix": "ranges/", "method": "store"})
    url, size = idle.url + created["url"], created["size"]
    whole = requests.get(url, timeout=30).content
    upper = requests.get(url, headers={"Range": "BYTES=0-9"}, timeout=30)
    assert upper.status_code == 206 and upper.content == whole[:10]
    huge = requests.get(url, headers={"Range": "bytes=10-18446744073709551615"}, timeout=30)
    assert huge.status_code == 206, huge.status_code
    assert huge.headers["Content-Range"] == f"bytes 10-{size - 1}/{size}"
    assert huge.content == whole[10:]
    beyond = requests.get(url, headers={"Range": "bytes=99999999999999999999-"}, timeout=30)
    assert beyond.status_code == 416
