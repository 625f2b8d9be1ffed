#!/usr/bin/python3
"""Sluice vs the blog recipe's streaming export: Flask + psycopg2 server-side cursor + csv module
under gunicorn (bench/peers/flask_export.py), on the same PostgreSQL table.

1. Throughput on `orders_2m` (bench/pg_setup.py --rows 2000000 --table orders_2m), interleaved,
   --rounds rounds after one untimed pass each:
     sluice_csv     curl -s -o /dev/null http://127.0.0.1:P1/v1/exports/orders_2m.csv
     flask_row      curl ... http://127.0.0.1:P2/export/orders_2m.csv  (one chunk per row, as
                    the recipe does)
     flask_batch    curl ... ?batch=1000 (1000 rows per chunk; the recipe's best case)
   gunicorn: 2 sync workers, --timeout 900 (its default of 30 s would kill longer downloads, see 3).
   Server CPU: Sluice's /proc/PID/stat; gunicorn's master + workers summed the same way.
   Target: Sluice >= 10 x flask_row (median wall times).

2. Correctness on a small table `edge_values` (NULL vs '', numerics, floats, booleans, time
   zones, infinity, intervals, bytea, jsonb, arrays, uuid, CR / LF / CRLF in text): psql's
   `COPY (...) TO STDOUT (FORMAT csv, HEADER)` with Sluice's session settings is the reference;
   the Flask peer's and Sluice's CSV are parsed with a reader that tells an unquoted empty field
   (NULL) from a quoted one (''), and every cell that differs is listed. The Flask peer for this
   part runs with gunicorn's defaults and PGTZ=Europe/Berlin (a server configured in local time;
   the cluster's own TimeZone is reported). A second table `edge_crash` (3000 rows, row 2500
   dated 44 BC) shows what one value psycopg2 cannot convert does mid-stream.

3. Failures: the PostgreSQL backend of a running export is terminated (pg_terminate_backend)
   after --kill-after s, for Sluice and for the Flask peer, over HTTP/1.1 and HTTP/1.0; and the
   Flask peer under gunicorn's default --timeout (30 s) exports the 10M `orders` table. For each:
   curl's exit code, bytes, rows, and whether the file ends on a complete line.

    bench/pg_vs_flask.py [--rounds 3] [--table orders_2m] [--work DIR] [--skip-throughput]
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_common as pg  # noqa: E402

PEERS = pg.REPO / "bench" / "peers"
RUN_TIMEOUT = 900

# (label, {column: SQL literal}); columns not named are NULL. No value here makes psycopg2 raise.
EDGE_COLUMNS = [("t", "text"), ("n", "numeric"), ("f8", "float8"), ("f4", "real"),
                ("b", "boolean"), ("ts", "timestamptz"), ("tsn", "timestamp"), ("d", "date"),
                ("iv", "interval"), ("by", "bytea"), ("j", "jsonb"), ("arr", "int[]"),
                ("u", "uuid")]
EDGE_ROWS = [
    ("all NULL", {}),
    ("empty values", {"t": "''", "by": "'\\x'", "j": "'{}'", "arr": "'{}'"}),
    ("typical", {"t": "'plain'", "n": "12.50", "f8": "0.1", "f4": "0.1", "b": "true",
                 "ts": "'2024-03-01 12:00:00+00'", "tsn": "'2024-03-01 12:00:00'",
                 "d": "'2024-02-29'", "iv": "'1 day 02:00:00'", "by": "'\\x00ff'",
                 "j": "'{\"gift\": true, \"n\": 1.0}'", "arr": "'{1,NULL,3}'",
                 "u": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"}),
    ("summer time, whole float", {"t": "'NULL'", "n": "0.00000001", "f8": "1.0", "f4": "1.5",
                                  "b": "false", "ts": "'2024-06-01 12:00:00+02'",
                                  "tsn": "'2024-06-01 12:00:00'", "iv": "'1 mon'",
                                  "by": "'\\x0a0d2c22'", "j": "'[1, \"a,b\"]'"}),
    ("non-finite", {"t": "E'CRLF\\r\\ninside'", "n": "'NaN'", "f8": "'Infinity'",
                    "f4": "'-Infinity'", "ts": "'infinity'", "tsn": "'-infinity'",
                    "d": "'infinity'", "iv": "'-1 year -2 mons +3 days'"}),
    ("fractions", {"t": "E'LF\\ninside'", "n": "0.00000000", "f8": "'-0'", "f4": "3.4e38",
                   "ts": "'2024-01-02 03:04:05.5+00'", "tsn": "'2024-01-02 03:04:05.5'",
                   "iv": "'00:00:00.25'"}),
    ("big numbers", {"t": "E'lone CR\\rinside'", "n": "1e20", "f8": "1e300", "f4": "1e-40",
                     "ts": "'1900-01-01 00:00:00+00'", "d": "'1900-01-01'"}),
    ("text specials", {"t": "E'\\\\N'", "n": "-0.5", "f8": "123456789.123456789",
                       "ts": "'2024-12-24 23:59:59.999999+00'"}),
    ("quotes and commas", {"t": "' \"quoted\", with comma '", "n": "100", "f8": "5e-324"}),
]


# -- CSV parsing that keeps NULL ('' unquoted) apart from '' ("" quoted) -------------------------

def parse_csv(data):
    """(rows, record ends): rows of cells, None for an unquoted empty field; record ends is the
    set of terminators seen outside quotes ('CRLF', 'LF', 'CR')."""
    text = data.decode("utf-8", "replace")
    rows, row, field = [], [], []
    quoted = in_quotes = False
    ends = set()
    i, n = 0, len(text)

    def cell():
        value = "".join(field)
        return value if (value or quoted) else None

    while i < n:
        c = text[i]
        if in_quotes:
            if c == '"':
                if i + 1 < n and text[i + 1] == '"':
                    field.append('"')
                    i += 2
                    continue
                in_quotes = False
            else:
                field.append(c)
            i += 1
            continue
        if c == '"':
            in_quotes = quoted = True
        elif c == ",":
            row.append(cell())
            field, quoted = [], False
        elif c in "\r\n":
            if c == "\r" and i + 1 < n and text[i + 1] == "\n":
                ends.add("CRLF")
                i += 1
            else:
                ends.add("LF" if c == "\n" else "CR")
            row.append(cell())
            rows.append(row)
            row, field, quoted = [], [], False
        else:
            field.append(c)
        i += 1
    if field or row or quoted:
        row.append(cell())
        rows.append(row)
    return rows, ends


def show(value):
    if value is None:
        return "NULL"
    return repr(value)[1:-1] if value else "''"


# -- processes --------------------------------------------------------------------------------

class Gunicorn:
    """gunicorn serving bench/peers/flask_export.py on 127.0.0.1:<free port>."""

    def __init__(self, dsn, log_file, workers=2, timeout=None, extra_env=None):
        self.port = pg.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = ["/usr/bin/gunicorn", "--workers", str(workers), "--worker-class", "sync",
                "--bind", f"127.0.0.1:{self.port}", "--chdir", str(PEERS)]
        if timeout is not None:
            argv += ["--timeout", str(timeout)]
        argv.append("flask_export:app")
        self.log_path = Path(log_file)
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PG_DSN=dsn, **(extra_env or {}))
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=self._log, env=env,
                                     start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"gunicorn did not start; see {self.log_path}")
            if self.log_path.read_text(errors="replace").count("Booting worker") >= workers:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    pass
            time.sleep(0.1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def pids(self):
        out = [self.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        if int(stat.read().rsplit(")", 1)[1].split()[1]) == self.pid:
                            out.append(int(entry))
                except OSError:
                    pass
        return out

    def cpu_seconds(self):
        total = 0.0
        for pid in self.pids():
            try:
                total += pg.proc_cpu_seconds(pid)
            except OSError:
                pass
        return total

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def curl(url, out="/dev/null", http10=False, timeout=RUN_TIMEOUT):
    """Runs curl; (wall s, exit code, bytes, stderr)."""
    argv = ["curl", "-s", "-S", "-o", str(out), "-w", "%{size_download}", url]
    if http10:
        argv.insert(1, "--http1.0")
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, timeout=timeout)
    wall = time.perf_counter() - start
    return wall, proc.returncode, int(proc.stdout.decode() or 0), proc.stderr.decode().strip()


# -- 1. throughput ----------------------------------------------------------------------------

def throughput(args, cluster, server, flask, rows):
    urls = {"sluice_csv": f"{server.url}/v1/exports/{args.table}.csv",
            "flask_row": f"{flask.url}/export/{args.table}.csv",
            "flask_batch": f"{flask.url}/export/{args.table}.csv?batch=1000"}
    cpu = {"sluice_csv": server.cpu_seconds, "flask_row": flask.cpu_seconds,
           "flask_batch": flask.cpu_seconds}
    names = list(urls)
    sizes, results = {}, {k: [] for k in names}
    for name in names:
        pg.log(f"warm-up {name}")
        wall, rc, size, err = curl(urls[name])
        if rc != 0:
            sys.exit(f"{name}: curl exit {rc}: {err}")
        sizes[name] = size
    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            before_pg = cluster.cpu_snapshot()
            before = cpu[name]()
            wall, rc, size, err = curl(urls[name])
            server_cpu = cpu[name]() - before
            time.sleep(0.2)  # the Flask peer's connection (and so its backend) ends after curl
            backend = pg.postgres_cpu(before_pg, cluster.cpu_snapshot())
            if rc != 0 or size != sizes[name]:
                sys.exit(f"{name}: curl exit {rc}, {size} bytes (expected {sizes[name]}): {err}")
            results[name].append((wall, server_cpu, backend))
            pg.log(f"round {rnd + 1} {name:12s} {wall:7.2f} s  server CPU {server_cpu:6.2f} s"
                   f"  PostgreSQL CPU {backend:5.2f} s")
    base = pg.median([r[0] for r in results["sluice_csv"]])
    table_rows = []
    for name in names:
        walls = [r[0] for r in results[name]]
        w = pg.median(walls)
        table_rows.append([name, f"{w:.2f}", " ".join(f"{x:.1f}" for x in walls),
                           f"{sizes[name] / 1e6:,.1f}", f"{sizes[name] / 1e6 / w:.1f}",
                           f"{rows / w / 1e3:,.0f}", f"x{w / base:.1f}",
                           f"{pg.median([r[1] for r in results[name]]):.2f}",
                           f"{pg.median([r[2] for r in results[name]]):.2f}"])
    print(f"\n1. throughput, {rows:,} rows of {args.table}, {args.rounds} rounds "
          f"(slower = median wall / Sluice's median wall)")
    print(pg.table(["variant", "median s", "runs s", "MB out", "MB/s", "krows/s", "slower",
                    "server CPU s", "PostgreSQL CPU s"], table_rows))
    ratio = pg.median([r[0] for r in results["flask_row"]]) / base
    per_round = " ".join(f"{f[0] / s[0]:.1f}"
                         for f, s in zip(results["flask_row"], results["sluice_csv"]))
    batch = pg.median([r[0] for r in results["flask_batch"]]) / base
    return [f"RESULT pg_vs_flask throughput: Sluice x{ratio:.1f} of Flask per-row (rounds "
            f"{per_round}), x{batch:.1f} of Flask batched (target >= 10 x per-row) "
            f"{'PASS' if ratio >= 10 else 'MISS'}"]


# -- 2. correctness ---------------------------------------------------------------------------

def create_edge_tables(cluster):
    cols = ", ".join(f"{c} {t}" for c, t in EDGE_COLUMNS)
    values = []
    for i, (label, vals) in enumerate(EDGE_ROWS, 1):
        cells = [str(i), "'" + label.replace("'", "''") + "'"]
        cells += [f"{vals[c]}::{t}" if c in vals else "NULL" for c, t in EDGE_COLUMNS]
        values.append("(" + ", ".join(cells) + ")")
    cluster.psql(f"""
