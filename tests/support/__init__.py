"""The one copy of what the functional suites share (tests/functional, tests/postgres,
tests/archives), imported by package path, e.g. `from support.http import raw_get`:

    server.py    the sluice binary, the SluiceServer process wrapper, stop_and_check
    http.py      a raw HTTP/1.1 client over a socket, chunked decoding, assert_json_error
    metrics.py   GET /metrics into a dict, wait_until, wait_for_metric
    csv.py       strict CSV parsing (NULL apart from ""), the formula guard
    digests.py   SHA-256 of bytes and of files
    demo.py      the `sluice demo` orders database as the baseline (tests/functional)
    pg.py        the private PostgreSQL cluster and its test data (tests/postgres)
    archives.py  the object store and the ZIP reader matrix (tests/archives)

Fixtures live in conftest.py files: tests/conftest.py (start_sluice) and one per suite.
"""
