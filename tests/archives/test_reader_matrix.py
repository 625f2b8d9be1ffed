"""Every reader opens every kind of archive cleanly, with byte-identical contents.

Readers: Info-ZIP `unzip -t` (+ extraction), `7z t` (warnings such as "Headers Error" fail),
bsdtar on the file and from a pipe of the HTTP stream, Python's zipfile, and Java's
ZipInputStream reading the HTTP stream. Archives larger than 4 GiB are compared as streams
(`unzip -p`, `7z x -so`, `bsdtar -xO`) instead of extracting them to disk.
"""

from __future__ import annotations

import os
import random

import pytest
import requests

from support.archives import Expected, check_readers, create_archive

GiB = 1 << 30


def test_empty_archive_is_refused(idle):
    """An empty selection is a mistake to report (422), not an empty ZIP to download."""
    refused = requests.post(f"{idle.url}/v1/archives", json={"name": "empty", "entries": []},
                            timeout=30)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "empty_selection"


def test_one_file(idle, store, tmp_path):
    path = store.put("one/hello.txt", b"hello, archive\n")
    created = create_archive(idle, {"name": "one", "entries": [{"key": "one/hello.txt"}],
                                    "method": "store"})
    check_readers(idle, created["id"], Expected([("one/hello.txt", path)]), tmp_path)


@pytest.mark.parametrize("method", ["store", "deflate"])
def test_zero_byte_files(idle, store, tmp_path, method):
    paths = [store.put(f"zero-{method}/{name}", b"") for name in ("a", "b.txt", "c.jpg")]
    filled = store.put(f"zero-{method}/d.txt", b"not empty\n" * 100)
    created = create_archive(idle, {"name": "zero", "prefix": f"zero-{method}/", "method": method})
    assert created["ranges"] is (method == "store")
    check_readers(idle, created["id"], Expected(
        [("a", paths[0]), ("b.txt", paths[1]), ("c.jpg", paths[2]), ("d.txt", filled)]), tmp_path)


def test_mixed_methods_stream_chunked(idle, store, tmp_path):
    rng = random.Random(11)
    photo = store.put("mixed/photo.jpg", rng.randbytes(700_000))
    text = store.put("mixed/notes.txt", b"".join(b"line %d of some text\n" % i for i in range(60_000)))
    noise = store.put("mixed/noise.bin", rng.randbytes(300_000))  # deflated, incompressible
    created = create_archive(idle, {"name": "mixed", "prefix": "mixed/", "method": "auto"})
    assert created["ranges"] is False and created["size"] is None
    check_readers(idle, created["id"], Expected(
        [("noise.bin", noise), ("notes.txt", text), ("photo.jpg", photo)]), tmp_path)


def test_non_ascii_names(idle, store, tmp_path):
    names = ["Grüße aus Köln.txt", "東京/写真 📷.jpg", "naïve café/Ünïcödé.pdf", "שלום.txt",
             "Ελληνικά/αρχείο.txt"]
    entries = []
    for i, name in enumerate(names):
        path = store.put(f"unicode/{name}", f"content {i} {name}\n".encode())
        entries.append((name, path))
    created = create_archive(idle, {"name": "Grüße", "prefix": "unicode/", "method": "auto"})
    entries.sort(key=lambda e: f"unicode/{e[0]}".encode())
    check_readers(idle, created["id"], Expected(entries), tmp_path)


def test_duplicate_and_hostile_names(idle, store, tmp_path):
    data = {key: store.put(f"hostile/{key}", f"{key}\n".encode() * 10)
            for key in ("k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11")}
    requested = [
        ("k1", "a.jpg", "a.jpg"),
        ("k2", "a.jpg", "a (1).jpg"),
        ("k3", "A.JPG", "A (2).JPG"),
        ("k4", "../../evil.txt", "evil.txt"),
        ("k5", "/etc/passwd", "etc/passwd"),
        ("k6", "C:\\Windows\\system32\\x.dll", "Windows/system32/x.dll"),
        ("k7", "dir/./sub/../file.txt", "dir/sub/file.txt"),
        ("k8", "what?<>|*.txt", "what_____.txt"),
        ("k9", "..", "file"),
        ("k10", "evil.txt", "evil (1).txt"),
        ("k11", "dir", "dir (1)"),  # a file cannot take the name of a folder
    ]
    created = create_archive(idle, {"name": "../hostile", "method": "store", "entries": [
        {"key": f"hostile/{key}", "path": path} for key, path, _ in requested]})
    expected = Expected([(name, data[key]) for key, _, name in requested])
    check_readers(idle, created["id"], expected, tmp_path)


def test_70000_entries(idle, store, tmp_path):
    folder = store.root / "many"
    expected = []
    for i in range(70_000):
        sub = folder / f"d{i // 1000:02d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        path = sub / f"f{i:05d}.txt"
        path.write_bytes(b"%d\n" % i if i % 7 else b"")
        expected.append((f"d{i // 1000:02d}/f{i:05d}.txt", path))
    created = create_archive(idle, {"name": "many", "prefix": "many/", "method": "store"})
    assert created["entries"] == 70_000
    check_readers(idle, created["id"], Expected(expected), tmp_path)


def big_marks(size: int) -> dict[int, bytes]:
    """Non-zero bytes around the 4 GiB boundary and at both ends, so a wrong offset shows."""
    rng = random.Random(size)
    return {0: rng.randbytes(4096), 4 * GiB - 2048: rng.randbytes(4096),
            size - 4096: rng.randbytes(4096)}


@pytest.mark.parametrize("method", ["store", "deflate"])
def test_one_entry_over_4_gib(idle, store, tmp_path, method):
    size = 4 * GiB + 12345
    big = store.sparse(f"big-{method}/huge.bin", size, big_marks(size))
    small = store.put(f"big-{method}/small.txt", b"after the big one\n")
    created = create_archive(idle, {"name": "big", "prefix": f"big-{method}/", "method": method})
    if method == "store":
        assert created["size"] > size
    check_readers(idle, created["id"], Expected([("huge.bin", big), ("small.txt", small)]),
                  tmp_path, extract=False)


def test_total_over_4_gib(idle, store, tmp_path):
    parts = []
    for i in range(3):
        size = 1_500_000_000 + i
        parts.append((f"part{i}.bin", store.sparse(f"total/part{i}.bin", size,
                                                   {0: os.urandom(1000), size - 1000: os.urandom(1000)})))
    # Entries whose local headers start beyond 4 GiB: ZIP64 offsets in the central directory.
    parts += [(f"tail{i}.txt", store.put(f"total/tail{i}.txt", b"tail %d\n" % i)) for i in range(3)]
    created = create_archive(idle, {"name": "total", "prefix": "total/", "method": "store"})
    assert created["size"] > 4 * GiB
    check_readers(idle, created["id"], Expected(parts), tmp_path, extract=False)
