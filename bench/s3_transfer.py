#!/usr/bin/env python3
"""One big file into and out of a local S3 endpoint: `sluice store put/get` against `aws s3 cp`,
with a "raw-socket floor" made of single curl requests, interleaved, several rounds.

The endpoint is s3rver 3.7.1 (tests/s3, `npm ci --prefix tests/s3`), started here through
tests/support/s3.py on a data folder in the work folder. The file is 1 GiB of random bytes
(`--quick`: 64 MiB), made once in the work folder and reused; its SHA-256 is computed once per
run.

Per round (the order of the three tools rotates every round):

- upload: `sluice store put FILE KEY --config CONF` (multipart, 8 MiB parts, one part uploading
  while the next one fills: two parts in memory); `aws s3 cp FILE s3://BUCKET/KEY` (Debian's
  awscli, /usr/bin/aws, with its defaults: 8 MiB parts, 10 concurrent requests; only
  `--only-show-errors`, so no progress output is timed); the floor: ONE signed PUT of the whole
  file by `curl -T FILE --aws-sigv4 aws:amz:us-east-1:s3`.
- download, each tool reading an object another one wrote, so that every upload is checked too:
  Sluice gets aws's object, aws gets Sluice's, curl gets its own through the presigned URL of
  `sluice presign KEY` (ONE GET). Sluice's get is one ranged GET read ahead in 4 x 1 MiB buffers;
  aws's is 8 MiB ranged GETs, 10 at once. Downloads go to /dev/shm (or the work folder); each is
  hashed (SHA-256, streaming, outside the timed region) and compared with the file's, then
  deleted.
- the round's objects are deleted (`sluice store rm`), so s3rver's disk holds at most 3 copies.

For every timed command: wall time (fork to exit), peak RSS (VmHWM of /proc/PID/status sampled
every 10 ms once /proc/PID/exe is the tool's own binary, i.e. after exec), the tool's CPU
(rusage), s3rver's CPU during the command (/proc/PID/stat utime+stime; also its main thread, the
one that runs JavaScript: if that one is near 1.0 core the endpoint is the bottleneck), and the
CPU of every other process on the machine during the command (/proc/stat minus the above).

  /usr/bin/python3 bench/s3_transfer.py [--sluice PATH] [--work DIR] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support.s3 import BUCKET, KEY_ID, SECRET, S3rver, have_tools, storage_config  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
AWS = "/usr/bin/aws"  # Debian's awscli (a pip one may come first in PATH)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str = "") -> None:
    print(message, flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------- measuring a process

def proc_cpu(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (all its threads) or of one of its threads, in seconds."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> float:
    """CPU seconds spent by all cores outside idle and iowait since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def exe_of(command: str) -> str:
    """The binary /proc/PID/exe shows once `command` runs: the interpreter of a script."""
    path = shutil.which(command) or command
    with open(path, "rb") as handle:
        head = handle.read(256)
    if head.startswith(b"#!"):
        path = head[2:].split(b"\n", 1)[0].split()[0].decode()
    return os.path.realpath(path)


@dataclass
class Sample:
    seconds: float
    hwm_kib: int
    cpu: float          # the tool's own CPU seconds
    s3_cpu: float       # s3rver, all threads
    s3_main_cpu: float  # s3rver's main (JavaScript) thread
    others_cpu: float   # every other process on the machine

    def cores(self, cpu: float) -> float:
        return cpu / self.seconds


def run_measured(args: list[str], env: dict[str, str], s3_pid: int, what: str,
                 stdout=subprocess.DEVNULL) -> Sample:
    """Runs `args` to completion; fails the benchmark when it exits non-zero."""
    expected_exe = exe_of(args[0])
    hwm = [0]
    done = threading.Event()
    err = tempfile.TemporaryFile()
    busy0, self0 = machine_busy(), self_cpu()
    s3_0, s3_main0 = proc_cpu(s3_pid), proc_cpu(s3_pid, s3_pid)
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=stdout, stderr=err)

    def sample() -> None:
        status_path, exe_path = f"/proc/{proc.pid}/status", f"/proc/{proc.pid}/exe"
        while not done.is_set():
            try:
                if os.readlink(exe_path) == expected_exe:  # after exec: the tool's own memory
                    with open(status_path) as status:
                        for line in status:
                            if line.startswith("VmHWM:"):
                                hwm[0] = max(hwm[0], int(line.split()[1]))
                                break
            except OSError:
                pass  # exited (a zombie has no exe and no VmHWM)
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    s3_cpu, s3_main = proc_cpu(s3_pid) - s3_0, proc_cpu(s3_pid, s3_pid) - s3_main0
    tool_cpu = usage.ru_utime + usage.ru_stime
    others = machine_busy() - busy0 - tool_cpu - s3_cpu - (self_cpu() - self0)
    err.seek(0)
    message = err.read().decode(errors="replace").strip()
    err.close()
    if proc.returncode != 0:
        fail(f"{what}: {' '.join(args[:4])} ... exited {proc.returncode}: {message[-500:]}")
    if hwm[0] == 0:
        fail(f"{what}: no VmHWM sample of {expected_exe}")
    return Sample(seconds, hwm[0], tool_cpu, s3_cpu, s3_main, max(others, 0.0))


