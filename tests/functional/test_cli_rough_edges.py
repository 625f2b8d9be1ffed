"""What a new user hit (issue 14): `sluice export`'s progress line, format by suffix, --columns /
--order / --limit / --version, unknown datasets listing the known ones, PostgREST-style values,
repeated parameters, check-config reporting every problem, and /v1/datasets without "order": ""."""

from __future__ import annotations

import gzip
import json
import os
import pty
import re
import select
import subprocess
import time

import pytest
import requests

from support.demo import config_for, sqlite_rows
from support.http import assert_json_error
from support.server import run_sluice, sluice_bin

PROGRESS = re.compile(rb"\r[\d,]+ rows  [\d.]+ [kMGT]?B  [\d.]+ [kMGT]?B/s  \d+:\d\d\x1b\[K")


def export_args(demo, *args: str) -> list[str]:
    return ["export", "orders", "--config", str(demo.config), *args]


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------

def run_on_a_terminal(args: list[str], timeout: float = 240) -> tuple[int, bytes]:
    """Runs sluice with stderr on a pseudo-terminal (stdout to /dev/null); returns its exit code
    and every byte it wrote to the terminal."""
    controller, terminal = pty.openpty()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen([sluice_bin(), *args], stdin=subprocess.DEVNULL, stdout=null,
                                stderr=terminal)
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    return proc.wait(timeout=30), seen


def test_export_draws_progress_on_a_terminal_and_ends_with_a_summary(demo, tmp_path):
    target = tmp_path / "all.csv"
    start = time.monotonic()
    code, seen = run_on_a_terminal(export_args(demo, "-o", str(target)))
    took = time.monotonic() - start
    assert code == 0, seen.decode(errors="replace")
    assert target.stat().st_size > 100_000_000
    drawings = PROGRESS.findall(seen)
    assert drawings, seen[:500]
    # At most ~4 redraws a second (one per 250 ms interval).
    assert len(drawings) <= took * 4 + 1, (len(drawings), took)
    rows = [int(d[1:].split(b" ")[0].replace(b",", b"")) for d in drawings]
    assert rows == sorted(rows) and rows[-1] <= demo.rows
    # The line is erased, then the summary follows on a line of its own (the pty adds CR).
    tail = seen[seen.rindex(b"\x1b[K") + 3:]
    assert re.fullmatch(rb"exported 2000000 rows, \d+ bytes in [\d.]+ s \([\d.]+ [kMG]?B/s\)\r?\n",
                        tail), seen[-300:]


def test_export_without_a_terminal_or_with_quiet_draws_nothing(demo, tmp_path):
    target = tmp_path / "all.csv"
    result = run_sluice(*export_args(demo, "-o", str(target)), timeout=240)
    assert result.returncode == 0, result.stderr
    assert b"\r" not in result.stderr and b"\x1b" not in result.stderr, result.stderr[:300]
    assert re.fullmatch(rb"exported 2000000 rows, \d+ bytes in [\d.]+ s \([^)]*\)\n", result.stderr)
    code, seen = run_on_a_terminal(export_args(demo, "--quiet", "-o", str(target)))
    assert code == 0 and seen == b"", seen[:300]


# --------------------------------------------------------------------------------------------
# Format by suffix, --columns / --order / --limit, --version, unknown datasets
# --------------------------------------------------------------------------------------------

def test_output_suffix_chooses_format_and_compression(demo, tmp_path):
    target = tmp_path / "orders.jsonl.gz"
    result = run_sluice(*export_args(demo, "--filter", "id.lte=5", "-o", str(target)))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in gzip.decompress(target.read_bytes()).splitlines()]
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5]
    target = tmp_path / "orders.tsv"
    assert run_sluice(*export_args(demo, "--limit", "2", "-o", str(target))).returncode == 0
    assert target.read_text().startswith("id\tcreated_at\t")
    # A --format the suffix contradicts is refused, naming both; nothing is written.
    target = tmp_path / "x.jsonl.gz"
    result = run_sluice(*export_args(demo, "--format", "csv", "-o", str(target)))
    assert result.returncode != 0
    message = result.stderr.decode()
    assert "--format csv" in message and "x.jsonl.gz" in message and ".jsonl" in message, message
    assert not target.exists() and not (tmp_path / "x.jsonl.gz.partial").exists()
    # The same format as the suffix is fine.
    assert run_sluice(*export_args(demo, "--format", "jsonl", "--limit", "1",
                                   "-o", str(target))).returncode == 0


def test_columns_order_and_limit_flags(demo):
    result = run_sluice(*export_args(demo, "--columns", "id,country", "--order", "country,-id",
                                     "--limit", "3", "--filter", "country=DE", "--lf"))
    assert result.returncode == 0, result.stderr
    expected = sqlite_rows(demo.db, "SELECT id, country FROM orders WHERE country = 'DE' "
                                    "ORDER BY id DESC LIMIT 3")
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "id,country"
    assert [tuple(line.split(",")) for line in lines[1:]] == [(str(i), c) for i, c in expected]
    # --limit and a --filter limit= are the same parameter: given twice.
    twice = run_sluice(*export_args(demo, "--limit", "1", "--filter", "limit=2"))
    assert twice.returncode != 0 and b"'limit' is given more than once" in twice.stderr


