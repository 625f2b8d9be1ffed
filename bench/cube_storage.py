#!/usr/bin/python3
"""Cetus's own sample laid out both ways: bytes stored and bytes per lookup, side by side.

Cetus (github.com/vitalibo/cetus) stores each cell as its JSON body right-padded with spaces to
the longest body of the whole dataset; bench/cetus_layout.py reproduces that layout (checked
against Cetus's unit-test fixtures) from Cetus's sample generator (Product 9 x Region 6 x Month
12 x Category 5 x Customer Segment 5 x Sales Channel 5, 10% of the rows). Sluice builds a cube of
the same data with Cetus's configuration (path: month, region; file: category, customer
segment, sales channel; body: product; metrics: sales and profit decimal(2), quantity int64).

Printed per layout: bytes stored (Sluice: cube files, and everything under .sluice/cubes, i.e.
with the manifest and the pointer), bytes read from storage per lookup (one record), and bytes
sent per lookup (the mean body of 100 random lookups: Cetus trims the padding; Sluice renders the
typed record as JSON). Every one of the 100 answers is checked against Cetus's body for the same
cell (a mismatch fails the run). Target: Sluice stores <= 1/4 of Cetus's bytes.

    bench/cube_storage.py [--frac 0.1] [--work /tmp/sluice-bench/cube-storage]
"""

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_common as common  # noqa: E402

CONFIG = """
[sources.cetus]
kind = "sqlite"
path = "{db}"
[storage]
path = "{store}"
[[cubes]]
name = "cetus"
source = "cetus"
query = "SELECT month, region, category, customer_segment, sales_channel, product, round(sales, 2) AS sales, round(profit, 2) AS profit, quantity FROM sales"
path = ["month", "region"]
file = ["category", "customer_segment", "sales_channel"]
body = ["product"]
metrics = [{{name = "sales", type = "decimal", scale = 2}}, {{name = "profit", type = "decimal", scale = 2}},
           {{name = "quantity", type = "int64"}}]
"""

COLUMNS = {"Category": "category", "Customer Segment": "customer_segment", "Sales Channel": "sales_channel"}


def folder_bytes(folder, suffix=""):
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.name.endswith(suffix))


def same_cell(cetus_body, sluice_status, sluice_body):
    """Cetus's trimmed body and Sluice's answer hold the same data (Cetus: {} for no data; all
    values doubles; Sluice: 404 no_data, decimals exact, quantity an integer)."""
    expected = json.loads(cetus_body)
    if not expected:
        return sluice_status == 404
    if sluice_status != 200:
        return False
    got = json.loads(sluice_body, parse_float=Decimal)
    if set(got) != set(expected):
        return False
    for product, (sales, profit, quantity) in expected.items():
        cell = got[product]
        if (Decimal(str(sales)) != cell["sales"] or Decimal(str(profit)) != cell["profit"]
                or quantity != cell["quantity"]):
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frac", type=float, default=0.1)
    parser.add_argument("--work", default=str(common.DEFAULT_WORK / "cube-storage"))
    parser.add_argument("--bin", default=None)
    args = parser.parse_args()
    work = Path(args.work)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    sluice = common.stage_copy(common.binary(args.bin), work, "sluice")
    print(common.machine_line(sluice))

    db, store, cetus_out, lookups = work / "cetus.db", work / "store", work / "cetus", work / "lookups.jsonl"
    summary = json.loads(subprocess.run(
        [sys.executable, str(Path(__file__).with_name("cetus_layout.py")), "--frac", str(args.frac),
         "--db", str(db), "--out", str(cetus_out), "--emit-lookups", "100", "--lookups-file", str(lookups)],
        check=True, capture_output=True, text=True).stdout)
    store.mkdir()
    config = work / "sluice.toml"
    config.write_text(CONFIG.format(db=db, store=store), "utf-8")
    build = subprocess.run([str(sluice), "cube", "build", "cetus", "--config", str(config)],
                           check=True, capture_output=True, text=True).stdout.strip()
    print(build)
    manifest = json.loads(next((store / ".sluice/cubes/cetus").glob("*/manifest.json")).read_text())
    record_size = manifest["schema"]["record_size"]
    cube_files = folder_bytes(store / ".sluice/cubes", ".cube")
    everything = folder_bytes(store / ".sluice/cubes")

    server = common.Server(sluice, ["serve", "--config", str(config)], work / "serve.log")
    sent, mismatches = [], 0
    try:
        for line in lookups.read_text().splitlines():
            lookup = json.loads(line)
            path = "/".join(urllib.request.quote(lookup["path"][k]) for k in ("Month", "Region"))
            query = "&".join(f"{COLUMNS[k]}={urllib.request.quote(v)}" for k, v in lookup["file"].items())
            try:
                with urllib.request.urlopen(f"{server.url}/v1/cubes/cetus/{path}?{query}") as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read()
            if not same_cell(lookup["body"], status, body):
                mismatches += 1
                print(f"MISMATCH {lookup['uri']}: cetus {lookup['body']} sluice {status} {body!r}")
            if status == 200:
                sent.append(len(body))
    finally:
        server.stop()

    cetus_sent = summary["lookup"]["bytes_sent_after_trim_mean_non_empty"]
    rows = [
        ["Cetus (padded JSON)", f"{summary['total_bytes_stored']:,}", "-", summary["record_length"],
         f"{cetus_sent:.1f}"],
        ["Sluice (typed records)", f"{cube_files:,}", f"{everything:,}", record_size,
         f"{sum(sent) / max(len(sent), 1):.1f}"],
    ]
    print(f"\n{summary['input_rows']} rows, {summary['files']} files x {summary['records_per_file']} records "
          f"({summary['non_empty_share']:.0%} of the cells hold data); Cetus's padding: "
          f"{summary['padding_share']:.1%} of its bytes")
    print(common.table(["layout", "bytes stored (files)", "with manifest", "bytes read per lookup",
                        "bytes sent per lookup (cells with data)"], rows))
    ratio = everything / summary["total_bytes_stored"]
    print(f"\nRESULT storage: sluice/cetus = {ratio:.3f} (files only {cube_files / summary['total_bytes_stored']:.3f}; "
          f"target <= 0.25): {'PASS' if ratio <= 0.25 else 'FAIL'}")
    print(f"RESULT answers: {100 - mismatches}/100 lookups carry Cetus's data: {'PASS' if mismatches == 0 else 'FAIL'}")
    return 0 if ratio <= 0.25 and mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