def fail(message: str) -> None:
    print(f"FAIL: {message}", flush=True)
    raise SystemExit(1)


# ---------------------------------------------------------------- the file and its checks

def make_file(path: Path, size: int) -> None:
    marker = path.with_name(path.name + ".complete")
    if marker.exists() and path.exists() and path.stat().st_size == size:
        return
    log(f"# writing {size / MiB:.0f} MiB of random bytes to {path}")
    with open(path, "wb") as out:
        for _ in range(size // (16 * MiB)):
            out.write(os.urandom(16 * MiB))
        out.write(os.urandom(size % (16 * MiB)))
    marker.write_text("ok")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- the tools

@dataclass
class Tools:
    sluice: str
    config: Path
    endpoint: str
    s3_pid: int
    env: dict[str, str] = field(default_factory=dict)

    def sluice_cmd(self, *args: str) -> list[str]:
        return [self.sluice, *args, "--config", str(self.config)]

    def aws_cmd(self, *args: str) -> list[str]:
        return [AWS, "--endpoint-url", self.endpoint, *args]

    def url(self, key: str) -> str:
        return f"{self.endpoint}/{BUCKET}/{key}"

    def upload(self, tool: str, file: Path, key: str, what: str) -> Sample:
        if tool == "sluice":
            args = [self.sluice, "store", "put", str(file), key, "--config", str(self.config)]
        elif tool == "aws":
            args = self.aws_cmd("s3", "cp", str(file), f"s3://{BUCKET}/{key}", "--only-show-errors")
        else:
            # curl 7.88 sends no x-amz-content-sha256, which S3 requires: UNSIGNED-PAYLOAD, as
            # curl >= 8 sends by itself for -T (the header is signed).
            args = ["curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(file),
                    "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                    "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{KEY_ID}:{SECRET}",
                    self.url(key)]
        return run_measured(args, self.env, self.s3_pid, what)

    def download(self, tool: str, key: str, target: Path, what: str) -> Sample:
        if tool == "sluice":
            args = [self.sluice, "store", "get", key, str(target), "--config", str(self.config)]
        elif tool == "aws":
            args = self.aws_cmd("s3", "cp", f"s3://{BUCKET}/{key}", str(target), "--only-show-errors")
        else:
            url = self.presign(key)
            args = ["curl", "-sS", "--fail", "-o", str(target), url]
        return run_measured(args, self.env, self.s3_pid, what)

    def presign(self, key: str) -> str:
        result = subprocess.run([self.sluice, "presign", key, "--config", str(self.config)],
                                env=self.env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0 or not result.stdout.startswith(self.endpoint):
            fail(f"sluice presign {key}: exit {result.returncode}: {result.stderr.strip()[:300]}"
                 f" {result.stdout.strip()[:200]}")
        return result.stdout.strip()

    def remove(self, key: str) -> None:
        subprocess.run([self.sluice, "store", "rm", key, "--config", str(self.config)],
                       env=self.env, check=True, capture_output=True, timeout=120)

    def keys(self, prefix: str) -> list[str]:
        result = subprocess.run([self.sluice, "store", "ls", prefix, "--config", str(self.config)],
                                env=self.env, check=True, capture_output=True, text=True,
                                timeout=120)
        return [line.split("\t", 1)[1] for line in result.stdout.splitlines() if "\t" in line]


UPLOADER_OF = {"sluice": "aws", "aws": "sluice", "curl": "curl"}  # whose object each one gets
LABEL = {"sluice": "sluice", "aws": "aws", "curl": "curl (floor)"}


def du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def report(direction: str, size: int, results: dict[str, list[Sample]]) -> dict[str, float]:
    tools = list(results)
    log(f"\n## {direction} {size / MiB:.0f} MiB, {len(results['sluice'])} rounds")
    log(f"{'tool':13s} {'MB/s median':>11s} {'(min–max)':>11s} {'s median':>8s} "
        f"{'peak RSS MiB':>13s} {'tool CPU s':>10s} {'s3rver CPU s':>12s} {'s3rver cores':>12s} "
        f"{'s3rver JS thread':>16s} {'others cores':>12s}")
    medians = {}
    for tool in tools:
        samples = results[tool]
        rates = [size / s.seconds / 1e6 for s in samples]
        medians[tool] = statistics.median(rates)
        log(f"{LABEL[tool]:13s} {statistics.median(rates):11.0f} {spread(rates):>11s} "
            f"{statistics.median(s.seconds for s in samples):8.2f} "
            f"{max(s.hwm_kib for s in samples) / 1024:13.1f} "
            f"{statistics.median(s.cpu for s in samples):10.2f} "
            f"{statistics.median(s.s3_cpu for s in samples):12.2f} "
            f"{statistics.median(s.cores(s.s3_cpu) for s in samples):12.2f} "
            f"{statistics.median(s.cores(s.s3_main_cpu) for s in samples):16.2f} "
            f"{statistics.median(s.cores(s.others_cpu) for s in samples):12.2f}")
        log(f"{'':13s} per round MB/s: {', '.join(f'{r:.0f}' for r in rates)}; peak RSS MiB: "
            f"{', '.join(f'{s.hwm_kib / 1024:.1f}' for s in samples)}; s3rver JS thread cores: "
            f"{', '.join(f'{s.cores(s.s3_main_cpu):.2f}' for s in samples)}")
    per_round = [a.seconds / s.seconds for s, a in zip(results["sluice"], results["aws"])]
    ratio = statistics.median(per_round)
    log(f"RATIO {direction} sluice/aws (speed, per round: "
        f"{', '.join(f'{r:.2f}' for r in per_round)}): median x{ratio:.2f} "
        f"(target >= 1.0) {'PASS' if ratio >= 1.0 else 'MISS'}")
    for tool in ("sluice", "aws"):
        floor = [c.seconds / t.seconds for t, c in zip(results[tool], results["curl"])]
        log(f"RATIO {direction} {tool}/floor (speed, per round: "
            f"{', '.join(f'{r:.2f}' for r in floor)}): median x{statistics.median(floor):.2f}")
    return {"ratio": ratio, **medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sluice", default=str(REPO / "build" / "release" / "sluice"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/sluice-s3-bench"))
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (--quick: 2)")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 2 rounds: a check that it runs")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    size = 64 * MiB if args.quick else GiB
    missing = have_tools()
    if missing or not os.path.exists(AWS) or shutil.which("curl") is None:
        fail(f"missing: {missing or AWS + ' or curl'}")

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    # A copy of the binary: a rebuild of build/release during the run must not change it.
    sluice = work / "sluice-bin"
    shutil.copy2(args.sluice, sluice)
    source = work / f"source-{size // MiB}MiB.bin"
    free = shutil.disk_usage(work).free
    need = (0 if source.exists() else size) + 4 * size
    if free < need:
        fail(f"{work}: {free / GiB:.1f} GiB free, need {need / GiB:.1f} (the file + s3rver's copies)")
    make_file(source, size)
    shm = Path("/dev/shm")
    down_base = shm if shm.is_dir() and shutil.disk_usage(shm).free > 3 * size else work
    downloads = Path(tempfile.mkdtemp(prefix="sluice-s3-bench-", dir=down_base))

    log(f"# s3_transfer: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}{' (quick)' if args.quick else ''}; "
        f"{size / MiB:.0f} MiB, {rounds} rounds; load average {load()}")
    log(f"# sluice: copy of {args.sluice} (mtime "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(os.stat(args.sluice).st_mtime))}) "
        f"at {sluice}")
    aws_version = subprocess.run([AWS, "--version"], capture_output=True, text=True).stdout.strip()
    curl_version = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    log(f"# aws: {aws_version} (defaults: multipart_chunksize 8 MiB, max_concurrent_requests 10; "
        f"no config file)")
    log(f"# curl: {curl_version}")
    log(f"# s3rver 3.7.1 on node {node_version}; data in {work / 's3rver-data'}; downloads in {downloads}")
    start = time.perf_counter()
    digest = sha256_of(source)
    log(f"# source {source}: sha256 {digest[:16]}... ({time.perf_counter() - start:.1f} s to hash)")

    data = work / "s3rver-data"
    shutil.rmtree(data, ignore_errors=True)
    server = S3rver(data)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET,
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    try:
        server.start()
        config = work / "s3.toml"
        config.write_text(storage_config(server.endpoint))
        tools = Tools(str(sluice), config, server.endpoint, server.process.pid, env)

        # Fixed costs: a command that does one small request (start-up, credentials, one list).
        fixed = {"sluice": [], "aws": []}
        for _ in range(3):
            fixed["sluice"].append(run_measured(tools.sluice_cmd("store", "ls", "none/"), env,
                                                tools.s3_pid, "sluice store ls"))
            fixed["aws"].append(run_measured(tools.aws_cmd("s3api", "list-objects-v2", "--bucket", BUCKET,
                                                           "--prefix", "none/"),
                                             env, tools.s3_pid, "aws s3api list-objects-v2"))
        for tool, samples in fixed.items():
            log(f"# fixed cost of one {tool} command (an empty listing): "
                f"{statistics.median(s.seconds for s in samples):.3f} s wall, "
                f"{statistics.median(s.cpu for s in samples):.3f} s CPU, peak RSS "
                f"{max(s.hwm_kib for s in samples) / 1024:.1f} MiB")

        # Warm-up (untimed): s3rver's JIT, the tools' files in the page cache, the source file.
        warm = work / "warm-16MiB.bin"
        make_file(warm, 16 * MiB)
        for tool in ("sluice", "aws", "curl"):
            tools.upload(tool, warm, f"warm/{tool}.bin", "warm-up")
            tools.download(tool, f"warm/{tool}.bin", downloads / "warm.bin", "warm-up")
            tools.remove(f"warm/{tool}.bin")
        (downloads / "warm.bin").unlink(missing_ok=True)

        order = ["sluice", "aws", "curl"]
        up: dict[str, list[Sample]] = {tool: [] for tool in order}
        down: dict[str, list[Sample]] = {tool: [] for tool in order}
        for round_ in range(rounds):
            turn = order[round_ % 3:] + order[:round_ % 3]
            log(f"# round {round_ + 1}/{rounds}: order {', '.join(turn)}; load average {load()}")
            for tool in turn:
                key = f"round{round_}/{tool}.bin"
                sample = tools.upload(tool, source, key, f"round {round_ + 1} {tool} put")
                up[tool].append(sample)
                log(f"  put {LABEL[tool]:13s} {sample.seconds:6.2f} s {size / sample.seconds / 1e6:6.0f} MB/s"
                    f"  RSS {sample.hwm_kib / 1024:6.1f} MiB  CPU {sample.cpu:5.2f} s  s3rver CPU "
                    f"{sample.s3_cpu:5.2f} s = {sample.cores(sample.s3_cpu):.2f} cores "
                    f"(JS thread {sample.cores(sample.s3_main_cpu):.2f})"
                    f"  others {sample.cores(sample.others_cpu):.2f}")
            listed = tools.keys(f"round{round_}/")
            if sorted(listed) != sorted(f"round{round_}/{t}.bin" for t in order):
                fail(f"round {round_ + 1}: the bucket lists {listed}")
            for tool in turn:
                key = f"round{round_}/{UPLOADER_OF[tool]}.bin"
                target = downloads / f"{tool}.bin"
                sample = tools.download(tool, key, target, f"round {round_ + 1} {tool} get")
                down[tool].append(sample)
                got = sha256_of(target)
                target.unlink()
                if got != digest:
                    fail(f"round {round_ + 1}: {tool} downloaded {key} with sha256 {got}, "
                         f"the file's is {digest}")
                log(f"  get {LABEL[tool]:13s} {sample.seconds:6.2f} s {size / sample.seconds / 1e6:6.0f} MB/s"
                    f"  RSS {sample.hwm_kib / 1024:6.1f} MiB  CPU {sample.cpu:5.2f} s  s3rver CPU "
                    f"{sample.s3_cpu:5.2f} s = {sample.cores(sample.s3_cpu):.2f} cores "
                    f"(JS thread {sample.cores(sample.s3_main_cpu):.2f})"
                    f"  others {sample.cores(sample.others_cpu):.2f}  sha256 ok ({key})")
            for tool in order:
                tools.remove(f"round{round_}/{tool}.bin")
            log(f"  s3rver data after deleting the round's objects: {du(data) / MiB:.1f} MiB")

        log(f"\n# every download's SHA-256 matched the file's ({3 * rounds} downloads; "
            f"each tool read another tool's upload, curl its own)")
        result_up = report("upload", size, up)
        result_down = report("download", size, down)
        two_parts = 2 * 8
        for direction, results in (("put", up), ("get", down)):
            peak = max(s.hwm_kib for s in results["sluice"]) / 1024
            log(f"RSS sluice {direction}: peak {peak:.1f} MiB (an empty listing: "
                f"{max(s.hwm_kib for s in fixed['sluice']) / 1024:.1f} MiB; two 8 MiB parts = {two_parts} MiB)")
        log(f"RESULT s3_transfer upload x{result_up['ratio']:.2f} "
            f"{'PASS' if result_up['ratio'] >= 1 else 'MISS'}, download x{result_down['ratio']:.2f} "
            f"{'PASS' if result_down['ratio'] >= 1 else 'MISS'} (sluice/aws, target >= 1.0); "
            f"load average {load()}; {time.perf_counter() - start:.0f} s")
    finally:
        server.stop()
        shutil.rmtree(downloads, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