DROP TABLE IF EXISTS edge_values, edge_crash;
CREATE TABLE edge_values (id int PRIMARY KEY, label text, {cols});
INSERT INTO edge_values VALUES {", ".join(values)};
CREATE TABLE edge_crash AS
  SELECT g AS id, CASE WHEN g = 2500 THEN date '0044-03-15 BC'
                       ELSE date '2024-01-01' + (g % 365) END AS day,
         'row ' || g AS note
  FROM generate_series(1, 3000) AS g;
""")


def correctness(cluster, server, flask_local):
    create_edge_tables(cluster)
    tz = cluster.scalar("SHOW TimeZone")
    ref_raw = cluster.psql("COPY (SELECT * FROM edge_values ORDER BY id) TO STDOUT "
                           "(FORMAT csv, HEADER)")
    _, rc_f, _, err_f = curl(f"{flask_local.url}/export/edge_values.csv",
                             out=server.work / "edge_flask.csv")
    flask_raw = (server.work / "edge_flask.csv").read_bytes()
    _, rc_s, _, err_s = curl(f"{server.url}/v1/exports/edge_values.csv",
                             out=server.work / "edge_sluice.csv")
    sluice_raw = (server.work / "edge_sluice.csv").read_bytes()
    ref, ref_ends = parse_csv(ref_raw)
    flask, flask_ends = parse_csv(flask_raw)
    sluice, sluice_ends = parse_csv(sluice_raw)
    header = ref[0]
    by_id = lambda rows: {r[0]: r for r in rows[1:] if r}  # noqa: E731
    ref_rows, flask_rows, sluice_rows = by_id(ref), by_id(flask), by_id(sluice)
    diffs = []
    sluice_diffs = 0
    for key, row in ref_rows.items():
        f_row = flask_rows.get(key, [])
        s_row = sluice_rows.get(key, [])
        for j, name in enumerate(header):
            want = row[j]
            got_f = f_row[j] if j < len(f_row) else "<missing>"
            got_s = s_row[j] if j < len(s_row) else "<missing>"
            if got_s != want:
                sluice_diffs += 1
            if got_f != want or got_s != want:
                diffs.append([row[1], name, show(want), show(got_f),
                              "same" if got_s == want else show(got_s)])
    print(f"\n2. correctness: edge_values ({len(ref_rows)} rows x {len(header)} columns); "
          f"reference = psql COPY csv with TimeZone=UTC; cluster TimeZone {tz}; "
          f"Flask peer with PGTZ=Europe/Berlin")
    print(f"   record ends: psql {sorted(ref_ends)}, Flask {sorted(flask_ends)}, "
          f"Sluice {sorted(sluice_ends)}; curl exit: Flask {rc_f} {err_f}, Sluice {rc_s} {err_s}")
    print(pg.table(["row", "column", "psql COPY csv", "Flask + psycopg2 + csv", "Sluice"], diffs))
    flask_cells = sum(1 for d in diffs if d[3] != d[2])
    lines = [f"RESULT pg_vs_flask correctness: Flask differs from psql in {flask_cells} of "
             f"{len(ref_rows) * len(header)} cells, Sluice in {sluice_diffs}"]

    # one value psycopg2 cannot convert, in the middle of a longer export
    _, rc, size, err = curl(f"{flask_local.url}/export/edge_crash.csv",
                            out=server.work / "crash_flask.csv")
    data = (server.work / "crash_flask.csv").read_bytes()
    got, _ = parse_csv(data)
    _, rc_s, size_s, err_s = curl(f"{server.url}/v1/exports/edge_crash.csv",
                                  out=server.work / "crash_sluice.csv")
    got_s, _ = parse_csv((server.work / "crash_sluice.csv").read_bytes())
    bc = [r for r in got_s if len(r) > 1 and r[0] == "2500"]
    line_end = data.endswith(b"\n")
    print(f"\n   edge_crash (3000 rows, row 2500 dated 44 BC): Flask: curl exit {rc} ({err}), "
          f"{size} bytes, {max(len(got) - 1, 0)} data rows, ends with a line end: "
          f"{line_end}; Sluice: curl exit {rc_s}, {len(got_s) - 1} data rows, "
          f"row 2500 = {bc[0][1] if bc else None!r}")
    lines.append(f"RESULT pg_vs_flask crash: a 44 BC date ends the Flask export after "
                 f"{max(len(got) - 1, 0)} of 3000 rows (curl exit {rc}); Sluice "
                 f"{len(got_s) - 1} rows, exit {rc_s}")
    return lines


# -- 3. failures ------------------------------------------------------------------------------

def terminate_backend(cluster, app_pattern, after, url, out, http10):
    """Starts curl, terminates the export's backend after `after` s; (rc, err, bytes, rows,
    ends_with_line_end, rows the table has)."""
    argv = ["curl", "-s", "-S", "-o", str(out), "-w", "%{size_download}", url]
    if http10:
        argv.insert(1, "--http1.0")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(after)
    conn = psycopg2.connect(cluster.conninfo())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name LIKE %s AND pid <> pg_backend_pid() "
                    "AND state <> 'idle'", (app_pattern,))
        killed = cur.fetchall()
    conn.close()
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    data = Path(out).read_bytes() if Path(out).exists() else b""
    rows = data.count(b"\n")  # record ends (plus a few LFs inside quoted notes)
    Path(out).unlink(missing_ok=True)
    return (proc.returncode, stderr.decode().strip(), len(data), rows,
            data.endswith(b"\n"), len(killed))


def failures(args, cluster, server, flask, flask_default):
    rows_out, lines = [], []
    for http10 in (False, True):
        for name, url, pattern, after in (
                ("Sluice", f"{server.url}/v1/exports/orders.csv", "sluice %", args.kill_after),
                ("Flask", f"{flask.url}/export/orders.csv", "flask_export", args.kill_after)):
            rc, err, size, lf, line_end, killed = terminate_backend(
                cluster, pattern, after, url, server.work / "killed.csv", http10)
            proto = "HTTP/1.0" if http10 else "HTTP/1.1"
            rows_out.append([f"{name} {proto}", f"backend terminated after {after:.1f} s "
                             f"({killed} killed)", rc, err[:60] or "-", f"{size:,}", f"{lf:,}",
                             line_end])
            lines.append(f"RESULT pg_vs_flask failure {name} {proto}: curl exit {rc} "
                         f"{'(error reported)' if rc else '(LOOKS COMPLETE)'}")
            time.sleep(1)
    # gunicorn's default timeout: a sync worker busy with one response is killed after 30 s
    wall, rc, size, err = curl(f"{flask_default.url}/export/orders.csv", timeout=180)
    rows_out.append(["Flask, gunicorn defaults", "10M-row export, no fault injected", rc,
                     err[:60] or "-", f"{size:,}", "-", "-"])
    lines.append(f"RESULT pg_vs_flask gunicorn default timeout: export of orders ended after "
                 f"{wall:.0f} s, {size / 1e6:.0f} MB, curl exit {rc}")
    log_text = flask_default.log_path.read_text(errors="replace")
    print("\n3. failures mid-stream (curl -s -S -o FILE)")
    print(pg.table(["server", "fault", "curl exit", "curl error", "bytes", "LF", "ends on LF"],
                   rows_out))
    print(f"   gunicorn (defaults) log: {log_text.count('WORKER TIMEOUT')} x 'WORKER TIMEOUT'")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    pg.cluster_args(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--table", default="orders_2m")
    parser.add_argument("--kill-after", type=float, default=1.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-failures", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    sluice = pg.stage_binary(work, args.bin)
    cluster = pg.Cluster(work).ensure_running()
    rows = cluster.table_rows(args.table)
    if rows is None:
        sys.exit(f"table {args.table} missing: bench/pg_setup.py --rows 2000000 --table {args.table}")
    if not args.skip_failures and cluster.table_rows("orders") is None:
        sys.exit("table orders missing (the failure tests use it): bench/pg_setup.py")
    create_edge_tables(cluster)
    config = pg.write_config(work / "flask.toml", cluster,
                             {args.table: ("auto", args.table), "orders": ("auto", "orders")})
    with open(config, "a") as f:
        for name in ("edge_values", "edge_crash"):
            f.write(f'[[datasets]]\nname = "{name}"\nsource = "pg_auto"\n'
                    f'query = "SELECT * FROM {name} ORDER BY id"\n\n')
    print(pg.machine_line(sluice))
    print(f"gunicorn {subprocess.run(['/usr/bin/gunicorn', '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"Flask peer bench/peers/flask_export.py, psycopg2 {psycopg2.__version__}")
    lines = []
    with pg.start_sluice(sluice, config, work / "flask.sluice.log") as server:
        server.work = work
        with Gunicorn(cluster.conninfo(), work / "gunicorn.log", timeout=900) as flask:
            if not args.skip_throughput:
                lines += throughput(args, cluster, server, flask, rows)
            with Gunicorn(cluster.conninfo(), work / "gunicorn-defaults.log",
                          extra_env={"PGTZ": "Europe/Berlin"}) as flask_default:
                lines += correctness(cluster, server, flask_default)
                if not args.skip_failures:
                    lines += failures(args, cluster, server, flask, flask_default)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("\n".join(lines))
    if args.stop_cluster:
        cluster.stop()


if __name__ == "__main__":
    main()
