#!/usr/bin/python3
"""Server memory while exporting: one fast full download, then 200 slow concurrent downloads.

(a) A fresh `sluice serve` on the 20M-row demo; one `curl -s .../v1/exports/orders.csv -o
    /dev/null` downloads every row while /proc/PID/status is polled (VmRSS every --poll s, VmHWM
    = the kernel's own peak of the resident set). Target: peak RSS (the larger of VmHWM and
    the highest polled VmRSS) <= 64 MiB.
    Peer in the same run: the peak RSS of `sqlite3 -csv orders.db "<same SELECT>" > /dev/null`
    (GNU time %M), i.e. what the database engine alone needs for the same scan.

(b) A fresh server on the --slow-rows demo (default 2M; orders_big = 50 x orders, so the export
    never ends within the test). 200 raw-socket clients, each with SO_RCVBUF set small before
    connect(), request /v1/exports/orders_big.csv and read at ~20 KB/s each (token bucket, one
    event loop). Once all 200 stream, they are held ~15 s while VmRSS is sampled:
        extra per stream = (median VmRSS while holding - VmRSS idle) / 200
    where idle is the freshly started server before any export (so nothing warmed up
    beforehand is hidden in the baseline). Target: <= 512 KiB per stream.
    Peer in the same run: the server's own per-stream budget (sluice_stream_budget_bytes).
    Afterwards the clients close, the server must report 0 active streams, and it is stopped
    with SIGTERM; its exit status is printed.

    bench/export_memory.py [--work /tmp/sluice-bench] [--rows 20000000] [--clients 200]
"""

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402

KIB = 1024
PEAK_TARGET_MIB = 64
PER_STREAM_TARGET_KIB = 512
DOWNLOAD_TIMEOUT = 900  # seconds for the single full download


def server_config(folder, override):
    return str(override) if override else str(folder / "sluice.toml")


