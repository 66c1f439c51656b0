"""Cone-search latency on 1,000,000 synthetic sources: q3c index vs a sequential scan, same run.

Builds N sources - once uniformly over the sky, once in a dense 5 x 5 deg field at Gaia's
typical density - in a scratch database (loaded with `xpdb ingest sources`, so clustered
on the q3c index and analysed), then times `xpdb.query.cone.cone`
- what `xpdb cone` and the /scs service run: q3c_radial_query, nearest first, as the
read-only role in a read-only transaction, rows fetched - on one reused connection at
random centres for radii of 1, 6 and 30 arcmin; and, as the baseline, the same query with
index and bitmap scans disabled (a sequential scan).

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
from xpdb.db.engine import with_user  # noqa: E402
from xpdb.query.cone import cone, cone_query  # noqa: E402


COLUMNS = ("source_id", "ra", "dec", "phot_g_mean_mag")


def latencies(conn, centres, radius_deg, repeat):
    """xpdb's cone search, as the read-only role on a reused connection."""
    out, rows = [], 0
    for ra, dec in centres[:repeat]:
        t0 = time.perf_counter()
        rows += len(cone(float(ra), float(dec), radius_deg, columns=COLUMNS, conn=conn))
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1000, rows / len(out)


def seqscan_latencies(conn, centres, radius_deg, repeat):
    """The same SQL with index and bitmap scans disabled."""
    out = []
    for ra, dec in centres[:repeat]:
        sql, params = cone_query(float(ra), float(dec), radius_deg, columns=COLUMNS)
        t0 = time.perf_counter()
        conn.execute(sql, params).fetchall()
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1000


def run_scenario(label: str, ra: np.ndarray, dec: np.ndarray, centres: np.ndarray, args) -> None:
    url = scratch_database("xpdb_bench_cone")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "sources.parquet"
        pq.write_table(pa.table({"source_id": np.arange(1, len(ra) + 1, dtype=np.int64), "ra": ra, "dec": dec,
                                 "phot_g_mean_mag": rng.uniform(8, 20, len(ra)).astype(np.float32)}), path)
        t0 = time.perf_counter()
        report = ingest_file(url, "sources", path)
    print(f"\n{label}: {report.rows_loaded:,} sources loaded in {time.perf_counter() - t0:.1f} s (clustered, analysed)")
    print(f"{'radius':>8s} {'rows/cone':>10s} {'q3c p50':>10s} {'q3c p99':>10s} {'seqscan p50':>12s} "
          f"{'seqscan p99':>12s} {'speed-up':>9s}")
    with psycopg.connect(with_user(url, "xpdb_reader")) as reader, psycopg.connect(url, autocommit=True) as conn:
        latencies(reader, centres, 1 / 60, 20)  # warm the cache
        conn.execute("SET enable_indexscan = off")
        conn.execute("SET enable_bitmapscan = off")
        for arcmin in (1, 6, 30):
            radius = arcmin / 60
            fast, rows = latencies(reader, centres, radius, args.repeat)
            slow = seqscan_latencies(conn, centres, radius, args.seqscan_repeat)
            print(f"{arcmin:>6d}'  {rows:>10.1f} {np.percentile(fast, 50):>8.2f}ms {np.percentile(fast, 99):>8.2f}ms "
                  f"{np.percentile(slow, 50):>10.1f}ms {np.percentile(slow, 99):>10.1f}ms "
                  f"{np.percentile(slow, 50) / np.percentile(fast, 50):>8.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--seqscan-repeat", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # 1. uniform over the whole sky (about 24 sources per square degree)
    ra = rng.uniform(0, 360, args.n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, args.n)))
    centres = np.column_stack([rng.uniform(0, 360, args.repeat), np.degrees(np.arcsin(rng.uniform(-1, 1, args.repeat)))])
    run_scenario("all sky", ra, dec, centres, args)
    # 2. a Gaia-like dense field: the same number of sources in 5 x 5 deg (40,000 per square degree)
    ra = rng.uniform(150, 155, args.n)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-2.5)), np.sin(np.radians(2.5)), args.n)))
    centres = np.column_stack([rng.uniform(151, 154, args.repeat), rng.uniform(-1.5, 1.5, args.repeat)])
    run_scenario("dense field (5 x 5 deg, Gaia-like density)", ra, dec, centres, args)


if __name__ == "__main__":
    main()
