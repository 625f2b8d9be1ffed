"""The object store and the ZIP reader matrix of tests/archives.

Every test writes its own objects under its own prefix, creates archives through the HTTP API
and checks them with the real tools: Info-ZIP unzip, 7-Zip, libarchive's bsdtar (from a file
and from a pipe), Python's zipfile and Java's java.util.zip.ZipInputStream reading the HTTP
stream. Big inputs (> 4 GiB) are sparse files made with truncate, so they cost no disk space.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import requests

from .digests import sha256_file
from .server import SluiceServer

ZIP_STREAM_CHECK = Path(__file__).resolve().parents[1] / "archives" / "ZipStreamCheck.java"
# The readers must see UTF-8 names as UTF-8.
ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")


def write_config(path: Path, store: Path, extra_server: str = "") -> Path:
    path.write_text(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 16777216\n" + extra_server +
        f"\n[storage]\nkind = \"local\"\npath = \"{store}\"\n", "utf-8")
    return path


@dataclass
class Store:
    root: Path

    def put(self, key: str, data: bytes) -> Path:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def sparse(self, key: str, size: int, marks: dict[int, bytes]) -> Path:
        """A sparse file of `size` bytes, zero except for `marks` {offset: bytes}."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["truncate", "-s", str(size), str(path)], check=True)
        with open(path, "r+b") as handle:
            for offset, data in marks.items():
                handle.seek(offset)
                handle.write(data)
        return path


def create_archive(server: SluiceServer, body: dict) -> dict:
    response = requests.post(f"{server.url}/v1/archives", data=json.dumps(body), timeout=120)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == created["url"]
    return created


# --------------------------------------------------------------------------------------------
# What an archive must contain, and the readers that check it
# --------------------------------------------------------------------------------------------

@dataclass
class Expected:
    """Entry names in archive order and the file each must equal."""
    entries: list[tuple[str, Path]]

    def names(self) -> list[str]:
        return [name for name, _ in self.entries]

    @functools.cached_property
    def digests(self) -> dict[str, str]:
        """SHA-256 of each entry's source, computed once for all readers."""
        return {name: sha256_file(path) for name, path in self.entries}

    @functools.cached_property
    def crcs(self) -> dict[str, int]:
        """CRC-32 of each entry's source (for the multi-GiB cases: 10x faster than SHA-256)."""
        return {name: crc_file(path) for name, path in self.entries}

    def total(self) -> int:
        return sum(path.stat().st_size for _, path in self.entries)


def crc_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, env=ENV, timeout=900, **kwargs)


