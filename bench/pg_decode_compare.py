#!/usr/bin/python3
"""bench/pg_decode_bench.cpp across commits, interleaved, in one run.

Usage: bench/pg_decode_compare.py [--rounds 7] [--work /tmp/pg-decode-compare] COMMIT...

Each COMMIT's src/ is taken with `git archive` and the benchmark (this tree's
bench/pg_decode_bench.cpp, so every build measures the same rows) is compiled with only the
sources it needs, with the release preset's flags (-O2 -g -DNDEBUG, C++20); the JSON encoders are
stubbed out (not measured). Then every round runs each build once, in a random order, and the
script prints the median ns/row per benchmark and build, the spread, and the load average.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys

SOURCES = ["sources/pg_binary_decoder.cpp", "sources/source_error.cpp", "core/row_batch.cpp",
           "core/utf8.cpp", "encode/encoder.cpp", "encode/csv_encoder.cpp",
           "encode/csv_records_encoder.cpp", "encode/utf8_check.cpp", "encode/tsv_encoder.cpp"]
STUBS = """#include "encode/encoder.hpp"
namespace sluice {
std::unique_ptr<Encoder> make_jsonl_encoder() { return nullptr; }
std::unique_ptr<Encoder> make_json_array_encoder() { return nullptr; }
}  // namespace sluice
"""
BENCHES = ["BM_PgDecodeBinary", "BM_PgDecodeBinaryCsv", "BM_PgCsvRecordsGuarded",
           "BM_PgDecodeBinaryInOrder", "BM_PgDecodeBinaryCsvInOrder"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(commit, work):
    tree = os.path.join(work, commit)
    os.makedirs(tree, exist_ok=True)
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    with open(os.path.join(tree, "stubs.cpp"), "w") as f:
        f.write(STUBS)
    flags = ["g++", "-std=c++20", "-O2", "-g", "-DNDEBUG", "-I", os.path.join(tree, "src")]
    units = [os.path.join(tree, "src", s) for s in SOURCES]
    units += [os.path.join(tree, "stubs.cpp"), os.path.join(ROOT, "bench", "pg_decode_bench.cpp")]
    objects = []
    for unit in units:
        objects.append(os.path.join(tree, os.path.basename(unit) + ".o"))
        subprocess.run(flags + ["-c", unit, "-o", objects[-1]], check=True)
    binary = os.path.join(work, "bench-" + commit)
    subprocess.run(["g++", "-o", binary] + objects +
                   ["-lbenchmark", "-lbenchmark_main", "-lpthread"], check=True)
    return binary


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--work", default="/tmp/pg-decode-compare")
    parser.add_argument("commits", nargs="+")
    args = parser.parse_args()
    binaries = {c: build(c, args.work) for c in args.commits}
    results = {c: {b: [] for b in BENCHES} for c in args.commits}
    loads = []
    for round_number in range(args.rounds):
        order = list(args.commits)
        random.shuffle(order)
        for commit in order:
            out = subprocess.run([binaries[commit], "--benchmark_min_time=0.3",
                                  "--benchmark_format=json"], capture_output=True, text=True,
                                 check=True).stdout
            for bench in json.loads(out)["benchmarks"]:
                if bench["name"] in results[commit]:
                    results[commit][bench["name"]].append(bench["ns/row"])
        loads.append(os.getloadavg()[0])
        print(f"round {round_number + 1}: load {loads[-1]:.2f}", file=sys.stderr, flush=True)
    print("ns/row, median (min-max) of", args.rounds, "interleaved rounds")
    print(f"{'commit':12}" + "".join(f"{b:>30}" for b in BENCHES))
    for commit in args.commits:
        cells = [results[commit][b] for b in BENCHES]
        print(f"{commit:12}" + "".join(
            f"{statistics.median(v):>12.1f} ({min(v):.1f}-{max(v):.1f})".rjust(30) for v in cells))
    print(f"load average (1 min) after each round: {min(loads):.2f}-{max(loads):.2f}")


if __name__ == "__main__":
    main()
