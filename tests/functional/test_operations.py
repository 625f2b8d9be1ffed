"""What an operator found (hardening issue): a descriptor limit that let idle connections lock
everyone out, and a demo that kept the generator's memory."""

from __future__ import annotations

import resource
import socket
import time

import pytest
import requests

from support.metrics import metrics, wait_until
from support.server import SANITIZED, SluiceServer, proc_rss_kib, serve, stop_and_check


def _limit_descriptors(soft: int, hard: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return apply


def _open_idle(server: SluiceServer, count: int) -> list[socket.socket]:
    """`count` connections that never send a byte (the kernel completes them: no accept needed)."""
    sockets = []
    for _ in range(count):
        sockets.append(socket.create_connection((server.host, server.port), timeout=10))
    return sockets


def _healthz_in_time(server: SluiceServer, seconds: float) -> requests.Response:
    response = requests.get(f"{server.url}/healthz", timeout=seconds)
    assert response.status_code == 200, response.text
    return response


def _config(path, server_section: str = "") -> str:
    text = f'[server]\nlisten = "127.0.0.1:0"\n{server_section}\n'
    path.write_text(text, "utf-8")
    return text


def test_idle_connections_beyond_the_descriptor_limit_do_not_lock_everyone_out(tmp_path):
    """With 300 descriptors, 400 idle connections used to exhaust them: accept failed and every
    new client, /healthz included, waited for the idle timeout. The server now derives
    max_connections from the limit and closes the connection idle the longest for a new one."""
    config = tmp_path / "sluice.toml"
    _config(config)
    server = serve(config, tmp_path / "stderr.log", preexec_fn=_limit_descriptors(300, 300))
    held: list[socket.socket] = []
    try:
        held = _open_idle(server, 400)
        started = time.monotonic()
        _healthz_in_time(server, 5)
        assert time.monotonic() - started < 5
        assert "max_connections 118 (derived)" in server.log_text(), "(300 - 64) / 2 is logged"
        assert metrics(server.url)["sluice_max_connections"] == 118
        # The oldest idle connections were closed to make room (they read end-of-file), and no
        # more connections than the limit are open.
        wait_until(lambda: metrics(server.url)["sluice_open_connections"] <= 118, 10,
                   "open connections within the limit")
        shed = metrics(server.url)['sluice_connections_shed_total{reason="idle"}']
        assert shed >= 400 - 118, shed
        held[0].settimeout(10)
        assert held[0].recv(1) == b"", "the oldest idle connection was not closed"
        held[-1].settimeout(0.2)
        try:
            assert held[-1].recv(1) != b"", "the newest idle connection was closed"
        except socket.timeout:
            pass  # still open, as it should be
    finally:
        for sock in held:
            sock.close()
        stop_and_check(server)


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(tmp_path):
    config = tmp_path / "sluice.toml"
    _config(config)
    server = serve(config, tmp_path / "stderr.log", preexec_fn=_limit_descriptors(256, 4096))
    try:
        wait_until(lambda: "descriptor limit 4096" in server.log_text(), 10, "the raised limit")
        with open(f"/proc/{server.pid}/limits") as limits:
            line = next(l for l in limits if l.startswith("Max open files"))
        assert line.split()[3:5] == ["4096", "4096"], line
        assert metrics(server.url)["sluice_max_connections"] == (4096 - 64) // 2
    finally:
        stop_and_check(server)


def _server_read_everything(server_port: int, client_port: int) -> bool:
    """The server's end of this connection has nothing unread (/proc/net/tcp rx_queue)."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
            if (local, remote) == (server_port, client_port):
                return int(fields[4].split(":")[1], 16) == 0
    return False


def _healthz_closing(server: SluiceServer) -> bytes:
    """GET /healthz on a connection the server closes after answering (never left idle)."""
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    return answer


def test_slow_request_heads_are_shed_for_new_clients(tmp_path):
    """Connections that trickle a request head in (slowloris) hold a slot until read_timeout:
    at the limit, the one reading the longest is closed for a new client."""
    config = tmp_path / "sluice.toml"
    _config(config, "max_connections = 4\nread_timeout_ms = 60000\n")
    server = serve(config, tmp_path / "stderr.log")
    slow = []
    try:
        for _ in range(4):
            sock = socket.create_connection((server.host, server.port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never ends the head
            slow.append(sock)
            # Once the server has taken these bytes the connection is reading a request.
            wait_until(lambda: _server_read_everything(server.port, sock.getsockname()[1]), 10,
                       "the server reads the partial head")
        started = time.monotonic()
        answer = _healthz_closing(server)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert time.monotonic() - started < 5
        slow[0].settimeout(10)
        assert slow[0].recv(1) == b"", "the connection reading the longest was not closed"
        for sock in slow[1:]:
            assert _server_read_everything(server.port, sock.getsockname()[1]), "closed too"
        counters = metrics(server.url)
        assert counters['sluice_connections_shed_total{reason="slow"}'] == 1, counters
        assert counters['sluice_connections_shed_total{reason="idle"}'] == 0, counters
    finally:
        for sock in slow:
            sock.close()
        stop_and_check(server)


def test_busy_connections_are_never_shed_new_ones_get_503(tmp_path, demo):
    """At the limit with every connection answering a request, the new connection is refused
    (503 too_many_connections, or a reset if its request was already sent) and the running
    downloads go on to the end."""
    from support.demo import config_for
    config = tmp_path / "sluice.toml"
    config.write_text(config_for(demo, "max_connections = 2\n"), "utf-8")
    server = serve(config, tmp_path / "stderr.log")
    downloads = []
    try:
        for _ in range(2):
            sock = socket.create_connection((server.host, server.port), timeout=30)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sock.sendall(b"GET /v1/exports/orders.csv?limit=200000 HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
            assert sock.recv(12) == b"HTTP/1.1 200"
            downloads.append(sock)
        extra = socket.create_connection((server.host, server.port), timeout=10)
        try:
            answer = extra.recv(4096)
        except ConnectionResetError:
            answer = b""
        extra.close()
        if answer:
            assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
            assert b'"too_many_connections"' in answer, answer
        # Both downloads run to their end: chunked bodies with the last chunk.
        for sock in downloads:
            received = bytearray()
            while chunk := sock.recv(1 << 20):
                received += chunk
            assert received.endswith(b"\r\n0\r\n\r\n"), received[-100:]
            assert received.count(b"\n") > 200_000
        # Read once a slot is free (at the limit /metrics is refused like any new connection).
        wait_until(lambda: metrics(server.url)['sluice_connections_shed_total{reason="refused"}']
                   >= 1, 10, "the refusal is counted")
    finally:
        for sock in downloads:
            sock.close()
        stop_and_check(server)


@pytest.mark.release_rss
@pytest.mark.skipif(SANITIZED, reason="ASan keeps freed memory in quarantine: RSS says nothing")
def test_the_demo_gives_the_generators_memory_back(tmp_path):
    """After generating its database the demo server used to stay at ~130 MB (1M rows; ~210 MB
    for 3M) where the same server on the existing data uses ~15 MB: a person checking "flat
    memory" on the demo saw the opposite."""
    folder = tmp_path / "demo"
    args = ["demo", "--dir", str(folder), "--rows", "1000000", "--listen", "127.0.0.1:0"]
    generated = SluiceServer(args, tmp_path / "first.log", startup_timeout=120)
    try:
        after_generation = proc_rss_kib(generated.pid)
    finally:
        stop_and_check(generated)
    reused = SluiceServer(args, tmp_path / "second.log", startup_timeout=60)
    try:
        assert "reusing" in reused.log_text()
        on_existing_data = proc_rss_kib(reused.pid)
    finally:
        stop_and_check(reused)
    assert after_generation < on_existing_data + 16 * 1024, (after_generation, on_existing_data)
