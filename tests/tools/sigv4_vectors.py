#!/usr/bin/env python3
"""Prints botocore's SigV4 results for the extra vectors of src/s3/s3_signing_test.cpp.

botocore (the AWS SDK for Python's core) is an independent implementation of S3's signing:
its canonical request, string to sign and signature for fixed inputs and a fixed clock are what
the C++ signer must reproduce byte for byte. Run: python3 tests/tools/sigv4_vectors.py
(Debian: apt-get install python3-botocore; or pip install botocore).
"""
import datetime
import hashlib
import logging
import sys
from pathlib import Path

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the support package
from support.botocore_clock import stopped_clock  # noqa: E402

TIME = datetime.datetime(2024, 2, 29, 12, 34, 56)  # UTC, naive as botocore's own clock
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//token+with/slash=="


def fixed_clock():
    """botocore's signing clock stopped at TIME."""
    return stopped_clock(TIME)


class Steps(logging.Handler):
    """Collects what botocore's signer logs: CanonicalRequest, StringToSign, Signature."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.seen = {}

    def emit(self, record):
        if isinstance(record.args, tuple) and len(record.args) == 1:
            name = record.msg.split(":")[0]
            self.seen[name] = record.args[0]


def sign(auth, request):
    steps = Steps()
    logger = logging.getLogger("botocore.auth")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(steps)
    try:
        with fixed_clock():
            auth.add_auth(request)
    finally:
        logger.removeHandler(steps)
    return steps.seen


def show(title, request, seen):
    print(f"==== {title}")
    print("-- CanonicalRequest")
    print(seen["CanonicalRequest"])
    print("-- StringToSign")
    print(seen["StringToSign"])
    print("-- Signature")
    print(seen["Signature"])
    print("-- url")
    print(request.url)
    print("-- headers")
    for name, value in request.headers.items():
        print(f"{name}: {value}")
    print()


def put_with_session_token():
    credentials = Credentials(KEY_ID, SECRET, TOKEN)
    key = "photos/été 2013/a+b=c~d (1).jpg"
    body = b"hello, S3"
    url = "https://examplebucket.s3.eu-central-1.amazonaws.com/" + percent_encode(key, safe="/~")
    request = AWSRequest(method="PUT", url=url, data=body,
                         headers={"Content-Type": "image/jpeg",
                                  "x-amz-meta-note": "  two   spaces  here  "})
    seen = sign(botocore.auth.S3SigV4Auth(credentials, "s3", "eu-central-1"), request)
    print("body sha256:", hashlib.sha256(body).hexdigest())
    show(f"S3SigV4Auth PUT /{key}", request, seen)


def list_with_slash_in_query():
    credentials = Credentials(KEY_ID, SECRET)
    url = "https://examplebucket.s3.amazonaws.com/"
    request = AWSRequest(method="GET", url=url, data=b"",
                         params={"list-type": "2", "prefix": "photos/été/", "delimiter": "/"})
    request.url = request.prepare().url  # the params into the URL, as botocore's client does
    request.params = {}
    seen = sign(botocore.auth.S3SigV4Auth(credentials, "s3", "us-east-1"), request)
    show("S3SigV4Auth GET /?list-type=2&prefix=photos/été/&delimiter=/", request, seen)


def put_with_unsigned_payload():
    credentials = Credentials(KEY_ID, SECRET)
    url = "https://examplebucket.s3.amazonaws.com/big/object.bin"
    request = AWSRequest(method="PUT", url=url, data=b"not hashed",
                         headers={"Content-Type": "application/octet-stream"})
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    seen = sign(botocore.auth.S3SigV4Auth(credentials, "s3", "us-east-1"), request)
    show("S3SigV4Auth PUT /big/object.bin, payload_signing_enabled=False", request, seen)


def presigned_get_with_session_token():
    credentials = Credentials(KEY_ID, SECRET, TOKEN)
    key = "reports/Q1 2024/naïve ~résumé+final.pdf"
    url = "http://127.0.0.1:9000/examplebucket/" + percent_encode(key, safe="/~")
    request = AWSRequest(method="GET", url=url,
                         params={"response-content-disposition": 'attachment; filename="r.pdf"'})
    seen = sign(botocore.auth.S3SigV4QueryAuth(credentials, "s3", "us-west-2", expires=3600),
                request)
    show(f"S3SigV4QueryAuth GET /examplebucket/{key} expires 3600", request, seen)


if __name__ == "__main__":
    print("botocore", botocore.__version__)
    print("time", TIME.isoformat() + "Z")
    print()
    put_with_session_token()
    list_with_slash_in_query()
    put_with_unsigned_payload()
    presigned_get_with_session_token()
