#!/usr/bin/python3
"""Server memory of 1,000 concurrent subscribers to one job's events (SSE, optionally WebSocket).

Target: 1,000 concurrent SSE subscribers cost <= 64 MiB of server memory in all.

Each round starts a fresh `sluice serve` on a small demo (--rows, default 200,000; 22 MiB) with a
config of its own (bench/jobs_common.py): [queue] SQLite in the run folder, workers = 1,
progress_interval_ms = --progress-ms (200), other keys default; [storage] local in the run
folder. The job: {"dataset": --dataset (orders_big = 50 x orders, 10M rows here), "format":
"csv", "compression": --compression (gzip)}, i.e. an export of several seconds with a small
result. /proc/PID/status (VmRSS, VmHWM) and /proc/PID/stat (CPU) are sampled every 50 ms
throughout.

  1. idle: the fresh server, 1 s after it listens (median of the samples);
  2. solo (unless --skip-solo): the same job with nobody listening, polled every 200 ms: the
     RSS while it runs is what the export itself costs (median and max of the samples between
     started_at and finished_at);
  3. the measured job, submitted with run_at = now + --delay s so that it stays queued while
     --subscribers clients connect to GET /v1/jobs/{id}/events (raw asyncio sockets, HTTP/1.1,
     chunked SSE decoded by hand; --connect-concurrency connects in flight; RLIMIT_NOFILE raised
     to its hard limit). Every subscriber reads every byte it is sent and records each event's
     id, type and arrival time. Samples: "subscribed, queued" (all connected and each has its
     `queued` event, until started_at) and "subscribed, running" (from the moment every
     subscriber has `started` and >= --min-progress `progress` events until finished_at; if the
     job ends before that moment the round is flagged SHORT: give it more rows);
  4. the job ends: every subscriber must have received `succeeded`, its ids strictly increasing,
     each (id, type) as in the queue's own event log (read-only from the queue's SQLite file) and
     every event of the log that is not `progress` (a subscriber may miss superseded progress
     events, never a state), and the stream must have ended properly (the last chunk of the
     chunked body; for WebSocket a close frame). Fan-out of the final event: arrival times at
     the subscribers minus the job's finished_at (ms precision, same host clock), and first to
     last arrival.
  5. after: the subscribers closed; RSS 1 s later and the server's open connections.

Memory figures: delta = max VmRSS while "subscribed, running" - idle (the brief's definition; it
includes the export's own memory, shown by the solo run), per subscriber = delta / subscribers,
and subscribers only = median VmRSS "subscribed, running" - median VmRSS of the solo run; VmHWM
at the end - idle. Target: delta <= 64 MiB.

--transport ws (or both) does the same with WebSocket subscribers on the same URL (python3
websockets 10.4, asyncio; messages {"id", "event", "data"}); with both, each round runs the two
on separate fresh servers, the order swapping every round.

    bench/jobs_sse.py [--rounds 3] [--subscribers 1000] [--rows 200000] [--dataset orders_big]
                      [--limit N] [--transport sse|ws|both] [--delay 10] [--work /tmp/sluice-bench]
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402
import jobs_common as jc  # noqa: E402

TARGET_MIB = 64
KIB = 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """(time.time(), VmRSS KiB, VmHWM KiB, CPU s) of a process every `interval` s."""

    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples = []
        self.halt = threading.Event()

    def sample(self):
        status = common.proc_status(self.pid)
        cpu = common.proc_cpu_seconds(self.pid)
        return (time.time(), status["VmRSS"], status["VmHWM"], cpu)

    def run(self):
        while not self.halt.is_set():
            try:
                self.samples.append(self.sample())
            except (FileNotFoundError, ProcessLookupError, KeyError):
                return
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join(5)

    def window(self, start, end):
        return [s for s in list(self.samples) if start <= s[0] <= end]


def rss_of(samples, how):
    values = [s[1] for s in samples]
    if not values:
        return None
    return common.median(values) if how == "median" else max(values)


def cores(samples):
    """Average CPU cores used over a list of samples (first to last)."""
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return None
    return (samples[-1][3] - samples[0][3]) / (samples[-1][0] - samples[0][0])


class Subscriber:
    __slots__ = ("index", "events", "progress", "started", "final_at", "final_type", "ended",
                 "error", "connected_at", "first_event_at", "status")

    def __init__(self, index):
        self.index = index
        self.events = []  # (id, type)
        self.progress = 0
        self.started = False
        self.final_at = None
        self.final_type = None
        self.ended = False
        self.error = None
        self.connected_at = None
        self.first_event_at = None
        self.status = None

    def add(self, seq, kind, now):
        if self.first_event_at is None:
            self.first_event_at = now
        self.events.append((seq, kind))
        if kind == "progress":
            self.progress += 1
        elif kind == "started":
            self.started = True
        elif kind in jc.FINAL_EVENTS:
            self.final_at = now
            self.final_type = kind


class ChunkedSse:
    """Incremental decoder: HTTP/1.1 chunked framing (or a plain body), then SSE blocks."""

    def __init__(self, chunked):
        self.chunked = chunked
        self.raw = b""
        self.left = None  # bytes left in the current chunk; None: a size line is next
        self.crlf = False  # the CRLF after a chunk's data is next
        self.text = b""
        self.done = False  # the last chunk (size 0) arrived

    def feed(self, data):
        if self.chunked:
            self.raw += data
            while not self.done:
                if self.crlf:
                    if len(self.raw) < 2:
                        break
                    if self.raw[:2] != b"\r\n":
                        raise ValueError(f"bad chunk framing: {self.raw[:20]!r}")
                    self.raw = self.raw[2:]
                    self.crlf = False
                elif self.left is None:
                    end = self.raw.find(b"\r\n")
                    if end < 0:
                        break
                    size = int(self.raw[:end].split(b";")[0], 16)
                    self.raw = self.raw[end + 2:]
                    if size == 0:
                        self.done = True
                    else:
                        self.left = size
                else:
                    take = self.raw[:self.left]
                    self.raw = self.raw[len(take):]
                    self.text += take
                    self.left -= len(take)
                    if self.left == 0:
                        self.left = None
                        self.crlf = True
                    elif not self.raw:
                        break
        else:
            self.text += data
        events = []
        while True:
            end = self.text.find(b"\n\n")
            if end < 0:
                break
            block, self.text = self.text[:end], self.text[end + 2:]
            fields = {}
            for line in block.decode().split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            if "event" in fields:
                events.append((int(fields.get("id", "0")), fields["event"]))
        return events


async def sse_client(sub, host, port, path, gate):
    writer = None
    try:
        async with gate:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 60)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "Accept: text/event-stream\r\nUser-Agent: jobs_sse\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        sub.connected_at = time.time()
        sub.status = int(head.split(b" ", 2)[1])
        if sub.status != 200:
            sub.error = f"HTTP {sub.status}"
            return
        parser = ChunkedSse(b"transfer-encoding: chunked" in head.lower())
        while not parser.done:
            data = await reader.read(65536)
            if not data:
                break
            now = time.time()
            for seq, kind in parser.feed(data):
                sub.add(seq, kind, now)
        sub.ended = parser.done or (not parser.chunked and sub.final_type is not None)
    except Exception as error:  # noqa: BLE001 - recorded per subscriber, reported in the summary
        sub.error = f"{type(error).__name__}: {error}"
    finally:
        if writer is not None:
            writer.close()


async def ws_client(sub, host, port, path, gate):
    import websockets  # python3-websockets 10.4
    ws = None
    try:
        async with gate:
            ws = await websockets.connect(f"ws://{host}:{port}{path}", open_timeout=60,
                                          ping_interval=None, close_timeout=10, compression=None,
                                          max_size=1 << 20)
        sub.connected_at = time.time()
        sub.status = 101
        async for message in ws:
            now = time.time()
            event = json.loads(message)
            sub.add(int(event["id"]), event["event"], now)
        sub.ended = ws.close_code == 1000
        if not sub.ended:
            sub.error = f"closed with code {ws.close_code}"
    except Exception as error:  # noqa: BLE001
        sub.error = f"{type(error).__name__}: {error}"
    finally:
        if ws is not None:
            await ws.close()


async def drive(subs, server, job_id, transport, args, marks):
    gate = asyncio.Semaphore(args.connect_concurrency)
    client = sse_client if transport == "sse" else ws_client
    path = f"/v1/jobs/{job_id}/events"
    tasks = [asyncio.create_task(client(s, server.host, server.port, path, gate)) for s in subs]
    deadline = time.monotonic() + args.timeout
    next_log = time.monotonic() + 2
    n = len(subs)
    while True:
        await asyncio.sleep(0.05)
        now = time.time()
        alive = [s for s in subs if s.error is None]
        if "connected" not in marks and all(s.first_event_at or s.error for s in subs):
            marks["connected"] = now
        if "ready" not in marks and all((s.started and s.progress >= args.min_progress) or s.error
                                        or s.final_type for s in subs):
            marks["ready"] = now
        if time.monotonic() >= next_log:
            next_log += 2
            common.log(f"  {transport}: connected {sum(s.connected_at is not None for s in subs)}/{n}"
                       f", started {sum(s.started for s in subs)}, >= {args.min_progress} progress "
                       f"{sum(s.progress >= args.min_progress for s in subs)}, final "
                       f"{sum(s.final_type is not None for s in subs)}, errors {n - len(alive)}")
        if all(t.done() for t in tasks):
            break
        if time.monotonic() > deadline:
            marks["timeout"] = now
            for t in tasks:
                t.cancel()
            break
    await asyncio.gather(*tasks, return_exceptions=True)


def verify(subs, log):
    """Per subscriber: the problems with what it received, against the queue's event log."""
    types = dict(log)
    required = [seq for seq, kind in log if kind != "progress"]
    problems = {}
    for sub in subs:
        found = []
        if sub.error:
            found.append(sub.error)
        seqs = [seq for seq, _ in sub.events]
        if any(b <= a for a, b in zip(seqs, seqs[1:])):
            found.append(f"ids not strictly increasing: {seqs[:20]}")
        wrong = [(seq, kind, types.get(seq)) for seq, kind in sub.events if types.get(seq) != kind]
        if wrong:
            found.append(f"events not in the log (id, got, log): {wrong[:3]}")
        missing = sorted(set(required) - set(seqs))
        if missing:
            found.append(f"missing ids {missing[:10]} ({[types[m] for m in missing[:10]]})")
        if sub.final_type != "succeeded":
            found.append(f"final event {sub.final_type}")
        if not sub.ended and not sub.error:
            found.append("the stream did not end properly")
        if found:
            problems[sub.index] = found
    return problems


