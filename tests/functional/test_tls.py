"""HTTPS ([server.tls]) and the operations listener ([server] ops_listen), with real clients.

A CA and server certificates (SAN 127.0.0.1 and localhost) are made with the `openssl` CLI;
curl (--cacert), Python's ssl/http.client and the websockets package talk to a `sluice serve`
on the session demo's database and object store. Every download over TLS is compared with the
same download from the plain-HTTP demo server.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http.client
import io
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from support.demo import config_for
from support.metrics import assert_steady, metrics, wait_for_metric, wait_until
from support.server import SluiceServer, run_sluice


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------

def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()


@dataclass
class Pki:
    folder: Path
    ca: Path

    def leaf(self, name: str, serial: int) -> tuple[Path, Path]:
        """(certificate, key) of a server certificate signed by the CA; CN = name."""
        ext = self.folder / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                       "extendedKeyUsage=serverAuth\n", "utf-8")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                cwd=self.folder)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", str(serial), "-days", "2", "-extfile", ext.name,
                "-out", f"{name}.pem", cwd=self.folder)
        return self.folder / f"{name}.pem", self.folder / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Sluice Test CA", cwd=folder)
    return Pki(folder, folder / "ca.pem")


OPS_LINE = re.compile(r"operations \(/healthz, /metrics\) on (http://\S+)")


@dataclass
class TlsServer:
    server: SluiceServer
    base: str       # https://127.0.0.1:PORT
    ops: str        # http://127.0.0.1:PORT of the operations listener
    cert: Path      # the files the config names (replaced for the reload test)
    key: Path

    @property
    def port(self) -> int:
        return self.server.port

    def metrics(self) -> dict[str, float]:
        return metrics(self.ops)


def ops_url(server: SluiceServer) -> str:
    for line in server.stdout_lines:
        match = OPS_LINE.search(line)
        if match:
            return match.group(1)
    raise AssertionError(f"no operations line in {server.stdout_lines}")


@pytest.fixture
def start_tls(start_server, pki, tmp_path):
    def start(extra: str = "", name: str = "tls") -> TlsServer:
        cert, key = pki.leaf(f"{name}-leaf", 1001)
        # The config names copies, so that a test can replace them and send SIGHUP.
        served_cert, served_key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        shutil.copy(cert, served_cert)
        shutil.copy(key, served_key)
        section = (f'ops_listen = "127.0.0.1:0"\n{extra}\n[server.tls]\n'
                   f'certificate = "{served_cert}"\nkey = "{served_key}"\n')
        srv = start_server(server_section=section, name=name)
        assert any("listening on https://" in line for line in srv.stdout_lines)
        return TlsServer(srv, f"https://127.0.0.1:{srv.port}", ops_url(srv), served_cert,
                         served_key)

    return start


def client_context(pki: Pki, **versions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    for name, value in versions.items():
        setattr(context, name, value)
    return context


def curl(url: str, out: Path, *extra: str) -> tuple[int, str, str]:
    """(exit code, header dump (with trailers), stderr) of a curl download into `out`."""
    dump = out.with_suffix(out.suffix + ".headers")
    result = subprocess.run(["curl", "-sS", "-D", str(dump), "-o", str(out), *extra, url],
                            capture_output=True, timeout=300)
    headers = dump.read_text("latin-1") if dump.exists() else ""
    return result.returncode, headers, result.stderr.decode("utf-8", "replace")


def plain_bytes(demo, target: str) -> bytes:
    response = requests.get(f"{demo.url}{target}", timeout=300)
    assert response.status_code == 200, response.text[:300]
    return response.content


def peer_serial(port: int, pki: Pki) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context(pki).wrap_socket(raw, server_hostname="localhost") as tls:
            return int(tls.getpeercert()["serialNumber"], 16)


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------

def test_exports_over_tls_match_plain_http(start_tls, pki, demo, tmp_path):
    srv = start_tls()
    target = "/v1/exports/orders.csv?limit=200000"
    code, headers, err = curl(f"{srv.base}{target}", tmp_path / "orders.csv", "--cacert",
                              str(pki.ca), "-H", "TE: trailers")
    assert code == 0, err
    body = (tmp_path / "orders.csv").read_bytes()
    assert body == plain_bytes(demo, target)
    assert body.count(b"\r\n") >= 200_001
    # The chunked stream's trailers came through TLS too, and match what was received.
    sha = re.search(r"(?im)^sluice-sha256:\s*([0-9a-f]{64})", headers)
    assert sha, headers
    assert sha.group(1) == hashlib.sha256(body).hexdigest()

    # gzip: the same rows, compressed.
    code, _, err = curl(f"{srv.base}/v1/exports/orders.csv.gz?limit=200000",
                        tmp_path / "orders.csv.gz", "--cacert", str(pki.ca))
    assert code == 0, err
    assert gzip.decompress((tmp_path / "orders.csv.gz").read_bytes()) == body

    # HTTP/1.0: the body ends with the connection; a whole one ends with close_notify, which
    # curl requires to call it complete.
    code, _, err = curl(f"{srv.base}/v1/exports/orders.csv?limit=20000", tmp_path / "h10.csv",
                        "--cacert", str(pki.ca), "--http1.0")
    assert code == 0, err
    assert (tmp_path / "h10.csv").read_bytes() == plain_bytes(demo, "/v1/exports/orders.csv?limit=20000")


def test_archive_and_ranges_over_tls(start_tls, pki, demo, tmp_path):
    srv = start_tls()
    objects = demo.db.parent / "objects" / "tls-test"
    objects.mkdir(parents=True, exist_ok=True)
    contents = {f"part-{i}.bin": bytes((i * 7 + j) % 251 for j in range(300_000 + i))
                for i in range(3)}
    for name, data in contents.items():
        (objects / name).write_bytes(data)
    created = requests.post(f"{srv.base}/v1/archives", verify=str(pki.ca), timeout=60,
                            data=json.dumps({"name": "tls", "prefix": "tls-test/",
                                             "method": "store"}))
    assert created.status_code == 201, created.text
    url = f"{srv.base}{created.json()['url']}"
    code, _, err = curl(url, tmp_path / "tls.zip", "--cacert", str(pki.ca))
    assert code == 0, err
    archive = (tmp_path / "tls.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        assert zipped.testzip() is None
        assert {name: zipped.read(name) for name in zipped.namelist()} == contents
    unzip = subprocess.run(["unzip", "-t", str(tmp_path / "tls.zip")], capture_output=True)
    assert unzip.returncode == 0, unzip.stdout

    # A Range inside the stored data (read and written in pieces over TLS, no sendfile).
    first, last = 100_000, 400_123
    code, headers, err = curl(url, tmp_path / "range.bin", "--cacert", str(pki.ca),
                              "-H", f"Range: bytes={first}-{last}")
    assert code == 0, err
    assert headers.startswith("HTTP/1.1 206"), headers
    assert (tmp_path / "range.bin").read_bytes() == archive[first:last + 1]


def test_job_events_websocket_sse_and_result_range_over_tls(start_tls, pki, tmp_path):
    srv = start_tls()
    submitted = requests.post(f"{srv.base}/v1/jobs", verify=str(pki.ca), timeout=60,
                              data=json.dumps({"dataset": "orders", "format": "csv",
                                               "limit": 50_000}),
                              headers={"Content-Type": "application/json"})
    assert submitted.status_code in (200, 201, 202), submitted.text
    job_id = submitted.json()["id"]

    # Server-Sent Events over TLS: the stream ends after the final event.
    code, _, err = curl(f"{srv.base}/v1/jobs/{job_id}/events", tmp_path / "events.txt",
                        "--cacert", str(pki.ca), "-N", "--max-time", "60")
    assert code == 0, err
    sse = (tmp_path / "events.txt").read_text("utf-8")
    assert "event: queued" in sse and "event: succeeded" in sse, sse

    # The same events through a WebSocket over TLS (wss://).
    async def collect() -> list[dict]:
        import websockets  # Debian's python3-websockets
        messages = []
        async with websockets.connect(f"wss://localhost:{srv.port}/v1/jobs/{job_id}/events",
                                      ssl=client_context(pki), open_timeout=30,
                                      close_timeout=30) as ws:
            while True:
                try:
                    messages.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
                except websockets.ConnectionClosedOK:
                    break
        return messages

    events = asyncio.run(collect())
    assert [e["event"] for e in events][0] == "queued", events
    assert events[-1]["event"] == "succeeded", events

    # The result (a stored file): whole, then a Range of it.
    result_url = f"{srv.base}/v1/jobs/{job_id}/result"
    code, _, err = curl(result_url, tmp_path / "result.csv", "--cacert", str(pki.ca))
    assert code == 0, err
    whole = (tmp_path / "result.csv").read_bytes()
    assert whole.count(b"\r\n") >= 50_001
    assert hashlib.sha256(whole).hexdigest() == events[-1]["data"]["sha256"]
    code, headers, err = curl(result_url, tmp_path / "result.part", "--cacert", str(pki.ca),
                              "-H", "Range: bytes=1000-")
    assert code == 0, err
    assert headers.startswith("HTTP/1.1 206"), headers
    assert (tmp_path / "result.part").read_bytes() == whole[1000:]


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------

def test_untrusted_plain_http_and_old_tls_are_refused_cleanly(start_tls, pki, tmp_path):
    srv = start_tls()
    # Without the CA, curl refuses the certificate (60: peer certificate cannot be verified).
    code, _, err = curl(f"{srv.base}/healthz", tmp_path / "untrusted", "--max-time", "10")
    assert code == 60, err

    # Plain HTTP to the TLS port: an error at once, one log line, and the server goes on.
    started = time.monotonic()
    code, _, err = curl(f"http://127.0.0.1:{srv.port}/healthz", tmp_path / "plain",
                        "--max-time", "10")
    assert code != 0 and time.monotonic() - started < 5, (code, err)
    wait_until(lambda: "failed: plain HTTP sent to the HTTPS port" in srv.server.log_text(), 5,
               "the handshake failure's log line")
    code, _, err = curl(f"{srv.base}/healthz", tmp_path / "after", "--cacert", str(pki.ca))
    assert code == 0 and (tmp_path / "after").read_text() == '{"status":"ok"}', err

    # TLS 1.1 (and older) is refused by the server (the client allows it at any security level).
    old = client_context(pki, minimum_version=ssl.TLSVersion.TLSv1,
                         maximum_version=ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(raw, server_hostname="localhost")
    # TLS 1.2 is fine, and ALPN says http/1.1.
    tls12 = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    tls12.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        with tls12.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.2"
            assert tls.selected_alpn_protocol() == "http/1.1"
    srv.server.assert_alive()


def test_a_silent_client_costs_at_most_the_read_timeout(start_tls):
    srv = start_tls(extra="read_timeout_ms = 800")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        started = time.monotonic()
        assert raw.recv(100) == b""  # the server closed: no handshake came
        assert 0.5 < time.monotonic() - started < 5
    wait_until(lambda: "timed out" in srv.server.log_text(), 5, "the timeout's log line")


def test_check_config_names_the_bad_tls_key(pki, tmp_path):
    cert, key = pki.leaf("check", 7)
    other_cert, other_key = pki.leaf("other", 8)
    base = '[server]\nlisten = "127.0.0.1:0"\n[server.tls]\n'
    cases = {
        "mismatch": (f'certificate = "{cert}"\nkey = "{other_key}"\n', "server.tls.key"),
        "no-cert": (f'certificate = "{tmp_path / "missing.pem"}"\nkey = "{key}"\n',
                    "server.tls.certificate"),
        "not-pem": (f'certificate = "{key}"\nkey = "{key}"\n', "server.tls.certificate"),
    }
    for name, (section, named) in cases.items():
        config = tmp_path / f"{name}.toml"
        config.write_text(base + section, "utf-8")
        result = run_sluice("check-config", str(config))
        assert result.returncode != 0, name
        assert named in result.stderr.decode(), (name, result.stderr)
    good = tmp_path / "good.toml"
    good.write_text(base + f'certificate = "{other_cert}"\nkey = "{other_key}"\n', "utf-8")
    result = run_sluice("check-config", str(good))
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# Reload, departures
# --------------------------------------------------------------------------------------------

def test_sighup_reloads_the_certificate_for_new_connections(start_tls, pki):
    srv = start_tls(name="reload")
    assert peer_serial(srv.port, pki) == 1001
    # A keep-alive connection made before the reload keeps working afterwards.
    before = http.client.HTTPSConnection("localhost", srv.port, context=client_context(pki),
                                         timeout=10)
    before.request("GET", "/healthz")
    assert before.getresponse().read() == b'{"status":"ok"}'

    new_cert, new_key = pki.leaf("reload-next", 2002)
    shutil.copy(new_cert, srv.cert)
    shutil.copy(new_key, srv.key)
    srv.server.signal(signal.SIGHUP)
    wait_until(lambda: "TLS certificate reloaded" in srv.server.log_text(), 5, "reload line")
    assert peer_serial(srv.port, pki) == 2002
    before.request("GET", "/healthz")
    assert before.getresponse().read() == b'{"status":"ok"}'
    before.close()

    # A bad file on reload: logged, and the previous certificate stays.
    srv.key.write_text("not a key\n")
    srv.server.signal(signal.SIGHUP)
    wait_until(lambda: "TLS reload failed" in srv.server.log_text(), 5, "reload failure line")
    assert "server.tls.key" in srv.server.log_text()
    assert peer_serial(srv.port, pki) == 2002
    srv.server.assert_alive()


def test_a_client_that_leaves_mid_export_over_tls_stops_the_query(start_tls, pki):
    srv = start_tls(name="leaves")
    before = srv.metrics()
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    tls = client_context(pki).wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"GET /v1/exports/orders_big.csv.zst HTTP/1.1\r\nHost: localhost\r\n\r\n")
    received = 0
    while received < 300_000:
        data = tls.recv(65536)
        assert data
        received += len(data)
    tls.close()  # TCP close (FIN) without close_notify, as a killed client
    wait_for_metric(srv.ops, "sluice_active_streams", lambda v: v == 0, timeout=5)
    after = srv.metrics()
    assert after["sluice_streams_aborted_total"] == before["sluice_streams_aborted_total"] + 1
    assert_steady(lambda: metrics(srv.ops)["sluice_rows_read_total"], 0.3, "rows_read_total")
    assert metrics(srv.ops)["sluice_rows_read_total"] < 10_000_000


def test_a_client_that_sends_close_notify_mid_export_stops_the_query(start_tls, pki):
    srv = start_tls(name="notify")
    before = srv.metrics()
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    tls = client_context(pki).wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"GET /v1/exports/orders_big.csv.zst HTTP/1.1\r\nHost: localhost\r\n\r\n")
    received = 0
    while received < 300_000:
        received += len(tls.recv(65536))
    # close_notify (unread data pending: unwrap() would wait; write the alert and close).
    tls.setblocking(False)
    try:
        tls.unwrap()
    except (ssl.SSLError, BlockingIOError, OSError):
        pass
    tls.shutdown(socket.SHUT_WR)  # then the FIN (not a reset: nothing is discarded)
    wait_for_metric(srv.ops, "sluice_active_streams", lambda v: v == 0, timeout=5)
    assert srv.metrics()["sluice_streams_aborted_total"] == \
        before["sluice_streams_aborted_total"] + 1
    tls.close()


# --------------------------------------------------------------------------------------------
# The operations listener
# --------------------------------------------------------------------------------------------

def test_ops_listener_serves_metrics_and_the_main_one_no_longer(start_sluice, demo):
    srv = start_sluice(config_for(demo, 'ops_listen = "127.0.0.1:0"\n'), name="ops",
                       listen=None)
    ops = ops_url(srv)
    assert requests.get(f"{srv.url}/metrics", timeout=10).status_code == 404
    assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200
    page = requests.get(f"{ops}/metrics", timeout=10)
    assert page.status_code == 200 and "sluice_requests_total" in page.text, page.text[:300]
    assert requests.get(f"{ops}/healthz", timeout=10).json() == {"status": "ok"}
    # Only the operations routes there.
    assert requests.get(f"{ops}/v1/datasets", timeout=10).status_code == 404
    assert requests.get(f"{srv.url}/v1/datasets", timeout=10).status_code == 200


def test_an_idle_keep_alive_tls_connection_is_closed_after_idle_timeout(start_tls, pki):
    srv = start_tls(extra="idle_timeout_ms = 600", name="idle")
    connection = http.client.HTTPSConnection("localhost", srv.port, context=client_context(pki),
                                             timeout=10)
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert response.read() == b'{"status":"ok"}'
    assert response.getheader("Connection") is None  # kept alive
    started = time.monotonic()
    # The server ends the idle connection: the TLS socket reads EOF (close_notify or FIN).
    assert connection.sock.recv(100) == b""
    assert 0.4 < time.monotonic() - started < 5
    connection.close()
    # (The one left open is the metrics request's own, on the operations listener.)
    wait_until(lambda: srv.metrics()["sluice_open_connections"] == 1, 5, "connection closed")
