"""PostgreSQL errors as clients and operators see them: statement timeouts, errors raised while
the query runs, and queries that do not prepare when the config is checked."""

from __future__ import annotations

import time

import requests

from support.http import assert_json_error
from support.pg import ALL_TYPES_FILTERS, ALL_TYPES_QUERY, dataset_toml, source_toml
from support.server import run_sluice


def errors_config(pg) -> str:
    return ("[server]\n\n"
            + source_toml("pg", pg)
            + source_toml("strict", pg, statement_timeout_ms=200)
            + dataset_toml("sleepy", "strict", "SELECT pg_sleep(2) AS slept")
            + dataset_toml("strict_types", "strict", ALL_TYPES_QUERY)
            + dataset_toml("divzero", "pg", "SELECT id, 1 / (id - id) AS x FROM t")
            + dataset_toml("late_divzero", "pg",
                           "SELECT g, 1 / (g - 500000) AS x "
                           "FROM (SELECT generate_series(1, 1000000) AS g) AS s")
            + dataset_toml("bad_cast", "pg", "SELECT v::int AS n FROM t")
            + dataset_toml("types", "pg", ALL_TYPES_QUERY, ALL_TYPES_FILTERS))


def test_statement_timeout_is_503_query_timeout_and_the_server_keeps_serving(
        pg_up, start_sluice):
    server = start_sluice(errors_config(pg_up))
    for attempt in range(3):  # the connection the timeout hit stays usable, or is replaced
        started = time.monotonic()
        response = requests.get(f"{server.url}/v1/exports/sleepy.csv", timeout=10)
        elapsed = time.monotonic() - started
        error = assert_json_error(response, 503, "query_timeout", sqlstate="57014")
        assert elapsed < 1.5, f"attempt {attempt}: answered after {elapsed:.2f} s"
        assert error["request_id"] == response.headers["X-Request-Id"]
    # Same source, a fast query: served; and the other source too.
    for dataset in ("strict_types", "types"):
        ok = requests.get(f"{server.url}/v1/exports/{dataset}.jsonl", params={"limit": "5"},
                          timeout=10)
        assert ok.status_code == 200, ok.text[:300]
        assert ok.content.count(b"\n") == 5
    assert server.metrics()["sluice_active_streams"] == 0


def test_runtime_division_by_zero_is_400_with_sqlstate_22012(pg_up, start_sluice):
    server = start_sluice(errors_config(pg_up))
    for fmt in ("csv", "jsonl"):
        response = requests.get(f"{server.url}/v1/exports/divzero.{fmt}", timeout=10)
        assert_json_error(response, 400, sqlstate="22012")
    response = requests.get(f"{server.url}/v1/exports/bad_cast.csv", timeout=10)
    assert_json_error(response, 400, sqlstate="22P02")
    ok = requests.get(f"{server.url}/v1/exports/types.csv", params={"id": "2"}, timeout=10)
    assert ok.status_code == 200 and ok.content.count(b"\r\n") == 2


def test_error_after_rows_went_out_ends_the_body_without_the_final_chunk(pg_up, start_sluice):
    """Division by zero at row 500000 of 1000000: the first rows are already sent."""
    server = start_sluice(errors_config(pg_up))
    response = requests.get(f"{server.url}/v1/exports/late_divzero.csv", stream=True, timeout=10)
    assert response.status_code == 200
    body = b""
    failed = False
    try:
        for chunk in response.iter_content(65536):
            body += chunk
    except requests.exceptions.ChunkedEncodingError:
        failed = True
    assert failed, f"the failed export looked complete ({len(body)} bytes)"
    assert body.startswith(b"g,x\r\n1,0\r\n")
    assert b"\r\n500001," not in body
    ok = requests.get(f"{server.url}/v1/exports/types.csv", params={"id": "2"}, timeout=10)
    assert ok.status_code == 200


def test_check_config_names_the_dataset_line_of_an_unknown_table(pg_up, tmp_path):
    text = ("[server]\n\n" + source_toml("pg", pg_up)
            + dataset_toml("fine", "pg", "SELECT * FROM t")
            + dataset_toml("ghost", "pg", "SELECT * FROM no_such_table"))
    config = tmp_path / "ghost.toml"
    config.write_text(text, "utf-8")
    lines = text.splitlines()
    dataset_line = [i for i, line in enumerate(lines, 1) if line == "[[datasets]]"][1]
    assert lines[dataset_line] == 'name = "ghost"'
    result = run_sluice("check-config", str(config))
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, (result.returncode, stderr)
    assert f"{config}:{dataset_line}: datasets[1].query:" in stderr, stderr
    assert "no_such_table" in stderr, stderr

    config.write_text(("[server]\n\n" + source_toml("pg", pg_up)
                       + dataset_toml("fine", "pg", "SELECT * FROM t")), "utf-8")
    good = run_sluice("check-config", str(config))
    assert good.returncode == 0, good.stderr.decode(errors="replace")
