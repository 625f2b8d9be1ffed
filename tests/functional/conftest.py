"""Fixtures for the functional tests: the real `sluice` binary, real clients, real sockets.

The session starts one `sluice demo` (2,000,000 generated orders in a temporary folder) and keeps
it running for every test that only needs the demo datasets. Tests that need their own settings
(shutdown grace, a fresh process whose RSS and counters are theirs alone) start a `sluice serve`
with a config written next to the test, pointing at the session demo's orders.db.

The expected data always comes straight from orders.db through Python's sqlite3 module.

Run with Debian's Python (it has pytest and requests):

    /usr/bin/python3 -m pytest -q tests/functional

The binary is $SLUICE_BIN, by default build/release/sluice (`cmake --preset release &&
ninja -C build/release sluice`). Each server's stderr is kept in the test's tmp folder
(pytest prints the path on failures).
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SLUICE_BIN = Path(os.environ.get("SLUICE_BIN", REPO / "build" / "release" / "sluice"))

STARTUP_TIMEOUT_S = 180.0  # the session demo generates 2,000,000 rows first
STOP_TIMEOUT_S = 15.0

# The demo's orders columns, in order, and how a value of each is normalised for comparison.
ORDERS_COLUMNS = ["id", "created_at", "email", "country", "status", "amount", "quantity", "note"]
ORDERS_QUERY = (
    "SELECT id, created_at, email, country, status, amount, quantity, note FROM orders"
)
INT_COLUMNS = {"id", "quantity"}
NUMBER_COLUMNS = {"amount"}


# --------------------------------------------------------------------------------------------
# The binary
# --------------------------------------------------------------------------------------------

def sluice_bin() -> str:
    assert SLUICE_BIN.is_file() and os.access(SLUICE_BIN, os.X_OK), (
        f"sluice binary not found at {SLUICE_BIN}: build it with "
        "`cmake --preset release && ninja -C build/release sluice` or set SLUICE_BIN"
    )
    return str(SLUICE_BIN)


def run_sluice(*args: str, timeout: float = 120.0, **kwargs) -> subprocess.CompletedProcess:
    """Runs a short sluice command (export, check-config) to completion."""
    return subprocess.run([sluice_bin(), *args], capture_output=True, timeout=timeout, **kwargs)


class SluiceServer:
    """One running `sluice serve` / `sluice demo` process.

    stdout is read by a thread (the banner with the bound address, then whatever follows);
    stderr (the request log) goes to a file that is shown when something goes wrong.
    """

    LISTENING = re.compile(r"listening on http://(\S+):(\d+)")

    def __init__(self, args: list[str], log_path: Path, cwd: Path | None = None,
                 startup_timeout: float = 30.0):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sluice_bin(), *args], stdout=subprocess.PIPE, stderr=self._log, cwd=cwd,
            stdin=subprocess.DEVNULL)
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.host, self.port = self._await_listening(startup_timeout)
        self.url = f"http://{self.host}:{self.port}"
        self.returncode: int | None = None

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _await_listening(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError(
                    f"sluice {' '.join(self.args)} did not print 'listening on' within "
                    f"{timeout} s\n{self.log_tail()}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                rc = self.proc.wait(timeout=5)
                raise AssertionError(
                    f"sluice {' '.join(self.args)} exited with {rc} before listening\n"
                    f"stdout: {''.join(self.stdout_lines)}\n{self.log_tail()}")
            match = self.LISTENING.search(line)
            if match:
                return match.group(1), int(match.group(2))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        self._log.flush()
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f"--- stderr of sluice ({self.log_path}) ---\n" + "\n".join(text)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> tuple[int, float]:
        """SIGTERM, then wait; returns (exit code, seconds it took). Kills on timeout."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"sluice did not exit within {timeout} s of SIGTERM\n{self.log_tail()}")
        self.returncode = rc
        self._reader.join(timeout=5)
        self._log.close()
        return rc, time.monotonic() - start

    def wait_exit(self, timeout: float) -> tuple[int, float]:
        start = time.monotonic()
        rc = self.proc.wait(timeout=timeout)
        self.returncode = rc
        return rc, time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def metrics(self) -> dict[str, float]:
        return metrics(self.url)

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, (
            f"sluice exited with {self.proc.returncode}\n{self.log_tail()}")


