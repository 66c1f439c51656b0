"""Inference throughput on synthetic stars, next to a plain SELECT + COPY baseline, in one run.

Prints, for N stars (default 100,000) of a synthetic sky stored in a scratch database:
- the model-only throughput (UA-CSNet on features already in memory);
- the baseline: a plain SELECT of the stored spectra plus a COPY of N result rows;
- end to end, spectra -> features (computed on the fly) -> predictions, with 1 and 2 workers;
- end to end when the features are already stored (2 workers).
End-to-end rates are over the batches' processing (first lease to last commit); the
wall-clock rate including worker start-up (Python + TensorFlow import) is shown beside.
The network is an untrained UA-CSNet of the real architecture: speed does not depend on
its weights.

    python bench/infer.py [--n 100000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_job, scratch_database  # noqa: E402

from xpdb.db.copy import Column, copy_binary  # noqa: E402
from xpdb.ingest.runs import ingest_file  # noqa: E402
from xpdb.models import registry  # noqa: E402
from xpdb.models.uacsnet import UACSNetConfig, build_model, predict, to_bytes  # noqa: E402
from xpdb.synth.sky import make_sky  # noqa: E402
from xpdb.synth.writers import write_sky  # noqa: E402
from xpdb.xp.features import Preprocessing  # noqa: E402
from xpdb.xp.store import preprocessing_id  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    url = scratch_database("xpdb_bench_infer")
    print(f"building a synthetic sky of {args.n:,} stars ...", flush=True)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        paths = write_sky(make_sky(args.n, seed=1), Path(tmp), "parquet")
        ingest_file(url, "sources", paths["gaia_source"])
        ingest_file(url, "xp", paths["xp_continuous"])
    with psycopg.connect(url) as conn:
        pid = preprocessing_id(conn, Preprocessing())
        model = build_model(UACSNetConfig())
        record = registry.save(conn, kind="uacsnet", name="bench", hyperparameters=UACSNetConfig().to_dict(),
                               artifact=to_bytes(model), preprocessing_id=pid, metrics={})
        conn.commit()
        n_spectra = conn.execute("SELECT count(DISTINCT source_id) FROM xpdb.xp_band").fetchone()[0]

    # model only
    rng = np.random.default_rng(0)
    flux = rng.uniform(0.2, 1.5, (args.n, 60)).astype(np.float32)
    err = rng.uniform(1e-3, 1e-2, (args.n, 60)).astype(np.float32)
    predict(model, flux[:1000], err[:1000])
    t0 = time.perf_counter()
    predict(model, flux, err)
    model_rate = args.n / (time.perf_counter() - t0)

    # baseline: SELECT the spectra, COPY the same number of result rows
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE result_copy (source_id bigint, feh real, feh_err real, flags integer)")
        t0 = time.perf_counter()
        cur = conn.cursor(binary=True)
        cur.execute("SELECT source_id, band, coefficients, coefficient_errors, coefficient_correlations, "
                    "standard_deviation, n_parameters FROM xpdb.xp_band")
        rows = cur.fetchall()
        ids = np.unique(np.array([r[0] for r in rows], dtype=np.int64))
        copy_binary(conn, "result_copy", [Column("source_id", "int8", ids),
                                          Column("feh", "float4", np.zeros(len(ids), np.float32)),
                                          Column("feh_err", "float4", np.zeros(len(ids), np.float32)),
                                          Column("flags", "int4", np.zeros(len(ids), np.int32))])
        conn.commit()
        baseline = len(ids) / (time.perf_counter() - t0)
        del rows

    print(f"\n{n_spectra:,} stars with XP spectra (2 bands, full correlations), batches of {args.batch:,}\n")
    print(f"{'model only (UA-CSNet on in-memory features)':<58s} {model_rate:>10,.0f} stars/s")
    print(f"{'baseline: SELECT spectra + COPY results (1 connection)':<58s} {baseline:>10,.0f} stars/s")
    for workers in (1, 2):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM xpdb.xp_features")
        rate, wall, n = run_job(url, record.model_id, workers, args.batch)
        print(f"{f'end to end, features on the fly, {workers} worker(s)':<58s} {rate:>10,.0f} stars/s"
              f"   (wall clock with start-up {wall:,.0f}/s; ratio to baseline {rate / baseline:.2f})")
    rate, wall, n = run_job(url, record.model_id, 2, args.batch)
    print(f"{'end to end, features already stored, 2 workers':<58s} {rate:>10,.0f} stars/s"
          f"   (wall clock with start-up {wall:,.0f}/s; ratio to baseline {rate / baseline:.2f})")


if __name__ == "__main__":
    main()
