"""Prototype for issue 20, points 1-2 (design in docs/scale-out.md): a source table range-partitioned
on source_id at HEALPix boundaries, one partition local and one a postgres_fdw foreign table on a
second embedded PostgreSQL, answers a q3c cone search with the rows of both servers, prunes
partitions for a source_id range, and ships q3c to the remote server (async foreign scan).

Not the product: the tables live in a scratch schema of the test database; nothing in xpdb uses them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from xpdb.config import Settings
from xpdb.db.embedded import EmbeddedCluster

LEVEL12_SHIFT = 35  # source_id // 2**35 is the nested HEALPix index at level 12 (Gaia DR3 convention)
SPLIT_ORDER = 1  # partitions are level-1 HEALPix pixels here (48); the design uses adaptive HATS-like pixels


@pytest.fixture
def second_server():
    home = Path(tempfile.mkdtemp(prefix="xpdb-shard-", dir="/tmp"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(Settings(database_url=None, home=home))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def _pixel_range(pixel: int, order: int) -> tuple[int, int]:
    """[first, end) source_id range of a nested HEALPix pixel of ``order`` (<= 12)."""
    width = 4 ** (12 - order) << LEVEL12_SHIFT
    return pixel * width, (pixel + 1) * width


def test_cone_across_a_local_and_a_foreign_partition(conn, second_server):
    from astropy_healpix import HEALPix

    # Sources around the corner where level-1 pixels 0 and 3 (nested) meet, so one cone spans both.
    hp1 = HEALPix(nside=2**SPLIT_ORDER, order="nested")
    lon, lat = hp1.healpix_to_lonlat([0])
    rng = np.random.default_rng(7)
    corners = hp1.boundaries_lonlat([0], step=1)  # the four corners of pixel 0; take one far from the poles
    k = int(np.argmin(np.abs(corners[1][0].to_value(u.deg))))
    c_ra, c_dec = float(corners[0][0][k].to_value(u.deg)), float(corners[1][0][k].to_value(u.deg))
    n = 3000
    ra = (c_ra + rng.uniform(-3, 3, n)) % 360
    dec = np.clip(c_dec + rng.uniform(-3, 3, n), -89, 89)
    pix12 = HEALPix(nside=2**12, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg).astype(np.int64)
    ids = (pix12 << LEVEL12_SHIFT) + np.arange(n)
    owner = pix12 >> (2 * (12 - SPLIT_ORDER))  # the level-1 pixel of each source
    local_pixel = int(hp1.lonlat_to_healpix(lon, lat)[0])
    assert len(set(owner.tolist())) >= 2, "the synthetic sky must straddle two level-1 pixels"
    remote_pixels = sorted(set(owner.tolist()) - {local_pixel})

    # server B holds the remote partitions, one table each (a foreign partition does not send its
    # bounds to the remote side: two foreign partitions on one remote table would return its rows twice)
    remote_url = second_server.url
    with psycopg.connect(remote_url, autocommit=True) as rb:
        rb.execute("CREATE EXTENSION IF NOT EXISTS q3c")
        for p in remote_pixels:
            rb.execute(f"CREATE TABLE shard_source_p{p} (source_id bigint PRIMARY KEY, "
                       "ra double precision NOT NULL, dec double precision NOT NULL)")
            rb.execute(f"CREATE INDEX ON shard_source_p{p} (q3c_ang2ipix(ra, dec))")

    host = str(second_server.socket_dir)
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
    conn.execute("CREATE SCHEMA proto")
    conn.execute(f"CREATE SERVER shard_b FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '{host}', port '5432', "
                 "dbname 'xpdb', async_capable 'true', extensions 'q3c', fetch_size '10000')")
    conn.execute("CREATE USER MAPPING FOR CURRENT_USER SERVER shard_b OPTIONS (user 'xpdb')")
    conn.execute("CREATE TABLE proto.source (source_id bigint NOT NULL, ra double precision NOT NULL, "
                 "dec double precision NOT NULL) PARTITION BY RANGE (source_id)")
    first, end = _pixel_range(local_pixel, SPLIT_ORDER)
    conn.execute(f"CREATE TABLE proto.source_p{local_pixel} PARTITION OF proto.source FOR VALUES FROM ({first}) "
                 f"TO ({end})")
    conn.execute(f"CREATE INDEX ON proto.source_p{local_pixel} (q3c_ang2ipix(ra, dec))")
    conn.execute(f"ALTER TABLE proto.source_p{local_pixel} ADD PRIMARY KEY (source_id)")
    for p in remote_pixels:
        first, end = _pixel_range(p, SPLIT_ORDER)
        conn.execute(f"CREATE FOREIGN TABLE proto.source_p{p} PARTITION OF proto.source FOR VALUES FROM ({first}) "
                     f"TO ({end}) SERVER shard_b OPTIONS (schema_name 'public', table_name 'shard_source_p{p}')")

    # rows are routed to their partition, the remote ones through postgres_fdw
    with conn.cursor().copy("COPY proto.source (source_id, ra, dec) FROM STDIN") as cp:
        for row in zip(ids.tolist(), ra.tolist(), dec.tolist()):
            cp.write_row(row)
    conn.execute("ANALYZE proto.source")
    with psycopg.connect(remote_url, autocommit=True) as rb:
        rb.execute("ANALYZE")
        on_b = sum(rb.execute(f"SELECT count(*) FROM shard_source_p{p}").fetchone()[0] for p in remote_pixels)
    assert on_b == int((owner != local_pixel).sum()) > 0
    assert conn.execute(f"SELECT count(*) FROM proto.source_p{local_pixel}").fetchone()[0] == int(
        (owner == local_pixel).sum()) > 0

    # a cone on the corner: q3c on the parent returns the rows of both servers, exactly
    radius = 1.5
    got = {r[0] for r in conn.execute("SELECT source_id FROM proto.source WHERE q3c_radial_query(ra, dec, %s, %s, %s)",
                                      (c_ra, c_dec, radius))}
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(c_ra * u.deg, c_dec * u.deg)).deg
    expected = set(ids[sep <= radius].tolist())
    assert got == expected
    owner_of = dict(zip(ids.tolist(), owner.tolist()))
    assert local_pixel in {owner_of[s] for s in got} and len({owner_of[s] for s in got}) >= 2

    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN (VERBOSE) SELECT source_id FROM proto.source WHERE q3c_radial_query(ra, dec, %s, %s, %s)",
        (c_ra, c_dec, radius)))
    assert "Async Foreign Scan" in plan  # async_capable: remote scans run concurrently with the local one
    # q3c_radial_query is an inlined SQL function: its q3c_ang2ipix ranges (what the q3c index answers) and
    # q3c_sindist test are shipped to server B (the server option extensions 'q3c' allows it)
    remote_sql = plan.split("Remote SQL", 1)[1]
    assert "q3c_ang2ipix" in remote_sql and "q3c_sindist" in remote_sql
    shipped = remote_sql.split(":", 1)[1].splitlines()[0].strip()
    with psycopg.connect(remote_url, autocommit=True) as rb:
        rb.execute("SET enable_seqscan = off")  # tiny tables: ask whether the index *can* answer it
        remote_plan = "\n".join(r[0] for r in rb.execute("EXPLAIN " + shipped))
    assert "q3c_ang2ipix_idx" in remote_plan, remote_plan
    assert f"source_p{local_pixel}_q3c_ang2ipix_idx" in plan or "Bitmap Index Scan" in plan

    # partition pruning: a source_id range inside the local pixel never touches server B
    first, end = _pixel_range(local_pixel, SPLIT_ORDER)
    pruned = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT source_id FROM proto.source WHERE q3c_radial_query(ra, dec, %s, %s, %s) "
        "AND source_id >= %s AND source_id < %s", (c_ra, c_dec, radius, first, end)))
    assert "Foreign Scan" not in pruned and f"source_p{local_pixel}" in pruned
    local_only = {r[0] for r in conn.execute(
        "SELECT source_id FROM proto.source WHERE q3c_radial_query(ra, dec, %s, %s, %s) "
        "AND source_id >= %s AND source_id < %s", (c_ra, c_dec, radius, first, end))}
    assert local_only == {s for s in expected if first <= s < end}

    # OR-ed ranges (what a cone's HEALPix coverage becomes) prune too: the local pixel and one remote one
    other = remote_pixels[0]
    o_first, o_end = _pixel_range(other, SPLIT_ORDER)
    two = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT source_id FROM proto.source WHERE q3c_radial_query(ra, dec, %s, %s, %s) "
        "AND (source_id >= %s AND source_id < %s OR source_id >= %s AND source_id < %s)",
        (c_ra, c_dec, radius, first, end, o_first, o_end)))
    scanned = {p for p in [local_pixel, *remote_pixels] if f"source_p{p} " in two}
    assert scanned == {local_pixel, other}, two