def stop_and_check(server: SluiceServer, timeout: float = STOP_TIMEOUT_S) -> None:
    """The standard teardown: SIGTERM must make the server exit 0 in time."""
    if server.returncode is not None:
        return
    if server.proc.poll() is not None:
        raise AssertionError(
            f"sluice died during the test with exit code {server.proc.returncode}\n"
            f"{server.log_tail()}")
    rc, _ = server.stop(timeout)
    assert rc == 0, f"sluice exited with {rc} after SIGTERM\n{server.log_tail()}"


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


# --------------------------------------------------------------------------------------------
# Session demo and function-scoped servers
# --------------------------------------------------------------------------------------------

@dataclass
class Demo:
    dir: Path
    db: Path
    config: Path
    server: SluiceServer
    rows: int

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Iterator[Demo]:
    """`sluice demo` with the default 2,000,000 rows, generated once per session, served."""
    base = tmp_path_factory.mktemp("sluice-demo")
    folder = base / "demo"
    server = SluiceServer(["demo", "--dir", str(folder), "--listen", "127.0.0.1:0"],
                          base / "demo-server.stderr.log", startup_timeout=STARTUP_TIMEOUT_S)
    db = folder / "orders.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert rows == 2_000_000, f"the default demo has 2,000,000 orders, got {rows}"
    yield Demo(folder, db, folder / "sluice.toml", server, rows)
    stop_and_check(server)


@pytest.fixture
def server(demo) -> SluiceServer:
    """The shared demo server; checks that it is still alive and idle before each test."""
    demo.server.assert_alive()
    wait_until(lambda: metrics(demo.url)["sluice_active_streams"] == 0, timeout=10,
               message="streams of an earlier test are still running")
    return demo.server


def config_for(demo: Demo, server_section: str = "") -> str:
    """The demo's config with our own [server] section, its source path made absolute."""
    text = demo.config.read_text("utf-8")
    rest = text[text.index("[sources.demo]"):]
    rest = rest.replace('path = "orders.db"', f'path = "{demo.db}"', 1)
    assert str(demo.db) in rest
    # Other relative paths (the object store) are made absolute too.
    rest = rest.replace('path = "objects"', f'path = "{demo.db.parent / "objects"}"', 1)
    return "[server]\nlisten = \"127.0.0.1:0\"\n" + server_section + "\n" + rest


@pytest.fixture
def start_server(demo, tmp_path) -> Iterator[Callable[..., SluiceServer]]:
    """Factory: start_server(server_section="shutdown_grace_ms = 500\\n", datasets="...") -> its
    own `sluice serve` on the demo database; `datasets` is TOML appended to the demo's."""
    started: list[SluiceServer] = []

    def start(server_section: str = "", name: str = "custom", datasets: str = "") -> SluiceServer:
        config = tmp_path / f"{name}.toml"
        config.write_text(config_for(demo, server_section) + datasets, "utf-8")
        srv = SluiceServer(["serve", "--config", str(config)],
                           tmp_path / f"{name}.stderr.log")
        started.append(srv)
        return srv

    yield start
    errors = []
    for srv in started:
        try:
            stop_and_check(srv)
        except AssertionError as error:
            errors.append(str(error))
        finally:
            srv.kill()
    assert not errors, "\n".join(errors)


# --------------------------------------------------------------------------------------------
# Metrics and waiting
# --------------------------------------------------------------------------------------------

