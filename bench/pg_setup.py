#!/usr/bin/python3
"""Creates (or reuses) the private PostgreSQL cluster of the PostgreSQL benchmarks and a
generated `orders` table in its database `bench`.

    bench/pg_setup.py                              # WORK=/tmp/sluice-pg-bench, orders, 10M rows
    bench/pg_setup.py --rows 2000000 --table orders_2m
    bench/pg_setup.py --rows 100000000 --table orders_100m --no-primary-key   # ~11 GiB
    bench/pg_setup.py --drop orders_100m           # frees its disk again
    bench/pg_setup.py --stop                       # stops the cluster

The cluster (WORK/pg, owned by postgres) listens on the unix socket WORK/pg/.s.PGSQL.PORT and on
127.0.0.1:PORT (PORT in WORK/pg/port), durability off (fsync=off, wal_level=minimal: the data
is regenerated at will). A table is reused when its comment says it is a complete table of the
requested row count; it is generated with generate_series in one transaction, then
VACUUM ANALYZE. Columns: id bigint, created_at timestamptz, email text (2% NULL), country,
status, amount numeric(12,2), quantity int, note text (~45% filled, NULLs, '' and values with
commas, quotes, CR / LF / CRLF, tabs, non-ASCII, a 2 KB note). 10M rows: ~1.3 GiB on disk
with the primary key; ~1-2 min to generate on 2 cores.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_common as pg  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(pg.DEFAULT_WORK))
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--table", default="orders")
    parser.add_argument("--no-primary-key", action="store_true",
                        help="skip the primary key (saves time and ~2 GiB per 100M rows)")
    parser.add_argument("--drop", metavar="TABLE", help="drop TABLE and exit")
    parser.add_argument("--stop", action="store_true", help="stop the cluster and exit")
    args = parser.parse_args()
    cluster = pg.Cluster(args.work)
    if args.stop:
        cluster.stop()
        return
    cluster.ensure_running()
    if args.drop:
        cluster.psql(f"DROP TABLE IF EXISTS {args.drop}")
        print(f"dropped {args.drop}")
        return
    if not args.table.replace("_", "").isalnum():
        sys.exit("--table: letters, digits and _ only")
    spent = pg.ensure_orders(cluster, args.table, args.rows, not args.no_primary_key)
    size = cluster.table_bytes(args.table) / pg.MIB
    print(f"{args.table}: {args.rows:,} rows, {size:,.0f} MiB"
          f" ({'generated in %.0f s' % spent if spent else 'reused'}); "
          f"cluster {cluster.conninfo()}")


if __name__ == "__main__":
    main()