def subscriber_wave(server, sampler, queue_db, storage, body, transport, args):
    """One measured job with args.subscribers subscribers; returns what was seen."""
    subs = [Subscriber(i) for i in range(args.subscribers)]
    out = {"before": rss_of(sampler.window(time.time() - 0.3, time.time()), "median")}
    run_at = int((time.time() + args.delay) * 1000)
    job = jc.post_job(server, {**body, "run_at": run_at})
    if job["state"] != "queued":
        raise RuntimeError(f"the measured job is {job['state']}, not queued")
    job_id = job["id"]
    marks = {"submitted": time.time()}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(drive(subs, server, job_id, transport, args, marks))
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    out["client_cpu"] = (usage_after.ru_utime + usage_after.ru_stime
                         - usage.ru_utime - usage.ru_stime)
    job = jc.get_job(server, job_id)
    log = jc.queue_events(queue_db, job_id)
    jc.remove_result(storage, job_id)
    time.sleep(1.0)
    out["after"] = rss_of(sampler.window(time.time() - 0.5, time.time()), "median")
    out["hwm"] = sampler.samples[-1][2]
    out["open_connections_after"] = int(server.metrics().get("sluice_open_connections", -1))

    started, finished = jc.instant(job.get("started_at")), jc.instant(job.get("finished_at"))
    out["job"] = job
    out["marks"] = marks
    out["state"] = job["state"]
    out["run"] = (finished - started) if started and finished else None
    out["event_log"] = log
    if started and "connected" in marks and marks["connected"] < started:
        window = sampler.window(marks["connected"] + 0.2, started)
        out["queued_rss"] = rss_of(window, "median")
        out["queued_cores"] = cores(window)
    if "ready" in marks and finished:
        window = sampler.window(marks["ready"], finished)
        out["running_rss_median"] = rss_of(window, "median")
        out["running_rss_max"] = rss_of(window, "max")
        out["running_cores"] = cores(window)
        out["running_samples"] = len(window)
        out["short"] = len(window) < 5 or marks["ready"] >= finished
    else:
        out["short"] = True
    out["running_all_cores"] = cores(sampler.window(started or 0, finished or 0))
    out["problems"] = verify(subs, log)
    finals = sorted(s.final_at for s in subs if s.final_at is not None and s.final_type == "succeeded")
    out["received_final"] = len(finals)
    if finals and finished:
        lags = [(t - finished) * 1000 for t in finals]
        out["fanout"] = {"first": lags[0], "median": common.median(lags),
                         "p90": common.percentile(lags, 90), "last": lags[-1],
                         "spread": (finals[-1] - finals[0]) * 1000}
    out["progress_received"] = [s.progress for s in subs]
    out["progress_in_log"] = sum(1 for _, kind in log if kind == "progress")
    out["connect_s"] = (max(s.connected_at for s in subs if s.connected_at) - marks["submitted"]
                        if any(s.connected_at for s in subs) else None)
    return out


