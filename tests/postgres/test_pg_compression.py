"""Compressed exports from PostgreSQL: a `.csv.zst` / `.csv.gz` download of the 1,000,000-row
table and of the all-types table decompresses (with the real `zstd` / `gzip` tools) to exactly
the bytes of the uncompressed export, and Content-Encoding works the same way."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from support.pg import BIG_ROWS


def curl_bytes(url: str, *extra: str) -> bytes:
    result = subprocess.run(["curl", "-sS", "--fail", "--max-time", "120", *extra, url],
                            capture_output=True, timeout=150)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


@pytest.mark.parametrize("target", ["big.csv", "types.csv", "types.jsonl"])
def test_zst_download_decompresses_to_the_plain_export(sluice, target):
    plain = curl_bytes(f"{sluice.url}/v1/exports/{target}")
    compressed = curl_bytes(f"{sluice.url}/v1/exports/{target}.zst")
    assert compressed[:4] == b"\x28\xb5\x2f\xfd", "a zstd frame"
    decoded = subprocess.run(["zstd", "-dcq"], input=compressed, capture_output=True, check=True)
    assert hashlib.sha256(decoded.stdout).hexdigest() == hashlib.sha256(plain).hexdigest()
    if target == "big.csv":
        assert plain.count(b"\r\n") == BIG_ROWS + 1
        assert len(compressed) < len(plain) / 2


def test_gzip_content_encoding_of_the_big_table(sluice):
    plain = curl_bytes(f"{sluice.url}/v1/exports/big.csv")
    assert curl_bytes(f"{sluice.url}/v1/exports/big.csv", "--compressed") == plain
    raw = curl_bytes(f"{sluice.url}/v1/exports/big.csv", "-H", "Accept-Encoding: gzip")
    decoded = subprocess.run(["gzip", "-dc"], input=raw, capture_output=True, check=True)
    assert decoded.stdout == plain
