"""Flow: clients that leave stop all reads at once; a stalled client stalls the reads."""

from __future__ import annotations

import random
import socket

import requests

from support.archives import create_archive
from support.http import raw_connect
from support.metrics import assert_steady, read_chars, wait_until, wait_until_steady
from support.server import SluiceServer


def start_download(server: SluiceServer, target: str, rcvbuf: int = 32768) -> socket.socket:
    sock = raw_connect(server.port, rcvbuf=rcvbuf, timeout=30)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def album(store, name: str, count: int, size: int) -> str:
    rng = random.Random(name)
    for i in range(count):
        store.put(f"flow/{name}/IMG_{i:03d}.jpg", rng.randbytes(size))
    return f"flow/{name}/"


def test_clients_that_leave_early_leave_no_open_files_and_no_busy_reads(idle, store):
    prefix = album(store, "leave", 8, 3_000_000)
    stored = create_archive(idle, {"name": "leave", "prefix": prefix, "method": "store"})
    deflated = create_archive(idle, {"name": "leave", "prefix": prefix, "method": "deflate"})
    before = idle.metrics()["sluice_archives_aborted_total"]
    clients = []
    for i in range(20):
        sock = start_download(idle, (stored if i % 2 else deflated)["url"])
        sock.recv(10_000 * (i + 1))
        clients.append(sock)
    wait_until(lambda: idle.metrics()["sluice_active_archives"] == 20, 10, "20 downloads")
    for sock in clients:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST: the client is gone at once

    def settled() -> bool:
        m = idle.metrics()
        return (m["sluice_active_archives"] == 0 and m["sluice_open_object_files"] == 0 and
                m["sluice_busy_object_reads"] == 0)

    wait_until(settled, 15, "no active archives, no open files, no busy reads")
    assert idle.metrics()["sluice_archives_aborted_total"] - before == 20
    # And the server still serves complete archives.
    again = requests.get(idle.url + stored["url"], timeout=60)
    assert len(again.content) == stored["size"]


def test_a_stalled_client_stalls_the_reads(idle, store):
    prefix = album(store, "stall", 10, 4_000_000)
    created = create_archive(idle, {"name": "stall", "prefix": prefix, "method": "store"})
    assert len(requests.get(idle.url + created["url"], timeout=60).content) == created["size"]
    # The CRCs are cached now: the server reads each byte once, when the client wants it.
    before = read_chars(idle.pid)
    sock = start_download(idle, created["url"])
    # The client reads nothing: the socket buffers and the per-download budget fill, then the
    # server must stop reading (waited for, not assumed after a fixed time).
    reads, _ = wait_until_steady(lambda: read_chars(idle.pid), quiet=0.5, timeout=10,
                                 message="the server's reads for a stalled client",
                                 tolerance=64 * 1024)
    assert reads - before < created["size"] // 2, (
        f"the server read {reads - before} of {created['size']} bytes ahead of a stalled client")
    # ... and it stays stopped while the client stalls.
    assert_steady(lambda: read_chars(idle.pid), 1.0, "the server's reads for a stalled client",
                  tolerance=1_000_000)
    total = 0
    sock.settimeout(30)
    while chunk := sock.recv(1 << 20):
        total += len(chunk)
        if total > created["size"]:
            break
    sock.close()
    assert total >= created["size"]