def one_round(sluice, folder, args, transport, round_index, work):
    """A fresh server: idle, the solo job, then --waves subscriber waves. Returns the first wave's
    figures (with idle, solo, server exit) and every wave's in out["waves"]."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"jobs-sse-{transport}-", dir=work))
    storage = run_dir / "objects"
    datasets = list(dict.fromkeys(["orders", args.dataset]))
    config, queue_db = jc.write_config(run_dir, folder, datasets, storage, workers=1,
                                       queue_extra={"progress_interval_ms": args.progress_ms})
    log_file = work / f"jobs-sse-{transport}-{round_index + 1}.server.log"
    body = {"dataset": args.dataset, "format": "csv", "compression": args.compression}
    if args.limit:
        body["limit"] = args.limit
    head = {"transport": transport, "round": round_index + 1, "log": log_file,
            "load_before": jc.load()}
    waves = []
    try:
        with common.Server(sluice, ["serve", "--config", str(config)], log_file=log_file) as server:
            sampler = Sampler(server.pid)
            sampler.start()
            time.sleep(1.0)
            head["idle"] = rss_of(sampler.window(time.time() - 0.5, time.time()), "median")

            if not args.skip_solo:
                job = jc.post_job(server, body)
                while job["state"] not in jc.FINAL_EVENTS:
                    time.sleep(0.2)
                    job = jc.get_job(server, job["id"])
                if job["state"] != "succeeded":
                    raise RuntimeError(f"solo job ended {job['state']}: {job.get('error')}")
                started, finished = jc.instant(job["started_at"]), jc.instant(job["finished_at"])
                window = sampler.window(started, finished)
                head["solo"] = {"run": finished - started, "rss_median": rss_of(window, "median"),
                                "rss_max": rss_of(window, "max"), "cores": cores(window),
                                "rows": job["result"]["rows"], "size": job["result"]["size"]}
                jc.remove_result(storage, job["id"])
                time.sleep(0.5)

            for wave in range(args.waves):
                if wave:
                    common.log(f"  wave {wave + 1}/{args.waves}")
                waves.append(subscriber_wave(server, sampler, queue_db, storage, body, transport,
                                             args))
            sampler.stop()
            alive = server.proc.poll() is None
            head["exit"] = server.stop()
            head["crashed"] = not alive
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    out = {**waves[0], **head}
    out["waves"] = waves
    return out


def mib(kib):
    return kib / KIB


def report(out, n):
    print()
    idle = out["idle"]
    m = out["marks"]
    print(f"## {out['transport']} round {out['round']}: {n} subscribers; load before "
          f"{out['load_before']}; server log {out['log']}")
    rows = [["idle (fresh server)", f"{mib(idle):.1f}", "-", "-", "-"]]
    if "solo" in out:
        s = out["solo"]
        rows.append(["solo job running, no subscribers", f"{mib(s['rss_median']):.1f}",
                     f"{mib(s['rss_max']):.1f}", f"{mib(s['rss_max'] - idle):+.1f}",
                     f"{s['cores']:.2f}" if s["cores"] is not None else "-"])
    rows.append(["before subscribing (job queued)", f"{mib(out['before']):.1f}", "-",
                 f"{mib(out['before'] - idle):+.1f}", "-"])
    if out.get("queued_rss"):
        rows.append(["subscribed, job queued", f"{mib(out['queued_rss']):.1f}", "-",
                     f"{mib(out['queued_rss'] - idle):+.1f}",
                     f"{out['queued_cores']:.2f}" if out.get("queued_cores") is not None else "-"])
    if out.get("running_rss_median"):
        rows.append(["subscribed, job running (all ready)", f"{mib(out['running_rss_median']):.1f}",
                     f"{mib(out['running_rss_max']):.1f}",
                     f"{mib(out['running_rss_max'] - idle):+.1f}",
                     f"{out['running_cores']:.2f}" if out.get("running_cores") is not None else "-"])
    rows.append(["VmHWM at the end", "-", f"{mib(out['hwm']):.1f}", f"{mib(out['hwm'] - idle):+.1f}",
                 "-"])
    rows.append(["after the subscribers left", f"{mib(out['after']):.1f}", "-",
                 f"{mib(out['after'] - idle):+.1f}", "-"])
    print(common.table(["server", "VmRSS MiB (median)", "max", "max - idle", "CPU cores"], rows))
    job = out["job"]
    started = jc.instant(job.get("started_at"))
    timeline = []
    for key in ("connected", "ready", "timeout"):
        if key in m:
            timeline.append(f"{key} +{m[key] - m['submitted']:.2f} s")
    if started:
        timeline.append(f"started_at +{started - m['submitted']:.2f} s")
    if job.get("finished_at"):
        timeline.append(f"finished_at +{jc.instant(job['finished_at']) - m['submitted']:.2f} s")
    print(f"# timeline from the POST: {', '.join(timeline)}; last connect done "
          f"+{out['connect_s']:.2f} s" if out["connect_s"] is not None else "# no subscriber connected")
    print(f"# job: {out['state']}, run {out['run']:.2f} s" if out["run"] else f"# job: {out['state']}",
          end="")
    if job.get("result"):
        print(f", {job['result']['rows']} rows, {job['result']['size']} bytes", end="")
    running_cores = (f"{out['running_all_cores']:.2f}" if out["running_all_cores"] is not None
                     else "-")
    print(f"; event log: {len(out['event_log'])} events ({out['progress_in_log']} progress); "
          f"progress events received per subscriber: min {min(out['progress_received'])}, median "
          f"{common.median(out['progress_received']):.0f}, max {max(out['progress_received'])}; "
          f"server CPU cores from started_at to finished_at: {running_cores}")
    if "solo" in out:
        print(f"# solo job: run {out['solo']['run']:.2f} s, {out['solo']['rows']} rows, "
              f"{out['solo']['size']} bytes")
    print(f"# client (this script, one event loop) CPU {out['client_cpu']:.1f} s; server open "
          f"connections after {out['open_connections_after']} (the /metrics request counts); "
          f"server exit {out['exit']}")
    if out["short"]:
        print("# SHORT: the job ended before every subscriber had `started` and enough progress "
              "events (or too few samples): raise --rows/--limit")
    bad = out["problems"]
    print(f"# received `succeeded`: {out['received_final']}/{n}; subscribers with problems: "
          f"{len(bad)}")
    for index, found in list(bad.items())[:5]:
        print(f"#   subscriber {index}: {'; '.join(found)}")
    if out.get("fanout"):
        f = out["fanout"]
        print(f"# final event after finished_at: first +{f['first']:.0f} ms, median "
              f"+{f['median']:.0f} ms, p90 +{f['p90']:.0f} ms, last +{f['last']:.0f} ms "
              f"(first to last {f['spread']:.0f} ms)")
    if out["crashed"]:
        print("# THE SERVER HAD EXITED before it was stopped: see its log")
    if len(out["waves"]) > 1:
        rows = []
        for number, wave in enumerate(out["waves"], 1):
            fan = wave.get("fanout")
            rows.append([number, f"{mib(wave['before']):.1f}",
                         f"{mib(wave['running_rss_max']):.1f}" if wave.get("running_rss_max") else "-",
                         f"{mib(wave['after']):.1f}", f"{mib(wave['hwm']):.1f}",
                         f"{wave['run']:.2f}" if wave["run"] else "-",
                         f"{fan['last']:.0f}" if fan else "-",
                         f"{wave['received_final']}/{n}", len(wave["problems"]),
                         "SHORT" if wave["short"] else ""])
        print(common.table(["wave", "RSS before", "max running", "after", "VmHWM", "job run s",
                            "final last +ms", "succeeded", "problems", ""], rows))
        growth = out["waves"][-1]["after"] - out["waves"][0]["after"]
        print(f"# RSS after the last wave - after the first: {mib(growth):+.1f} MiB over "
              f"{len(out['waves']) - 1} more wave(s) of {n} subscribers")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on fresh servers")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=200_000, help="demo size (default 200,000)")
    parser.add_argument("--dataset", default="orders_big",
                        help="the job's dataset (default orders_big: 50 x --rows rows)")
    parser.add_argument("--limit", type=int, default=None, help="the job's row limit")
    parser.add_argument("--compression", default="gzip", choices=["none", "gzip", "zstd"])
    parser.add_argument("--transport", default="sse", choices=["sse", "ws", "both"])
    parser.add_argument("--progress-ms", type=int, default=200, help="[queue] progress_interval_ms")
    parser.add_argument("--min-progress", type=int, default=3,
                        help="progress events every subscriber must have before RSS is taken")
    parser.add_argument("--delay", type=float, default=10.0,
                        help="the measured job's run_at, seconds after its POST (connect window)")
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--skip-solo", action="store_true", help="no solo run of the job")
    parser.add_argument("--waves", type=int, default=1,
                        help="subscriber waves per server (each a new job and new subscribers): "
                        "RSS after each shows whether memory comes back or grows")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per subscriber phase")
    parser.add_argument("--work", default=str(common.DEFAULT_WORK))
    parser.add_argument("--bin", default=None, help="sluice binary (default $SLUICE_BIN, else "
                        "build/release/sluice); copied into WORK first")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.subscribers + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < want:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {want} needed for {args.subscribers} sockets")
    if args.transport in ("ws", "both"):
        try:
            import websockets  # noqa: F401
        except ImportError:
            sys.exit("--transport ws needs python3-websockets")

    work = Path(args.work)
    source_bin = common.binary(args.bin)
    sluice = jc.stage_binary(source_bin, work, "jobs-sse-sluice")
    folder = common.ensure_demo(sluice, args.rows, work)
    transports = ["sse", "ws"] if args.transport == "both" else [args.transport]
    n = args.subscribers

    print(f"# jobs_sse: {n} subscribers per job, {args.rounds} round(s), transports "
          f"{', '.join(transports)}; job {{dataset {args.dataset}, csv, compression "
          f"{args.compression}{', limit ' + str(args.limit) if args.limit else ''}}} on the "
          f"{args.rows}-row demo; [queue] sqlite, workers = 1, progress_interval_ms = "
          f"{args.progress_ms}; run_at +{args.delay:g} s; RSS sampled every 50 ms")
    print("# " + common.machine_line(source_bin) + f" (run from the copy {sluice}); client "
          f"RLIMIT_NOFILE {soft}")

    results = {t: [] for t in transports}
    for i in range(args.rounds):
        order = transports if i % 2 == 0 else list(reversed(transports))
        for transport in order:
            common.log(f"round {i + 1}/{args.rounds} {transport} (load {jc.load()})")
            out = one_round(sluice, folder, args, transport, i, work)
            results[transport].append(out)
            report(out, n)

    print()
    verdicts = []
    for transport in transports:
        outs = results[transport]
        valid = [o for o in outs if not o["short"] and o.get("running_rss_max")]
        deltas = [o["running_rss_max"] - o["idle"] for o in valid]
        sub_only = [o["running_rss_median"] - o["solo"]["rss_median"] for o in valid if "solo" in o]
        solo = [o["solo"]["rss_max"] - o["idle"] for o in outs if "solo" in o]
        hwm = [o["hwm"] - o["idle"] for o in outs]
        problems = sum(len(w["problems"]) for o in outs for w in o["waves"])
        received = [w["received_final"] for o in outs for w in o["waves"]]
        crashed = sum(1 for o in outs if o["crashed"])
        growth = [o["waves"][-1]["after"] - o["waves"][0]["after"] for o in outs
                  if len(o["waves"]) > 1]
        fanout_last = [o["fanout"]["last"] for o in outs if o.get("fanout")]
        fanout_spread = [o["fanout"]["spread"] for o in outs if o.get("fanout")]
        correct = problems == 0 and crashed == 0 and all(r == n for r in received) and all(
            w["state"] == "succeeded" for o in outs for w in o["waves"])
        if not deltas:
            verdict = "INVALID (every round SHORT: raise --rows/--limit)"
            delta_text = "no valid round"
        else:
            delta = common.median(deltas)
            verdict = "PASS" if max(deltas) <= TARGET_MIB * KIB else "MISS"
            if not correct:
                verdict += ", but events FAILED"
            delta_text = (f"RSS +{mib(delta):.1f} MiB over the idle server (rounds "
                          f"{' '.join(f'{mib(d):+.1f}' for d in deltas)}; "
                          f"{delta / n:.1f} KiB per subscriber)")
            if solo:
                delta_text += f", of which the export alone +{mib(common.median(solo)):.1f} MiB"
            if sub_only:
                delta_text += (f"; subscribers only +{mib(common.median(sub_only)):.1f} MiB "
                               f"({common.median(sub_only) / n:.1f} KiB each)")
            runs = [(o["run"], o["solo"]["run"]) for o in valid if "solo" in o and o["run"]]
            if runs:
                delta_text += (f"; job run with subscribers / alone: "
                               f"{' '.join(f'{a:.2f}/{b:.2f} s' for a, b in runs)}")
            if growth:
                delta_text += (f"; RSS after the last of {args.waves} waves vs after the first "
                               f"{' '.join(f'{mib(g):+.1f}' for g in growth)} MiB")
            if crashed:
                delta_text += f"; THE SERVER CRASHED in {crashed} round(s)"
        print(f"RESULT jobs_sse {transport} {n} subscribers: {delta_text}; VmHWM "
              f"+{mib(common.median(hwm)):.1f} MiB; `succeeded` received "
              f"{'/'.join(str(r) for r in received)} of {n}, {problems} subscriber(s) with "
              f"missing/out-of-order events or errors; final event fan-out: last +"
              f"{common.median(fanout_last):.0f} ms after finished_at, first to last "
              f"{common.median(fanout_spread):.0f} ms (target <= {TARGET_MIB} MiB: {verdict})"
              if fanout_last else
              f"RESULT jobs_sse {transport} {n} subscribers: {delta_text}; no subscriber received "
              f"`succeeded` (target <= {TARGET_MIB} MiB: {verdict}; events FAILED)")
        verdicts.append(verdict)
    print(f"RESULT jobs_sse summary: {n} subscribers, {args.rounds} round(s): "
          + ", ".join(f"{t} {v}" for t, v in zip(transports, verdicts))
          + f" (target <= {TARGET_MIB} MiB in all); load average now {jc.load()}")
    if any("FAIL" in v or "INVALID" in v for v in verdicts):
        sys.exit(1)


if __name__ == "__main__":
    main()
