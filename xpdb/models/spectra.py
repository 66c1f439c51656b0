"""Flux-normalised XP spectra read from the database, in the representation a model eats.

Two representations (``xpdb.models.svae.REPRESENTATIONS``):

* ``coefficients``: the XP_CONTINUOUS coefficients of ``xp_band`` (BP then RP, archive
  order) and their errors, divided by the G flux;
* ``sampled``: the sampled spectra of ``xp_sampled`` (the APOGEE library, XP_SAMPLED files)
  on every ``step``-th sample of the Gaia grid, divided by the G flux.

The G flux is ``10**((25.6874 - phot_g_mean_mag)/2.5)`` from ``gaia_source``; continuous
spectra of sources without a catalogue G use the G synthesised from their coefficients
(``xpdb.xp.photometry``). Training, inference and the benchmark all read spectra here, so
they see the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

from xpdb.models.svae import REPRESENTATIONS, coefficient_inputs, g_flux, sample_index, sampled_inputs

NO_SPECTRUM, NO_G_FLUX, BAD_ERRORS = 1, 2, 4  # svae_output.flags
GAIA_GRID_SAMPLES = 343


@dataclass
class Spectra:
    """Flux-normalised spectra (not yet standardised) of a list of sources, with flags."""

    source_id: np.ndarray
    x: np.ndarray  # (n, pixels), NaN rows where flags != 0
    err: np.ndarray
    flags: np.ndarray  # NO_SPECTRUM | NO_G_FLUX | BAD_ERRORS
    synthetic_g: np.ndarray  # True where the G flux was synthesised from the coefficients
    wavelength: np.ndarray | None = None  # nm, for the sampled representation

    def __len__(self) -> int:
        return len(self.source_id)

    @property
    def usable(self) -> np.ndarray:
        return self.flags == 0

    def subset(self, mask: np.ndarray) -> Spectra:
        return Spectra(self.source_id[mask], self.x[mask], self.err[mask], self.flags[mask], self.synthetic_g[mask],
                       self.wavelength)


def _g_mag(conn: psycopg.Connection, ids: np.ndarray, between: tuple[int, int] | None) -> np.ndarray:
    from xpdb.xp.store import source_columns

    return np.asarray(source_columns(conn, ids, ["phot_g_mean_mag"], between=between)["phot_g_mean_mag"], float)


def read_spectra(conn: psycopg.Connection, representation: str, source_ids: Sequence[int], *, step: int = 3,
                 between: tuple[int, int] | None = None) -> Spectra:
    """The flux-normalised spectra of ``source_ids`` (in that order) in ``representation``.

    ``between`` (first, last) reads a source_id range in index order (job batches).

    Examples
    --------
    >>> with psycopg.connect(url) as conn:                                  # doctest: +SKIP
    ...     s = read_spectra(conn, "sampled", [4295806720, 38655544960])
    >>> s.x.shape, s.flags                                                  # doctest: +SKIP
    ((2, 115), array([0, 0], dtype=int32))
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {', '.join(REPRESENTATIONS)}")
    ids = np.asarray(source_ids, dtype=np.int64)
    n = len(ids)
    synthetic = np.zeros(n, dtype=bool)
    flags = np.zeros(n, dtype=np.int32)
    wavelength = None
    if representation == "sampled":
        flux, flux_error, gmag, present, wavelength = _sampled_with_g(conn, ids, step, between)
        x, err = sampled_inputs(flux, flux_error, g_flux(gmag), 1)
    else:
        gmag = _g_mag(conn, ids, between)
        from xpdb.ingest.xp import fetch_xp

        batch = fetch_xp(conn, ids, between=between)
        bands = []
        for band in ("bp", "rp"):
            coeff = batch.arrays[f"{band}_coefficients"]
            errors = batch.arrays[f"{band}_coefficient_errors"]
            bands.append((np.asarray(coeff.values, float), np.asarray(errors.values, float), ~coeff.null))
        present = bands[0][2] & bands[1][2]
        need = present & ~np.isfinite(gmag)
        if need.any():
            from xpdb.xp.photometry import synthetic_photometry

            sub = _subset_batch(batch, need)
            gmag[need] = synthetic_photometry(sub)["G"]
            synthetic[need] = np.isfinite(gmag[need])
        coefficients = np.hstack([bands[0][0], bands[1][0]])
        errors = np.hstack([bands[0][1], bands[1][1]])
        x, err = coefficient_inputs(coefficients, errors, g_flux(gmag))
    flags[~present] |= NO_SPECTRUM
    flags[present & ~np.isfinite(gmag)] |= NO_G_FLUX
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(x).all(axis=1) & np.isfinite(err).all(axis=1) & (err > 0).all(axis=1))
    flags[(flags == 0) & bad] |= BAD_ERRORS
    x = np.where(flags[:, None] == 0, x, np.nan)
    err = np.where(flags[:, None] == 0, err, np.nan)
    return Spectra(ids, x, err, flags, synthetic, wavelength)