def metrics(url: str, timeout: float = 5.0) -> dict[str, float]:
    """GET /metrics, parsed from the Prometheus text format into {name: value}."""
    response = requests.get(f"{url}/metrics", timeout=timeout)
    assert response.status_code == 200, response.text
    values: dict[str, float] = {}
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        number = float(value)
        values[name] = int(number) if number.is_integer() else number
    return values


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02,
               message: str = "condition") -> object:
    """Polls `predicate` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {message}")
        time.sleep(interval)


def wait_for_metric(url: str, name: str, check: Callable[[float], bool], timeout: float,
                    ) -> dict[str, float]:
    holder: dict[str, dict[str, float]] = {}

    def probe():
        holder["m"] = metrics(url)
        return check(holder["m"][name])

    try:
        wait_until(probe, timeout, interval=0.02, message=name)
    except AssertionError:
        raise AssertionError(f"{name} stayed at {holder['m'][name]} for {timeout} s")
    return holder["m"]


# --------------------------------------------------------------------------------------------
# The source of truth: orders.db through sqlite3
# --------------------------------------------------------------------------------------------

def sqlite_connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def canonical_value(column: str, value):
    """One value in a form that server output and sqlite3 results share.

    NULL stays None and '' stays ''. Numbers compare by value: SQLite hands out REAL amounts
    (and the 1% of whole amounts it stores as INTEGER); the server prints them as text."""
    if value is None:
        return None
    if column in INT_COLUMNS:
        return int(value)
    if column in NUMBER_COLUMNS:
        return repr(float(value))
    return value


def canonical_row(columns: list[str], row) -> tuple:
    if columns == ORDERS_COLUMNS:
        return canonical_orders_row(row)
    return tuple(canonical_value(c, v) for c, v in zip(columns, row))


def canonical_orders_row(r) -> tuple:
    """canonical_row for the full orders column list, unrolled (2,000,000 rows per export)."""
    return (int(r[0]), r[1], r[2], r[3], r[4], None if r[5] is None else repr(float(r[5])),
            int(r[6]), r[7])


class RowDigest:
    """Order-independent digest of a multiset of rows: count plus a sum of row hashes."""

    MOD = 1 << 64

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def add(self, row: tuple) -> None:
        # hash() of a tuple of str/int/None is fast and stable within one process, which is
        # where both sides of a comparison are computed.
        self.total = (self.total + hash(row)) % self.MOD
        self.count += 1

    def add_all(self, rows: Iterable[tuple]) -> "RowDigest":
        total = self.total
        count = 0
        for row in rows:
            total += hash(row)
            count += 1
        self.total = total % self.MOD
        self.count += count
        return self

    def __eq__(self, other) -> bool:
        return (self.count, self.total) == (other.count, other.total)

    def __repr__(self) -> str:
        return f"RowDigest(count={self.count}, sum={self.total:016x})"


def sqlite_rows(db: Path, sql: str, params: Iterable = ()) -> list[tuple]:
    with sqlite_connect(db) as conn:
        return conn.execute(sql, tuple(params)).fetchall()


def sqlite_digest(db: Path, columns: list[str], sql: str, params: Iterable = ()) -> RowDigest:
    with sqlite_connect(db) as conn:
        cursor = conn.execute(sql, tuple(params))
        return RowDigest().add_all(canonical_row(columns, row) for row in cursor)


@pytest.fixture(scope="session")
def orders_digest(demo) -> RowDigest:
    """The digest of the whole orders table (canonical values, NULL kept apart from '')."""
    return sqlite_digest(demo.db, ORDERS_COLUMNS, ORDERS_QUERY)


# --------------------------------------------------------------------------------------------
# Parsing what the server sends
# --------------------------------------------------------------------------------------------

def csv_records(text: str) -> Iterator[tuple[list[str], str]]:
    """Parses CSV text with the csv module; yields (fields, raw text of the record).

    The raw text is what the csv module consumed for the record, so a caller can check bytes
    that the module hides, such as "" (empty string) against an empty unquoted field (NULL)."""
    import csv
    import io

    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), strict=True)
    for fields in reader:
        raw = "".join(consumed)
        consumed.clear()
        yield fields, raw


def rfc4180_fields(record: str) -> list[str | None]:
    """A strict, small RFC 4180 parser of one raw record (with its CRLF): an empty unquoted
    field is None (NULL), a quoted empty field is ''."""
    assert record.endswith("\r\n"), f"record does not end with CRLF: {record[-40:]!r}"
    body = record[:-2]
    fields: list[str | None] = []
    i = 0
    n = len(body)
    while True:
        if i < n and body[i] == '"':
            i += 1
            value = []
            while True:
                j = body.index('"', i)  # raises if unterminated
                value.append(body[i:j])
                if j + 1 < n and body[j + 1] == '"':
                    value.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            fields.append("".join(value))
        else:
            j = body.find(",", i)
            j = n if j < 0 else j
            chunk = body[i:j]
            assert '"' not in chunk and "\r" not in chunk and "\n" not in chunk, (
                f"unquoted field with a special character: {chunk!r}")
            fields.append(chunk if chunk else None)
            i = j
        if i == n:
            return fields
        assert body[i] == ",", f"garbage after a quoted field in {record!r}"
        i += 1
        if i == n:
            fields.append(None)
            return fields


# First characters a spreadsheet evaluates; CSV text cells starting with one get a leading "'"
# (the formula guard, on by default; tests/functional/test_formats.py checks its exact bytes).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_guarded(value):
    """How the formula guard writes a text value (numbers are never guarded)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_unguard(field: str | None) -> str | None:
    """Undoes the formula guard on a parsed CSV field. Exact for the demo data, which holds no
    value that itself starts with "'" followed by a formula character."""
    if field is not None and field.startswith("'") and field[1:].startswith(FORMULA_START):
        return field[1:]
    return field


