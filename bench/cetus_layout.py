#!/usr/bin/env python3
"""Cetus's storage layout, ported to the standard library, so Sluice's cube format can be compared
with it byte for byte (https://github.com/vitalibo/cetus; snapshot read from --cetus-repo).

1. The sample of tests/generate.py: 9 products x 6 regions x 12 months x 5 categories x 5 segments
   x 5 channels (81,000 rows), Sales/Profit uniform and rounded to 2 places, Quantity 1..99, then
   a random `--frac` of the rows in random order. Written as CSV (`--csv`, Cetus's column names)
   and SQLite (`--db`, table `sales`, snake_case columns).
2. src/cetus/job.py with application.yaml's transform (one file per Month/Region, one fixed-length
   record per Category x Customer Segment x Sales Channel, body {Product: [Sales, Profit, Quantity]}
   as Spark's to_json writes it, every record right-padded with spaces to the global maximum).
   The port is first checked against the job's unit fixtures (tests/unit/data/test_job/case*).
3. A JSON summary on stdout (sizes, padding, bytes per lookup: src/cetus/lambda.py GETs exactly one
   record length by byte range, then rstrip(' ')s the padding before answering).
4. `--emit-lookups N --lookups-file PATH`: N random cells with Cetus's answer, as JSON lines.
"""
import argparse
import csv
import decimal
import json
import os
import random
import sqlite3
import subprocess
import urllib.parse

PRODUCTS = ['Laptop', 'Tablet', 'Smartphone', 'Monitor', 'Keyboard', 'Mouse', 'Printer', 'Camera', 'Headphones']
REGIONS = ['North America', 'Europe', 'Asia', 'South America', 'Australia', 'Africa']
MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
CATEGORIES = ['Electronics', 'Accessories', 'Office Supplies', 'Furniture', 'Appliances']
SEGMENTS = ['Consumer', 'Corporate', 'Small Business', 'Home Office', 'Government']
CHANNELS = ['Online', 'Offline', 'Direct Sales', 'Reseller', 'Retail']
COLUMNS = ['Product', 'Region', 'Month', 'Category', 'Customer Segment', 'Sales Channel', 'Sales', 'Profit', 'Quantity']
CONFIG = {  # application.yaml, section `transform`
    'version': 'v1', 'scale': 2, 'metrics': ['Sales', 'Profit', 'Quantity'],
    'dimensions': {'path': ['Month', 'Region'], 'file': ['Category', 'Customer Segment', 'Sales Channel'],
                   'body': ['Product']},
}
CETUS_REPO = '/work/.mirror/vitalibo+cetus/repo'
FIXTURES = 'tests/unit/data/test_job'


def generate(frac, seed):
    """Rows of tests/generate.py (dicts keyed by COLUMNS), sampled like df.sample(frac, random_state).

    Python's random.Random(seed) replaces numpy, so the values differ from Cetus's own sample (which
    is not reproducible anyway: generate.py never seeds np.random, only the sample), but the shape,
    the ranges and the density (round(frac * 81000) rows, in random order) are the same.
    """
    rng = random.Random(seed)
    rows = []
    for product in PRODUCTS:
        for region in REGIONS:
            for month in MONTHS:
                for category in CATEGORIES:
                    for segment in SEGMENTS:
                        for channel in CHANNELS:
                            rows.append(dict(zip(COLUMNS, [
                                product, region, month, category, segment, channel,
                                round(rng.uniform(100, 10000), 2), round(rng.uniform(10, 5000), 2),
                                rng.randint(1, 99)])))  # np.random.randint(1, 100) excludes 100
    return random.Random(seed).sample(rows, round(frac * len(rows)))


def write_csv(rows, path):
    """The sample as pandas' to_csv(index=False) writes it (floats as repr, '\\n' line ends)."""
    with open(path, 'w', newline='', encoding='utf-8') as out:
        writer = csv.writer(out, lineterminator='\n')
        writer.writerow(COLUMNS)
        writer.writerows([row[c] for c in COLUMNS] for row in rows)


def write_sqlite(rows, path):
    """The sample as table `sales` with snake_case columns, rows in the CSV's order."""
    names = [c.lower().replace(' ', '_') for c in COLUMNS]
    types = ['TEXT'] * 6 + ['REAL', 'REAL', 'INTEGER']
    with sqlite3.connect(path) as db:
        db.execute('DROP TABLE IF EXISTS sales')
        db.execute(f"CREATE TABLE sales ({', '.join(f'{n} {t}' for n, t in zip(names, types))})")
        db.executemany(f"INSERT INTO sales VALUES ({', '.join('?' * len(names))})",
                       ([row[c] for c in COLUMNS] for row in rows))
    db.close()


