"""GET /metrics (Prometheus text) into a dict, waiting for a condition or a metric, and what the
kernel says a process read (/proc/PID/io), an oracle outside Sluice's own counters."""

from __future__ import annotations

import time
from typing import Callable

import requests


def metrics(url: str, timeout: float = 10.0) -> dict[str, float]:
    """GET /metrics, parsed from the Prometheus text format into {name: value} (whole numbers
    as int)."""
    response = requests.get(f"{url}/metrics", timeout=timeout)
    assert response.status_code == 200, response.text[:300]
    values: dict[str, float] = {}
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        number = float(value)
        values[name] = int(number) if number.is_integer() else number
    return values


def wait_until(predicate: Callable[[], object], timeout: float, message: str = "condition",
               interval: float = 0.02) -> object:
    """Polls `predicate` until it returns something truthy, which it returns; fails after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {message}")
        time.sleep(interval)


def wait_for_metric(url: str, name: str, check: Callable[[float], bool], timeout: float,
                    ) -> dict[str, float]:
    """Polls /metrics until `check(value of name)` holds; returns those metrics."""
    holder: dict[str, dict[str, float]] = {}

    def probe():
        holder["m"] = metrics(url)
        return check(holder["m"][name])

    try:
        wait_until(probe, timeout, message=name, interval=0.02)
    except AssertionError:
        raise AssertionError(f"{name} stayed at {holder['m'][name]} for {timeout} s")
    return holder["m"]


def proc_io(pid: int) -> dict[str, int]:
    """/proc/PID/io as {field: value}: `rchar` counts the bytes the process read with read(),
    pread() and sendfile() (files such as a SQLite database or stored objects, whether or not
    they came from the page cache; sockets read with recvmsg, as Asio does, are not counted),
    `read_bytes` what it made the block layer fetch, `syscr` its read calls."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/io") as io:
        for line in io:
            name, value = line.split(":", 1)
            values[name.strip()] = int(value)
    return values


def read_chars(pid: int) -> int:
    """Bytes the process read through read/pread/sendfile so far (/proc/PID/io rchar)."""
    return proc_io(pid)["rchar"]


def wait_until_steady(probe: Callable[[], int], quiet: float, timeout: float,
                      message: str = "value", tolerance: int = 0,
                      interval: float = 0.02) -> tuple[int, float]:
    """Polls `probe` until its value has moved by at most `tolerance` for `quiet` seconds (e.g.
    a process has stopped reading). Returns (that value, the time.monotonic() at which it was
    last seen moving, or the start). Fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    since, anchor = time.monotonic(), probe()
    while True:
        time.sleep(interval)
        now, value = time.monotonic(), probe()
        if abs(value - anchor) > tolerance:
            since, anchor = now, value
        elif now - since >= quiet:
            return value, since
        if now > deadline:
            raise AssertionError(
                f"{message} did not settle within {timeout} s (still moving: {anchor} -> {value})")


def assert_steady(probe: Callable[[], int], duration: float, message: str = "value",
                  tolerance: int = 0, interval: float = 0.02) -> int:
    """Polls `probe` for `duration` seconds; fails as soon as it moved by more than `tolerance`
    from its first value. Returns the last value."""
    first = probe()
    end = time.monotonic() + duration
    while True:
        value = probe()
        assert abs(value - first) <= tolerance, f"{message} moved from {first} to {value}"
        if time.monotonic() >= end:
            return value
        time.sleep(interval)
