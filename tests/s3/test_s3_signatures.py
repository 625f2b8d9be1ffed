"""Sluice's own S3 signatures, recomputed by botocore (the library AWS's CLI is built on) for the
same request, credentials and second — byte for byte. s3rver cannot be the judge: it accepted a
header-signed request with a wrong secret, and presigned URLs with a changed expiry.

The requests are the ones Sluice really sent (recorded by the fault proxy in front of s3rver):
check-config's listing, PUT, GET, HEAD and DELETE, and an export's multipart upload (create,
parts with signed payload hashes, complete). The presigned URL is the one `sluice presign`
printed."""

from __future__ import annotations

import datetime
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from support.botocore_clock import stopped_clock
from support.s3 import KEY_ID, SECRET, FaultProxy, Recorded

CREDENTIALS = Credentials(KEY_ID, SECRET)


def header(request: Recorded, name: str) -> str:
    return next(v for k, v in request.headers if k.lower() == name.lower())


def botocore_authorization(request: Recorded, port: int) -> str:
    """The Authorization header botocore computes for `request` at its own x-amz-date."""
    when = datetime.datetime.strptime(header(request, "x-amz-date"), "%Y%m%dT%H%M%SZ")
    signed = header(request, "Authorization").split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: v for k, v in request.headers
               if k.lower() in signed and k.lower() not in ("host", "x-amz-date")}
    aws = AWSRequest(method=request.method, url=f"http://127.0.0.1:{port}{request.target}",
                     data=request.body, headers=headers)
    with stopped_clock(when):
        botocore.auth.S3SigV4Auth(CREDENTIALS, "s3", "us-east-1").add_auth(aws)
    return aws.headers["Authorization"]


def test_every_request_sluice_signs_is_signed_as_botocore_signs_it(s3, sluice):
    proxy = FaultProxy(s3.port)
    config = sluice.config(proxy.endpoint)
    checked = sluice.run("check-config", str(config))
    assert checked.returncode == 0, checked.stderr.decode()
    stored = sluice.run("export", "rows", "--config", str(config), "--to-store", "exports/a.csv")
    assert stored.returncode == 0, stored.stderr.decode()
    proxy.close()
    seen = {(r.method, tuple(sorted(k for k, _ in parse_qsl(urlsplit(r.target).query,
                                                          keep_blank_values=True))))
            for r in proxy.requests}
    # Every kind of request the store makes was among them.
    for expected in [("GET", ("encoding-type", "list-type", "max-keys", "prefix")),
                     ("PUT", ()), ("GET", ()), ("HEAD", ()), ("DELETE", ()),
                     ("POST", ("uploads",)), ("PUT", ("partNumber", "uploadId")),
                     ("POST", ("uploadId",))]:
        assert expected in seen, (expected, sorted(seen))
    for request in proxy.requests:
        assert header(request, "x-amz-content-sha256") != "UNSIGNED-PAYLOAD", \
            "over plain HTTP the payload is signed"
        assert header(request, "Authorization") == botocore_authorization(request, proxy.port), \
            f"{request.method} {request.target}"


def test_a_presigned_url_is_the_one_botocore_makes(s3, sluice, tmp_path):
    config = sluice.config(s3.endpoint)
    printed = sluice.run("presign", "dir/a file+ü.txt", "--expires", "2h", "--config", str(config))
    assert printed.returncode == 0, printed.stderr.decode()
    url = urlsplit(printed.stdout.decode().strip())
    params = dict(parse_qsl(url.query, keep_blank_values=True))
    when = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    unsigned = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True)
                if not k.startswith("X-Amz-")]
    aws = AWSRequest(method="GET", url=f"{url.scheme}://{url.netloc}{url.path}", params=unsigned)
    with stopped_clock(when):
        botocore.auth.S3SigV4QueryAuth(CREDENTIALS, "s3", "us-east-1", expires=7200).add_auth(aws)
    theirs = dict(parse_qsl(urlsplit(aws.url).query, keep_blank_values=True))
    assert params["X-Amz-Expires"] == "7200"
    assert params["response-content-disposition"].startswith("attachment;")
    assert params["X-Amz-Signature"] == theirs["X-Amz-Signature"]
    assert params == theirs
