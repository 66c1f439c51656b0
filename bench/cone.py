"""Cone-search latency on 1,000,000 synthetic sources: q3c index vs a sequential scan, same run.

Builds N sources uniformly on the sky in a scratch database (loaded with `xpdb ingest
sources`, so clustered on the q3c index and analysed), then times the cone search that
`xpdb cone` runs (q3c_radial_query, nearest first, rows fetched) at random centres for
radii of 1, 6 and 30 arcmin, and the same queries with index scans disabled.

    python bench/cone.py [--n 1000000] [--repeat 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import scratch_database  # noqa: E402

from xpdb.ingest.runs import ingest_file  # noqa: E402
from xpdb.query.cone import cone_query  # noqa: E402


def latencies(conn, centres, radius_deg, repeat):
    out, rows = [], 0
    for ra, dec in centres[:repeat]:
        sql, params = cone_query(float(ra), float(dec), radius_deg, columns=("source_id", "ra", "dec",
                                                                              "phot_g_mean_mag"))
        t0 = time.perf_counter()
        rows += len(conn.execute(sql, params).fetchall())
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1000, rows / len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--seqscan-repeat", type=int, default=10)
    args = parser.parse_args()
    url = scratch_database("xpdb_bench_cone")
    rng = np.random.default_rng(0)
    ra = rng.uniform(0, 360, args.n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, args.n)))
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "sources.parquet"
        pq.write_table(pa.table({"source_id": np.arange(1, args.n + 1, dtype=np.int64), "ra": ra, "dec": dec,
                                 "phot_g_mean_mag": rng.uniform(8, 20, args.n).astype(np.float32)}), path)
        t0 = time.perf_counter()
        report = ingest_file(url, "sources", path)
        print(f"loaded {report.rows_loaded:,} sources in {time.perf_counter() - t0:.1f} s (clustered, analysed)")
    centres = np.column_stack([rng.uniform(0, 360, args.repeat), np.degrees(np.arcsin(rng.uniform(-1, 1, args.repeat)))])
    print(f"\n{'radius':>8s} {'rows/cone':>10s} {'q3c p50':>10s} {'q3c p99':>10s} {'seqscan p50':>12s} "
          f"{'seqscan p99':>12s} {'speed-up':>9s}")
    with psycopg.connect(url, autocommit=True) as conn:
        latencies(conn, centres, 1 / 60, 20)  # warm the cache
        for arcmin in (1, 6, 30):
            radius = arcmin / 60
            fast, rows = latencies(conn, centres, radius, args.repeat)
            conn.execute("SET enable_indexscan = off")
            conn.execute("SET enable_bitmapscan = off")
            slow, _ = latencies(conn, centres, radius, args.seqscan_repeat)
            conn.execute("RESET enable_indexscan")
            conn.execute("RESET enable_bitmapscan")
            print(f"{arcmin:>6d}'  {rows:>10.1f} {np.percentile(fast, 50):>8.2f}ms {np.percentile(fast, 99):>8.2f}ms "
                  f"{np.percentile(slow, 50):>10.1f}ms {np.percentile(slow, 99):>10.1f}ms "
                  f"{np.percentile(slow, 50) / np.percentile(fast, 50):>8.0f}x")


if __name__ == "__main__":
    main()