def _sampled_with_g(conn: psycopg.Connection, ids: np.ndarray, step: int, between: tuple[int, int] | None):
    """(flux, flux_error on every ``step``-th sample as float32, G mag, present, wavelengths) in one query.

    Spectra on the Gaia DR3 grid (``xp_sampling`` 1) only: a model reads the grid it was
    trained on. Only the samples used are converted (a third of the bytes at step 3).
    """
    from xpdb.ingest.sampled import GAIA_SAMPLING_ID

    grid = np.asarray(conn.execute("SELECT wavelength FROM xpdb.xp_sampling WHERE sampling_id = %s",
                                   (GAIA_SAMPLING_ID,)).fetchone()[0], dtype=float)
    keep = sample_index(len(grid), step)
    where = "x.source_id BETWEEN %s AND %s" if between is not None else "x.source_id = ANY(%s)"
    args = (int(between[0]), int(between[1])) if between is not None else (ids.tolist(),)
    cur = conn.cursor(binary=True)
    cur.execute(f"SELECT x.source_id, x.flux, x.flux_error, s.phot_g_mean_mag FROM xpdb.xp_sampled AS x "
                f"LEFT JOIN xpdb.gaia_source AS s ON s.source_id = x.source_id "
                f"WHERE {where} AND x.sampling_id = {GAIA_SAMPLING_ID}", args)
    rows = cur.fetchall()
    n, width = len(ids), len(keep)
    flux = np.full((n, width), np.nan, np.float32)
    flux_error = np.full((n, width), np.nan, np.float32)
    gmag = np.full(n, np.nan)
    present = np.zeros(n, dtype=bool)
    if rows:
        got = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        order = np.argsort(ids, kind="stable")
        pos = np.searchsorted(ids, got, sorter=order)
        found = (pos < n) & (ids[order[np.minimum(pos, n - 1)]] == got)
        target = order[np.minimum(pos, n - 1)][found]
        rows = [r for r, f in zip(rows, found) if f]
        if rows:
            size = 4 * len(grid)
            for col, out in ((1, flux), (2, flux_error)):
                blobs = [r[col] for r in rows]
                if np.any(np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) != size):
                    raise ValueError("xp_sampled rows of the Gaia grid with a different number of samples")
                out[target] = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(rows), len(grid))[:, keep]
            gmag[target] = [np.nan if r[3] is None else r[3] for r in rows]
            present[target] = True
    return flux, flux_error, gmag, present, grid[keep]


def _subset_batch(batch, mask: np.ndarray):
    """The rows ``mask`` of an XpBatch (for synthetic photometry of a few sources)."""
    from xpdb.xp.batch import DenseArrays, Scalar, XpBatch

    rows = np.flatnonzero(mask)
    out = XpBatch(n=len(rows), source_id=Scalar(batch.source_id.values[rows], batch.source_id.null[rows]),
                  solution_id=Scalar(batch.solution_id.values[rows], batch.solution_id.null[rows]))
    out.scalars = {k: Scalar(v.values[rows], v.null[rows]) for k, v in batch.scalars.items()}
    out.arrays = {k: DenseArrays(v.values[rows], v.lengths[rows], v.null[rows]) for k, v in batch.arrays.items()}
    return out


def sources_with(conn: psycopg.Connection, representation: str, split: str | None = None) -> np.ndarray:
    """source_ids with a spectrum in ``representation``, optionally one side of a split, in order.

    ``split`` is a side of ``xpdb.models.datasets.SPLIT_CONDITIONS`` (``train``, ``test``,
    ``dev_train``, ``dev``) or None.
    """
    from xpdb.models.datasets import SPLIT_CONDITIONS

    table = "xpdb.xp_sampled" if representation == "sampled" else \
        "(SELECT source_id FROM xpdb.xp_band GROUP BY source_id HAVING count(*) = 2)"
    where = SPLIT_CONDITIONS[split].replace("%%", "%") if split else "true"
    rows = conn.execute(f"SELECT p.source_id FROM {table} AS p WHERE {where} ORDER BY 1").fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def labels_of(conn: psycopg.Connection, catalog: str, ids: np.ndarray,
              names: Sequence[str] = ("teff", "logg", "feh")) -> dict[str, np.ndarray]:
    """Reference labels of ``ids`` (NaN where missing) from one catalogue."""
    out = {name: np.full(len(ids), np.nan) for name in names}
    rows = conn.execute(f"SELECT source_id, {', '.join(names)} FROM xpdb.reference_label "
                        "WHERE catalog = %s AND source_id = ANY(%s)", (catalog, ids.tolist())).fetchall()
    index = {int(s): i for i, s in enumerate(ids)}
    for row in rows:
        i = index[int(row[0])]
        for j, name in enumerate(names):
            if row[1 + j] is not None:
                out[name][i] = row[1 + j]
    return out
