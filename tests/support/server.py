"""The real `sluice` binary: where it is, short commands, and a running server process."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterable

from .metrics import metrics

REPO = Path(__file__).resolve().parents[2]
SLUICE_BIN = Path(os.environ.get("SLUICE_BIN", REPO / "build" / "release" / "sluice"))

STOP_TIMEOUT_S = 15.0

# Set by scripts/test.sh when SLUICE_BIN is the AddressSanitizer + UBSan build: its memory
# (shadow, quarantine of freed blocks) says nothing about Sluice's, so absolute RSS limits are
# checked on the release run only.
SANITIZED = os.environ.get("SLUICE_SANITIZED") == "1"


def sluice_bin() -> str:
    assert SLUICE_BIN.is_file() and os.access(SLUICE_BIN, os.X_OK), (
        f"sluice binary not found at {SLUICE_BIN}: build it with "
        "`cmake --preset release && ninja -C build/release sluice` or set SLUICE_BIN"
    )
    return str(SLUICE_BIN)


def run_sluice(*args: str, timeout: float = 120.0, **kwargs) -> subprocess.CompletedProcess:
    """Runs a short sluice command (export, check-config) to completion."""
    if "input" not in kwargs:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([sluice_bin(), *args], capture_output=True, timeout=timeout, **kwargs)


class SluiceServer:
    """One running `sluice serve` / `sluice demo` process.

    stdout is read by a thread (the banner with the bound address, then whatever follows);
    stderr (the request log) goes to a file that is shown when something goes wrong.
    """

    LISTENING = re.compile(r"listening on https?://(\S+):(\d+)")

    def __init__(self, args: list[str], log_path: Path, cwd: Path | None = None,
                 startup_timeout: float = 30.0, preexec_fn=None,
                 env: dict[str, str] | None = None):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sluice_bin(), *args], stdout=subprocess.PIPE, stderr=self._log, cwd=cwd,
            stdin=subprocess.DEVNULL, preexec_fn=preexec_fn, env=env)
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.host, self.port = self._await_listening(startup_timeout)
        self.url = f"http://{self.host}:{self.port}"
        self.returncode: int | None = None

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _await_listening(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError(
                    f"sluice {' '.join(self.args)} did not print 'listening on' within "
                    f"{timeout} s\n{self.log_tail()}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                rc = self.proc.wait(timeout=5)
                raise AssertionError(
                    f"sluice {' '.join(self.args)} exited with {rc} before listening\n"
                    f"stdout: {''.join(self.stdout_lines)}\n{self.log_tail()}")
            match = self.LISTENING.search(line)
            if match:
                return match.group(1), int(match.group(2))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f"--- stderr of sluice ({self.log_path}) ---\n" + "\n".join(text)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then wait; returns the exit code. Kills on timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"sluice did not exit within {timeout} s of SIGTERM\n{self.log_tail()}")
        self.returncode = rc
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return rc

    def wait_exit(self, timeout: float) -> tuple[int, float]:
        """Waits for an exit the test caused; returns (exit code, seconds it took)."""
        start = time.monotonic()
        rc = self.proc.wait(timeout=timeout)
        self.returncode = rc
        return rc, time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def metrics(self) -> dict[str, float]:
        return metrics(self.url)

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, (
            f"sluice exited with {self.proc.returncode}\n{self.log_tail()}")


def serve(config: Path, log_path: Path, *args: str, preexec_fn=None,
          env: dict[str, str] | None = None) -> SluiceServer:
    """`sluice serve --config CONFIG [ARGS]`, its stderr in log_path; `env` replaces the
    environment (default: this process's)."""
    return SluiceServer(["serve", "--config", str(config), *args], log_path, preexec_fn=preexec_fn,
                        env=env)


def stop_and_check(server: SluiceServer, timeout: float = STOP_TIMEOUT_S) -> None:
    """The standard teardown: SIGTERM must make the server exit 0 in time."""
    if server.returncode is not None:  # the test stopped it and checked how
        assert_no_sanitizer_report(server)
        return
    if server.proc.poll() is not None:
        raise AssertionError(
            f"sluice died during the test with exit code {server.proc.returncode}\n"
            f"{server.log_tail()}")
    rc = server.stop(timeout)
    assert rc == 0, f"sluice exited with {rc} after SIGTERM\n{server.log_tail()}"
    assert_no_sanitizer_report(server)


# What AddressSanitizer, LeakSanitizer and UBSan print (the functional suites also run against
# the sanitizer build, scripts/test.sh): any of it fails the test that stopped the server.
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: ")


def assert_no_sanitizer_report(server: SluiceServer) -> None:
    match = SANITIZER_REPORT.search(server.log_text())
    assert match is None, f"sanitizer report in the server's log\n{server.log_tail(120)}"


def stop_all(servers: Iterable[SluiceServer]) -> None:
    """stop_and_check for every server (each one is stopped even if another fails)."""
    errors = []
    for server in servers:
        try:
            stop_and_check(server)
        except AssertionError as error:
            errors.append(str(error))
        finally:
            server.kill()
    assert not errors, "\n".join(errors)


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