def csv_rows_with_nulls(text: str, unguard: bool = True) -> Iterator[list[str | None]]:
    """Every record of a CSV body, parsed by the csv module, with NULL (empty unquoted) as None
    and "" as ''. Also checks the record ends with CRLF and that our own strict parse of its raw
    bytes agrees with the csv module. With `unguard`, the formula guard's "'" is removed, so the
    rows compare with the table."""
    for fields, raw in csv_records(text):
        assert raw.endswith("\r\n"), f"record not terminated by CRLF: {raw[-60:]!r}"
        if '"' not in raw:
            # Nothing quoted: every empty field is an empty unquoted one, i.e. NULL.
            row = [f if f != "" else None for f in fields]
        else:
            row = rfc4180_fields(raw)
            assert [f if f is not None else "" for f in row] == fields, (
                f"csv module and strict parse disagree on {raw!r}")
        yield [csv_unguard(f) for f in row] if unguard else row


def parse_csv_table(text: str, columns: list[str] | None = None) -> tuple[list[str], list[tuple]]:
    """(header, canonical rows) of a whole CSV body."""
    rows_iter = csv_rows_with_nulls(text)
    header = next(rows_iter)
    assert all(h is not None for h in header)
    names = columns or header
    return header, [canonical_row(names, row) for row in rows_iter]


def parse_jsonl_table(text: str) -> tuple[list[str], list[tuple]]:
    import json

    assert text == "" or text.endswith("\n"), "JSON Lines body does not end with a newline"
    keys: list[str] | None = None
    rows = []
    for line in text.split("\n")[:-1]:
        obj = json.loads(line)
        assert isinstance(obj, dict)
        if keys is None:
            keys = list(obj)
        assert list(obj) == keys, f"keys differ between lines: {list(obj)} vs {keys}"
        rows.append(canonical_row(keys, [obj[k] for k in keys]))
    return keys or [], rows


# --------------------------------------------------------------------------------------------
# Raw HTTP over a socket (for things clients normally hide)
# --------------------------------------------------------------------------------------------