def java_double(x):
    """java.lang.Double.toString (what Jackson writes for a double in Spark's to_json): shortest
    digits (JDK >= 19; older JDKs rarely add a digit), at least one decimal, 'E' notation outside
    [1e-3, 1e7): 42.0, 1234.56, 1.0E7, 1.0E-4. None is JSON null."""
    if x is None:
        return 'null'
    if x != x or x in (float('inf'), float('-inf')):
        return '"NaN"' if x != x else ('"Infinity"' if x > 0 else '"-Infinity"')  # Jackson quotes them
    if x == 0:
        return '-0.0' if str(x).startswith('-') else '0.0'
    sign, t = ('-' if x < 0 else ''), decimal.Decimal(repr(abs(x))).as_tuple()
    exp10 = t.exponent + len(t.digits) - 1
    digits = ''.join(map(str, t.digits)).rstrip('0') or '0'
    if 1e-3 <= abs(x) < 1e7:
        if exp10 < 0:
            return f"{sign}0.{'0' * (-exp10 - 1)}{digits}"
        whole = digits[:exp10 + 1].ljust(exp10 + 1, '0')
        return f"{sign}{whole}.{digits[exp10 + 1:] or '0'}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exp10}"


def spark_round(x, scale):
    """Spark's round() on a double: BigDecimal(Double.toString(x)).setScale(scale, HALF_UP)."""
    if x is None or x != x or x in (float('inf'), float('-inf')):
        return x
    ctx = decimal.Context(prec=400, rounding=decimal.ROUND_HALF_UP)
    rounded = decimal.Decimal(repr(float(x))).quantize(decimal.Decimal(1).scaleb(-scale), context=ctx)
    return float(rounded) + 0.0  # BigDecimal has no -0: round(-0.001, 2) is 0.0


def to_json(node):
    """Spark's to_json of the body: nested maps (keys in collect_list order), arrays of doubles."""
    if isinstance(node, dict):
        return '{' + ','.join(json.dumps(str(k), ensure_ascii=False) + ':' + to_json(v)
                              for k, v in node.items()) + '}'
    return '[' + ','.join(java_double(v) for v in node) + ']'


def layout(rows, config):
    """DistributionJob.transform: returns ({path: file text}, sorted distinct values per file dim,
    record length or None). Body keys keep the input order, as collect_list does on one partition
    (Cetus's CSV is one split; Spark does not promise it, and with 2+ body dims the outer maps
    follow the shuffle order, which this port does not model). Duplicate keys fail, as
    map_from_arrays does under Spark 3's default spark.sql.mapKeyDedupPolicy=EXCEPTION."""
    dims = config['dimensions']
    cells = {}
    for row in rows:
        row = {**row, **{d: 'Unknown' if row.get(d) is None else row[d]
                         for d in dims['path'] + dims['file'] + dims['body']}}
        path = '/'.join([config['version']] + [str(row[d]) for d in dims['path']])
        node = cells.setdefault((path, tuple(row[d] for d in dims['file'])), {})
        for d in dims['body'][:-1]:
            node = node.setdefault(row[d], {})
        if row[dims['body'][-1]] in node:
            raise ValueError(f'Duplicate map key {row[dims["body"][-1]]!r} in {path}')
        node[row[dims['body'][-1]]] = [
            spark_round(None if row.get(m) is None else float(row[m]), config['scale'])
            for m in config['metrics']]
    bodies = {key: to_json(node) for key, node in cells.items()}
    cols = [sorted({key[1][i] for key in cells}) for i in range(len(dims['file']))]
    combos = [()]
    for values in cols:  # mixed radix, last file dim fastest (sort_array of the structs)
        combos = [c + (v,) for c in combos for v in values]
    length = max([len(b) for b in bodies.values()] + [2]) if cells else None  # '{}' fills gaps
    files = {path: ''.join(bodies.get((path, c), '{}').ljust(length) for c in combos)
             for path in sorted({key[0] for key in cells})}
    return files, cols, length


def git_show(repo, path):
    """One file of the Cetus snapshot at HEAD."""
    return subprocess.run(['git', '-C', repo, 'show', f'HEAD:{path}'], check=True,
                          capture_output=True, text=True).stdout


def check_fixtures(repo):
    """Runs the port on every tests/unit/data/test_job/case* and compares with sink.json (files by
    path) and metadata.json (the Lambda's cols and length). Returns {case: verdict}."""
    try:
        names = subprocess.run(['git', '-C', repo, 'ls-tree', '--name-only', f'HEAD:{FIXTURES}/'],
                               check=True, capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        return {'skipped': f'no Cetus snapshot at {repo}: {e}'}
    verdicts = {}
    for case in sorted((n for n in names if n.startswith('case')), key=lambda n: int(n[4:])):
        config, source, sink, metadata = (json.loads(git_show(repo, f'{FIXTURES}/{case}/{name}.json'))
                                          for name in ('config', 'source', 'sink', 'metadata'))
        try:
            files, cols, length = layout(source, config)
        except ValueError as e:
            verdicts[case] = f'error: {e}'
            continue
        got_meta = {'cols': {str(i): {v: j for j, v in enumerate(values)} for i, values in enumerate(cols)},
                    'length': length}
        bad = [what for what, ok in (
            ('sink', sorted(sink, key=lambda o: o['path']) == [{'path': p, 'file': f} for p, f in files.items()]),
            ('metadata', got_meta == metadata)) if not ok]
        shape = [len(c['dimensions'][k]) for c in (config, CONFIG) for k in ('path', 'file', 'body')]
        verdicts[case] = ('match' if not bad else 'MISMATCH ' + '+'.join(bad)) + \
            ('' if shape[:3] == shape[3:] else ' (other config shape)')
    return verdicts


def write_out(files, out_dir):
    """Writes each file under its S3 key (DIR/v1/<Month>/<Region>); returns (bytes, bytes allocated)."""
    size = allocated = 0
    for key, text in files.items():
        target = os.path.join(out_dir, *key.split('/'))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'wb') as out:
            out.write(text.encode('utf-8'))
        st = os.stat(target)
        size, allocated = size + st.st_size, allocated + st.st_blocks * 512
    return size, allocated


