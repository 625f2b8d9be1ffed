"""The two readers of a COPY's rows give the same bytes: Sluice's own (PgCopyStream, off the
socket, used on plain connections) and libpq's (used on TLS/GSS connections; forced here with
SLUICE_PG_COPY_VIA_LIBPQ=1). Both against psql's own CSV, for each copy_format, with rows larger
than the 64 KiB read buffer, notices raised between rows, and an error midway (the transfer is
cut, never ends as if whole). `sluice_pg_copies_total{reader=...}` says which reader ran."""

from __future__ import annotations

import os
import time
import uuid

import pytest
import requests

from support.http import raw_get
from support.metrics import wait_until
from support.pg import ALL_TYPES_QUERY, ENDLESS_QUERY, dataset_toml, source_toml
from support.server import serve, stop_and_check

# Rows of 0 B to ~200 KB: several are larger than the read buffer, some straddle its end.
WIDE_QUERY = ("SELECT g AS id, repeat(chr(65 + g % 26), (g * 7919) % 200000) AS pad, "
              "'ü,\"x\"' || g AS tail FROM generate_series(1, 300) AS g ORDER BY g")
NOTICE_FUNCTION = """
CREATE OR REPLACE FUNCTION noisy(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF n % 50 = 0 THEN RAISE NOTICE 'row % passes', n; END IF;
  RETURN n;
END $$;
"""
NOISY_QUERY = "SELECT noisy(g) AS n, md5(g::text) AS h FROM generate_series(1, 2000) AS g ORDER BY g"
FAILING_QUERY = ("SELECT g, 1000 / (150000 - g) AS q, repeat('y', 40) AS pad "
                 "FROM generate_series(1, 200000) AS g")


def config(pg, copy_format: str) -> str:
    source = source_toml("pg", pg).replace(
        "statement_timeout_ms = 0\n", f'statement_timeout_ms = 0\ncopy_format = "{copy_format}"\n')
    return ("[server]\n\n" + source + dataset_toml("types", "pg", ALL_TYPES_QUERY)
            + dataset_toml("wide", "pg", WIDE_QUERY) + dataset_toml("noisy", "pg", NOISY_QUERY)
            + dataset_toml("failing", "pg", FAILING_QUERY)
            + dataset_toml("endless", "pg", ENDLESS_QUERY))


@pytest.fixture
def servers(pg_up, tmp_path):
    """{(copy_format, reader): server} for copy_format auto/text/csv × reader socket/libpq."""
    pg_up.psql(NOTICE_FUNCTION)
    started = {}
    try:
        for copy_format in ("auto", "text", "csv"):
            path = tmp_path / f"{copy_format}.toml"
            path.write_text(config(pg_up, copy_format), "utf-8")
            for reader in ("socket", "libpq"):
                env = dict(os.environ)
                env.pop("SLUICE_PG_COPY_VIA_LIBPQ", None)
                if reader == "libpq":
                    env["SLUICE_PG_COPY_VIA_LIBPQ"] = "1"
                started[(copy_format, reader)] = serve(
                    path, tmp_path / f"{copy_format}-{reader}.log", "--listen", "127.0.0.1:0",
                    env=env)
        yield started
    finally:
        for server in started.values():
            stop_and_check(server)


@pytest.mark.parametrize("dataset,query", [("wide", WIDE_QUERY), ("noisy", NOISY_QUERY)])
def test_both_readers_give_psqls_bytes(servers, pg_up, dataset, query):
    expected = pg_up.copy_csv(query)
    # Sluice ends records with CRLF, psql with LF; no value here holds a line end.
    assert b"\r" not in expected
    expected_crlf = expected.replace(b"\n", b"\r\n")
    for (copy_format, reader), server in servers.items():
        response = requests.get(f"{server.url}/v1/exports/{dataset}.csv",
                                timeout=120)
        assert response.status_code == 200, (copy_format, reader, response.text[:300])
        assert response.content == expected_crlf, (copy_format, reader)
    assert len(expected_crlf) > 15_000_000 or dataset == "noisy"


def test_types_are_the_same_through_both_readers(servers):
    for copy_format in ("auto", "text", "csv"):
        socket_body = requests.get(f"{servers[(copy_format, 'socket')].url}/v1/exports/types.csv",
                                   timeout=60)
        libpq_body = requests.get(f"{servers[(copy_format, 'libpq')].url}/v1/exports/types.csv",
                                  timeout=60)
        assert socket_body.status_code == libpq_body.status_code == 200
        assert socket_body.content == libpq_body.content, copy_format
        assert socket_body.content.count(b"\r\n") > 3


def test_which_reader_ran_is_counted(servers):
    for (copy_format, reader), server in servers.items():
        before = server.metrics()
        response = requests.get(f"{server.url}/v1/exports/noisy.csv", timeout=60)
        assert response.status_code == 200
        after = server.metrics()
        other = "libpq" if reader == "socket" else "socket"
        key = 'sluice_pg_copies_total{reader="%s"}'
        assert after[key % reader] == before.get(key % reader, 0) + 1, (copy_format, reader)
        assert after.get(key % other, 0) == before.get(key % other, 0), (copy_format, reader)


def test_an_error_midway_cuts_the_transfer_in_both_readers(servers):
    for (copy_format, reader), server in servers.items():
        with requests.get(f"{server.url}/v1/exports/failing.csv", stream=True,
                          timeout=60) as response:
            assert response.status_code == 200, (copy_format, reader)
            received = bytearray()
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                for chunk in response.iter_content(65536):
                    received += chunk
        lines = bytes(received).split(b"\r\n")
        # Every complete row before the failing one arrived, in order, and nothing after it.
        complete = [line for line in lines[1:-1] if line]
        assert len(complete) >= 1000, (copy_format, reader, len(complete))
        assert all(int(line.split(b",")[0]) == n for n, line in enumerate(complete, 1))
        assert int(complete[-1].split(b",")[0]) < 150000
        server.assert_alive()
        # The connection that failed is not reused in a broken state: the next export is whole.
        again = requests.get(f"{server.url}/v1/exports/noisy.csv", timeout=60)
        assert again.status_code == 200 and again.content.count(b"\r\n") == 2001


def test_a_client_leaving_cancels_the_query_in_both_readers(servers, pg_up):
    """Also while the socket reader sleeps for rows to gather: the sleep is cancelled with the
    stream, and the backend stops within a second."""
    for (copy_format, reader), server in servers.items():
        request_id = f"reader-{reader}-{copy_format}-{uuid.uuid4().hex[:8]}"
        response = raw_get(server.port, "/v1/exports/endless.csv",
                           headers={"X-Request-Id": request_id}, rcvbuf=65536)
        assert response.status == 200
        received = len(response.buffered)
        while received < 1 << 20:
            chunk = response.sock.recv(65536)
            assert chunk, "the endless export ended"
            received += len(chunk)

        def states() -> str:
            return pg_up.scalar("SELECT coalesce(string_agg(state, ','), '') FROM pg_stat_activity "
                                f"WHERE application_name = 'sluice {request_id}'")

        assert states() == "active", (copy_format, reader)
        response.close()
        closed_at = time.monotonic()
        wait_until(lambda: "active" not in states(), timeout=1.0,
                   message=f"{copy_format}/{reader}: the backend still runs 1 s after the client left")
        assert time.monotonic() - closed_at <= 1.0
        wait_until(lambda: server.metrics()["sluice_active_streams"] == 0, timeout=2,
                   message="the stream is still counted as active")
