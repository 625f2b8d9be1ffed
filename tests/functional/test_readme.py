"""README.md's commands, run as a new user would: in order, as written, in a fresh folder.

The set-up command's last step (`SLUICE_LINK_SECRET=... build/release/sluice demo --dir
demo-data`) starts the demo in a fresh temporary folder: it generates its 2,000,000 orders there
(install-deps, cmake and the build are not re-run; the binary is $SLUICE_BIN). The demo listens on
port 0, not the README's 8080 (a fixed port could be taken on a shared machine), and every
`127.0.0.1:8080` of the commands is rewritten to the port it got — the one change made to them.

Then each command of the first `sh` block of "## Using it" runs in bash in that folder, with
`sluice` on PATH and the environment its first line (`export ... SLUICE_LINK_SECRET=...`) sets. The
placeholders are filled as a user fills them: `ID` with the id of the last archive answer,
`JOB_ID` with the id of the last job answer. Each command must exit 0, and what it claims must be
there: no JSON error body, a 2xx status line where it prints one (`-i`), and each file it writes
non-empty and valid for its type (CSV with a header, JSON Lines, gzip, ZIP, JPEG; the download cut
off on purpose with `-r` has exactly its range's size); the resumed
archive equals the one downloaded whole, the job's result and the gzip-coded download equal the
plain export.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shlex
import subprocess
import zipfile
from pathlib import Path

from support.demo import STARTUP_TIMEOUT_S
from support.server import REPO, SluiceServer, sluice_bin, stop_and_check

README = REPO / "README.md"
PLACEHOLDER_PORT = "127.0.0.1:8080"


def sh_blocks(section: str) -> list[str]:
    """The ```sh blocks of the README section whose heading is `section`."""
    text = README.read_text("utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end != -1 else len(text)]
    return re.findall(r"```sh\n(.*?)```", body, re.S)


def commands(block: str) -> list[str]:
    """The command lines of a block (a line that is only a comment is not a command)."""
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def demo_step() -> tuple[dict[str, str], list[str]]:
    """The set-up command's last step: its environment assignments and the sluice arguments."""
    setup = commands(sh_blocks("Set-up (fresh Debian 12, as root, from the repository root)")[0])
    assert len(setup) == 1, setup
    words = shlex.split(setup[0].split("&&")[-1])
    env = {}
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    assert words[0] == "build/release/sluice" and words[1] == "demo", words
    return env, words[1:]


def exported_env(line: str, base: dict[str, str]) -> dict[str, str]:
    """The environment after running an `export ...` line in bash."""
    out = subprocess.run(["bash", "-c", f"{line}\nenv -0"], env=base, capture_output=True,
                         check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
            if p.is_file()}


def check_file(path: Path) -> None:
    """A written file is non-empty and valid for its type."""
    data = path.read_bytes()
    assert data, f"{path.name} is empty"
    name = path.name
    if name.endswith(".gz"):
        data = gzip.decompress(data)
        name = name[:-3]
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None and archive.namelist(), name
    elif name.endswith(".jpg"):
        assert data.startswith(b"\xff\xd8\xff"), f"{name} is not a JPEG"
    elif name.endswith(".jsonl"):
        lines = data.decode("utf-8").splitlines()
        assert lines and all(isinstance(json.loads(line), dict) for line in lines), name
    elif name.endswith((".csv", ".tsv")):
        first = data.decode("utf-8-sig").splitlines()[0]
        assert first.replace(";", ",").replace("\t", ",").startswith("id,"), f"{name}: {first!r}"


def check_answer(command: str, stdout: bytes) -> None:
    """What a command printed is not an error: no JSON error body, a 2xx status line with -i."""
    text = stdout.decode("utf-8", "replace")
    if " -X DELETE " in command and "/v1/archives/" in command:  # 204: no body
        assert text == "", f"{command}\n{text[:500]}"
        return
    if " -X DELETE " in command:  # a job that already ended cannot be cancelled any more
        assert '"code":"job_finished"' in text.replace(" ", "") or '"state":"cancelled"' in \
            text.replace(" ", ""), text[:500]
        return
    assert not re.search(r'"error"\s*:\s*\{', text), f"{command}\n{text[:500]}"
    if " -si " in command or command.startswith("curl -si"):
        status = text.split("\r\n", 1)[0]
        assert re.match(r"HTTP/1\.1 2\d\d ", status), f"{command}\n{status}"


def last_id(answers: list[bytes], path: str) -> str:
    """The id of the newest answer that names a `path` (/v1/archives/ or /v1/jobs/)."""
    for answer in reversed(answers):
        found = re.search(re.escape(path) + r"([A-Za-z0-9_-]{8,})", answer.decode("utf-8", "replace"))
        if found:
            return found.group(1)
    raise AssertionError(f"no earlier answer names {path}ID")


def test_readme_commands_run_in_order_in_a_fresh_folder(tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    demo_env, demo_args = demo_step()
    assert demo_env.get("SLUICE_LINK_SECRET"), "the set-up gives the demo a link secret"
    server = SluiceServer([*demo_args, "--listen", "127.0.0.1:0"], tmp_path / "demo.log",
                          cwd=folder, startup_timeout=STARTUP_TIMEOUT_S,
                          env=dict(os.environ, **demo_env))
    try:
        assert (folder / "demo-data" / "sluice.toml").is_file()
        address = f"{server.host}:{server.port}"
        lines = commands(sh_blocks("Using it")[0])
        assert lines[0].startswith("export "), lines[0]
        # `sluice` on PATH is $SLUICE_BIN, whatever its file is called.
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "sluice").symlink_to(Path(sluice_bin()).resolve())
        base = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
        base.pop("SLUICE_LINK_SECRET", None)
        env = exported_env(lines[0], base)
        assert env["SLUICE_LINK_SECRET"] == demo_env["SLUICE_LINK_SECRET"], \
            "the README's shell and its server sign links with the same secret"
        env["PATH"] = base["PATH"]  # its $PWD/build/release is the repository's; sluice is here
        answers: list[bytes] = []
        ran = 0
        for line in lines[1:]:
            command = line.replace(PLACEHOLDER_PORT, address)
            if "/v1/archives/ID" in command:
                command = command.replace("/v1/archives/ID", "/v1/archives/" +
                                          last_id(answers, "/v1/archives/"))
            if "JOB_ID" in command:
                command = command.replace("JOB_ID", last_id(answers, "/v1/jobs/"))
            before = files_of(folder)
            result = subprocess.run(["bash", "-c", command], cwd=folder, env=env,
                                    capture_output=True, timeout=300)
            assert result.returncode == 0, (
                f"{line}\nexit {result.returncode}: {result.stderr.decode(errors='replace')}")
            check_answer(command, result.stdout)
            answers.append(result.stdout)
            cut = re.search(r" -r 0-(\d+) ", command)  # a download cut off on purpose
            for name, stamp in files_of(folder).items():
                if before.get(name) == stamp:
                    continue
                if cut:
                    assert stamp[0] == int(cut.group(1)) + 1, (line, name, stamp)
                else:
                    check_file(folder / name)
            ran += 1
        assert ran == len(lines) - 1 >= 25, f"{ran} commands ran of {len(lines) - 1}"
    finally:
        stop_and_check(server, timeout=30)

    # What the commands claim, across commands.
    files = files_of(folder)
    for name in ("orders.csv", "orders.jsonl", "orders.tsv", "orders-excel.csv", "orders.csv.gz",
                 "orders-gzip-coded.csv", "album.zip", "resumed.zip", "IMG_0001.jpg",
                 "orders-job.csv.gz", "orders-de.jsonl.gz"):
        assert name in files, f"{name} was not written; the folder has {sorted(files)}"
    plain = (folder / "orders.csv").read_bytes()
    records = csv.reader(io.StringIO(plain.decode("utf-8"), newline=""))
    assert sum(1 for _ in records) == 2_000_001  # the header and every order
    assert (folder / "orders-gzip-coded.csv").read_bytes() == plain
    assert gzip.decompress((folder / "orders.csv.gz").read_bytes()) == plain
    assert gzip.decompress((folder / "orders-job.csv.gz").read_bytes()) == plain
    assert (folder / "resumed.zip").read_bytes() == (folder / "album.zip").read_bytes()
    assert (folder / "orders-excel.csv").read_bytes().startswith(b"\xef\xbb\xbfid;")
    assert (folder / "IMG_0001.jpg").read_bytes() == \
        (folder / "demo-data" / "objects" / "album" / "IMG_0001.jpg").read_bytes()
    de = gzip.decompress((folder / "orders-de.jsonl.gz").read_bytes()).decode().splitlines()
    assert len(de) == 1000 and all(json.loads(row)["country"] == "DE" for row in de)
