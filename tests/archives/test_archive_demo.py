"""`sluice demo` comes with an object store: its album downloads as a ZIP right away."""

from __future__ import annotations

import io
import json
import zipfile

import requests

from support.server import SluiceServer, stop_and_check


def test_demo_serves_its_album_and_docs(tmp_path):
    folder = tmp_path / "demo"
    server = SluiceServer(["demo", "--dir", str(folder), "--rows", "1000",
                           "--listen", "127.0.0.1:0"], tmp_path / "demo.log",
                          startup_timeout=120)  # it writes its rows and photos first
    url = server.url
    try:
        assert 'path = "objects"' in (folder / "sluice.toml").read_text()
        photos = sorted((folder / "objects" / "album").iterdir())
        assert len(photos) == 50
        assert all(1 << 20 <= p.stat().st_size <= 3 << 20 for p in photos)
        created = requests.post(f"{url}/v1/archives", timeout=30,
                                data=json.dumps({"name": "album", "prefix": "album/"})).json()
        assert created["ranges"] is True and created["entries"] == 50  # jpg: stored
        body = requests.get(url + created["url"], timeout=120).content
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            assert zf.testzip() is None
            assert zf.namelist() == [p.name for p in photos]
            assert zf.read("IMG_0001.jpg") == (folder / "objects/album/IMG_0001.jpg").read_bytes()
        docs = requests.post(f"{url}/v1/archives", timeout=30,
                             data=json.dumps({"name": "docs", "prefix": "docs/"})).json()
        assert docs["ranges"] is False  # text: deflated, chunked
        with zipfile.ZipFile(io.BytesIO(requests.get(url + docs["url"], timeout=60).content)) as zf:
            assert zf.testzip() is None
            assert "Grüße aus Köln – 東京.txt" in zf.namelist()
    finally:
        stop_and_check(server, timeout=20)