def stream_equals(command: list[str] | str, sources: list[Path], shell: bool = False) -> None:
    """The stdout of `command` must be the concatenation of `sources`, byte for byte."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                            shell=shell)
    assert proc.stdout is not None
    offset = 0
    for source in sources:
        with open(source, "rb") as expected:
            for block in iter(lambda: expected.read(1 << 20), b""):
                got = proc.stdout.read(len(block))
                assert got == block, f"{command}: differs at byte {offset} ({source.name})"
                offset += len(block)
    rest = proc.stdout.read(1)
    _, stderr = proc.communicate(timeout=900)
    assert rest == b"", f"{command}: more bytes than expected after {offset}"
    assert proc.returncode == 0, f"{command}: exit {proc.returncode}: {stderr.decode()[-2000:]}"


def tree(folder: Path) -> dict[str, str]:
    found = {}
    for path in folder.rglob("*"):
        assert not path.is_symlink(), path
        if path.is_file():
            found[path.relative_to(folder).as_posix()] = sha256_file(path)
    return found


def check_tree(folder: Path, expected: Expected, reader: str) -> None:
    want = expected.digests
    got = tree(folder)
    assert set(got) == set(want), (
        f"{reader}: names differ: missing {sorted(set(want) - set(got))[:5]}, "
        f"extra {sorted(set(got) - set(want))[:5]}")
    bad = [name for name in want if got[name] != want[name]]
    assert not bad, f"{reader}: contents differ for {bad[:5]}"


def check_unzip(archive: Path, expected: Expected, work: Path, extract: bool) -> None:
    result = run(["unzip", "-t", str(archive)])
    out = result.stdout.decode("utf-8", "replace")
    if not expected.entries:  # Info-ZIP calls any empty archive a warning (exit 1)
        assert result.returncode == 1 and "zipfile is empty" in out, out
        return
    assert result.returncode == 0 and "No errors detected" in out, out[-3000:]
    # Beyond 4 GiB `-t` (every CRC checked) is enough here: the byte-exact comparisons of
    # bsdtar, zipfile and Java cover the contents without more passes over 4 GiB.
    if extract:
        run(["unzip", "-q", "-o", str(archive), "-d", str(work / "unzip")]).check_returncode()
        check_tree(work / "unzip", expected, "unzip")


SEVEN_ZIP_TROUBLE = re.compile(r"Headers Error|Warnings|WARNING|ERROR|Unexpected end|"
                               r"There are data after the end|Can not open", re.IGNORECASE)


def check_7z(archive: Path, expected: Expected, work: Path, extract: bool) -> None:
    result = run(["7z", "t", str(archive)])
    out = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0 and "Everything is Ok" in out, out[-3000:]
    assert not SEVEN_ZIP_TROUBLE.search(out), out[-3000:]
    if not expected.entries:
        return
    if extract:
        run(["7z", "x", "-y", f"-o{work / '7z'}", str(archive)]).check_returncode()
        check_tree(work / "7z", expected, "7z")


def check_bsdtar(archive: Path, expected: Expected, work: Path, extract: bool,
                 url: str) -> None:
    listing = run(["bsdtar", "-tf", str(archive)])
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.decode("utf-8").splitlines() == expected.names()
    if extract:
        for name, source in (("bsdtar-file", ["-f", str(archive)]),):
            folder = work / name
            folder.mkdir()
            result = run(["bsdtar", "-x", *source, "-C", str(folder)])
            assert result.returncode == 0, result.stderr
            check_tree(folder, expected, name)
        folder = work / "bsdtar-stdin"
        folder.mkdir()
        result = subprocess.run(f"curl -sSf '{url}' | bsdtar -x -f - -C '{folder}'",
                                shell=True, capture_output=True, env=ENV, timeout=900)
        assert result.returncode == 0, result.stderr
        check_tree(folder, expected, "bsdtar from a pipe")
    else:
        stream_equals(f"curl -sSf '{url}' | bsdtar -xOf -", [p for _, p in expected.entries],
                      shell=True)


def check_python(archive: Path, expected: Expected) -> None:
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == expected.names()
        for info, (_, source) in zip(infos, expected.entries):
            assert info.file_size == source.stat().st_size, info.filename
            assert info.external_attr >> 16 == 0o100644, oct(info.external_attr >> 16)
            with zf.open(info) as got, open(source, "rb") as want:
                for block in iter(lambda: want.read(1 << 20), b""):
                    assert got.read(len(block)) == block, info.filename
                assert got.read(1) == b"", info.filename


def check_java(url: str, expected: Expected, exact: bool) -> None:
    """ZipInputStream over the HTTP stream: names, sizes, SHA-256 (or CRC-32 when not
    `exact`, for multi-GiB entries) of each entry."""
    mode = "sha256" if exact else "crc32"
    command = f"curl -sSf '{url}' | java -Xmx64m {ZIP_STREAM_CHECK} {mode}"
    result = subprocess.run(command, shell=True, capture_output=True, env=ENV, timeout=900)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    lines = result.stdout.decode("utf-8").splitlines()
    assert len(lines) == len(expected.entries), lines[:5]
    for line, (name, source) in zip(lines, expected.entries):
        got_name, size, digest = line.split("\t")
        assert got_name == name
        assert int(size) == source.stat().st_size, name
        want = expected.digests[name] if exact else f"{expected.crcs[name]:08x}"
        assert digest == want, name


def download(url: str, target: Path) -> requests.Response:
    with requests.get(url, stream=True, timeout=300) as response:
        assert response.status_code == 200, response.text[:500]
        size = 0
        with open(target, "wb") as out:
            for block in response.iter_content(1 << 20):
                out.write(block)
                size += len(block)
        if "Content-Length" in response.headers:
            assert size == int(response.headers["Content-Length"])
        return response


def check_readers(server: SluiceServer, archive_id: str, expected: Expected, work: Path,
                  extract: bool = True) -> None:
    """Every reader of the matrix must read the archive cleanly and byte-identically."""
    url = f"{server.url}/v1/archives/{archive_id}.zip"
    archive = work / "archive.zip"
    download(url, archive)
    try:
        check_unzip(archive, expected, work, extract)
        check_7z(archive, expected, work, extract)
        check_bsdtar(archive, expected, work, extract, url)
        check_python(archive, expected)
        check_java(url, expected, exact=extract)
    finally:
        archive.unlink()
