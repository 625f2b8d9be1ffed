"""Raw HTTP/1.1 over a socket, for what clients normally hide (the response head as sent,
chunk boundaries, a body cut short, slow reading), and the shape of every JSON error."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from typing import Callable, Iterable

import requests


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
    """Sends a GET over a fresh socket; returns once the response head is in."""
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


@dataclass
class HeadThenGet:
    """What one keep-alive connection carried for HEAD then GET of the same target."""
    head_status: int
    head_headers: dict[str, str]     # names in lower case
    after_head: bytes                # every byte after the HEAD response's header block
    get_status: int
    get_headers: dict[str, str]
    get_body: bytes                  # the GET's body, de-chunked when chunked
    get_complete: bool               # the body was whole (Content-Length reached / last chunk)


def head_then_get(port: int, target: str, headers: dict[str, str] | None = None,
                  timeout: float = 60.0) -> HeadThenGet:
    """HEAD, then GET of the same target on the same connection, checked on the wire.

    http.client and requests never read a body after HEAD, so a server that wrongly sends one
    passes through them unnoticed. Here the GET goes out only after the HEAD response's header
    block arrived; TCP keeps the order, so whatever the server wrote for the HEAD request comes
    before the GET's answer: `after_head` must start with the GET's status line, with no byte
    in between. The GET carries `Connection: close`, so everything after it is read to the end.
    """
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    sock = raw_connect(port, timeout=timeout)
    try:
        sock.sendall(f"HEAD {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode("latin-1"))
        head, rest = read_head(sock)
        head_status, _, head_values = parse_head(head)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}"
                     "Connection: close\r\n\r\n".encode("latin-1"))
        data = bytearray(rest)
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    after_head = bytes(data)
    get_status, get_headers, body, complete = 0, {}, b"", False
    if b"\r\n\r\n" in after_head and after_head.startswith(b"HTTP/"):
        end = after_head.index(b"\r\n\r\n") + 4
        get_status, _, values = parse_head(after_head[:end])
        get_headers = {k.lower(): v for k, v in values}
        payload = after_head[end:]
        if get_headers.get("transfer-encoding", "").lower() == "chunked":
            decoder = ChunkedDecoder()
            decoder.feed(payload)
            body, complete = bytes(decoder.body), decoder.complete
        elif "content-length" in get_headers:
            length = int(get_headers["content-length"])
            body, complete = payload[:length], len(payload) == length
        else:
            body, complete = payload, True
    return HeadThenGet(head_status, {k.lower(): v for k, v in head_values}, after_head,
                       get_status, get_headers, body, complete)


def assert_head_has_no_body(result: HeadThenGet, status: int = 200) -> None:
    """Both requests answered with `status`, and the bytes right after the HEAD response's
    header block are the GET's status line: not one byte of body for HEAD."""
    assert result.head_status == status, result.head_status
    assert result.after_head.startswith(f"HTTP/1.1 {status} ".encode()), (
        "after the HEAD response's headers came "
        f"{result.after_head[:120]!r} instead of the GET's status line")
    assert result.get_status == status, result.after_head[:300]
    assert result.get_complete, "the GET after the HEAD was not answered whole"


# --------------------------------------------------------------------------------------------
# Chunked bodies
# --------------------------------------------------------------------------------------------

def take_chunk(buffer: bytearray, trailers: dict[str, str] | None = None) -> bytes | None:
    """Removes the first whole chunk from `buffer` and returns its data: b'' for the last chunk
    (with what follows it), None (buffer untouched) while the chunk is not all there.

    After the last chunk comes the trailer section: with `trailers` (a dict) its fields are
    put there, names in lower case; without, the section must be empty."""
    line_end = buffer.find(b"\r\n")
    if line_end < 0:
        return None
    size = int(bytes(buffer[:line_end]).split(b";")[0].strip(), 16)
    if size == 0:
        if trailers is None:
            if len(buffer) < line_end + 4:
                return None
            assert bytes(buffer[line_end + 2:line_end + 4]) == b"\r\n", "bad last chunk"
            del buffer[:line_end + 4]
            return b""
        end = buffer.find(b"\r\n\r\n", line_end)
        if end < 0:
            return None
        for line in bytes(buffer[line_end + 2:end]).decode("latin-1").split("\r\n"):
            if line:
                name, value = line.split(":", 1)
                trailers[name.strip().lower()] = value.strip()
        del buffer[:end + 4]
        return b""
    needed = line_end + 2 + size + 2
    if len(buffer) < needed:
        return None
    data = bytes(buffer[line_end + 2:needed - 2])
    assert bytes(buffer[needed - 2:needed]) == b"\r\n", "chunk not followed by CRLF"
    del buffer[:needed]
    return data


class ChunkedDecoder:
    """Incremental decoder of a chunked body: feed() bytes, read .body / .complete (and the
    byte count, newlines and SHA-256 of the data; .trailers with `expect_trailers`)."""

    def __init__(self, keep_body: bool = True, expect_trailers: bool = False) -> None:
        self.buffer = bytearray()
        self.keep_body = keep_body
        self.body = bytearray()
        self.body_bytes = 0
        self.newlines = 0
        self.complete = False
        self.hasher = hashlib.sha256()
        self.trailers: dict[str, str] | None = {} if expect_trailers else None

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while not self.complete:
            chunk = take_chunk(self.buffer, self.trailers)
            if chunk is None:
                return
            if not chunk:
                self.complete = True
                return
            self.body_bytes += len(chunk)
            self.newlines += chunk.count(b"\n")
            self.hasher.update(chunk)
            if self.keep_body:
                self.body += chunk


class ChunkedReader:
    """Decodes a chunked body from a response's socket; tells whether the final chunk arrived
    (.trailers with `expect_trailers`)."""

    def __init__(self, response: RawResponse, expect_trailers: bool = False):
        self.response = response
        self.buffer = bytearray(response.buffered)
        response.buffered = b""
        self.complete = False
        self.eof = False
        self.trailers: dict[str, str] | None = {} if expect_trailers else None

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
        while (data := take_chunk(self.buffer, self.trailers)) is None:
            if not self._fill():
                return None
        if not data:
            self.complete = True
        return data


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

def assert_json_error(response: requests.Response, status: int, code: str | None = None,
                      mentions: Iterable[str] = (), sqlstate: str | None = None) -> dict:
    """The shape every error must have: status, JSON body, request id in header and body; then
    the code, the texts the message must name and the SQLSTATE, where given."""
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text[:500]}")
    assert response.headers.get("Content-Type", "").startswith("application/json"), (
        response.headers)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= {"code", "message", "request_id"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    request_id = response.headers.get("X-Request-Id")
    assert request_id and error["request_id"] == request_id, (request_id, error)
    if code is not None:
        assert error["code"] == code, error
    for text in mentions:
        assert text in error["message"], f"{text!r} not named in {error['message']!r}"
    if sqlstate is not None:
        assert error.get("sqlstate") == sqlstate, error
    return error
