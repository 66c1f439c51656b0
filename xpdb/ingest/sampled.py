"""XP_SAMPLED spectra: the archive's layouts and GaiaXPy's calibrate output, into ``xp_sampled``.

This module owns ``xpdb.xp_sampled`` and ``xpdb.xp_sampling``. It reads

* the archive's RAW layout (astroquery ``data_structure='RAW'``, or ``'DATAMODEL_GAIA'``):
  one row per source with ``flux`` and ``flux_error`` arrays of 343 samples, as
  ``"(a, b, ...)"`` text in CSV, JSON lists in ECSV, variable-length arrays in FITS and
  VOTable; the wavelength grid (336-1020 nm in 2 nm steps) is implied;
* the archive's INDIVIDUAL layout (``'INDIVIDUAL'``, or ``'DATAMODEL_STANDARD'``): one
  file per source, 343 rows of ``wavelength``, ``flux``, ``flux_error``, the source_id in
  a column (CSV), the table metadata (ECSV), a PARAM (VOTable) or the ``SOURCEID`` header
  keyword (FITS);
* GaiaXPy's ``calibrate`` output (``source_id``, ``flux``, ``flux_error`` arrays) with its
  grid in the ``sampling`` metadata (ECSV), ``SAMPLING`` keyword (FITS), ``sampling``
  PARAM (VOTable) or the ``<name>_sampling.csv`` file beside a CSV.

Fluxes are stored as float32 in W m^-2 nm^-1 on the grid of their ``sampling_id``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xpdb.db.copy import Column, copy_binary, decode_bytea
from xpdb.errors import IngestFileError
from xpdb.ingest.arrays import dense_arrays
from xpdb.ingest.readers import Chunk, TableReader
from xpdb.ingest.xp import Reject, lower_names
from xpdb.xp.batch import DenseArrays, Scalar

GAIA_GRID = 336.0 + 2.0 * np.arange(343)  # nm: the archive's XP_SAMPLED grid (Gaia DR3 documentation 20.12.4)
GAIA_SAMPLING_ID = 1  # xp_sampling row of GAIA_GRID (created by the migration)
ORIGINS = ("XP_SAMPLED", "gaiaxpy", "APOGEE library")


@dataclass
class SampledBatch:
    """Sampled spectra of one chunk: one row per source, all on ``wavelength``."""

    n: int
    source_id: Scalar
    solution_id: Scalar
    flux: DenseArrays
    flux_error: DenseArrays
    row_of: np.ndarray | None = None  # index into the chunk's rows of each spectrum (long layout)


@dataclass
class SampledContext:
    """What ``prepare`` found out about a file: its layout, grid and origin."""

    layout: str  # "wide" (one row per source) or "long" (one row per wavelength)
    wavelength: np.ndarray
    origin: str
    source_id: int | None = None  # long layout without a source_id column: from the metadata
    solution_id: int | None = None
    sampling_id: int | None = None  # resolved against the database by ``bind``


# -- metadata ---------------------------------------------------------------------------------
def file_metadata(path: Path, fmt: str) -> dict[str, object]:
    """Lower-case metadata of a file: FITS header keywords, ECSV meta, VOTable PARAMs."""
    meta: dict[str, object] = {}
    try:
        if fmt == "fits":
            from astropy.io import fits

            with fits.open(path) as hdul:
                for hdu in hdul:
                    for key, value in hdu.header.items():
                        if key and key not in ("COMMENT", "HISTORY"):
                            meta.setdefault(key.lower(), value)
        elif fmt == "ecsv":
            reader = TableReader(path, fmt="ecsv")
            meta = {str(k).lower(): v for k, v in reader.meta.items()}
            reader.close()
        elif fmt == "votable":
            from astropy.io.votable import parse

            vot = parse(str(path), verify="ignore")
            for resource in vot.iter_resources() if hasattr(vot, "iter_resources") else vot.resources:
                for param in resource.params:
                    meta.setdefault((param.name or param.ID or "").lower(), param.value)
            for table in vot.iter_tables():
                for param in table.params:
                    meta.setdefault((param.name or param.ID or "").lower(), param.value)
    except IngestFileError:
        raise
    except Exception as exc:
        raise IngestFileError(path, f"cannot read the file's metadata ({exc})", "header") from exc
    return meta


def _as_grid(value, path: Path, where: str) -> np.ndarray:
    """A wavelength grid from metadata: a list, an array, or a "(a, b, ...)" / "[a, b]" string."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = ast.literal_eval(text) if text[:1] in "([" else json.loads("[" + text + "]")
        except (ValueError, SyntaxError) as exc:
            raise IngestFileError(path, f"unreadable wavelength grid in {where}", where) from exc
    grid = np.asarray(value, dtype=float).ravel()
    if grid.size < 2 or not np.all(np.isfinite(grid)) or not np.all(np.diff(grid) > 0):
        raise IngestFileError(path, f"the wavelength grid in {where} is not an increasing list of numbers", where)
    return grid


def _read_sampling_csv(path: Path) -> np.ndarray:
    """GaiaXPy's ``<name>_sampling.csv``: a ``pos`` column with the grid as one "(a, b, ...)" cell."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        raise IngestFileError(path, "no wavelength grid in the sampling file", "line 2")
    return _as_grid(lines[1].strip().strip('"'), Path(path), "line 2")


def _sidecar(path: Path) -> Path | None:
    """The ``<name>_sampling.csv`` GaiaXPy writes beside a CSV output, if there is one."""
    stem = path.name
    for suffix in (".gz", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    sidecar = path.with_name(stem + "_sampling.csv")
    return sidecar if sidecar.exists() else None


def _sampling(path: Path, fmt: str, meta: dict, options: dict) -> tuple[np.ndarray | None, str | None]:
    """The grid (None: implied by the array width) and the origin it indicates."""
    given = options.get("sampling")
    if isinstance(given, (str, Path)) and Path(given).exists():
        return _read_sampling_csv(Path(given)), "gaiaxpy"
    if given is not None:
        return _as_grid(given, path, "the sampling option"), None
    if "sampling" in meta:
        return _as_grid(meta["sampling"], path, "sampling metadata"), "gaiaxpy"
    sidecar = _sidecar(path) if fmt == "csv" else None
    if sidecar is not None:
        return _read_sampling_csv(sidecar), "gaiaxpy"
    return None, None


def prepare(reader: TableReader, options: dict) -> SampledContext:
    """Detect the layout, the grid and the origin of a sampled-spectra file."""
    names = {c.lower() for c in reader.column_names()}
    missing = [c for c in ("flux", "flux_error") if c not in names]
    if missing:
        raise IngestFileError(reader.path, f"not a sampled-spectra file: no {' or '.join(missing)} column "
                                           f"(columns: {', '.join(sorted(names)[:20])})")
    meta = file_metadata(reader.path, reader.format) if reader.format in ("fits", "ecsv", "votable") else {}
    grid, origin = _sampling(reader.path, reader.format, meta, options)
    origin = options.get("origin") or origin or "XP_SAMPLED"
    if origin not in ORIGINS:
        raise IngestFileError(reader.path, f"unknown origin {origin!r}; one of {', '.join(ORIGINS)}")
    if "wavelength" in names:
        context = SampledContext("long", np.empty(0), origin)
        if "source_id" not in names:
            sid = meta.get("source_id", meta.get("sourceid"))
            if sid is None:
                raise IngestFileError(reader.path, "a one-spectrum file (wavelength column) without a source_id "
                                                   "column or source_id metadata (SOURCEID keyword, PARAM, meta)")
            try:
                context.source_id = int(str(sid).strip())
            except ValueError as exc:
                raise IngestFileError(reader.path, f"source_id metadata {sid!r} is not an integer") from exc
            solution = meta.get("solution_id", meta.get("solution"))
            context.solution_id = int(str(solution).strip()) if solution not in (None, "") else None
        reader.chunk_rows = max(reader.chunk_rows, reader.n_rows or (1 << 30))  # spectra must not straddle chunks
        return context
    if "source_id" not in names:
        raise IngestFileError(reader.path, "no source_id column")
    return SampledContext("wide", GAIA_GRID if grid is None else grid, origin)


def bind(conn, context: SampledContext) -> None:
    """Resolve the grid to its ``xp_sampling`` row, registering a new grid (once the grid is known)."""
    if context.sampling_id is None and len(context.wavelength):
        context.sampling_id = sampling_id(conn, context.wavelength)


def sampling_id(conn, wavelength: np.ndarray) -> int:
    """The id of a wavelength grid in ``xp_sampling``, registering it on first use."""
    grid = np.asarray(wavelength, dtype=float)
    if len(grid) == len(GAIA_GRID) and np.array_equal(grid, GAIA_GRID):
        return GAIA_SAMPLING_ID
    values = [float(v) for v in grid]
    row = conn.execute("SELECT sampling_id FROM xpdb.xp_sampling WHERE wavelength = %s::float8[]", (values,)).fetchone()
    if row:
        return row[0]
    return conn.execute("INSERT INTO xpdb.xp_sampling (n_samples, wavelength, description) VALUES (%s, %s, %s) "
                        "ON CONFLICT (wavelength) DO UPDATE SET description = xp_sampling.description "
                        "RETURNING sampling_id",
                        (len(grid), values, f"{len(grid)} samples, {grid[0]:g}-{grid[-1]:g} nm")).fetchone()[0]


# -- conversion -------------------------------------------------------------------------------
def _scalar_int(table: pa.Table, names: dict[str, str], name: str) -> Scalar:
    n = table.num_rows
    if name not in names:
        return Scalar(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    col = table.column(names[name])
    null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not (pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
        raise ValueError(f"column {names[name]} holds {col.type} values; {name} must be an integer column")
    values = np.asarray(col.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return Scalar(values, null)


def convert(chunk: Chunk, context: SampledContext) -> SampledBatch:
    """One chunk of a file in either layout, as one row per spectrum."""
    table = chunk.table
    names = lower_names(table)
    if context.layout == "wide":
        return SampledBatch(table.num_rows, _scalar_int(table, names, "source_id"),
                            _scalar_int(table, names, "solution_id"),
                            dense_arrays(table.column(names["flux"]), np.float32),
                            dense_arrays(table.column(names["flux_error"]), np.float32))
    return _convert_long(table, names, context)


def _convert_long(table: pa.Table, names: dict[str, str], context: SampledContext) -> SampledBatch:
    """Rows of (wavelength, flux, flux_error), grouped into spectra by source_id (in file order)."""
    n = table.num_rows
    wl = np.asarray(pc.cast(table.column(names["wavelength"]), pa.float64()).fill_null(np.nan)
                    .to_numpy(zero_copy_only=False), dtype=float)
    flux = np.asarray(pc.cast(table.column(names["flux"]), pa.float64()).fill_null(np.nan)
                      .to_numpy(zero_copy_only=False), dtype=float)
    err = np.asarray(pc.cast(table.column(names["flux_error"]), pa.float64()).fill_null(np.nan)
                     .to_numpy(zero_copy_only=False), dtype=float)
    if "source_id" in names:
        sid = _scalar_int(table, names, "source_id")
        if sid.null.any():
            raise ValueError(f"row {int(np.flatnonzero(sid.null)[0]) + 1}: missing source_id")
        ids = sid.values
    else:
        ids = np.full(n, context.source_id, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    stops = np.r_[starts[1:], n]
    grid = wl[starts[0]:stops[0]] if n else np.empty(0)
    for a, b in zip(starts, stops):
        if b - a != len(grid) or not np.array_equal(wl[a:b], grid):
            raise ValueError(f"rows {a + 1}-{b}: the spectrum of source_id {ids[a]} is not on the same wavelength "
                             "grid as the first one")
    if len(context.wavelength) == 0:
        context.wavelength = _as_grid(grid, Path("."), "wavelength column")
    elif not np.array_equal(context.wavelength, grid):
        raise ValueError("the spectra are not on the grid of the earlier rows")
    m = len(starts)
    width = len(grid)
    solution = _scalar_int(table, names, "solution_id") if "solution_id" in names else None
    sol_values = (solution.values[starts] if solution is not None else
                  np.full(m, context.solution_id or 0, dtype=np.int64))
    sol_null = (solution.null[starts] if solution is not None else np.full(m, context.solution_id is None))
    return SampledBatch(
        m, Scalar(ids[starts], np.zeros(m, dtype=bool)), Scalar(sol_values, sol_null),
        DenseArrays(flux.reshape(m, width).astype(np.float32), np.full(m, width, np.int32), np.zeros(m, bool)),
        DenseArrays(err.reshape(m, width).astype(np.float32), np.full(m, width, np.int32), np.zeros(m, bool)),
        row_of=starts)


def validate(batch: SampledBatch, width: int) -> list[Reject]:
    """Reasons to reject rows: missing or duplicate ids, wrong lengths, non-finite or negative values."""
    rejects: list[Reject] = []

    def flag(mask: np.ndarray, column: str | None, reason: str, values=None) -> None:
        for i in np.flatnonzero(mask):
            rejects.append(Reject(int(i), column, reason, None if values is None else str(values[i])))

    ids = batch.source_id.values
    flag(batch.source_id.null, "source_id", "missing source_id")
    order = np.argsort(ids, kind="stable")
    dup = np.zeros(batch.n, dtype=bool)
    dup[order[1:][(ids[order][1:] == ids[order][:-1]) & ~batch.source_id.null[order][1:]]] = True
    flag(dup, "source_id", "duplicate source_id within the file", ids)
    flag((ids <= 0) & ~batch.source_id.null, "source_id", "source_id must be positive", ids)
    for name, arrays in (("flux", batch.flux), ("flux_error", batch.flux_error)):
        for i, why in arrays.bad_rows.items():
            rejects.append(Reject(i, name, why))
        flag(arrays.null, name, f"missing {name} array")
        flag(~arrays.null & (arrays.lengths != width), name,
             f"wrong array length: the wavelength grid has {width} samples", arrays.lengths)
        if arrays.width == width:
            flag(~arrays.null & ~np.isfinite(arrays.values).all(axis=1), name, "non-finite value")
    if batch.flux_error.width == width:
        with np.errstate(invalid="ignore"):
            flag(~batch.flux_error.null & (batch.flux_error.values < 0).any(axis=1), "flux_error",
                 "absurd value: negative flux error")
    return rejects


def copy_columns(batch: SampledBatch, keep: np.ndarray, run_id: int, context: SampledContext) -> list[list[Column]]:
    """COPY columns of ``xpdb.xp_sampled`` for the kept rows."""
    m = int(keep.sum())
    if m == 0:
        return []
    return [[
        Column("source_id", "int8", batch.source_id.values[keep]),
        Column("solution_id", "int8", batch.solution_id.values[keep], batch.solution_id.null[keep]),
        Column("sampling_id", "int2", np.full(m, context.sampling_id, dtype=np.int16)),
        Column("flux", "bytea_f4", batch.flux.values[keep]),
        Column("flux_error", "bytea_f4", batch.flux_error.values[keep]),
        Column("origin", "text_fixed", np.full(m, context.origin.encode(), dtype=f"S{len(context.origin.encode())}")),
        Column("ingest_run_id", "int4", np.full(m, run_id, dtype=np.int32)),
    ]]


def store(conn, source_id: np.ndarray, flux: np.ndarray, flux_error: np.ndarray, *, sampling: int, origin: str,
          run_id: int, replace: bool = False) -> int:
    """Store sampled spectra (absolute flux); an existing spectrum is kept unless ``replace``."""
    n = len(source_id)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _sampled_stage (LIKE xpdb.xp_sampled) ON COMMIT DROP")
    conn.execute("TRUNCATE _sampled_stage")
    context = SampledContext("wide", np.empty(0), origin, sampling_id=sampling)
    batch = SampledBatch(n, Scalar(np.asarray(source_id, np.int64), np.zeros(n, bool)),
                         Scalar(np.zeros(n, np.int64), np.ones(n, bool)),
                         DenseArrays(np.asarray(flux, np.float32), np.full(n, flux.shape[1], np.int32), np.zeros(n, bool)),
                         DenseArrays(np.asarray(flux_error, np.float32), np.full(n, flux.shape[1], np.int32),
                                     np.zeros(n, bool)))
    copy_binary(conn, "_sampled_stage", *copy_columns(batch, np.ones(n, bool), run_id, context))
    action = ("DO UPDATE SET solution_id = EXCLUDED.solution_id, sampling_id = EXCLUDED.sampling_id, "
              "flux = EXCLUDED.flux, flux_error = EXCLUDED.flux_error, origin = EXCLUDED.origin, "
              "ingest_run_id = EXCLUDED.ingest_run_id") if replace else "DO NOTHING"
    return conn.execute(f"INSERT INTO xpdb.xp_sampled SELECT * FROM _sampled_stage ON CONFLICT (source_id) {action}").rowcount


# -- reading back -----------------------------------------------------------------------------
@dataclass
class StoredSampled:
    """Sampled spectra read back for ``source_id`` (rows without one: NaN and ``present`` False)."""

    source_id: np.ndarray
    wavelength: np.ndarray
    flux: np.ndarray  # float64, W m^-2 nm^-1
    flux_error: np.ndarray
    present: np.ndarray


def fetch_sampled(conn, source_ids: Sequence[int], *, between: tuple[int, int] | None = None) -> StoredSampled:
    """Sampled spectra of these sources, on one grid (sources on another grid are not present)."""
    ids = np.asarray(source_ids, dtype=np.int64)
    cur = conn.cursor(binary=True)
    if between is not None:
        cur.execute("SELECT source_id, sampling_id, flux, flux_error FROM xpdb.xp_sampled "
                    "WHERE source_id BETWEEN %s AND %s", (int(between[0]), int(between[1])))
    else:
        cur.execute("SELECT source_id, sampling_id, flux, flux_error FROM xpdb.xp_sampled "
                    "WHERE source_id = ANY(%s)", (ids.tolist(),))
    rows = cur.fetchall()
    index = {int(s): i for i, s in enumerate(ids)}
    rows = [r for r in rows if int(r[0]) in index]
    grids = {r[1] for r in rows}
    sid = GAIA_SAMPLING_ID if GAIA_SAMPLING_ID in grids or not grids else min(grids)
    wavelength = np.asarray(conn.execute("SELECT wavelength FROM xpdb.xp_sampling WHERE sampling_id = %s",
                                         (sid,)).fetchone()[0], dtype=float)
    rows = [r for r in rows if r[1] == sid]
    n, width = len(ids), len(wavelength)
    flux = np.full((n, width), np.nan)
    err = np.full((n, width), np.nan)
    present = np.zeros(n, dtype=bool)
    if rows:
        pos = np.array([index[int(r[0])] for r in rows])
        flux[pos] = decode_bytea([r[2] for r in rows], "<f4", width)
        err[pos] = decode_bytea([r[3] for r in rows], "<f4", width)
        present[pos] = True
    return StoredSampled(ids, wavelength, flux, err, present)