def test_version(demo):
    result = run_sluice("--version")
    assert result.returncode == 0, result.stderr
    assert re.match(rb"sluice \d+\.\d+\.\d+ \(.*Boost 1\.81.*SQLite 3\.", result.stdout), result.stdout


def test_unknown_dataset_lists_the_known_ones(demo, server):
    result = run_sluice("export", "ordrs", "--config", str(demo.config))
    assert result.returncode != 0
    assert b"no dataset named 'ordrs'; available: orders, orders_big" in result.stderr, result.stderr
    response = requests.get(f"{demo.url}/v1/exports/ordrs.csv", timeout=30)
    error = assert_json_error(response, 404, "unknown_dataset", mentions=["ordrs", "orders"])
    known = [d["name"] for d in requests.get(f"{demo.url}/v1/datasets", timeout=30).json()["datasets"]]
    assert error["datasets"] == known and "orders" in known


# --------------------------------------------------------------------------------------------
# PostgREST-style values and repeated parameters (HTTP)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, hint", [
    ("country=in.(DE,FR)", "country=DE,FR"),
    ("status=eq.paid", "status=paid"),
    ("id=gte.5", "id.gte=5"),
    ("id=neq.5", "id.ne=5"),
    ("country=not.eq.DE", "no 'not' operator"),
])
def test_postgrest_value_is_400_with_the_sluice_form(demo, server, query, hint):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?{query}", timeout=30)
    assert_json_error(response, 400, "postgrest_syntax", mentions=[query.split("=")[0], hint])


def test_value_that_only_looks_like_postgrest_is_taken_literally_with_an_operator(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?status.eq=in.transit", timeout=30)
    assert response.status_code == 200 and response.text.startswith("id,"), response.text[:300]
    response = requests.get(f"{demo.url}/v1/exports/orders.csv?status.in=eq.x,paid&limit=1",
                            timeout=30)
    assert response.status_code == 200 and response.text.count("\r\n") == 2, response.text[:300]


@pytest.mark.parametrize("params, name", [
    ([("country", "DE"), ("country.eq", "FR")], "country.eq"),
    ([("country", "DE"), ("country", "FR")], "country"),
    ([("country.in", "DE"), ("country", "FR")], "country"),
    ([("id.gte", "5"), ("id.gte", "6")], "id.gte"),
    ([("limit", "1"), ("limit", "2")], "limit"),
    ([("columns", "id"), ("columns", "email")], "columns"),
    ([("order", "id"), ("order", "-id")], "order"),
    ([("header", "false"), ("header", "false")], "header"),
    ([("delimiter", ";"), ("delimiter", "|")], "delimiter"),
])
def test_repeated_parameter_is_400_duplicate_parameter(demo, server, params, name):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv", params=params, timeout=30)
    assert_json_error(response, 400, "duplicate_parameter", mentions=[f"'{name}'"])


def test_a_range_on_one_filter_is_not_a_duplicate(demo, server):
    response = requests.get(f"{demo.url}/v1/exports/orders.csv",
                            params=[("id.gte", "5"), ("id.lt", "8"), ("columns", "id")], timeout=30)
    assert response.status_code == 200, response.text[:300]
    assert response.text.split("\r\n")[1:-1] == ["5", "6", "7"]


# --------------------------------------------------------------------------------------------
# check-config and /v1/datasets
# --------------------------------------------------------------------------------------------

def test_check_config_reports_every_problem(demo, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(config_for(demo).replace('listen = "127.0.0.1:0"', 'listn = "127.0.0.1:0"')
                      + '\n[[datasets]]\nname = "renamed"\nsource = "demo"\n'
                        'query = "SELECT id, email FROM orders"\nsortabel = ["id"]\n'
                        '[datasets.columns.id]\nrename = "id,no"\n'
                        '[datasets.columns.email]\nrename = "-mail"\n', "utf-8")
    result = run_sluice("check-config", str(config))
    assert result.returncode != 0
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 4, lines
    assert all(re.match(re.escape(f"sluice: {config}:") + r"\d+: ", line) for line in lines), lines
    assert "server.listn: unknown key" in lines[0] and 'did you mean "listen"?' in lines[0]
    assert 'sortabel: unknown key' in lines[1] and 'did you mean "sortable"?' in lines[1]
    # (the columns of one table come in key order)
    assert any('columns.id.rename: "id,no" contains a comma' in line for line in lines[2:])
    assert any('columns.email.rename: "-mail" starts with \'-\'' in line for line in lines[2:])


def test_datasets_leave_out_an_order_they_do_not_have(start_server):
    server = start_server(datasets='\n[[datasets]]\nname = "ordered"\nsource = "demo"\n'
                                   'query = "SELECT id, country FROM orders"\n'
                                   'sortable = ["id"]\norder = "-id"\n')
    datasets = {d["name"]: d for d in
                requests.get(f"{server.url}/v1/datasets", timeout=30).json()["datasets"]}
    assert datasets["ordered"]["order"] == "-id"
    assert "order" not in datasets["orders"] and "order" not in datasets["orders_big"]
