"""Access control ([auth]): bearer tokens (created with the real `sluice token create`), scopes per
endpoint, anonymous scopes, expiry, the tokens file re-read on SIGHUP, presigned links without a
token, the loopback-only rule without [auth], and no token in any log line.

One small `sluice demo` folder (2,000 orders, its sample objects and built cube) is made for the
module; its server is stopped and a `sluice serve` of its configuration plus [auth] answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from support.http import assert_json_error
from support.metrics import wait_until
from support.server import SluiceServer, run_sluice, serve, stop_and_check

SECRET = "auth-test-link-secret-0123456789"
ENV = dict(os.environ, SLUICE_LINK_SECRET=SECRET)
EXPIRED_TOKEN = "slu_expired-token-for-the-test-0123456789"
WRONG_TOKEN = "slu_this-token-was-never-issued-000000000"

# name -> scopes of the tokens the module creates
TOKEN_SCOPES = {
    "admin": ["admin"],
    "orders": ["datasets:orders*"],
    "jobs": ["jobs", "datasets:orders"],
    "cubes": ["cubes:sales"],
    "files": ["files"],
    "archiver": ["archives:create", "files"],
    "archive_reader": ["archives:read"],
    "nothing": ["cubes:other"],
}


def create_token(name: str, *scopes: str, expires: str | None = None) -> tuple[str, str]:
    """`sluice token create`: (the token, the TOML lines to add)."""
    args = ["token", "create", "--name", name]
    for scope in scopes:
        args += ["--scope", scope]
    if expires:
        args += ["--expires", expires]
    result = run_sluice(*args, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    token, rest = out.split("\n", 1)
    assert token.startswith("slu_") and len(token) == 4 + 43, token
    assert f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"' in rest, rest
    assert token not in rest  # printed once
    return token, rest


class AuthServer:
    def __init__(self, server: SluiceServer, tokens: dict[str, str], tokens_file: Path,
                 logs: list[Path]):
        self.server = server
        self.url = server.url
        self.tokens = tokens
        self.tokens_file = tokens_file
        self.logs = logs

    def get(self, path: str, token: str | None = None, method: str = "GET", **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def auth(tmp_path_factory) -> Iterator[AuthServer]:
    base = tmp_path_factory.mktemp("auth")
    folder = base / "demo"
    demo = SluiceServer(["demo", "--rows", "2000", "--dir", str(folder), "--listen", "127.0.0.1:0"],
                        base / "demo.stderr.log", startup_timeout=120)
    stop_and_check(demo)
    tokens: dict[str, str] = {}
    lines = []
    for name, scopes in TOKEN_SCOPES.items():
        tokens[name], toml = create_token(name, *scopes, expires="30d")
        lines.append(toml.split("[[tokens]]", 1)[1])
    tokens_file = base / "tokens.toml"
    tokens_file.write_text("".join("[[tokens]]" + entry for entry in lines), "utf-8")
    config = (folder / "sluice.toml").read_text("utf-8") + f"""
[auth]
tokens_file = "{tokens_file}"
anonymous_scopes = ["cubes"]

