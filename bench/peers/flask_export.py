"""Benchmark peer: the "streaming data from API" export of the usual blog recipe, done with the
usual tools: a Flask generator over a psycopg2 server-side (named) cursor, one CSV line per row
written by Python's csv module, served by gunicorn (sync workers).

    PG_DSN="host=/tmp/sluice-pg-bench/pg port=5432 user=postgres dbname=bench" \
        gunicorn --workers 2 --worker-class sync --bind 127.0.0.1:8000 \
        --chdir bench/peers flask_export:app

GET /export/TABLE.csv streams `SELECT * FROM TABLE`. Query parameters (all optional):

- `batch=N`: yield N rows joined per chunk instead of one chunk per row (the recipe yields
  every row on its own);
- `mode=join`: the recipe's literal `yield f"{','.join(row)}\\n"` instead of the csv module.

It deliberately does no more than the recipe: psycopg2's default type conversion, str() of
whatever Python object arrives, no session settings. bench/pg_vs_flask.py measures it and
lists what it gets wrong.
"""

import csv
import itertools
import os
import re

import psycopg2
from flask import Flask, Response, abort, request

app = Flask(__name__)
DSN = os.environ.get("PG_DSN", "dbname=bench")
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class _Line:
    """A file-like object whose write() hands the line back to the csv writer's caller."""

    def write(self, line):
        return line


@app.route("/export/<name>.csv")
def export(name):
    if not TABLE_NAME.fullmatch(name):
        abort(404)
    batch = max(1, int(request.args.get("batch", "1")))
    mode = request.args.get("mode", "csv")

    def generate():
        conn = psycopg2.connect(DSN, application_name="flask_export")
        try:
            with conn.cursor(name="export") as cur:  # server-side: FETCH 2000 rows at a time
                cur.execute(f"SELECT * FROM {name}")
                rows = iter(cur)
                first = next(rows, None)  # a named cursor knows its columns after a FETCH
                if first is not None:
                    rows = itertools.chain([first], rows)
                if mode == "join":
                    for row in rows:
                        yield f"{','.join(row)}\n"
                    return
                writer = csv.writer(_Line())
                yield writer.writerow([column.name for column in cur.description])
                if batch == 1:
                    for row in rows:
                        yield writer.writerow(row)
                else:
                    lines = []
                    for row in rows:
                        lines.append(writer.writerow(row))
                        if len(lines) >= batch:
                            yield "".join(lines)
                            lines.clear()
                    if lines:
                        yield "".join(lines)
        finally:
            conn.close()

    return app.response_class(generate(), mimetype="text/csv",
                              headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
