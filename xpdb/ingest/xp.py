"""XP_CONTINUOUS rows: from any archive layout to validated columns ready for binary COPY.

Accepts the archive layout (``bp_coefficients`` arrays, ``bp_coefficient_correlations``
packed as the 1485 strictly-lower-triangle elements, row-major) and the flat layout with
one column per coefficient (``bp_coeff_0``.., ``e_bp_coeff_0``..). A band whose
coefficients are absent is a missing band (NULLs), not an error. Array widths come from
the data, so DR4's 51 BP coefficients load unchanged.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from xpdb.db.copy import Column, decode_bytea
from xpdb.ingest.arrays import dense_arrays, dense_from_flat
from xpdb.ingest.readers import IngestFileError, detect_format
from xpdb.xp.batch import BAND_ARRAYS, BAND_SCALARS, BANDS, DenseArrays, Scalar, XpBatch

_NUMPY = {"int2": np.int16, "int4": np.int32, "int8": np.int64, "float4": np.float32, "float8": np.float64}
_FLAT = {"coefficients": r"^{b}_coeff_(\d+)$", "coefficient_errors": r"^e_{b}_coeff_(\d+)$"}
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """Two threads that parse array columns in parallel (started on first use)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="xpdb-parse")
    return _POOL


_warm = threading.Event()


def warm_up_text_parser() -> None:
    """Start the text parser in the background: numba's first call in a process takes ~0.5 s."""
    if not _warm.is_set():
        _warm.set()
        from xpdb.ingest import textnumbers

        _pool().submit(textnumbers.warm_up)


def warm_up_text_parser_for(paths: list[Path], fmt: str | None = None) -> None:
    """``warm_up_text_parser`` when any of ``paths`` is CSV or ECSV text."""
    for path in paths:
        try:
            if detect_format(path, fmt)[0] in ("csv", "ecsv"):
                warm_up_text_parser()
                return
        except IngestFileError:  # an unknown format is reported by the load itself
            continue


@dataclass
class Reject:
    """One reason a row was not loaded."""

    row: int  # index within the batch
    column: str | None
    reason: str
    value: str | None = None


def _scalar(table: pa.Table, names: dict[str, str], name: str, kind: str) -> Scalar:
    n = table.num_rows
    dtype = _NUMPY[kind]
    if name not in names:
        return Scalar(np.zeros(n, dtype=dtype), np.ones(n, dtype=bool))
    col = table.column(names[name])
    if pa.types.is_string(col.type):  # text from CSV that inference left as text
        col = col.cast(pa.float64())
    null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if np.dtype(dtype).kind == "f":
        values = np.asarray(col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=dtype)
    elif pa.types.is_integer(col.type):
        values = np.asarray(col.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)).astype(dtype)
    else:  # integers written as floats (e.g. a CSV column with blanks)
        raw = np.asarray(col.cast(pa.float64()).fill_null(0).to_numpy(zero_copy_only=False))
        null |= ~np.isfinite(raw)
        values = np.where(np.isfinite(raw), raw, 0).astype(dtype)
    return Scalar(values, null)


def lower_names(table: pa.Table) -> dict[str, str]:
    """Map lower-case column names to the file's own spelling."""
    return {name.lower(): name for name in table.column_names}


def from_arrow(table: pa.Table) -> XpBatch:
    """Convert one chunk of an XP_CONTINUOUS file (any supported layout) to an ``XpBatch``."""
    names = lower_names(table)
    if "source_id" not in names:
        raise KeyError("source_id")
    batch = XpBatch(
        n=table.num_rows,
        source_id=_scalar(table, names, "source_id", "int8"),
        solution_id=_scalar(table, names, "solution_id", "int8"),
    )
    for band in BANDS:
        for name, kind in BAND_SCALARS.items():
            batch.scalars[f"{band}_{name}"] = _scalar(table, names, f"{band}_{name}", kind)
    jobs = {}
    for band in BANDS:
        for name, dtype in BAND_ARRAYS.items():
            key = f"{band}_{name}"
            if key in names:
                jobs[key] = _pool().submit(dense_arrays, table.column(names[key]), dtype)
            elif name in _FLAT:
                pattern = re.compile(_FLAT[name].format(b=band))
                flat = sorted(((int(m.group(1)), orig) for low, orig in names.items() if (m := pattern.match(low))))
                if flat:
                    jobs[key] = _pool().submit(dense_from_flat, [table.column(orig) for _, orig in flat], dtype)
    for key, job in jobs.items():
        batch.arrays[key] = job.result()
    for band in BANDS:
        for name, dtype in BAND_ARRAYS.items():
            batch.arrays.setdefault(f"{band}_{name}", DenseArrays.empty(batch.n, dtype))
        coeff = batch.arrays[f"{band}_coefficients"]
        npar = batch.scalars[f"{band}_n_parameters"]
        fill = npar.null & ~coeff.null  # the flat layout has no n_parameters: derive it
        npar.values[fill] = coeff.lengths[fill]
        npar.null[fill] = False
    return batch


def _used(arrays: DenseArrays) -> np.ndarray:
    """Boolean mask of the used (non-padding) cells."""
    return np.arange(arrays.width)[None, :] < arrays.lengths[:, None]


