"""Compressed exports from PostgreSQL: a `.csv.zst` / `.csv.gz` download of the 1,000,000-row
table and of the all-types table decompresses (with the real `zstd` / `gzip` tools) to exactly
the bytes of the uncompressed export, and Content-Encoding works the same way."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from support.csv import parse_csv
from support.digests import sha256
from support.pg import BIG_ROWS


def curl_bytes(url: str, *extra: str) -> bytes:
    result = subprocess.run(["curl", "-sS", "--fail", "--max-time", "120", *extra, url],
                            capture_output=True, timeout=150)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def assert_plain_is_postgres(target: str, plain: bytes, big_baseline, all_types_baseline):
    """The uncompressed export is PostgreSQL's data (psql's COPY), so that compressed ==
    plain proves the compressed download right, not only consistent with another export."""
    if target == "big.csv":
        assert plain.count(b"\r\n") == BIG_ROWS + 1
        # big has no CR or LF inside values: CRLF -> LF gives psql's CSV byte for byte.
        assert sha256(plain.replace(b"\r\n", b"\n")) == sha256(big_baseline.data)
    elif target == "types.csv":
        table = parse_csv(plain, line_end=b"\r\n")
        assert (table.header, table.rows) == (all_types_baseline.header, all_types_baseline.rows)
    else:  # types.jsonl: one object per row, in order, with psql's ids and column names
        lines = plain.split(b"\n")
        assert lines[-1] == b"" and len(lines) - 1 == len(all_types_baseline.rows)
        objects = [json.loads(line) for line in lines[:-1]]
        assert all(list(o) == all_types_baseline.header for o in objects)
        assert [o["id"] for o in objects] == [int(r[0]) for r in all_types_baseline.rows]


@pytest.mark.parametrize("target", ["big.csv", "types.csv", "types.jsonl"])
def test_zst_download_decompresses_to_the_plain_export(sluice, target, big_baseline,
                                                       all_types_baseline):
    plain = curl_bytes(f"{sluice.url}/v1/exports/{target}")
    assert_plain_is_postgres(target, plain, big_baseline, all_types_baseline)
    compressed = curl_bytes(f"{sluice.url}/v1/exports/{target}.zst")
    assert compressed[:4] == b"\x28\xb5\x2f\xfd", "a zstd frame"
    decoded = subprocess.run(["zstd", "-dcq"], input=compressed, capture_output=True, check=True)
    assert hashlib.sha256(decoded.stdout).hexdigest() == hashlib.sha256(plain).hexdigest()
    if target == "big.csv":
        assert len(compressed) < len(plain) / 2


def test_gzip_content_encoding_of_the_big_table(sluice, big_baseline, all_types_baseline):
    plain = curl_bytes(f"{sluice.url}/v1/exports/big.csv")
    assert_plain_is_postgres("big.csv", plain, big_baseline, all_types_baseline)
    assert curl_bytes(f"{sluice.url}/v1/exports/big.csv", "--compressed") == plain
    raw = curl_bytes(f"{sluice.url}/v1/exports/big.csv", "-H", "Accept-Encoding: gzip")
    decoded = subprocess.run(["gzip", "-dc"], input=raw, capture_output=True, check=True)
    assert decoded.stdout == plain
