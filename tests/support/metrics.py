"""GET /metrics (Prometheus text) into a dict, and waiting for a condition or a metric."""

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
