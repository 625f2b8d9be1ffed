#!/usr/bin/python3
"""A background job's export into the local store against the streaming export of the same data.

Target: a job's export to the local folder runs at >= 0.9x the streaming export of the same data
(ratio = streaming wall time / job wall time, both for the whole export).

One `sluice serve` on the --rows demo (default 20M rows, 1.7 GB of CSV; --quick 2M) with a
config of its own in WORK/jobs-export-<rows>-XXXX/: the demo's `orders` dataset,
[storage] kind = "local" (WORK/jobs-export-.../objects, or under --storage), [queue] SQLite in
the run folder with workers = 1 and every other key at its default. For each format (csv, and
csv.gz = compression gzip) and each of --rounds interleaved rounds (the order of the two swaps
every round):

  stream  `curl -s -S --fail http://HOST/v1/exports/orders.csv[.gz] -o /dev/null`, wall clock
          of the curl process;
  job     from just before POST /v1/jobs {"dataset": "orders", "format": "csv"[, "compression":
          "gzip"]} until the client read the job's final event on /v1/jobs/{id}/events (SSE,
          opened right after the 202; the default, --wait sse) or saw it in GET /v1/jobs/{id}
          polled every --poll-ms (--wait poll). Also from the job's JSON: run = finished_at -
          started_at (the worker's export, with the fsync and rename of the result), wait =
          started_at - created_at (queueing), notify = the client's clock when it saw the end -
          finished_at (ms precision; same host, same clock).

Before timing, one untimed pass per format (it also warms the page cache): the streamed body
and the job's stored file are hashed; csv must be byte-identical (size and SHA-256), csv.gz must
decompress to identical bytes (the compressed sizes differ by a few hundred bytes: the streaming
compressor flushes whenever the database has nothing ready, so where the flushes fall depends on
timing); the stored file must match the job's own `size` and `sha256`. Every timed job must end
`succeeded` with every row (and for csv the same size); every timed stream HTTP 200 (csv: the same
size). Results are deleted from the run's store after each job (a 20M-row CSV is 1.7 GB).

Prints per format and kind the times in run order, median, min, max, spread ((max - min) /
median), MB/s (of the CSV, also for csv.gz), server CPU per export, the per-round ratios and
RESULT lines; the load average before each run.

    bench/jobs_export.py [--rounds 5] [--rows 20000000 | --quick] [--formats csv,csv.gz]
                         [--wait sse|poll] [--storage DIR] [--work /tmp/sluice-bench]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402
import jobs_common as jc  # noqa: E402

TARGET = 0.9
RUN_TIMEOUT = 1800  # seconds for one export
FORMATS = {"csv": ("csv", "none"), "csv.gz": ("csv", "gzip")}


def run_stream(server, name, expected_size):
    url = f"{server.url}/v1/exports/orders.{name}"
    cpu = server.cpu_seconds()
    start = time.perf_counter()
    proc = subprocess.run(["curl", "-s", "-S", "--fail", url, "-o", "/dev/null",
                           "-w", "%{size_download} %{http_code}"],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    wall = time.perf_counter() - start
    cpu = server.cpu_seconds() - cpu
    size, code = (proc.stdout.split() + ["0", "000"])[:2]
    if proc.returncode != 0 or code != "200":
        raise RuntimeError(f"curl {url}: exit {proc.returncode}, HTTP {code}: {proc.stderr[:300]}")
    if expected_size is not None and int(size) != expected_size:
        raise RuntimeError(f"curl {url}: {size} bytes, expected {expected_size}")
    return {"wall": wall, "cpu": cpu, "size": int(size)}


def run_job(server, name, rows, expected_size, args, storage):
    fmt, compression = FORMATS[name]
    body = {"dataset": "orders", "format": fmt}
    if compression != "none":
        body["compression"] = compression
    cpu = server.cpu_seconds()
    start = time.perf_counter()
    job = jc.post_job(server, body)
    if args.wait == "sse":
        end, end_wall, events = jc.wait_sse(server, job["id"], RUN_TIMEOUT)
    else:
        end, end_wall, events = jc.wait_poll(server, job["id"], RUN_TIMEOUT, args.poll_ms / 1000)
    wall = end - start
    cpu = server.cpu_seconds() - cpu
    job = jc.get_job(server, job["id"])
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job['id']} ended {job['state']}: {job.get('error')}")
    result = job["result"]
    if result["rows"] != rows:
        raise RuntimeError(f"job {job['id']}: {result['rows']} rows, expected {rows}")
    if expected_size is not None and result["size"] != expected_size:
        raise RuntimeError(f"job {job['id']}: {result['size']} bytes, expected {expected_size}")
    started, finished = jc.instant(job["started_at"]), jc.instant(job["finished_at"])
    return {"wall": wall, "cpu": cpu, "size": result["size"], "job": job,
            "run": finished - started, "wait": started - jc.instant(job["created_at"]),
            "notify": end_wall - finished, "attempt": job["attempt"],
            "progress_events": sum(1 for e in events if e[1] == "progress")}


def verify(server, name, rows, args, storage):
    """The untimed pass: streamed body and stored result hashed and compared."""
    gz = FORMATS[name][1] == "gzip"
    stream = jc.digest_stream(["curl", "-s", "-S", "--fail",
                               f"{server.url}/v1/exports/orders.{name}"], gz, RUN_TIMEOUT)
    job = run_job(server, name, rows, None, args, storage)["job"]
    path = jc.result_path(storage, job)
    stored = jc.digest_file(path, gz)
    jc.remove_result(storage, job["id"])
    problems = []
    result = job["result"]
    if stored["size"] != result["size"] or stored["sha256"] != result["sha256"]:
        problems.append(f"the stored file ({stored['size']} bytes, sha256 "
                        f"{stored['sha256'][:16]}) is not what the job reports "
                        f"({result['size']}, {result['sha256'][:16]})")
    if stored["plain_sha256"] != stream["plain_sha256"] or \
            stored["plain_size"] != stream["plain_size"]:
        problems.append(f"{'decompressed ' if gz else ''}content differs: stream "
                        f"{stream['plain_size']} bytes sha256 {stream['plain_sha256'][:16]}, "
                        f"job {stored['plain_size']} bytes {stored['plain_sha256'][:16]}")
    if result["rows"] != rows:
        problems.append(f"the job exported {result['rows']} rows, the demo has {rows}")
    if not gz and stream["size"] != result["size"]:
        problems.append(f"sizes differ: stream {stream['size']}, job {result['size']}")
    return {"stream": stream, "stored": stored, "job": job, "problems": problems}


def fmt_list(values, digits=2):
    return " ".join(f"{v:.{digits}f}" for v in values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--rows", type=int, default=None, help="demo size (default 20M, 2M quick)")
    parser.add_argument("--quick", action="store_true", help="the 2M-row demo")
    parser.add_argument("--formats", default="csv,csv.gz",
                        help="comma-separated: csv, csv.gz (default csv,csv.gz)")
    parser.add_argument("--wait", choices=["sse", "poll"], default="sse",
                        help="how the client learns that the job ended (default sse)")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="poll interval for --wait poll")
    parser.add_argument("--storage", default=None,
                        help="parent folder of the job store (default: the run folder in WORK); "
                        "e.g. /dev/shm to take the disk (and fsync) out of the comparison")
    parser.add_argument("--work", default=str(common.DEFAULT_WORK))
    parser.add_argument("--bin", default=None, help="sluice binary (default $SLUICE_BIN, else "
                        "build/release/sluice); copied into WORK first")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (config, queue)")
    args = parser.parse_args()
    rows = args.rows or (2_000_000 if args.quick else 20_000_000)
    rounds = max(1, min(args.rounds, 50))
    names = [n for n in args.formats.split(",") if n]
    if not names or any(n not in FORMATS for n in names):
        parser.error(f"--formats: a comma-separated list of {', '.join(FORMATS)}")

    work = Path(args.work)
    source_bin = common.binary(args.bin)
    sluice = jc.stage_binary(source_bin, work, "jobs-export-sluice")
    folder = common.ensure_demo(sluice, rows, work)
    run_dir = Path(tempfile.mkdtemp(prefix=f"jobs-export-{rows}-", dir=work))
    storage = (Path(args.storage) / run_dir.name) if args.storage else run_dir / "objects"
    config, _ = jc.write_config(run_dir, folder, ["orders"], storage, workers=1)
    log_file = work / f"jobs-export-{rows}.server.log"

    print(f"# jobs_export: {rows} rows, {rounds} interleaved rounds, formats {', '.join(names)}; "
          f"orders.db {(folder / 'orders.db').stat().st_size / common.MIB:.0f} MiB")
    print("# " + common.machine_line(source_bin) + f" (run from the copy {sluice})")
    print(f"# config {config}: [queue] sqlite, workers = 1, other keys default; [storage] local "
          f"{storage} ({jc.filesystem_type(storage)})")
    print(f"# stream: curl -s -S --fail URL -o /dev/null; job: POST /v1/jobs -> final event, "
          f"waited for by {'SSE (/v1/jobs/{id}/events)' if args.wait == 'sse' else f'polling GET /v1/jobs/{{id}} every {args.poll_ms:g} ms'}")
    print(f"# server log: {log_file}")

    times = {n: {"stream": [], "job": []} for n in names}
    loads = []
    checks = {}
    failure = None
    try:
        with common.Server(sluice, ["serve", "--config", str(config)], log_file=log_file) as server:
            status, _, _ = jc.request(server, "GET", "/v1/jobs?limit=1")
            if status != 200:
                sys.exit(f"GET /v1/jobs: HTTP {status}: is this a build with background jobs?")
            for name in names:
                common.log(f"{name}: untimed pass (hashing the stream and the stored result)...")
                try:
                    checks[name] = verify(server, name, rows, args, storage)
                except (RuntimeError, OSError) as error:
                    checks[name] = {"problems": [f"untimed pass: {error}"]}
                for problem in checks[name]["problems"]:
                    common.log(f"  {name}: {problem}")
            if any(c["problems"] for c in checks.values()):
                failure = "; ".join(f"{n}: {p}" for n, c in checks.items() for p in c["problems"])
            else:
                expected = {n: (checks[n]["stream"]["size"] if FORMATS[n][1] == "none" else None)
                            for n in names}
                for i in range(rounds):
                    for name in names:
                        order = ["stream", "job"] if i % 2 == 0 else ["job", "stream"]
                        for kind in order:
                            before = jc.load()
                            try:
                                if kind == "stream":
                                    run = run_stream(server, name, expected[name])
                                else:
                                    run = run_job(server, name, rows, expected[name], args,
                                                  storage)
                                    jc.remove_result(storage, run["job"]["id"])
                            except (RuntimeError, OSError) as error:
                                failure = f"round {i + 1} {name} {kind}: {error}"
                                break
                            loads.append(float(before.split()[0]))
                            times[name][kind].append(run)
                            extra = (f" (run {run['run']:.2f} s, wait {run['wait'] * 1000:.0f} ms, "
                                     f"notify {run['notify'] * 1000:.0f} ms)" if kind == "job" else "")
                            common.log(f"round {i + 1}/{rounds} {name} {kind}: {run['wall']:.2f} s"
                                       f"{extra}; load before {before}")
                        if failure:
                            break
                    if failure:
                        break
            exit_code = server.stop()
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
            if args.storage:
                shutil.rmtree(storage, ignore_errors=True)

    if failure:
        print(f"RESULT correctness: FAIL: {failure}")
        sys.exit(1)

    plain_size = {n: checks[n]["stream"]["plain_size"] for n in names}
    print(f"# untimed pass: " + "; ".join(
        f"{n}: stream {c['stream']['size']} bytes, job {c['job']['result']['size']} bytes"
        + (f" (both {c['stream']['plain_size']} bytes decompressed, identical)"
           if FORMATS[n][1] != "none" else " (identical bytes)")
        for n, c in checks.items()))
    shas = {c["stream"]["plain_sha256"] for c in checks.values()}
    if len(names) > 1:
        print(f"# all formats carry the same CSV: {'yes' if len(shas) == 1 else 'NO'}")
    print(f"# load average (1 min) before the runs: median {common.median(loads):.2f}, "
          f"min {min(loads):.2f}, max {max(loads):.2f}; now {jc.load()}; server exit {exit_code}")

    results = []
    for name in names:
        stream, job = times[name]["stream"], times[name]["job"]
        print()
        print(f"{name}: {rows} rows, {plain_size[name]} bytes of CSV"
              + (f", compressed: stream {fmt_list([r['size'] / 1e6 for r in stream], 1)} MB, "
                 f"job {fmt_list([r['size'] / 1e6 for r in job], 1)} MB"
                 if FORMATS[name][1] != "none" else ""))
        table = []

        def line(label, values, cpu=None, mbps=True):
            middle, low, high, spread = jc.summary(values)
            table.append([label, fmt_list(values), f"{middle:.3f}", f"{low:.3f}", f"{high:.3f}",
                          f"{spread:.0f}%", f"{plain_size[name] / middle / 1e6:.1f}" if mbps else "-",
                          f"{common.median(cpu):.2f}" if cpu else "-"])

        line("stream (curl)", [r["wall"] for r in stream], [r["cpu"] for r in stream])
        line("job: POST -> final event", [r["wall"] for r in job], [r["cpu"] for r in job])
        line("  job run (finished - started)", [r["run"] for r in job])
        line("  queue wait (started - created)", [r["wait"] for r in job], mbps=False)
        line("  notify (finished -> client)", [r["notify"] for r in job], mbps=False)
        print(common.table(["", "s (run order)", "median", "min", "max", "spread",
                            "MB/s", "server CPU s"], table))
        pairs = [s["wall"] / j["wall"] for s, j in zip(stream, job)]
        pairs_run = [s["wall"] / j["run"] for s, j in zip(stream, job)]
        ratio = common.median([r["wall"] for r in stream]) / common.median([r["wall"] for r in job])
        ratio_run = (common.median([r["wall"] for r in stream]) /
                     common.median([r["run"] for r in job]))
        attempts = sorted({r["attempt"] for r in job})
        print(f"# per-round stream/job: {fmt_list(pairs)} (median x{common.median(pairs):.3f}); "
              f"stream/job run: {fmt_list(pairs_run)}; job attempts {attempts}; progress events "
              f"seen per job {[r['progress_events'] for r in job] if args.wait == 'sse' else '-'}")
        verdict = "PASS" if ratio >= TARGET else "MISS"
        s_med = common.median([r["wall"] for r in stream])
        j_med = common.median([r["wall"] for r in job])
        results.append((name, ratio, verdict))
        print(f"RESULT jobs_export {name} {rows} rows: stream {s_med:.2f} s "
              f"({plain_size[name] / s_med / 1e6:.1f} MB/s) vs job {j_med:.2f} s POST->final event "
              f"({plain_size[name] / j_med / 1e6:.1f} MB/s; run "
              f"{common.median([r['run'] for r in job]):.2f} s, wait "
              f"{common.median([r['wait'] for r in job]) * 1000:.0f} ms, notify "
              f"{common.median([r['notify'] for r in job]) * 1000:.0f} ms): ratio stream/job "
              f"x{ratio:.3f} (per-round median x{common.median(pairs):.3f}; stream/job-run "
              f"x{ratio_run:.3f}) (target >= {TARGET}: {verdict})")
    print()
    overall = "PASS" if all(v == "PASS" for _, _, v in results) else "MISS"
    print(f"RESULT jobs_export summary: {rows} rows, {rounds} rounds, waited by {args.wait}: "
          + ", ".join(f"{n} x{r:.3f}" for n, r, _ in results)
          + f" stream/job (target >= {TARGET}: {overall}); load average median "
          f"{common.median(loads):.2f}")


if __name__ == "__main__":
    main()
