"""`xpdb export hats` throughput against `xpdb export catalog --format parquet`, same run.

Builds N synthetic sources uniformly over the sky with Gaia-like source_ids (level-12 HEALPix
<< 35) and a prediction for each from a hand-made model, in a scratch database, then times:
- baseline: ``export_catalog`` to one Parquet file (the Table 2 rows, server-side cursor);
- ``stage_parquet`` alone: the HATS export's COPY -> pyarrow -> Parquet staging of the same
  sources with more columns;
- ``export_hats`` in full: staging + hats-import (partitioning, metadata, a 10 arcsec margin)
  with 1 thread.
Each figure is rows per second, printed with the baseline and their ratio.

    python bench/hats_export.py [--n 200000] [--threshold 50000]
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
from _common import ratio_line, scratch_database, timer  # noqa: E402

from xpdb.query.export import export_catalog  # noqa: E402
from xpdb.query.hats import _columns, _schema, export_hats, stage_parquet  # noqa: E402


def build(url: str, n: int) -> int:
    from astropy import units as u
    from astropy_healpix import HEALPix

    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    pix = HEALPix(nside=2**12, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg).astype(np.int64)
    ids = (pix << 35) + np.arange(n)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy("COPY xpdb.gaia_source (source_id, ra, dec, l, b, parallax, phot_g_mean_mag, bp_rp, "
                                "phot_bp_rp_excess_factor, ebv, rgeo) FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((int(ids[i]), float(ra[i]), float(dec[i]), float(ra[i]), float(dec[i]) / 2, 1.0,
                              12.0 + (i % 50) / 10, 1.2, 1.2, 0.05, 2000.0))
        conn.execute("INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact) "
                     "VALUES ('uacsnet', 'bench', 1, '{}', '\\x00')")
        mid = conn.execute("SELECT model_id FROM xpdb.model WHERE name = 'bench'").fetchone()[0]
        conn.execute("INSERT INTO xpdb.prediction (model_id, source_id, feh, feh_err, flags) "
                     "SELECT %s, source_id, -0.5, 0.1, 0 FROM xpdb.gaia_source", (mid,))
        conn.execute("VACUUM ANALYZE")
    return mid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--threshold", type=int, default=50_000, help="hats-import pixel_threshold")
    args = parser.parse_args()
    url = scratch_database("xpdb_bench_hats")
    mid = build(url, args.n)
    work = Path(tempfile.mkdtemp(prefix="xpdb-bench-hats-"))
    try:
        with timer() as t_base:
            rows_base = export_catalog(url, mid, "parquet", work / "catalog.parquet")
        cols = _columns(True, False)
        (work / "stage").mkdir()
        with psycopg.connect(url) as conn, timer() as t_stage:
            _, rows_stage = stage_parquet(conn, work / "stage", cols, _schema(cols, {}), mid, None,
                                          rows_per_file=1_000_000)
        with timer() as t_hats:
            result = export_hats(url, work / "hats", model_id=mid, model_ref="bench:1",
                                 pixel_threshold=args.threshold)
        import hats

        n_pix = len(hats.read_hats(result.catalog_path).get_healpix_pixels())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert rows_base == rows_stage == result.rows == args.n
    base = rows_base / t_base["seconds"]
    print(f"{args.n:,} sources, {len(cols)} HATS columns vs 14 Table 2 columns; {n_pix} HATS partitions "
          f"(pixel_threshold {args.threshold:,}), margin 10 arcsec, 1 hats-import thread")
    print(ratio_line("HATS staging (COPY csv -> pyarrow -> Parquet)", rows_stage / t_stage["seconds"], base, "rows/s"))
    print(ratio_line("HATS export in full (staging + hats-import)", result.rows / t_hats["seconds"], base, "rows/s"))
    print(f"baseline: xpdb export catalog --format parquet, {base:,.0f} rows/s ({t_base['seconds']:.1f} s); "
          f"HATS export {t_hats['seconds']:.1f} s, of which staging {t_stage['seconds']:.1f} s")


if __name__ == "__main__":
    main()
