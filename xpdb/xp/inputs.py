"""XP_CONTINUOUS input from anything: a file path, an astropy Table, a pandas DataFrame, the database.

Everything becomes an ``XpBatch`` (see ``xpdb.ingest.xp``): dense per-band arrays of
coefficients, errors and packed correlations, which the spectra math works on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from xpdb.db.copy import decode_bytea
from xpdb.ingest.arrays import DenseArrays
from xpdb.ingest.readers import TableReader, _astropy_column_to_arrow
from xpdb.ingest.xp import BAND_ARRAYS, BAND_SCALARS, BANDS, Scalar, XpBatch, from_arrow


def _pandas_to_arrow(df) -> pa.Table:
    """A DataFrame in GaiaXPy's input layout (arrays as numpy arrays, lists or bracketed strings)."""
    columns = {}
    for name in df.columns:
        series = df[name]
        if series.dtype == object:
            sample = next((v for v in series if v is not None and not (isinstance(v, float) and np.isnan(v))), None)
            if isinstance(sample, (np.ndarray, list, tuple)):
                columns[name] = pa.array([None if v is None or (isinstance(v, float) and np.isnan(v))
                                          else np.asarray(v, dtype=float).ravel() for v in series],
                                         type=pa.list_(pa.float64()))
                continue
            if isinstance(sample, str):
                columns[name] = pa.array([None if not isinstance(v, str) else v for v in series], type=pa.string())
                continue
        columns[name] = pa.array(series.to_numpy(), from_pandas=True)
    return pa.table(columns)


def to_batch(data) -> XpBatch:
    """Convert any supported XP_CONTINUOUS input to an ``XpBatch``."""
    if isinstance(data, XpBatch):
        return data
    if isinstance(data, (str, Path)):
        reader = TableReader(data, chunk_rows=1 << 30)
        try:
            tables = [c.table for c in reader.chunks()]
        finally:
            reader.close()
        return from_arrow(pa.concat_tables(tables) if len(tables) > 1 else tables[0])
    if isinstance(data, pa.Table):
        return from_arrow(data)
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return from_arrow(_pandas_to_arrow(data))
    except ImportError:  # pragma: no cover
        pass
    from astropy.table import Table

    if isinstance(data, Table):
        return from_arrow(pa.table([_astropy_column_to_arrow(data[n]) for n in data.colnames], names=data.colnames))
    raise TypeError(f"cannot read XP spectra from {type(data).__name__}; give a path, Table, DataFrame or XpBatch")


XP_COLUMNS = ("source_id", "band", "solution_id", "n_parameters", "standard_deviation", "n_relevant_bases",
              "basis_function_id", "coefficients", "coefficient_errors", "coefficient_correlations")


def batch_from_rows(source_ids: Sequence[int], rows: Sequence[tuple]) -> XpBatch:
    """Build an ``XpBatch`` for ``source_ids`` from ``xp_band`` rows (in ``XP_COLUMNS`` order).

    Sources without rows get NULL bands (they stay in the batch, in the given order).
    """
    ids = np.asarray(source_ids, dtype=np.int64)
    n = len(ids)
    index = {int(s): i for i, s in enumerate(ids)}
    batch = XpBatch(n=n, source_id=Scalar(ids.copy(), np.zeros(n, dtype=bool)),
                    solution_id=Scalar(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)))
    per_band: dict[str, list[tuple]] = {b: [] for b in BANDS}
    for row in rows:
        per_band[row[1]].append(row)
    for band in BANDS:
        band_rows = per_band[band]
        pos = np.fromiter((index[int(r[0])] for r in band_rows), dtype=np.int64, count=len(band_rows))
        for name, kind in BAND_SCALARS.items():
            dtype = np.float32 if kind.startswith("float") else np.int16
            batch.scalars[f"{band}_{name}"] = Scalar(np.zeros(n, dtype=dtype), np.ones(n, dtype=bool))
        for col, name in ((3, "n_parameters"), (4, "standard_deviation"), (5, "n_relevant_bases"),
                          (6, "basis_function_id")):
            s = batch.scalars[f"{band}_{name}"]
            vals = [r[col] for r in band_rows]
            present = np.array([v is not None for v in vals], dtype=bool)
            s.values[pos[present]] = np.array([v for v in vals if v is not None], dtype=s.values.dtype)
            s.null[pos[present]] = False
        if band_rows:
            sol = np.array([r[2] if r[2] is not None else 0 for r in band_rows], dtype=np.int64)
            batch.solution_id.values[pos] = sol
            batch.solution_id.null[pos] = False
        for col, (name, dtype) in zip((7, 8, 9), BAND_ARRAYS.items()):
            blobs = [r[col] for r in band_rows]
            code = "<f8" if dtype is np.float64 else "<f4"
            dense = decode_bytea(blobs, code)
            width = dense.shape[1] if dense.ndim == 2 else 0
            values = np.full((n, width), np.nan, dtype=dtype)
            lengths = np.zeros(n, dtype=np.int32)
            null = np.ones(n, dtype=bool)
            if band_rows:
                values[pos] = dense
                present = np.array([b is not None for b in blobs], dtype=bool)
                lengths[pos[present]] = [len(b) // np.dtype(code).itemsize for b in blobs if b is not None]
                null[pos[present]] = False
            batch.arrays[f"{band}_{name}"] = DenseArrays(values, lengths, null)
    return batch


def fetch_xp(conn, source_ids: Sequence[int], *, between: tuple[int, int] | None = None) -> XpBatch:
    """Read the XP spectra of ``source_ids`` from ``xpdb.xp_band`` (missing sources: NULL bands).

    ``between`` (first, last) reads the whole source_id range in index order instead of
    looking the ids up one by one (faster for the dense ranges of job batches).
    """
    ids = [int(s) for s in source_ids]
    cur = conn.cursor(binary=True)
    if between is not None:
        cur.execute(f"SELECT {', '.join(XP_COLUMNS)} FROM xpdb.xp_band WHERE source_id BETWEEN %s AND %s",
                    (int(between[0]), int(between[1])))
        wanted = set(ids)
        rows = [r for r in cur.fetchall() if r[0] in wanted]
    else:
        cur.execute(f"SELECT {', '.join(XP_COLUMNS)} FROM xpdb.xp_band WHERE source_id = ANY(%s)", (ids,))
        rows = cur.fetchall()
    return batch_from_rows(ids, rows)
