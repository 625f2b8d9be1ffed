"""[limits]: per-address and per-token token buckets and requests in flight. A client over its
limit gets 429 (JSON, Retry-After) while another client is served; /metrics shows the
rejections by reason and the configured limits.

Clients are told apart by their source address (127.0.0.2, 127.0.0.3, ...: all loopback on
Linux) and by their token.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from typing import Iterator

import pytest

from support.metrics import wait_until
from support.server import SluiceServer, serve, stop_and_check

TOKENS = {name: f"slu_limits-test-token-{name}-0123456789abcdef" for name in
          ["a", "b", "c", "d", "ops"]}


def token_entry(name: str, extra: str = "") -> str:
    digest = hashlib.sha256(TOKENS[name].encode()).hexdigest()
    return f'\n[[auth.tokens]]\nname = "{name}"\nsha256 = "{digest}"\nscopes = ["*"]\n{extra}'


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Iterator[SluiceServer]:
    base = tmp_path_factory.mktemp("limits")
    folder = base / "demo"
    demo = SluiceServer(["demo", "--rows", "20000", "--dir", str(folder), "--listen",
                         "127.0.0.1:0"], base / "demo.stderr.log", startup_timeout=120)
    stop_and_check(demo)
    config = (folder / "sluice.toml").read_text("utf-8") + """
[auth]
anonymous_scopes = ["*"]
""" + "".join(token_entry(n) for n in ["a", "b", "c", "d"]) + token_entry(
        "ops", "requests_per_second = 1000\nburst = 1000\nmax_streams = 100\n") + """
[limits]
per_address_requests_per_second = 5
per_address_burst = 10
per_token_requests_per_second = 2
per_token_burst = 3
per_token_max_streams = 1
"""
    (folder / "limits.toml").write_text(config, "utf-8")  # beside the demo: relative paths
    server = serve(folder / "limits.toml", base / "limits.stderr.log", "--listen", "127.0.0.1:0")
    yield server
    stop_and_check(server)


def request(server: SluiceServer, path: str, source: str, token: str | None = None,
            read: bool = True):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                      source_address=(source, 0))
    headers = {"Authorization": f"Bearer {TOKENS[token]}"} if token else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    if not read:
        return conn, response
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def assert_429(result, code: str) -> None:
    status, headers, body = result
    assert status == 429, (status, body[:300])
    assert int(headers["Retry-After"]) >= 1
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == code


def server_metrics(server: SluiceServer) -> dict[str, float]:
    status, _, body = request(server, "/metrics", "127.0.0.9", "ops")
    assert status == 200
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_address_over_its_rate_is_refused_while_another_is_served(limited):
    statuses = [request(limited, "/healthz", "127.0.0.2")[0] for _ in range(10)]
    assert statuses == [200] * 10  # the burst
    assert_429(request(limited, "/healthz", "127.0.0.2"), "rate_limited")
    # Another client, at the same moment, is served normally.
    assert [request(limited, "/healthz", "127.0.0.3")[0] for _ in range(5)] == [200] * 5
    assert_429(request(limited, "/healthz", "127.0.0.2"), "rate_limited")
    # The bucket refills at 5 per second.
    time.sleep(1.0)
    assert request(limited, "/healthz", "127.0.0.2")[0] == 200


def test_token_over_its_rate_is_refused_while_another_token_is_served(limited):
    assert [request(limited, "/v1/cubes", "127.0.0.4", "a")[0] for _ in range(3)] == [200] * 3
    assert_429(request(limited, "/v1/cubes", "127.0.0.4", "a"), "rate_limited")
    # Token b from the same address: its own bucket (the address's still has room).
    assert request(limited, "/v1/cubes", "127.0.0.4", "b")[0] == 200
    # Token a from another address: still limited (the limit follows the token).
    assert_429(request(limited, "/v1/cubes", "127.0.0.5", "a"), "rate_limited")


def test_streams_per_token(limited):
    conn, response = request(limited, "/v1/exports/orders_big.csv", "127.0.0.6", "c", read=False)
    try:
        assert response.status == 200
        assert response.read(1024)  # the stream runs, the client stops reading
        assert_429(request(limited, "/healthz", "127.0.0.7", "c"), "too_many_streams")
        assert request(limited, "/healthz", "127.0.0.7", "d")[0] == 200
    finally:
        conn.close()
    wait_until(lambda: request(limited, "/healthz", "127.0.0.8", "c")[0] == 200, timeout=10,
               message="the token may start a request once its stream ended")


def test_metrics_show_rejections_and_limits(limited):
    before = server_metrics(limited)
    assert before['sluice_limit_requests_per_second{client="address"}'] == 5
    assert before['sluice_limit_burst{client="address"}'] == 10
    assert before['sluice_limit_max_streams{client="token"}'] == 1
    for _ in range(12):
        request(limited, "/healthz", "127.0.0.10")
    after = server_metrics(limited)
    key = 'sluice_auth_rejections_total{reason="rate_limited"}'
    assert after[key] >= before[key] + 2
