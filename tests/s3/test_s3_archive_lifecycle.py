"""Archive expiry, DELETE and the sweeper on a real S3 endpoint (s3rver): the manifests are
objects under the bucket's reserved ".sluice/archives/" prefix, listed and deleted through S3."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from support.archives import create_archive
from support.metrics import wait_until
from support.s3 import BUCKET, S3rver


def put_with_aws(s3: S3rver, tmp: Path, key: str, data: bytes) -> None:
    source = tmp / "upload" / key.replace("/", "_")
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    s3.aws("s3", "cp", str(source), f"s3://{BUCKET}/{key}")


def test_expired_archives_answer_410_then_are_swept_from_the_bucket(s3, sluice, tmp_path):
    put_with_aws(s3, tmp_path, "life/a.bin", os.urandom(10_000))
    put_with_aws(s3, tmp_path, "life/b.bin", os.urandom(20_000))
    config = sluice.config(s3.endpoint)
    config.write_text(config.read_text() + "\n[archives]\nsweep_interval_s = 1\nsweep_batch = 2\n")
    server = sluice.serve(config)
    short = [create_archive(server, {"prefix": "life/", "expires_in": 2}) for _ in range(3)]
    kept = create_archive(server, {"prefix": "life/", "expires_in": "1h"})
    deleted = create_archive(server, {"prefix": "life/"})
    manifests = set(s3.object_keys(".sluice/archives/"))
    # (The short-lived ones may be swept already: the sweeper runs every second.)
    assert {f".sluice/archives/{a['id']}.json" for a in (kept, deleted)} <= manifests
    # The manifest's ETag names S3's tags of the entries: stable, and 304 on revalidation.
    url = server.url + kept["url"]
    etag = requests.get(url, timeout=60).headers["ETag"]
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=60).status_code == 304

    assert requests.delete(server.url + deleted["url"], timeout=30).status_code == 204
    assert f".sluice/archives/{deleted['id']}.json" not in s3.object_keys(".sluice/archives/")
    assert requests.get(server.url + deleted["url"], timeout=30).status_code == 404

    # Expired: 410 while the manifest exists, 404 once the sweeper deleted it from the bucket.
    statuses: set[int] = set()

    def swept() -> bool:
        statuses.update(requests.get(server.url + a["url"], timeout=30).status_code for a in short)
        keys = set(s3.object_keys(".sluice/archives/"))
        return not any(f".sluice/archives/{a['id']}.json" in keys for a in short)

    wait_until(swept, 60, "expired manifests swept from the bucket")
    assert statuses <= {200, 410, 404}, statuses
    for answer in short:
        assert requests.get(server.url + answer["url"], timeout=30).status_code == 404
    assert f".sluice/archives/{kept['id']}.json" in s3.object_keys(".sluice/archives/")
    assert requests.get(url, timeout=60).status_code == 200
    assert server.metrics()["sluice_archives_swept_total"] >= 3
    # The objects themselves stay.
    assert set(s3.object_keys("life/")) == {"life/a.bin", "life/b.bin"}
