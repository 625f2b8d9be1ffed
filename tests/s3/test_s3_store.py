"""Sluice on a real S3 endpoint (s3rver) with AWS's own client on the other side: check-config,
archives of objects that `aws s3 cp` wrote (multipart included), exports written into the bucket
and read back with `aws s3 cp`, presigned URLs, and what the user sees when the endpoint, the
credentials or the bucket are wrong."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import requests

from support.archives import create_archive
from support.server import SANITIZED
from support.s3 import BUCKET, FaultProxy, S3rver, free_port, make_tls_files, s3_env


def put_with_aws(s3: S3rver, tmp: Path, key: str, data: bytes) -> Path:
    source = tmp / "upload" / hashlib.sha1(key.encode()).hexdigest()
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    s3.aws("s3", "cp", str(source), f"s3://{BUCKET}/{key}")
    return source


def get_with_aws(s3: S3rver, key: str) -> bytes:
    return s3.aws("s3", "cp", f"s3://{BUCKET}/{key}", "-").stdout


# --------------------------------------------------------------------------------------------
# check-config and start-up
# --------------------------------------------------------------------------------------------

def test_check_config_lists_writes_reads_and_deletes_in_the_bucket(s3, sluice):
    config = sluice.config(s3.endpoint)
    done = sluice.run("check-config", str(config))
    assert done.returncode == 0, done.stderr.decode()
    assert f"S3 bucket {BUCKET} listed, written, read, deleted" in done.stdout.decode()
    assert s3.object_keys() == [], "the probe object stayed in the bucket"


@pytest.mark.parametrize("fault", ["wrong_key_id", "no_bucket", "nothing_listens",
                                   "no_such_host", "no_credentials"])
def test_check_config_and_serve_say_what_is_wrong(s3, sluice, fault):
    endpoint, extra, env = s3.endpoint, "", s3_env()
    expected = {"wrong_key_id": "InvalidAccessKeyId", "no_bucket": "NoSuchBucket",
                "nothing_listens": "cannot connect to 127.0.0.1",
                "no_such_host": "cannot resolve no-such-host.invalid",
                "no_credentials": "AWS_ACCESS_KEY_ID is not set"}[fault]
    if fault == "wrong_key_id":
        env = s3_env(AWS_ACCESS_KEY_ID="NOTS3RVER")
    elif fault == "no_bucket":
        extra = ""
        endpoint = s3.endpoint
    elif fault == "nothing_listens":
        endpoint = f"http://127.0.0.1:{free_port()}"
        extra = "max_attempts = 1\nconnect_timeout_ms = 2000"
    elif fault == "no_such_host":
        endpoint = "http://no-such-host.invalid:9000"  # .invalid never resolves (RFC 6761)
    else:
        env = {k: v for k, v in s3_env().items() if k != "AWS_ACCESS_KEY_ID"}
    config = sluice.config(endpoint, storage_extra=extra)
    if fault == "no_bucket":
        config.write_text(config.read_text().replace(f'bucket = "{BUCKET}"',
                                                     'bucket = "no-such-bucket"'))
    checked = sluice.run("check-config", str(config), env=env, timeout=60)
    assert checked.returncode == 1
    assert expected in checked.stderr.decode(), checked.stderr.decode()
    # The server refuses to start with the same reason instead of failing every request later.
    started = sluice.run("serve", "--config", str(config), env=env, timeout=60)
    assert started.returncode == 1
    assert expected in started.stderr.decode(), started.stderr.decode()


# --------------------------------------------------------------------------------------------
# Archives of objects written by AWS's client
# --------------------------------------------------------------------------------------------

def test_an_archive_of_objects_aws_wrote_opens_and_resumes(s3, sluice, tmp_path):
    objects = {
        "album/big.bin": os.urandom(20 << 20),  # aws s3 cp uploads it in 8 MiB parts
        "album/été 2024/photo+1.jpg": os.urandom(300_000),
        "album/empty.txt": b"",
        "album/notes.txt": b"plain text " * 1000,
    }
    for key, data in objects.items():
        put_with_aws(s3, tmp_path, key, data)
    server = sluice.serve(sluice.config(s3.endpoint))
    created = create_archive(server, {"name": "album", "prefix": "album/", "method": "store"})
    url = f"{server.url}/v1/archives/{created['id']}.zip"
    whole = requests.get(url, timeout=120)
    assert whole.status_code == 200
    assert int(whole.headers["Content-Length"]) == len(whole.content)
    with zipfile.ZipFile(io.BytesIO(whole.content)) as archive:
        assert archive.testzip() is None
        got = {info.filename: archive.read(info) for info in archive.infolist()}
    assert got == {key.removeprefix("album/"): data for key, data in objects.items()}
    (tmp_path / "album.zip").write_bytes(whole.content)
    unzip = subprocess.run(["unzip", "-tq", str(tmp_path / "album.zip")], capture_output=True)
    assert unzip.returncode == 0, unzip.stdout + unzip.stderr
    # Kept-alive connections carry the next GET: a second download opens (almost) none.
    opened = server.metrics()["sluice_s3_connections_opened_total"]
    again = requests.get(url, timeout=120)
    assert again.content == whole.content
    assert server.metrics()["sluice_s3_connections_opened_total"] - opened <= 1, \
        "every GET of the archive's objects opened a connection of its own"
    # Resume from the middle of the big object: the same bytes.
    start = len(whole.content) // 3
    rest = requests.get(url, headers={"Range": f"bytes={start}-"}, timeout=120)
    assert rest.status_code == 206
    assert rest.content == whole.content[start:]


def test_an_object_replaced_during_the_download_aborts_it(s3, sluice, tmp_path):
    first, second = os.urandom(12 << 20), os.urandom(12 << 20)
    put_with_aws(s3, tmp_path, "set/a.bin", first)
    put_with_aws(s3, tmp_path, "set/b.bin", second)
    server = sluice.serve(sluice.config(s3.endpoint))
    created = create_archive(server, {"name": "set", "prefix": "set/", "method": "store"})
    response = requests.get(f"{server.url}/v1/archives/{created['id']}.zip", stream=True,
                            timeout=60)
    assert response.status_code == 200
    length = int(response.headers["Content-Length"])
    body = response.raw.read(1 << 20)  # into a.bin; b.bin is not read yet
    put_with_aws(s3, tmp_path, "set/b.bin", os.urandom(12 << 20))  # same size, other bytes
    try:
        while chunk := response.raw.read(1 << 20):
            body += chunk
    except Exception:  # noqa: BLE001 - a cut transfer may surface as a protocol error
        pass
    assert len(body) < length, "the archive ended complete with a replaced object inside"


def test_the_endpoint_killed_mid_download_never_gives_a_complete_looking_archive(s3, sluice,
                                                                                tmp_path):
    for name in ("a", "b", "c"):
        put_with_aws(s3, tmp_path, f"gone/{name}.bin", os.urandom(8 << 20))
    server = sluice.serve(sluice.config(s3.endpoint, storage_extra="max_attempts = 2"))
    created = create_archive(server, {"name": "gone", "prefix": "gone/", "method": "store"})
    response = requests.get(f"{server.url}/v1/archives/{created['id']}.zip", stream=True,
                            timeout=60)
    assert response.status_code == 200
    length = int(response.headers["Content-Length"])
    body = response.raw.read(1 << 20)
    s3.kill()
    try:
        while chunk := response.raw.read(1 << 20):
            body += chunk
    except Exception:  # noqa: BLE001 - a cut transfer may surface as a protocol error
        pass
    assert len(body) < length, "the archive looked complete although its source died"
    from support.metrics import wait_until
    wait_until(lambda: "aborted=" in server.log_text(), timeout=10,
               message="the cut archive is logged as aborted")


# --------------------------------------------------------------------------------------------
# Exports written into the bucket
# --------------------------------------------------------------------------------------------

def test_an_export_into_the_bucket_reads_back_with_aws(s3, sluice, tmp_path):
    config = sluice.config(s3.endpoint)
    expected = tmp_path / "rows.csv"
    done = sluice.run("export", "rows", "--config", str(config), "-o", str(expected))
    assert done.returncode == 0, done.stderr.decode()
    stored = sluice.run("export", "rows", "--config", str(config), "--to-store", "exports/rows.csv")
    assert stored.returncode == 0, stored.stderr.decode()
    assert get_with_aws(s3, "exports/rows.csv") == expected.read_bytes()
    assert expected.stat().st_size > 3 * (8 << 20), "the export should take several parts"
    # A small one goes up in one PutObject; compression by the key's suffix.
    small = sluice.run("export", "rows", "--config", str(config), "--filter", "id.lte=10",
                       "--to-store", "exports/ten.csv.gz")
    assert small.returncode == 0, small.stderr.decode()
    import gzip
    text = gzip.decompress(get_with_aws(s3, "exports/ten.csv.gz")).decode()
    assert text.splitlines()[0] == "id,pad" and len(text.splitlines()) == 11


def test_a_rejected_part_aborts_the_upload_and_leaves_nothing(s3, sluice):
    proxy = FaultProxy(s3.port, deny_part=3)
    config = sluice.config(proxy.endpoint)
    done = sluice.run("export", "rows", "--config", str(config), "--to-store", "exports/cut.csv")
    proxy.close()
    assert done.returncode == 1
    assert "AccessDenied" in done.stderr.decode(), done.stderr.decode()
    aborts = [r for r in proxy.requests if r.method == "DELETE" and "uploadId=" in r.target]
    assert len(aborts) == 1, [(r.method, r.target) for r in proxy.requests]
    assert s3.object_keys("exports/") == []


def test_the_endpoint_killed_mid_upload_leaves_no_object(s3, sluice):
    proxy = FaultProxy(s3.port, on_part=lambda number: number == 2 and s3.kill())
    config = sluice.config(proxy.endpoint, storage_extra="max_attempts = 2")
    done = sluice.run("export", "rows", "--config", str(config), "--to-store", "exports/dead.csv")
    proxy.close()
    assert done.returncode == 1
    assert "cannot connect" in done.stderr.decode() or "connection lost" in done.stderr.decode(), \
        done.stderr.decode()
    s3.start()  # the same data folder
    assert s3.object_keys("exports/") == []


# --------------------------------------------------------------------------------------------
# Retries and cut answers
# --------------------------------------------------------------------------------------------

def test_slow_down_answers_are_retried(s3, sluice, tmp_path):
    put_with_aws(s3, tmp_path, "slow/a.txt", b"a" * 1000)
    proxy = FaultProxy(s3.port)
    server = sluice.serve(sluice.config(proxy.endpoint))
    proxy.slow_down = 2
    created = create_archive(server, {"name": "slow", "prefix": "slow/"})
    assert proxy.slowed == 2
    assert len(proxy.requests) >= 3, "the slowed requests were not asked again"
    m = server.metrics()
    assert m['sluice_s3_requests_total{outcome="5xx"}'] == 2
    assert m["sluice_s3_retries_total"] == 2
    assert m['sluice_s3_requests_total{outcome="2xx"}'] >= 2  # the start's listing, then these
    zipped = requests.get(f"{server.url}/v1/archives/{created['id']}.zip", timeout=60)
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert archive.read("a.txt") == b"a" * 1000
    proxy.close()


def test_a_download_cut_once_is_resumed_and_a_download_cut_always_is_aborted(s3, sluice,
                                                                             tmp_path):
    data = os.urandom(6 << 20)
    put_with_aws(s3, tmp_path, "cut/blob.bin", data)
    proxy = FaultProxy(s3.port)
    server = sluice.serve(sluice.config(proxy.endpoint, storage_extra="max_attempts = 3"))
    created = create_archive(server, {"name": "cut", "prefix": "cut/", "method": "store"})
    url = f"{server.url}/v1/archives/{created['id']}.zip"
    proxy.cut_get_after, proxy.cuts_left = 1 << 20, 1
    once = requests.get(url, timeout=60)
    with zipfile.ZipFile(io.BytesIO(once.content)) as archive:
        assert archive.read("blob.bin") == data  # asked again from where it broke
    # Cut before the first body byte, every time: no progress, so the attempts run out and the
    # download fails: an error status before the body, or a body short of Content-Length. (A
    # body that breaks after progress is resumed as often as it takes.)
    proxy.cut_get_after, proxy.cuts_left = 50, 1000
    response = requests.get(url, stream=True, timeout=60)
    body = b""
    try:
        while chunk := response.raw.read(1 << 16):
            body += chunk
    except Exception:  # noqa: BLE001 - a cut transfer may surface as a protocol error
        pass
    if response.status_code == 200:
        assert len(body) < int(response.headers["Content-Length"]), \
            "a download whose source broke for good looked complete"
    else:
        assert response.status_code >= 500, response.status_code
    assert proxy.cuts_left <= 1000 - 3, "the cut GET was not asked again (max_attempts = 3)"
    proxy.close()


# --------------------------------------------------------------------------------------------
# Presigned URLs and TLS
# --------------------------------------------------------------------------------------------

def test_presign_prints_an_s3_url_that_serves_the_object(s3, sluice, tmp_path):
    data = os.urandom(100_000)
    put_with_aws(s3, tmp_path, "docs/report 1.pdf", data)
    config = sluice.config(s3.endpoint)
    printed = sluice.run("presign", "docs/report 1.pdf", "--expires", "15m", "--config",
                         str(config))
    assert printed.returncode == 0, printed.stderr.decode()
    url = printed.stdout.decode().strip()
    assert url.startswith(f"{s3.endpoint}/{BUCKET}/docs/report%201.pdf?")
    assert "X-Amz-Expires=900" in url and "X-Amz-Signature=" in url
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-Disposition"] == 'attachment; filename="report 1.pdf"'
    # s3rver does not check presigned signatures: botocore does (test_s3_signatures.py).


def test_https_endpoint_is_verified_against_the_configured_ca(tmp_path, sluice):
    ca, cert, key = make_tls_files(tmp_path / "tls")
    s3 = S3rver(tmp_path / "s3rver-tls", cert=cert, key=key).start()
    try:
        trusted = sluice.config(s3.endpoint, storage_extra=f'ca_file = "{ca}"', name="trusted")
        done = sluice.run("check-config", str(trusted))
        assert done.returncode == 0, done.stderr.decode()
        untrusted = sluice.config(s3.endpoint, name="untrusted")
        refused = sluice.run("check-config", str(untrusted), timeout=60)
        assert refused.returncode == 1
        assert "TLS handshake with 127.0.0.1 failed" in refused.stderr.decode(), \
            refused.stderr.decode()
        assert "certificate verify failed" in refused.stderr.decode()
    finally:
        s3.stop()


# --------------------------------------------------------------------------------------------
# sluice store: files in and out, AWS's client on the other side
# --------------------------------------------------------------------------------------------

def run_measured(args: list[str], env: dict[str, str]) -> tuple[int, bytes, int]:
    """(exit code, stderr, peak RSS in KiB) of one process. The peak is the new program's own
    high-water mark (VmHWM, reset by exec), sampled until it exits: wait4's ru_maxrss would
    also count the pages the child shared with this test process before exec."""
    import threading
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()))
    reader.start()
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            if os.readlink(f"/proc/{process.pid}/exe") == args[0]:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.005)
    reader.join()
    return process.returncode, b"".join(stderr), peak


@pytest.mark.release_rss
def test_store_put_and_get_round_trip_with_aws_in_two_parts_of_memory(s3, sluice, tmp_path):
    from support.server import sluice_bin
    binary = os.path.realpath(sluice_bin())
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(120 << 20))  # 15 parts of 8 MiB
    config = sluice.config(s3.endpoint)
    code, err, rss_kib = run_measured(
        [binary, "store", "put", str(data), "in/data.bin", "--config", str(config)], s3_env())
    assert code == 0, err.decode()
    # Two 8 MiB parts, the 4 MiB file buffer and the binary: far below the 120 MiB uploaded.
    if not SANITIZED:  # the sanitizer build's RSS is ASan's (shadow memory, quarantine)
        assert 0 < rss_kib < 64 * 1024, f"sluice store put peaked at {rss_kib} KiB"
    assert get_with_aws(s3, "in/data.bin") == data.read_bytes()
    # The other way: a multipart object of AWS's client, read by Sluice.
    s3.aws("s3", "cp", str(data), f"s3://{BUCKET}/out/data.bin")
    back = tmp_path / "back.bin"
    code, err, rss_kib = run_measured(
        [binary, "store", "get", "out/data.bin", str(back), "--config", str(config)],
        s3_env())
    assert code == 0, err.decode()
    assert back.read_bytes() == data.read_bytes()
    if not SANITIZED:
        assert 0 < rss_kib < 64 * 1024, f"sluice store get peaked at {rss_kib} KiB"
    listed = sluice.run("store", "ls", "--config", str(config))
    assert listed.stdout.decode().splitlines() == [f"{120 << 20}\tin/data.bin",
                                                   f"{120 << 20}\tout/data.bin"]
    assert sluice.run("store", "rm", "in/data.bin", "--config", str(config)).returncode == 0
    again = sluice.run("store", "rm", "in/data.bin", "--config", str(config))
    assert again.returncode == 1 and "no object in/data.bin" in again.stderr.decode()
    assert s3.object_keys() == ["out/data.bin"]
    missing = sluice.run("store", "get", "nope.bin", str(tmp_path / "nope"), "--config",
                         str(config))
    assert missing.returncode == 1 and "no object nope.bin" in missing.stderr.decode()
    assert not (tmp_path / "nope").exists() and not (tmp_path / "nope.partial").exists()