@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str]
    head: bytes
    sock: socket.socket
    buffered: bytes = b""
    body: bytes = b""
    complete: bool = False  # the final zero-length chunk arrived
    header_values: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read_some(self, size: int = 65536) -> bytes:
        if self.buffered:
            data, self.buffered = self.buffered, b""
            return data
        return self.sock.recv(size)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def raw_connect(port: int, host: str = "127.0.0.1", rcvbuf: int | None = None,
                timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
    sock.settimeout(timeout)
    sock.connect((host, port))
    return sock


def read_head(sock: socket.socket, initial: bytes = b"") -> tuple[bytes, bytes]:
    """Reads up to the end of the response head; returns (head, bytes after it)."""
    data = initial
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed inside the response head: {data[:300]!r}")
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def parse_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    version, status, *reason = lines[0].split(" ", 2)
    assert version == "HTTP/1.1", lines[0]
    values = []
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            values.append((name.strip(), value.strip()))
    return int(status), reason[0] if reason else "", values


def raw_request(port: int, request: bytes, rcvbuf: int | None = None,
                timeout: float = 10.0) -> RawResponse:
    """Sends raw bytes; returns once the response head is in (the body is left to read)."""
    sock = raw_connect(port, rcvbuf=rcvbuf, timeout=timeout)
    sock.sendall(request)
    head, rest = read_head(sock)
    status, reason, values = parse_head(head)
    return RawResponse(status, reason, {k.lower(): v for k, v in values}, head, sock, rest,
                       header_values=values)


def raw_get(port: int, target: str, headers: dict[str, str] | None = None,
            rcvbuf: int | None = None, timeout: float = 10.0) -> RawResponse:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return raw_request(port, request, rcvbuf=rcvbuf, timeout=timeout)


def read_fixed_body(response: RawResponse) -> bytes:
    length = int(response.header("content-length"))
    data = response.buffered
    response.buffered = b""
    while len(data) < length:
        chunk = response.sock.recv(65536)
        if not chunk:
            break
        data += chunk
    response.body = data[:length]
    return response.body


class ChunkedReader:
    """Decodes a chunked body from a socket; tells whether the final chunk arrived."""

    def __init__(self, response: RawResponse):
        self.response = response
        self.buffer = bytearray(response.buffered)
        response.buffered = b""
        self.complete = False
        self.eof = False

    def _fill(self) -> bool:
        try:
            chunk = self.response.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def read_all(self, on_data: Callable[[bytes], None] | None = None) -> bytes:
        body = bytearray()
        while not self.complete:
            data = self.read_chunk()
            if data is None:
                break
            if on_data:
                on_data(data)
            else:
                body += data
        self.response.complete = self.complete
        self.response.body = bytes(body)
        return bytes(body)

    def read_chunk(self) -> bytes | None:
        """The next chunk's data; b'' after the last chunk; None when the connection ended
        before the chunked body did."""
        while b"\r\n" not in self.buffer:
            if not self._fill():
                return None
        line_end = self.buffer.index(b"\r\n")
        size_text = bytes(self.buffer[:line_end]).split(b";")[0].strip()
        size = int(size_text, 16)
        if size == 0:
            while len(self.buffer) < line_end + 4:
                if not self._fill():
                    return None
            assert bytes(self.buffer[line_end + 2:line_end + 4]) == b"\r\n", "bad last chunk"
            del self.buffer[:line_end + 4]
            self.complete = True
            return b""
        needed = line_end + 2 + size + 2
        while len(self.buffer) < needed:
            if not self._fill():
                return None
        data = bytes(self.buffer[line_end + 2:line_end + 2 + size])
        assert bytes(self.buffer[needed - 2:needed]) == b"\r\n", "chunk not followed by CRLF"
        del self.buffer[:needed]
        return data


def assert_json_error(response: requests.Response, status: int, code: str | None = None,
                      mentions: Iterable[str] = ()) -> dict:
    """The shape every error must have: status, JSON body, request id in header and body."""
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text[:500]}")
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        response.headers)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= {"code", "message", "request_id"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    request_id = response.headers.get("X-Request-Id")
    assert request_id and error["request_id"] == request_id, (request_id, error)
    if code is not None:
        assert error["code"] == code, error
    for text in mentions:
        assert text in error["message"], f"{text!r} not named in {error['message']!r}"
    return error


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
