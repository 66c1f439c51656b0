"""Ingest throughput: the same XP spectra (with correlations) from every format vs plain binary COPY.

Writes N archive-layout XP_CONTINUOUS rows (2x55 coefficients, 2x55 errors, 2x1485
correlations) as CSV (bracketed text, as the archive serves it), ECSV, FITS (variable
length arrays), VOTable (BINARY2, and TABLEDATA; BINARY2 also through astropy's parser, the
reader before issue 19) and Parquet, loads each with ``xpdb ingest xp`` into an
empty table, and prints spectra/s next to the baseline measured in the same run: a plain
binary COPY of the already-encoded bytes into the same table. Each timed load (and the
baseline) follows a smaller warm-up load of the same kind, as when ``xpdb ingest`` is
given many files; the warm-up's own rate is printed too.

    python bench/ingest.py [--n 20000] [--warmup 2000] [--formats csv,ecsv] [--files DIR]

``--files DIR`` keeps the written files in DIR (one folder per --n and --warmup) and reuses them on the
next run, which then starts loading at once (writing them takes minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ratio_line, scratch_database, timer  # noqa: E402

from xpdb.db.copy import copy_binary  # noqa: E402
from xpdb.ingest import votable_fast  # noqa: E402
from xpdb.ingest import xp as xp_mod  # noqa: E402
from xpdb.ingest.runs import ingest_file  # noqa: E402
from xpdb.synth.writers import text_arrays  # noqa: E402

K = 55
NCORR = K * (K - 1) // 2


def synthetic_table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {
        "source_id": pa.array(np.arange(n, dtype=np.int64) * 1024 + 4295806720),
        "solution_id": pa.array(np.full(n, 4545469030156206080, dtype=np.int64)),
    }
    for band in ("bp", "rp"):
        cols[f"{band}_basis_function_id"] = pa.array(np.full(n, 56 if band == "bp" else 57, dtype=np.int16))
        cols[f"{band}_n_parameters"] = pa.array(np.full(n, K, dtype=np.int16))
        cols[f"{band}_standard_deviation"] = pa.array(rng.uniform(0.8, 1.5, n).astype(np.float32))
        cols[f"{band}_chi_squared"] = pa.array(rng.uniform(100, 5000, n).astype(np.float32))
        coeff = rng.normal(0, 100, (n, K)) * np.exp(-np.arange(K) / 10)
        cols[f"{band}_coefficients"] = pa.FixedSizeListArray.from_arrays(pa.array(coeff.ravel()), K).cast(
            pa.list_(pa.float64()))
        err = rng.uniform(0.5, 5, (n, K)).astype(np.float32)
        cols[f"{band}_coefficient_errors"] = pa.FixedSizeListArray.from_arrays(pa.array(err.ravel()), K).cast(
            pa.list_(pa.float32()))
        corr = rng.uniform(-0.1, 0.1, (n, NCORR)).astype(np.float32)
        cols[f"{band}_coefficient_correlations"] = pa.FixedSizeListArray.from_arrays(
            pa.array(corr.ravel()), NCORR).cast(pa.list_(pa.float32()))
        cols[f"{band}_n_relevant_bases"] = pa.array(np.full(n, 40, dtype=np.int16))
    return pa.table(cols)


def write_formats(table: pa.Table, folder: Path, write: bool = True) -> dict[str, Path]:
    """Every format's file of ``table`` in ``folder`` (``write=False``: only their paths, already written)."""
    from astropy.io.votable import from_table
    from astropy.table import Table

    if not write:
        names = {"parquet": "xp.parquet", "csv": "xp.csv", "ecsv": "xp.ecsv", "fits": "xp.fits", "votable": "xp.vot",
                 "votable-astropy": "xp.vot", "votable-td": "xp-td.vot"}
        return {fmt: folder / name for fmt, name in names.items()}
    paths = {}
    paths["parquet"] = folder / "xp.parquet"
    pq.write_table(table, paths["parquet"])
    paths["csv"] = folder / "xp.csv"
    pacsv.write_csv(text_arrays(table, "(", ")"), paths["csv"])
    # ECSV: astropy writes the YAML header (from a 1-row table); pyarrow writes the body fast.
    paths["ecsv"] = folder / "xp.ecsv"
    one = Table({name: ([np.asarray(v) for v in table.column(name)[:1].to_pylist()]
                        if pa.types.is_list(table.schema.field(name).type) else table.column(name)[:1].to_numpy())
                 for name in table.column_names})
    one.write(folder / "one.ecsv", format="ascii.ecsv", delimiter=",", overwrite=True)
    header = [line for line in (folder / "one.ecsv").read_text().splitlines() if line.startswith("#")]
    body = folder / "body.csv"
    pacsv.write_csv(text_arrays(table, "[", "]"), body)
    with open(paths["ecsv"], "w") as fh:
        fh.write("\n".join(header) + "\n")
        fh.write(body.read_text())
    body.unlink()
    # FITS and VOTable with variable-length array columns, as the archive writes them.
    def cells(name):
        dtype = table.schema.field(name).type.value_type.to_pandas_dtype()
        return np.array([np.asarray(v, dtype=dtype) for v in table.column(name).to_pylist()] + [None],
                        dtype=object)[:-1]

    astro = Table({name: (cells(name)
                          if pa.types.is_list(table.schema.field(name).type) else table.column(name).to_numpy())
                   for name in table.column_names})
    paths["fits"] = folder / "xp.fits"
    astro.write(paths["fits"], format="fits")
    paths["votable"] = folder / "xp.vot"
    for name in astro.colnames:  # the VOTable writer wants masked arrays in array cells
        if astro[name].dtype == object:
            cells = np.empty(len(astro), dtype=object)
            cells[:] = [np.ma.masked_array(v, mask=np.zeros(len(v), dtype=bool)) for v in astro[name]]
            astro[name] = cells
    vot = from_table(astro)
    vot.get_first_table().format = "binary2"
    vot.to_xml(str(paths["votable"]))
    paths["votable-astropy"] = paths["votable"]  # the same file, read by astropy (the reader before issue 19)
    paths["votable-td"] = folder / "xp-td.vot"
    vot.get_first_table().format = "tabledata"
    vot.to_xml(str(paths["votable-td"]))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="spectra per format")
    parser.add_argument("--warmup", type=int, default=2_000,
                        help="spectra in the warm-up load of each format before the timed one (0: none)")
    parser.add_argument("--formats", default="fits,parquet,csv,ecsv,votable,votable-td,votable-astropy",
                        help="votable: BINARY2 by xpdb's reader; votable-td: TABLEDATA; votable-astropy: the "
                             "BINARY2 file read by astropy, as before issue 19")
    parser.add_argument("--files", metavar="DIR", help="keep the written files in DIR and reuse them next time")
    args = parser.parse_args()
    formats = args.formats.split(",")
    url = scratch_database("xpdb_bench_ingest")
    table = synthetic_table(args.n)
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        tmp = Path(args.files) / f"n{args.n}-warmup{args.warmup}" if args.files else Path(scratch)
        done = tmp / "complete"
        if done.exists():
            print(f"reusing the files in {tmp}", flush=True)
            paths = write_formats(table, tmp, write=False)
            warm_paths = write_formats(table.slice(0, args.warmup), tmp / "warm", write=False) if args.warmup else {}
        else:
            print(f"writing {args.n:,} spectra with correlations in each format ...", flush=True)
            tmp.mkdir(parents=True, exist_ok=True)
            paths = write_formats(table, tmp)
            warm_paths = {}
            if args.warmup:
                (tmp / "warm").mkdir(exist_ok=True)
                warm_paths = write_formats(table.slice(0, args.warmup), tmp / "warm")
            done.write_text("written\n")
        os.sync()  # the files' pages are written back now, not while they are being loaded

        def empty_tables() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE xpdb.xp_band, xpdb.ingest_run CASCADE")

        # Baseline: binary COPY of prepared bytes (parse and validation excluded), after a warm-up COPY.
        batch = xp_mod.from_arrow(table)
        for rows in ([args.warmup] if args.warmup else []) + [args.n]:
            keep = np.arange(batch.n) < rows
            cols = xp_mod.copy_columns(batch, keep, 0)
            empty_tables()
            with psycopg.connect(url) as conn:
                with timer() as t:
                    copy_binary(conn, "xpdb.xp_band", *cols)
                    conn.commit()
        baseline = args.n / t["seconds"]
        print(f"\nbaseline: plain binary COPY of the encoded rows: {baseline:,.0f} spectra/s")
        if args.warmup:
            print(f"each timed load follows a {args.warmup:,}-spectrum load of the same format in the same "
                  "process (its rate in brackets: it also pays one-off start-up, e.g. ~0.5 s of numba for text)\n")
        for fmt in formats:
            warm_note = ""
            if args.warmup:
                empty_tables()
                votable_fast.ENABLED = fmt != "votable-astropy"
                with timer() as w:
                    ingest_file(url, "xp", warm_paths[fmt])
                warm_note = f"   (warm-up {args.warmup / w['seconds']:,.0f}/s)"
            empty_tables()
            votable_fast.ENABLED = fmt != "votable-astropy"
            with timer() as t:
                report = ingest_file(url, "xp", paths[fmt])
            votable_fast.ENABLED = True
            assert report.rows_loaded == args.n, report
            print(ratio_line(f"xpdb ingest xp ({fmt}, {paths[fmt].stat().st_size / 1e6:,.0f} MB)",
                             args.n / t["seconds"], baseline, "spectra/s") + warm_note, flush=True)


if __name__ == "__main__":
    main()