def part_a(sluice, rows, work, poll, config=None):
    folder = common.ensure_demo(sluice, rows, work)
    db = folder / "orders.db"
    log_file = Path(work) / f"memory-a-{rows}.server.log"
    samples = []  # (seconds since start, VmRSS KiB)
    with common.Server(sluice, ["serve", "--config", server_config(folder, config)],
                       log_file=log_file) as server:
        time.sleep(0.3)
        idle = server.status()
        url = server.url + "/v1/exports/orders.csv"
        start = time.monotonic()
        curl = subprocess.Popen(["curl", "-s", "-S", "--fail", url, "-o", "/dev/null",
                                 "-w", "%{size_download} %{http_code}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while curl.poll() is None and time.monotonic() - start < DOWNLOAD_TIMEOUT:
            samples.append((time.monotonic() - start, server.status()["VmRSS"]))
            time.sleep(poll)
        if curl.poll() is None:
            curl.kill()
        out, err = curl.communicate(timeout=30)
        elapsed = time.monotonic() - start
        after = server.status()
        size, code = out.decode().split() if out else ("0", "000")
        if code != "200":
            raise RuntimeError(f"curl: HTTP {code} {err.decode()[:200]}")
        metrics = server.metrics()
        exit_code = server.stop()
    # The peer: sqlite3's own peak RSS for the same scan, from GNU time.
    peer = subprocess.run(["/usr/bin/time", "-f", "%M %e", "sh", "-c",
                           'exec sqlite3 -csv "$1" "$2" > /dev/null', "sh", str(db),
                           common.ORDERS_SQL],
                          capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT)
    peer_kib, peer_wall = peer.stderr.strip().splitlines()[-1].split()
    return {
        "rows": rows, "idle": idle, "after": after, "samples": samples, "elapsed": elapsed,
        "bytes": int(size), "metrics": metrics, "exit": exit_code, "log": log_file,
        "peer_kib": int(peer_kib), "peer_wall": float(peer_wall),
    }


class SlowClient:
    def __init__(self, index, host, port, rcvbuf, path):
        self.index = index
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect(), so the window scale and the advertised window are small from the SYN.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.sock.settimeout(10)
        self.sock.connect((host, port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                          "User-Agent: export_memory\r\n\r\n".encode())
        self.sock.setblocking(False)
        self.started = time.monotonic()
        self.received = 0
        self.head = b""
        self.status = None
        self.closed = False

    def allowed(self, now, rate):
        return int((now - self.started) * rate) + 4096 - self.received

    def read(self, limit):
        try:
            data = self.sock.recv(limit)
        except BlockingIOError:
            return
        except OSError:
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        if self.status is None:
            self.head += data
            if b"\r\n" in self.head:
                self.status = int(self.head.split(b" ", 2)[1])
        self.received += len(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def part_b(sluice, rows, work, clients, rate, hold, rcvbuf, tick, config=None):
    folder = common.ensure_demo(sluice, rows, work)
    log_file = Path(work) / f"memory-b-{rows}.server.log"
    with common.Server(sluice, ["serve", "--config", server_config(folder, config)],
                       log_file=log_file) as server:
        time.sleep(0.5)
        idle = server.status()
        budget = int(server.metrics().get("sluice_stream_budget_bytes", 0))
        conns = []
        samples = []  # (phase, t, VmRSS KiB)
        t0 = time.monotonic()
        connect_every = 2.0 / clients  # ramp over ~2 s
        next_connect = t0
        hold_start = None
        last_sample = 0.0
        active_seen = []
        hard_deadline = t0 + hold + 60  # bound on the whole loop
        next_tick = t0
        while time.monotonic() < hard_deadline:
            now = time.monotonic()
            while len(conns) < clients and now >= next_connect:
                try:
                    conns.append(SlowClient(len(conns), server.host, server.port, rcvbuf,
                                            "/v1/exports/orders_big.csv"))
                except OSError as error:
                    raise RuntimeError(f"client {len(conns)}: {error}") from error
                next_connect += connect_every
            if hold_start is None and len(conns) == clients and all(
                    c.received > 0 for c in conns):
                hold_start = now
            if hold_start is not None and now - hold_start >= hold:
                break
            # Each client reads what its token bucket allows (non-blocking; nothing if empty).
            for client in conns:
                allowed = client.allowed(now, rate)
                if allowed > 0 and not client.closed:
                    client.read(min(allowed, 65536))
            if any(c.closed for c in conns):
                dead = [c.index for c in conns if c.closed]
                raise RuntimeError(f"server closed client(s) {dead[:10]} during the test")
            if now - last_sample >= 0.25:
                phase = "hold" if hold_start is not None else "ramp"
                samples.append((phase, now - t0, server.status()["VmRSS"]))
                last_sample = now
                if hold_start is not None and not active_seen and now - hold_start > hold / 2:
                    active_seen.append(server.metrics())
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.monotonic()))
        else:
            raise RuntimeError("the clients did not all start streaming within the time bound")
        held = time.monotonic() - hold_start
        with_streams = server.status()
        received = sorted(c.received for c in conns)
        statuses = {c.status for c in conns}
        effective_rcvbuf = conns[0].rcvbuf
        for client in conns:
            client.close()
        # The server notices the closed sockets at its next write; wait for 0 active streams.
        deadline = time.monotonic() + 30
        drained = None
        while time.monotonic() < deadline:
            m = server.metrics()
            if m.get("sluice_active_streams", -1) == 0:
                drained = m
                break
            time.sleep(0.2)
        after_close = server.status()
        exit_code = server.stop()
    return {
        "rows": rows, "clients": clients, "idle": idle, "samples": samples, "held": held,
        "with_streams": with_streams, "after_close": after_close, "received": received,
        "statuses": statuses, "rcvbuf": effective_rcvbuf, "mid_metrics": active_seen,
        "drained": drained, "exit": exit_code, "budget": budget, "log": log_file, "rate": rate,
    }


def mib(kib):
    return f"{kib / KIB:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(common.DEFAULT_WORK))
    parser.add_argument("--bin", default=None, help="sluice binary (default build/release/sluice)")
    parser.add_argument("--rows", type=int, default=20_000_000, help="demo for part (a)")
    parser.add_argument("--slow-rows", type=int, default=2_000_000, help="demo for part (b)")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=int, default=20_000, help="bytes/s per slow client")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds with all streams up")
    parser.add_argument("--rcvbuf", type=int, default=4096, help="SO_RCVBUF asked for")
    parser.add_argument("--poll", type=float, default=0.05, help="RSS poll interval in (a)")
    parser.add_argument("--config", default=None,
                        help="serve this config instead of the demo's own (experiments, e.g. a "
                        "copy with another [server] stream_buffer_bytes; its source must point "
                        "at the same demo database)")
    parser.add_argument("--skip-a", action="store_true")
    parser.add_argument("--skip-b", action="store_true")
    args = parser.parse_args()
    clients = max(1, min(args.clients, 900))
    hold = max(1.0, min(args.hold, 120.0))
    sluice = common.binary(args.bin)

    print("# export_memory: server RSS from /proc/PID/status (MiB = 2^20 bytes)")
    print("# " + common.machine_line(sluice))
    if args.config:
        print(f"# config override: {args.config}")
    results = []

    if not args.skip_a:
        a = part_a(sluice, args.rows, args.work, args.poll, args.config)
        rss = [s[1] for s in a["samples"]]
        # The kernel folds the RSS counters into VmHWM lazily, so it can lag a polled VmRSS:
        # the peak is the larger of the two.
        peak = max(a["after"]["VmHWM"], max(rss))
        print(f"\n(a) one full download of {a['rows']} rows: {a['bytes']} bytes in "
              f"{a['elapsed']:.1f} s ({a['bytes'] / a['elapsed'] / 1e6:.0f} MB/s), "
              f"{len(rss)} RSS samples")
        timeline = []
        for frac in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
            t, value = a["samples"][min(len(rss) - 1, int(frac * (len(rss) - 1)))]
            timeline.append([f"{frac * 100:.0f}% of the download", f"{t:.1f}", mib(value)])
        print(common.table(["VmRSS over time", "t s", "MiB"], timeline))
        print()
        print(common.table(["", "MiB"], [
            ["idle VmRSS before the request", mib(a["idle"]["VmRSS"])],
            ["idle VmHWM before the request", mib(a["idle"]["VmHWM"])],
            ["VmRSS max while downloading (polled)", mib(max(rss))],
            ["VmRSS median while downloading", mib(common.median(rss))],
            ["VmHWM after the download (kernel peak)", mib(a["after"]["VmHWM"])],
            ["VmRSS after the download", mib(a["after"]["VmRSS"])],
            ["peer: sqlite3 -csv same SELECT, max RSS", mib(a["peer_kib"])],
        ]))
        print(f"# server threads {a['after'].get('Threads')}; exit status after SIGTERM "
              f"{a['exit']}; log {a['log']}")
        verdict = "PASS" if peak <= PEAK_TARGET_MIB * KIB else "MISS"
        results.append(
            f"RESULT memory (a) {a['rows']}-row download: server peak RSS {mib(peak)} MiB (idle "
            f"{mib(a['idle']['VmRSS'])} MiB; target <= {PEAK_TARGET_MIB} MiB: {verdict}); "
            f"x{peak / a['peer_kib']:.2f} vs sqlite3 CLI max RSS {mib(a['peer_kib'])} MiB")

    if not args.skip_b:
        b = part_b(sluice, args.slow_rows, args.work, clients, args.rate, hold, args.rcvbuf,
                   tick=0.05, config=args.config)
        hold_rss = [s[2] for s in b["samples"] if s[0] == "hold"]
        steady = common.median(hold_rss)
        idle = b["idle"]["VmRSS"]
        per_stream = (steady - idle) / b["clients"]
        per_stream_max = (max(hold_rss) - idle) / b["clients"]
        rec = b["received"]
        mid = b["mid_metrics"][0] if b["mid_metrics"] else {}
        print(f"\n(b) {b['clients']} slow clients on orders_big.csv ({b['rows']}-row demo), "
              f"~{b['rate'] / 1000:.0f} KB/s each, SO_RCVBUF asked {args.rcvbuf} -> "
              f"{b['rcvbuf']} effective; held {b['held']:.1f} s with all streaming")
        print(common.table(["", "MiB"], [
            ["idle VmRSS (fresh server)", mib(idle)],
            ["VmRSS median while holding", mib(steady)],
            ["VmRSS max while holding", mib(max(hold_rss))],
            ["VmHWM at the end of the hold", mib(b["with_streams"]["VmHWM"])],
            ["VmRSS after the clients closed", mib(b["after_close"]["VmRSS"])],
        ]))
        print(common.table(["", "KiB"], [
            ["extra per stream (median hold - idle) / clients", f"{per_stream:.0f}"],
            ["extra per stream (max hold - idle) / clients", f"{per_stream_max:.0f}"],
            ["peer: configured per-stream budget (stream_buffer_bytes)",
             f"{b['budget'] / KIB:.0f}"],
        ]))
        print(f"# statuses {sorted(b['statuses'])}; bytes per client min "
              f"{rec[0]} / median {rec[len(rec) // 2]} / max {rec[-1]}; server threads "
              f"{b['with_streams'].get('Threads')}")
        print(f"# mid-hold metrics: active_streams {mid.get('sluice_active_streams')}, "
              f"busy_source_threads {mid.get('sluice_busy_source_threads')}; after close: "
              f"active_streams {b['drained'] and b['drained'].get('sluice_active_streams')}, "
              f"aborted {b['drained'] and b['drained'].get('sluice_streams_aborted_total')}")
        print(f"# exit status after SIGTERM {b['exit']}; log {b['log']}")
        verdict = "PASS" if per_stream <= PER_STREAM_TARGET_KIB else "MISS"
        results.append(
            f"RESULT memory (b) {b['clients']} slow streams: +{per_stream:.0f} KiB per stream "
            f"(idle {mib(idle)} MiB -> {mib(steady)} MiB; target <= {PER_STREAM_TARGET_KIB} KiB:"
            f" {verdict}); x{per_stream * KIB / b['budget']:.2f} of the configured "
            f"{b['budget'] // KIB} KiB stream budget")
    print()
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
