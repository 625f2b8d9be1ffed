"""A real S3 endpoint for the tests: s3rver 3.7.1 (npm, tests/s3/package.json, installed by
`npm ci --prefix tests/s3`), AWS's own client against it (`aws`, Debian's awscli), and a fault
proxy that stands between Sluice and the endpoint to inject `SlowDown`, cut answers short and
record the requests Sluice signs.

s3rver's credentials are fixed: access key id and secret "S3RVER". It checks signatures, but
it accepted a header-signed request with the right key id and a wrong secret, so signatures are
also recomputed with botocore (tests/s3/test_s3_signatures.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
S3RVER = ROOT / "tests" / "s3" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
KEY_ID = "S3RVER"
SECRET = "S3RVER"
BUCKET = "sluice-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the endpoint exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


class S3rver:
    """One s3rver process with the bucket BUCKET, its data in `directory`. TLS when `cert` and
    `key` (PEM paths) are given. stop() and start() keep the data (a restart)."""

    def __init__(self, directory: Path, cert: Path | None = None, key: Path | None = None):
        if not S3RVER.exists():
            raise RuntimeError(f"{S3RVER} is missing: run npm ci --prefix tests/s3")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = cert is not None
        self.cert, self.key = cert, key
        self.process: subprocess.Popen | None = None
        self.log = directory.parent / f"s3rver-{self.port}.log"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "S3rver":
        # s3rver's continuation tokens use DES, which Node 20's OpenSSL 3 only has in its
        # legacy provider: without it every truncated listing answers 500.
        args = ["node", "--openssl-legacy-provider", str(S3RVER), "-d", str(self.directory), "-a", "127.0.0.1",
                "-p", str(self.port), "--configure-bucket", BUCKET, "--silent"]
        if self.tls:
            args += ["--cert", str(self.cert), "--key", str(self.key)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, process=self.process)
        return self

    def kill(self):
        """SIGKILL: the endpoint dies mid-whatever, as a crashed server would."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def aws(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """`aws s3 ...` / `aws s3api ...` against this endpoint."""
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        env.pop("AWS_SESSION_TOKEN", None)
        extra = ["--no-verify-ssl"] if self.tls else []
        # Debian's awscli (scripts/install-deps.sh), not whichever `aws` comes first on PATH.
        aws = "/usr/bin/aws" if Path("/usr/bin/aws").exists() else "aws"
        return subprocess.run([aws, "--endpoint-url", self.endpoint, *extra, *args], env=env,
                              capture_output=True, check=check, timeout=300, **kwargs)

    def object_keys(self, prefix: str = "") -> list[str]:
        listing = self.aws("s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", prefix,
                           "--output", "json", "--query", "Contents[].Key").stdout
        import json
        return json.loads(listing) or []


def s3_env(**overrides: str) -> dict[str, str]:
    """The environment of a Sluice process that uses s3rver's credentials."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(overrides)
    return env


def storage_config(endpoint: str, prefix: str = "", extra: str = "") -> str:
    lines = ["[storage]", 'kind = "s3"', f'endpoint = "{endpoint}"', f'bucket = "{BUCKET}"',
             'region = "us-east-1"']
    if prefix:
        lines.append(f'prefix = "{prefix}"')
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


@dataclass
class Recorded:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class FaultProxy:
    """A TCP proxy from Sluice to the endpoint that handles one request per connection (it asks
    the endpoint to close after each answer), so each request can be judged on its own:

    - `slow_down`: the next N requests get S3's 503 SlowDown instead of reaching the endpoint;
    - `cut_get_after`: GET answers are cut (connection reset) after this many bytes, while
      `cuts_left` > 0;
    - `deny_part`: UploadPart number N is answered 403 AccessDenied;
    - `on_part(number)`: called before an UploadPart goes on (a test kills the endpoint there);
    - `requests`: every request as Sluice sent it (method, target, headers, body).
    """

    upstream_port: int
    port: int = field(default_factory=free_port)
    slow_down: int = 0
    cut_get_after: int | None = None
    cuts_left: int = 1 << 30
    deny_part: int | None = None
    on_part: object = None
    requests: list[Recorded] = field(default_factory=list)
    slowed: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self._server.close()

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket):
        try:
            head, body = read_request(client)
            if head is None:
                return
            method, target, headers = head
            with self._lock:
                self.requests.append(Recorded(method, target, headers, body))
                slow = self.slow_down > 0
                if slow:
                    self.slow_down -= 1
                    self.slowed += 1
                cut = None
                if method == "GET" and self.cut_get_after is not None and self.cuts_left > 0:
                    cut = self.cut_get_after
                    self.cuts_left -= 1
            part = part_number(method, target)
            if slow:
                send_error(client, 503, "Slow Down", "SlowDown", "Please reduce your request rate.")
                return
            if part is not None and part == self.deny_part:
                send_error(client, 403, "Forbidden", "AccessDenied", "Access Denied")
                return
            if part is not None and callable(self.on_part):
                self.on_part(part)
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            lines = [f"{method} {target} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in headers if k.lower() != "connection"]
            lines.append("Connection: close")
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            sent = 0
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                if cut is not None and sent + len(chunk) > cut:
                    client.sendall(chunk[:max(cut - sent, 0)])
                    reset(client)
                    upstream.close()
                    return
                client.sendall(chunk)
                sent += len(chunk)
            upstream.close()
        except OSError:
            pass
        finally:
            try:
                client.close()
            except OSError:
                pass


def part_number(method: str, target: str) -> int | None:
    """The part number of an UploadPart request, else None."""
    from urllib.parse import parse_qs, urlsplit
    query = parse_qs(urlsplit(target).query)
    if method != "PUT" or "partNumber" not in query:
        return None
    return int(query["partNumber"][0])


def send_error(client: socket.socket, status: int, reason: str, code: str, message: str):
    reply = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
             f"<Message>{message}</Message></Error>").encode()
    client.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                   f"Content-Length: {len(reply)}\r\nConnection: close\r\n\r\n".encode() + reply)


def reset(sock: socket.socket):
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_request(sock: socket.socket):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return (method, target, headers), rest


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 and localhost signed by it: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=Sluice test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def have_tools() -> str | None:
    """What is missing to run the S3 tests, or None."""
    if not S3RVER.exists():
        return f"{S3RVER} (npm ci --prefix tests/s3)"
    for tool in ("node", "aws", "openssl"):
        if shutil.which(tool) is None:
            return tool
    return None