[[auth.tokens]]
name = "expired"
sha256 = "{hashlib.sha256(EXPIRED_TOKEN.encode()).hexdigest()}"
scopes = ["admin"]
expires = 2020-01-01T00:00:00Z
"""
    (folder / "auth.toml").write_text(config, "utf-8")  # beside the demo: relative paths
    log = base / "auth.stderr.log"
    server = serve(folder / "auth.toml", log, "--listen", "127.0.0.1:0", env=ENV)
    yield AuthServer(server, tokens, tokens_file, [log, base / "demo.stderr.log"])
    stop_and_check(server)
    # Not one log line of the whole module names a token (the access log shows names only).
    text = "".join(path.read_text("utf-8", "replace") for path in [log])
    for token in [*tokens.values(), EXPIRED_TOKEN, WRONG_TOKEN]:
        assert token not in text, "a token was written to the server log"
    assert "Bearer" not in text


def presigned_path(key: str, lifetime: int = 600) -> str:
    expires = int(time.time()) + lifetime
    sig = hmac.new(SECRET.encode(), f"GET\n{key}\n{expires}".encode(), hashlib.sha256).hexdigest()
    return f"/v1/files/{key}?expires={expires}&sig={sig}"


def check_denials(auth: AuthServer, method: str, path: str, scope: str, lacking: str,
                  anonymous_ok: bool = False, **kwargs) -> None:
    """Without a token: 401 unauthorized (or not refused, where anonymous may); a wrong token:
    401 invalid_token; a token without the scope: 403 forbidden naming it."""
    response = auth.get(path, None, method, **kwargs)
    if anonymous_ok:
        assert response.status_code not in (401, 403), (path, response.status_code, response.text)
    else:
        assert_json_error(response, 401, "unauthorized", mentions=[scope])
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = auth.get(path, WRONG_TOKEN, method, **kwargs)
    assert_json_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    response = auth.get(path, auth.tokens[lacking], method, **kwargs)
    body = assert_json_error(response, 403, "forbidden", mentions=[scope, lacking])
    assert body["scope"] == scope


# (method, path, scope needed, token that has it, token that lacks it, anonymous allowed)
SIMPLE_ROUTES = [
    ("GET", "/metrics", "admin", "admin", "orders", False),
    ("GET", "/v1/exports/orders.csv?limit=3", "datasets:orders", "orders", "cubes", False),
    ("GET", "/v1/exports/orders_report.jsonl?limit=3", "datasets:orders_report", "orders", "jobs",
     False),
    ("GET", "/v1/exports/countries.csv", "datasets:countries", "admin", "orders", False),
    ("GET", "/v1/jobs", "jobs", "jobs", "orders", False),
    ("GET", "/v1/cubes", "cubes", "admin", "nothing", True),
    ("GET", "/v1/cubes/sales", "cubes:sales", "cubes", "nothing", True),
    ("GET", "/v1/cubes/sales/DE/2024-11?status=paid&day=3", "cubes:sales", "cubes", "nothing",
     True),
    ("GET", "/v1/files/album/IMG_0001.jpg", "files", "files", "orders", False),
]


@pytest.mark.parametrize("method,path,scope,right,lacking,anonymous", SIMPLE_ROUTES,
                         ids=[f"{r[0]} {r[1]}" for r in SIMPLE_ROUTES])
def test_route_scopes(auth, method, path, scope, right, lacking, anonymous):
    check_denials(auth, method, path, scope, lacking, anonymous_ok=anonymous)
    response = auth.get(path, auth.tokens[right], method)
    if "/v1/cubes/sales/" in path and response.status_code == 404:
        # Let through: a cell the small demo has no data for.
        assert response.json()["error"]["code"] in ("no_data", "unknown_value"), response.text
    else:
        assert 200 <= response.status_code < 300, (response.status_code, response.text[:300])
    if method == "GET" and path.startswith("/v1/exports/orders.csv"):
        assert response.text.count("\n") == 4  # header + 3 rows


def test_healthz_is_open(auth):
    assert auth.get("/healthz").status_code == 200
    assert auth.get("/healthz", auth.tokens["nothing"]).status_code == 200


def test_dataset_list_shows_only_readable_datasets(auth):
    assert_json_error(auth.get("/v1/datasets"), 401, "unauthorized")
    assert_json_error(auth.get("/v1/datasets", WRONG_TOKEN), 401, "invalid_token")
    names = lambda token: {d["name"] for d in auth.get("/v1/datasets", token).json()["datasets"]}
    assert names(auth.tokens["orders"]) == {"orders", "orders_big", "orders_report"}
    assert names(auth.tokens["jobs"]) == {"orders"}
    assert names(auth.tokens["nothing"]) == set()
    assert "countries" in names(auth.tokens["admin"])


def test_expired_and_malformed_tokens(auth):
    response = auth.get("/metrics", EXPIRED_TOKEN)
    assert_json_error(response, 401, "invalid_token", mentions=["expired"])
    response = auth.get("/metrics", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert_json_error(response, 401, "invalid_token")
    # The hash from the config is not a token.
    digest = hashlib.sha256(auth.tokens["admin"].encode()).hexdigest()
    assert_json_error(auth.get("/metrics", digest), 401, "invalid_token")
    # The scheme is case-insensitive.
    response = auth.get("/metrics", headers={"Authorization": "bearer " + auth.tokens["admin"]})
    assert response.status_code == 200


def test_jobs_routes(auth):
    body = {"dataset": "orders", "format": "csv", "filters": {"country": "DE"}}
    check_denials(auth, "POST", "/v1/jobs", "jobs", "orders", json=body)
    # The jobs scope alone is not enough: the job reads a dataset.
    response = auth.get("/v1/jobs", auth.tokens["cubes"], "POST",
                        json={"dataset": "countries", "format": "csv"})
    assert_json_error(response, 403, "forbidden", mentions=["jobs"])
    response = auth.get("/v1/jobs", auth.tokens["jobs"], "POST",
                        json={"dataset": "countries", "format": "csv"})
    assert_json_error(response, 403, "forbidden", mentions=["datasets:countries"])
    response = auth.get("/v1/jobs", auth.tokens["jobs"], "POST", json=body)
    assert response.status_code == 202, response.text
    job = response.json()["id"]
    # An asynchronous export is a job too.
    response = auth.get("/v1/exports/orders.csv", auth.tokens["orders"],
                        headers={"Prefer": "respond-async"})
    assert_json_error(response, 403, "forbidden", mentions=["jobs"])
    response = auth.get("/v1/exports/orders.csv", auth.tokens["jobs"],
                        headers={"Prefer": "respond-async"})
    assert response.status_code == 202, response.text

    for path in [f"/v1/jobs/{job}", f"/v1/jobs/{job}/events", f"/v1/jobs/{job}/result"]:
        check_denials(auth, "GET", path, "jobs", "orders")
    done = wait_until(lambda: auth.get(f"/v1/jobs/{job}", auth.tokens["jobs"]).json()["state"]
                      == "succeeded", timeout=60, message="the job finished")
    assert done
    response = auth.get(f"/v1/jobs/{job}/events", auth.tokens["jobs"], stream=True)
    assert response.status_code == 200
    response.close()
    response = auth.get(f"/v1/jobs/{job}/result", auth.tokens["jobs"])
    assert response.status_code == 200 and response.content.startswith(b"id,")
    # Cancel: a job that waits for tomorrow.
    later = dict(body, run_at=int((time.time() + 86400) * 1000))
    queued = auth.get("/v1/jobs", auth.tokens["jobs"], "POST", json=later).json()["id"]
    check_denials(auth, "DELETE", f"/v1/jobs/{queued}", "jobs", "orders")
    response = auth.get(f"/v1/jobs/{queued}", auth.tokens["jobs"], "DELETE")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    # A cube build is the administrator's.
    check_denials(auth, "POST", "/v1/cubes/sales/builds", "admin", "jobs", anonymous_ok=False)
    response = auth.get("/v1/cubes/sales/builds", auth.tokens["admin"], "POST")
    assert response.status_code == 202, response.text


def test_archives(auth):
    body = {"name": "album", "prefix": "album/"}
    check_denials(auth, "POST", "/v1/archives", "archives:create", "archive_reader", json=body)
    # Creating needs the files scope too: an archive holds stored objects.
    response = auth.get("/v1/archives", auth.tokens["admin"], "POST", json=body)
    assert response.status_code == 201, response.text
    response = auth.get("/v1/archives", auth.tokens["archiver"], "POST", json=body)
    assert response.status_code == 201, response.text
    url = response.json()["url"]
    # The creator (files) downloads it; so does archives:read alone.
    response = auth.get(url, auth.tokens["archiver"])
    assert response.status_code == 200 and response.content.startswith(b"PK")
    # The whole store is the administrator's.
    response = auth.get("/v1/archives", auth.tokens["archiver"], "POST",
                        json={"name": "all", "prefix": ""})
    assert_json_error(response, 403, "forbidden", mentions=["admin"])
    check_denials(auth, "GET", url, "archives:read", "orders")
    response = auth.get(url, auth.tokens["archive_reader"])
    assert response.status_code == 200 and response.content.startswith(b"PK")
    # ... and, with "whole_store": true, the administrator may.
    response = auth.get("/v1/archives", auth.tokens["admin"], "POST",
                        json={"name": "all", "prefix": "", "whole_store": True})
    assert response.status_code == 201, response.text
    # The description (the id without .zip) needs what the download needs.
    described = url.removesuffix(".zip")
    check_denials(auth, "GET", described, "archives:read", "orders")
    response = auth.get(described, auth.tokens["archive_reader"])
    assert response.status_code == 200 and response.json()["url"] == url, response.text
    # Deleting needs archives:create.
    check_denials(auth, "DELETE", url, "archives:create", "archive_reader")
    response = auth.get(url, auth.tokens["archiver"], "DELETE")
    assert response.status_code == 204, response.text
    assert auth.get(url, auth.tokens["archive_reader"]).status_code == 404


def test_presigned_link_needs_no_token(auth):
    path = presigned_path("album/IMG_0001.jpg")
    plain = auth.get("/v1/files/album/IMG_0001.jpg", auth.tokens["files"])
    signed = auth.get(path)
    assert signed.status_code == 200
    assert signed.content == plain.content and len(plain.content) > 0
    # A tampered link is still refused, with or without a token lacking files.
    assert_json_error(auth.get(path[:-1] + "0" if not path.endswith("0") else path[:-1] + "1"),
                      403, "link_invalid")


def test_token_file_reload_on_sighup(auth):
    token, toml = create_token("late", "datasets:countries")
    assert_json_error(auth.get("/v1/exports/countries.csv", token), 401, "invalid_token")
    original = auth.tokens_file.read_text("utf-8")
    auth.tokens_file.write_text(original + toml.split("# configuration as [[auth.tokens]]:\n")[1],
                                "utf-8")
    auth.server.signal(signal.SIGHUP)
    wait_until(lambda: auth.get("/v1/exports/countries.csv", token).status_code == 200,
               timeout=10, message="the new token works after SIGHUP")
    assert "SIGHUP: API tokens reloaded" in auth.server.log_text()

    # A broken file keeps the tokens in force and the log names the file, line and key.
    auth.tokens_file.write_text(original + '[[tokens]]\nname = "bad"\nsha256 = "xyz"\nscopes = []\n',
                                "utf-8")
    auth.server.signal(signal.SIGHUP)
    wait_until(lambda: "NOT reloaded" in auth.server.log_text(), timeout=10,
               message="the failed reload is logged")
    log = auth.server.log_text()
    assert f"{auth.tokens_file}:{original.count(chr(10)) + 3}: tokens[{len(TOKEN_SCOPES)}].sha256" in log
    assert auth.get("/v1/exports/countries.csv", token).status_code == 200
    assert auth.get("/metrics", auth.tokens["admin"]).status_code == 200
    assert auth.server.proc.poll() is None
    auth.tokens_file.write_text(original, "utf-8")
    auth.server.signal(signal.SIGHUP)
    wait_until(lambda: auth.get("/v1/exports/countries.csv", token).status_code == 401,
               timeout=10, message="the removed token is refused")


def test_access_log_names_the_token_not_the_secret(auth):
    request_id = auth.get("/v1/jobs", auth.tokens["jobs"]).headers["X-Request-Id"]
    wait_until(lambda: f"id={request_id}" in auth.server.log_text(), timeout=5, message="logged")
    line = next(line for line in auth.server.log_text().splitlines() if f"id={request_id}" in line)
    assert line.endswith(" token=jobs"), line
    assert auth.tokens["jobs"] not in auth.server.log_text()


def test_non_loopback_listen_needs_auth(tmp_path):
    config = tmp_path / "open.toml"
    config.write_text('[server]\nlisten = "127.0.0.1:0"\n', "utf-8")
    result = run_sluice("serve", "--config", str(config), "--listen", "0.0.0.0:0", timeout=30)
    assert result.returncode == 1
    assert b"without an [auth] section" in result.stderr
    # On purpose: [auth] with every scope anonymous.
    config.write_text('[server]\nlisten = "127.0.0.1:0"\n[auth]\nanonymous_scopes = ["*"]\n',
                      "utf-8")
    server = serve(config, tmp_path / "open.log", "--listen", "0.0.0.0:0")
    try:
        assert requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).status_code == 200
    finally:
        stop_and_check(server)
    # Loopback without [auth]: open, with one warning line.
    config.write_text('[server]\nlisten = "127.0.0.1:0"\n', "utf-8")
    server = serve(config, tmp_path / "loop.log")
    try:
        assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 200
        assert "no [auth] section" in server.log_text()
    finally:
        stop_and_check(server)