def _any_bad(values: np.ndarray, arrays: DenseArrays, bad: np.ndarray) -> np.ndarray:
    if arrays.width == 0:
        return np.zeros(len(values), dtype=bool)
    if np.all(arrays.lengths[~arrays.null] == arrays.width):
        return bad.any(axis=1) & ~arrays.null
    return (bad & _used(arrays)).any(axis=1) & ~arrays.null


def validate(batch: XpBatch) -> list[Reject]:
    """Check every row; return the reasons for rejecting rows (a row may have several)."""
    rejects: list[Reject] = []

    def flag(mask: np.ndarray, column: str | None, reason: str, values=None) -> None:
        for i in np.flatnonzero(mask):
            value = None if values is None else str(values[i])
            rejects.append(Reject(int(i), column, reason, value))

    flag(batch.source_id.null, "source_id", "missing source_id")
    ids = batch.source_id.values
    order = np.argsort(ids, kind="stable")
    dup = np.zeros(batch.n, dtype=bool)
    same = (ids[order][1:] == ids[order][:-1]) & ~batch.source_id.null[order][1:]
    dup[order[1:][same]] = True
    flag(dup, "source_id", "duplicate source_id within the file", ids)
    flag((ids <= 0) & ~batch.source_id.null, "source_id", "source_id must be positive", ids)

    any_band = np.zeros(batch.n, dtype=bool)
    for band in BANDS:
        coeff = batch.arrays[f"{band}_coefficients"]
        errs = batch.arrays[f"{band}_coefficient_errors"]
        corr = batch.arrays[f"{band}_coefficient_correlations"]
        present = ~coeff.null
        any_band |= present
        for key in (f"{band}_coefficients", f"{band}_coefficient_errors", f"{band}_coefficient_correlations"):
            for i, why in batch.arrays[key].bad_rows.items():
                rejects.append(Reject(i, key, why))
        npar = batch.scalars[f"{band}_n_parameters"]
        k = coeff.lengths
        flag(present & ~npar.null & (npar.values != k), f"{band}_coefficients",
             f"wrong array length: {band}_n_parameters says otherwise", k)
        flag(present & (errs.null | (errs.lengths != k)), f"{band}_coefficient_errors",
             "wrong array length: errors must match the coefficients", errs.lengths)
        flag(present & ~corr.null & (corr.lengths != k * (k - 1) // 2), f"{band}_coefficient_correlations",
             "wrong array length: expected n(n-1)/2 packed correlations", corr.lengths)
        flag(~present & ~errs.null, f"{band}_coefficient_errors", "errors given without coefficients")
        flag(_any_bad(coeff.values, coeff, ~np.isfinite(coeff.values)), f"{band}_coefficients", "non-finite value")
        flag(_any_bad(errs.values, errs, ~np.isfinite(errs.values)), f"{band}_coefficient_errors", "non-finite value")
        with np.errstate(invalid="ignore"):
            flag(_any_bad(errs.values, errs, errs.values <= 0), f"{band}_coefficient_errors",
                 "absurd value: coefficient errors must be positive")
            flag(_any_bad(coeff.values, coeff, np.abs(coeff.values) > 1e12), f"{band}_coefficients",
                 "absurd value: |coefficient| > 1e12")
            if corr.width:
                flag(_any_bad(corr.values, corr, ~np.isfinite(corr.values)), f"{band}_coefficient_correlations",
                     "non-finite value")
                flag(_any_bad(corr.values, corr, np.abs(corr.values) > 1.0), f"{band}_coefficient_correlations",
                     "absurd value: correlation outside [-1, 1]")
            sd = batch.scalars[f"{band}_standard_deviation"]
            flag(present & ~sd.null & ~(sd.values > 0), f"{band}_standard_deviation",
                 "absurd value: standard deviation must be positive and finite", sd.values)
        nrel = batch.scalars[f"{band}_n_relevant_bases"]
        flag(present & ~nrel.null & ((nrel.values < 0) | (nrel.values > k)), f"{band}_n_relevant_bases",
             "absurd value: n_relevant_bases outside [0, n_parameters]", nrel.values)
    flag(~any_band & ~batch.source_id.null, None, "no BP or RP coefficients")
    return rejects


def copy_columns(batch: XpBatch, keep: np.ndarray, run_id: int) -> list[list[Column]]:
    """The rows to keep as binary-COPY column sets for ``xpdb.xp_band``: one set per band."""
    sets = []
    for band in BANDS:
        rows = keep & ~batch.arrays[f"{band}_coefficients"].null
        m = int(rows.sum())
        if m == 0:
            continue
        cols = [
            Column("source_id", "int8", batch.source_id.values[rows]),
            Column("band", "text_fixed", np.full(m, band.encode(), dtype="S2")),
            Column("solution_id", "int8", batch.solution_id.values[rows], batch.solution_id.null[rows]),
        ]
        for name, kind in BAND_SCALARS.items():
            s = batch.scalars[f"{band}_{name}"]
            null = s.null[rows]
            if kind.startswith("float"):
                null = null | ~np.isfinite(s.values[rows])
            cols.append(Column(name, kind, s.values[rows], null))
        for name, dtype in BAND_ARRAYS.items():
            a = batch.arrays[f"{band}_{name}"]
            kind = "bytea_f8" if dtype is np.float64 else "bytea_f4"
            cols.append(Column(name, kind, a.values[rows], a.null[rows], a.lengths[rows]))
        cols.append(Column("ingest_run_id", "int4", np.full(m, run_id, dtype=np.int32)))
        sets.append(cols)
    return sets


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