def lookup_uri(config, path, values):
    """The CloudFront URI that lambda.py maps to this cell: /<key>/<file dim values>, quoted."""
    return ''.join('/' + urllib.parse.quote(str(v), safe='') for v in path.split('/') + list(values))


def emit_lookups(files, cols, length, config, n, seed, out_path):
    """N random cells (uniform over existing files and file-dim values) with Cetus's answer: the
    record at offset*length, length bytes, rstrip(' ') (lambda.py), always 200 for a valid cell."""
    rng, dims, paths = random.Random(seed + 1), config['dimensions'], sorted(files)
    with open(out_path, 'w', encoding='utf-8') as out:
        for _ in range(n):
            path, values = rng.choice(paths), [rng.choice(v) for v in cols]
            index = 0
            for v, vals in zip(values, cols):
                index = index * len(vals) + vals.index(v)
            raw = files[path].encode('utf-8')[index * length:(index + 1) * length]
            out.write(json.dumps({
                'path': dict(zip(dims['path'], path.split('/')[1:])),
                'file': dict(zip(dims['file'], values)),
                'key': path, 'uri': lookup_uri(config, path, values), 'range': [index * length, (index + 1) * length - 1],
                'status': 200, 'body': raw.decode('utf-8').rstrip(' ')}, ensure_ascii=False) + '\n')


def summarize(rows, files, cols, length):
    """Sizes of the layout and bytes per lookup (read from storage vs sent after the trim)."""
    records = [text.encode('utf-8')[i:i + length] for text in files.values()
               for i in range(0, len(text.encode('utf-8')), length)] if files else []
    trimmed = [len(r.rstrip(b' ')) for r in records]
    total = sum(len(r) for r in records)
    non_empty = [t for r, t in zip(records, trimmed) if r.rstrip(b' ') != b'{}']
    return {
        'input_rows': len(rows), 'files': len(files),
        'file_dim_values': [len(v) for v in cols], 'records_per_file': len(records) // max(len(files), 1),
        'records': len(records), 'non_empty_records': len(non_empty),
        'non_empty_share': round(len(non_empty) / max(len(records), 1), 4),
        'record_length': length, 'total_bytes_stored': total, 'body_bytes': sum(trimmed),
        'padding_bytes': total - sum(trimmed), 'padding_share': round((total - sum(trimmed)) / max(total, 1), 4),
        'lookup': {
            'bytes_read_from_storage': length,
            'bytes_sent_after_trim_mean_all_cells': round(sum(trimmed) / max(len(trimmed), 1), 2),
            'bytes_sent_after_trim_mean_non_empty': round(sum(non_empty) / max(len(non_empty), 1), 2),
            'bytes_sent_after_trim_min': min(trimmed, default=None),
            'bytes_sent_after_trim_max': max(trimmed, default=None),
        },
    }


def main():
    """Parses the options, generates, lays out, checks the fixtures, writes and prints the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--frac', type=float, default=0.1, help='share of the 81,000 rows kept (0.1)')
    parser.add_argument('--seed', type=int, default=42, help='random seed (42)')
    parser.add_argument('--csv', help="write the sample as CSV with Cetus's column names")
    parser.add_argument('--db', help='write the sample as SQLite (table sales)')
    parser.add_argument('--out', help='write the Cetus files as DIR/v1/<Month>/<Region>')
    parser.add_argument('--emit-lookups', type=int, default=0, metavar='N', help='N random lookups')
    parser.add_argument('--lookups-file', help='where the lookups go (JSON lines)')
    parser.add_argument('--cetus-repo', default=CETUS_REPO, help='git dir of the Cetus snapshot')
    args = parser.parse_args()
    if args.emit_lookups and not args.lookups_file:
        parser.error('--emit-lookups needs --lookups-file')

    fixtures = check_fixtures(args.cetus_repo)
    rows = generate(args.frac, args.seed)
    if args.csv:
        write_csv(rows, args.csv)
    if args.db:
        write_sqlite(rows, args.db)
    files, cols, length = layout(rows, CONFIG)
    summary = {'seed': args.seed, 'frac': args.frac, **summarize(rows, files, cols, length)}
    if args.out:
        summary['bytes_on_disk'], summary['bytes_allocated_on_disk'] = write_out(files, args.out)
    if args.emit_lookups:
        emit_lookups(files, cols, length, CONFIG, args.emit_lookups, args.seed, args.lookups_file)
        summary['lookups_file'] = args.lookups_file
    summary['fixtures'] = fixtures
    print(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == '__main__':
    main()
