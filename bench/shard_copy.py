"""COPY through a postgres_fdw foreign partition against COPY straight into the shard, same run.

The design in docs/scale-out.md routes ingest rows to their shard from the client instead of
COPYing into the coordinator's partitioned parent. This measures why: two embedded PostgreSQL
clusters side by side (A the coordinator, B the shard), N synthetic rows of (source_id, ra, dec,
phot_g_mean_mag) with Gaia-like ids, loaded
- into a plain table on B directly (the baseline: what routing from the client does),
- into a table on A partitioned by source_id range whose partitions are all foreign tables on B
  (batch_size 1000), and
- into the same layout with local partitions on A (no network hop).

    python bench/shard_copy.py [--n 200000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ratio_line, timer  # noqa: E402

from xpdb.config import Settings  # noqa: E402
from xpdb.db.embedded import EmbeddedCluster  # noqa: E402

ORDER = 1  # 48 partitions, the level-1 HEALPix pixels
WIDTH = 4 ** (12 - ORDER) << 35


def rows(n: int):
    from astropy import units as u
    from astropy_healpix import HEALPix

    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    pix = HEALPix(nside=2**12, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg).astype(np.int64)
    ids = (pix << 35) + np.arange(n)
    g = rng.uniform(8, 20, n)
    return list(zip(ids.tolist(), ra.tolist(), dec.tolist(), g.tolist()))


def copy_rows(url: str, table: str, data) -> float:
    with psycopg.connect(url) as conn, timer() as t:
        with conn.cursor().copy(f"COPY {table} (source_id, ra, dec, g) FROM STDIN") as cp:
            for row in data:
                cp.write_row(row)
        conn.commit()
    return len(data) / t["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    data = rows(args.n)
    homes = [Path(tempfile.mkdtemp(prefix=f"xpdb-bench-shard-{k}-", dir="/tmp")) for k in "ab"]
    clusters = []
    try:
        for home in homes:
            home.chmod(0o755)
            cluster = EmbeddedCluster(Settings(database_url=None, home=home))
            cluster.start()
            clusters.append(cluster)
        a, b = (c.url for c in clusters)
        columns = "(source_id bigint PRIMARY KEY, ra double precision, dec double precision, g real)"
        with psycopg.connect(b, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE direct {columns}")
            for p in range(12 * 4**ORDER):
                conn.execute(f"CREATE TABLE part_{p} {columns}")
        with psycopg.connect(a, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
            conn.execute(f"CREATE SERVER shard_b FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host "
                         f"'{clusters[1].socket_dir}', port '5432', dbname 'xpdb', batch_size '1000')")
            conn.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER shard_b OPTIONS (user 'xpdb')")
            for name in ("via_fdw", "local_parts"):
                conn.execute(f"CREATE TABLE {name} (source_id bigint NOT NULL, ra double precision, "
                             "dec double precision, g real) PARTITION BY RANGE (source_id)")
            for p in range(12 * 4**ORDER):
                bounds = f"FROM ({p * WIDTH}) TO ({(p + 1) * WIDTH})"
                conn.execute(f"CREATE FOREIGN TABLE via_fdw_{p} PARTITION OF via_fdw FOR VALUES {bounds} "
                             f"SERVER shard_b OPTIONS (schema_name 'public', table_name 'part_{p}')")
                conn.execute(f"CREATE TABLE local_parts_{p} PARTITION OF local_parts FOR VALUES {bounds}")
            conn.execute("ALTER TABLE local_parts ADD PRIMARY KEY (source_id)")
            version = conn.execute("SHOW server_version").fetchone()[0]
        direct = copy_rows(b, "direct", data)
        via_fdw = copy_rows(a, "via_fdw", data)
        local = copy_rows(a, "local_parts", data)
        with psycopg.connect(b) as conn:
            landed = sum(conn.execute(f"SELECT count(*) FROM part_{p}").fetchone()[0] for p in range(12 * 4**ORDER))
        assert landed == args.n, landed
    finally:
        for cluster in clusters:
            cluster.stop()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
    print(f"{args.n:,} rows, PostgreSQL {version}, {12 * 4**ORDER} range partitions on level-{ORDER} HEALPix bounds")
    print(ratio_line("COPY into the parent, foreign partitions on B", via_fdw, direct, "rows/s"))
    print(ratio_line("COPY into the parent, local partitions on A", local, direct, "rows/s"))
    print(f"baseline: COPY straight into one table on B, {direct:,.0f} rows/s")


if __name__ == "__main__":
    main()
