#!/usr/bin/env python3
"""Prints what botocore's S3 client sends for the endpoint shapes of src/s3/s3_endpoint_test.cpp.

For each shape (AWS S3 virtual-hosted and path style in us-east-1 and eu-central-1, MinIO on an
IPv4 and an IPv6 address, MinIO behind TLS on an explicit default port, Cloudflare R2) a real
botocore client is created with endpoint_url, region_name and s3.addressing_style, and three
calls are captured without network: GetObject and ListObjectsV2 (URL, Host, canonical request
and signature of the Authorization header, stopped just before sending) and a presigned
GetObject URL. The C++ test builds the same requests from make_s3_endpoint() and must get the
same URLs and signatures. Run: python3 tests/tools/s3_endpoint_vectors.py

botocore signs with the AWS CRT when awscrt is installed; BOTO_DISABLE_CRT keeps it on its
Python signer, whose debug log shows the canonical request.
"""
import os

os.environ["BOTO_DISABLE_CRT"] = "true"  # before botocore is imported

import logging  # noqa: E402

import botocore  # noqa: E402
import botocore.session  # noqa: E402
from botocore.config import Config  # noqa: E402

from sigv4_vectors import KEY_ID, SECRET, TIME, Steps, fixed_clock  # noqa: E402

BUCKET = "examplebucket"
DOTTED_BUCKET = "example.bucket"
PREFIX = "sluice/"
KEY = "reports/2024/q1 été.csv"
R2_ACCOUNT = "0123456789abcdef0123456789abcdef"

# (title, Sluice's [storage] keys, botocore's endpoint_url, region, addressing_style, bucket)
SHAPES = [
    ("AWS us-east-1, virtual-hosted", 'region = "us-east-1" (no endpoint)',
     "https://s3.us-east-1.amazonaws.com", "us-east-1", "virtual", BUCKET),
    ("AWS us-east-1, path style", 'region = "us-east-1", addressing = "path"',
     "https://s3.us-east-1.amazonaws.com", "us-east-1", "path", BUCKET),
    ("AWS eu-central-1, virtual-hosted",
     'endpoint = "https://s3.eu-central-1.amazonaws.com", region = "eu-central-1"',
     "https://s3.eu-central-1.amazonaws.com", "eu-central-1", "virtual", BUCKET),
    ("AWS eu-central-1, path style (a bucket name with '.')",
     'region = "eu-central-1" (no endpoint)',
     "https://s3.eu-central-1.amazonaws.com", "eu-central-1", "path", DOTTED_BUCKET),
    ("MinIO on 127.0.0.1:9000", 'endpoint = "http://127.0.0.1:9000"',
     "http://127.0.0.1:9000", "us-east-1", "path", BUCKET),
    ("MinIO on [::1]:9000", 'endpoint = "http://[::1]:9000"',
     "http://[::1]:9000", "us-east-1", "path", BUCKET),
    ("MinIO behind TLS on port 443, written out", 'endpoint = "https://minio.example.com:443/"',
     "https://minio.example.com:443/", "us-east-1", "path", BUCKET),
    ("Cloudflare R2", f'endpoint = "https://{R2_ACCOUNT}.r2.cloudflarestorage.com", region = "auto"',
     f"https://{R2_ACCOUNT}.r2.cloudflarestorage.com", "auto", "path", BUCKET),
]


class Sent(Exception):
    """Raised by the before-send hook: the request is captured, nothing goes out."""


def make_client(endpoint_url, region, style):
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint_url, region_name=region,
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4", s3={"addressing_style": style},
                      retries={"max_attempts": 0}))


def capture(client, call):
    """Runs call(client) up to the point of sending; returns (request, signing steps)."""
    sent = {}

    def before_send(request, **_):
        sent["request"] = request
        raise Sent()

    steps = Steps()
    logger = logging.getLogger("botocore.auth")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(steps)
    client.meta.events.register("before-send", before_send)
    try:
        with fixed_clock():
            call(client)
    except Sent:
        pass
    finally:
        client.meta.events.unregister("before-send", before_send)
        logger.removeHandler(steps)
    return sent["request"], steps.seen


def show_sent(title, request, seen):
    print(f"-- {title}")
    print("url:", request.url)
    signed_host = next(line for line in seen["CanonicalRequest"].split("\n")
                       if line.startswith("host:"))
    print(signed_host)
    print("canonical request:")
    print(seen["CanonicalRequest"])
    print("signature:", seen["Signature"])


def show_shape(title, sluice, endpoint_url, region, style, bucket):
    print(f"==== {title}")
    print(f"sluice: {sluice}, bucket = \"{bucket}\", prefix = \"{PREFIX}\"")
    print(f"botocore: endpoint_url={endpoint_url} region={region} addressing_style={style}")
    client = make_client(endpoint_url, region, style)
    request, seen = capture(client, lambda c: c.get_object(Bucket=bucket, Key=PREFIX + KEY))
    show_sent(f"GetObject {PREFIX + KEY}", request, seen)
    request, seen = capture(client, lambda c: c.list_objects_v2(Bucket=bucket, Prefix=PREFIX))
    show_sent(f"ListObjectsV2 prefix={PREFIX}", request, seen)
    steps = Steps()
    logger = logging.getLogger("botocore.auth")
    logger.addHandler(steps)
    try:
        with fixed_clock():
            url = client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": PREFIX + KEY}, ExpiresIn=3600)
    finally:
        logger.removeHandler(steps)
    print("-- presigned GetObject, expires 3600")
    print("url:", url)
    print("signature:", steps.seen["Signature"])
    print()


if __name__ == "__main__":
    print("botocore", botocore.__version__)
    print("time", TIME.isoformat() + "Z")
    print()
    for shape in SHAPES:
        show_shape(*shape)
