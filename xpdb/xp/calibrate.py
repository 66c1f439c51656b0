"""GaiaXPy-exact calibration and conversion of XP spectra, vectorised over the batch.

GaiaXPy evaluates, per source and band, ``flux = c @ B`` and
``error = sqrt(diag(B^T C B)) * sigma`` with ``C = D R D / sigma^2`` (``D`` the
coefficient errors, ``R`` the correlation matrix unpacked from the archive's packed lower
triangle, ``sigma`` the band's ``standard_deviation``), then merges BP and RP with the
weights shipped in its configuration. Here the same quantities come from a few matrix
products over the whole batch:

    var_j = sum_k B_kj^2 e_k^2  +  sum_{k>l} (2 B_kj B_lj) (e_k e_l r_kl)

i.e. ``(e^2) @ B^2 + U @ P`` with ``U`` the (n x K(K-1)/2) packed covariance terms and
``P`` the matching products of design-matrix rows: one large GEMM instead of a 55x55
triple product per star (sigma cancels). Truncation keeps the first ``n_relevant_bases``
coefficients of each source by masking the rest. The design matrices and merge weights
are read from the installed ``gaiaxpy`` package with its own loaders.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from xpdb.xp.batch import BANDS, XpBatch
from xpdb.xp.inputs import to_batch

FLUX_UNIT = "W nm-1 m-2"
BLOCK = 2048  # sources per GEMM block: bounds memory at ~25 MB per band


@dataclass(frozen=True)
class SampledBases:
    """Design matrices (K x n_samples) for BP and RP on one sampling grid, and what the math needs."""

    grid: np.ndarray
    design: dict[str, np.ndarray]
    squared: dict[str, np.ndarray]
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    pair_products: dict[str, np.ndarray]

    @classmethod
    def from_design(cls, grid: np.ndarray, design: dict[str, np.ndarray]) -> SampledBases:
        squared, pairs, products = {}, {}, {}
        for band, b in design.items():
            k = b.shape[0]
            rows, cols = np.tril_indices(k, -1)  # the archive's packing order of correlations
            squared[band] = b * b
            pairs[band] = (rows, cols)
            products[band] = 2.0 * b[rows] * b[cols]
        return cls(np.asarray(grid, dtype=float), design, squared, pairs, products)


@lru_cache(maxsize=4)
def calibration_bases(bp_model: str = "v375wi") -> tuple[SampledBases, dict[str, np.ndarray]]:
    """GaiaXPy's default calibration grid (336-1020 nm, 2 nm), design matrices and merge weights."""
    from gaiaxpy.core.config import load_xpmerge_from_xml, load_xpsampling_from_xml

    grid, merge = load_xpmerge_from_xml(bp_model=bp_model)
    design = load_xpsampling_from_xml(bp_model=bp_model)
    return SampledBases.from_design(grid, {b: np.asarray(design[b], dtype=float) for b in BANDS}), \
        {b: np.asarray(merge[b], dtype=float) for b in BANDS}


@lru_cache(maxsize=4)
def conversion_bases(n_samples: int = 600) -> SampledBases:
    """GaiaXPy's converter bases on its default pseudo-wavelength grid ``linspace(0, 60, n)``."""
    from gaiaxpy.config.paths import hermite_bases_file
    from gaiaxpy.converter.config import parse_config
    from gaiaxpy.converter.converter import get_design_matrices

    grid = np.linspace(0, 60, n_samples)
    matrices = get_design_matrices(grid, parse_config(hermite_bases_file))
    return SampledBases.from_design(grid, {b: np.asarray(matrices[b].get_design_matrix(), dtype=float) for b in BANDS})


def _check_width(batch: XpBatch, band: str, k: int) -> np.ndarray:
    coeff = batch.arrays[f"{band}_coefficients"]
    present = ~coeff.null
    if present.any():
        widths = np.unique(coeff.lengths[present])
        if len(widths) != 1 or widths[0] != k:
            raise ValueError(f"{band.upper()} spectra with {sorted(widths.tolist())} coefficients cannot be sampled "
                             f"with the {k}-coefficient bases of this calibration")
    return present


def _rows(index: np.ndarray):
    """A slice when the row indices are one contiguous run (no copies), else the index array."""
    if len(index) and index[-1] - index[0] == len(index) - 1:
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def sample_bands(batch: XpBatch, bases: SampledBases, *, truncation: bool = False,
                 columns: dict[str, slice] | None = None) -> dict[str, tuple]:
    """Per band: (present, flux, error) sampled on ``bases.grid``; NaN for missing bands.

    ``columns`` restricts each band to the grid points it is needed for (NaN elsewhere):
    calibration only needs a band where its merge weight is non-zero, half the work.
    """
    out = {}
    m = len(bases.grid)
    for band in BANDS:
        cs = columns[band] if columns else slice(None)
        design = bases.design[band][:, cs]
        squared = bases.squared[band][:, cs]
        products = bases.pair_products[band][:, cs]
        k = design.shape[0]
        present = _check_width(batch, band, k)
        coeff = batch.arrays[f"{band}_coefficients"]
        errs = batch.arrays[f"{band}_coefficient_errors"]
        corr = batch.arrays[f"{band}_coefficient_correlations"]
        has_corr = present & ~corr.null & (corr.lengths == k * (k - 1) // 2)
        if truncation:
            nrel = batch.scalars[f"{band}_n_relevant_bases"]
            limit = np.where(nrel.null | (nrel.values <= 0), k, nrel.values).astype(np.int64)
        flux = np.full((batch.n, m), np.nan)
        error = np.full((batch.n, m), np.nan)
        rows, _ = bases.pairs[band]
        present_idx = np.flatnonzero(present)
        u_buf = None
        for start in range(0, len(present_idx), BLOCK):
            sel = _rows(present_idx[start:start + BLOCK])
            c = coeff.values[sel, :k].astype(np.float64, copy=True)
            e = errs.values[sel, :k].astype(np.float64, copy=True) if errs.width else np.zeros_like(c)
            np.nan_to_num(e, copy=False)
            if truncation:
                keep = np.arange(k)[None, :] < limit[sel][:, None]
                c *= keep
                e *= keep
            flux[sel, cs] = c @ design
            var = (e * e) @ squared
            hc = has_corr[sel]
            if hc.any():
                eh = e if hc.all() else e[hc]
                h = len(eh)
                if u_buf is None or u_buf.shape[0] < h:  # reused across blocks: no page faults per block
                    u_buf = np.empty((min(BLOCK, len(present_idx)), len(rows)))
                u = u_buf[:h]
                # e_k * e_l for the packed pairs (k > l, row-major): row k's pairs are contiguous,
                # so each is one broadcast product (faster than gathering columns).
                for kk in range(1, k):
                    o = kk * (kk - 1) // 2
                    np.multiply(eh[:, :kk], eh[:, kk:kk + 1], out=u[:, o:o + kk])
                u *= corr.values[sel][hc] if not hc.all() else corr.values[sel]
                if hc.all():
                    var += u @ products
                else:
                    var[hc] += u @ products
            np.maximum(var, 0.0, out=var)
            error[sel, cs] = np.sqrt(var, out=var)
        out[band] = (present, flux, error)
    return out


def _span(mask: np.ndarray) -> slice:
    """The contiguous run of True in ``mask`` as a slice."""
    idx = np.flatnonzero(mask)
    if not len(idx) or idx[-1] - idx[0] + 1 != len(idx):
        raise ValueError("band coverage is not one contiguous range of the grid")
    return slice(int(idx[0]), int(idx[-1]) + 1)


def band_spans(wl: np.ndarray) -> dict[str, slice]:
    """The grid range each band is evaluated on: where the merged spectrum uses it (its merge
    weight is non-zero exactly where it covers the spectrum alone: GaiaXPy's BP_WL, RP_WL)."""
    from gaiaxpy.core.satellite import BP_WL, RP_WL

    return {"bp": _span(wl < BP_WL.high), "rp": _span(wl > RP_WL.low)}


@dataclass
class CalibratedSpectra:
    """Absolute spectra on a wavelength grid: ``flux`` and ``flux_error`` in W nm^-1 m^-2."""

    source_id: np.ndarray
    wavelength: np.ndarray  # nm
    flux: np.ndarray
    flux_error: np.ndarray

    def to_table(self):
        """The spectra as an astropy Table with units (one row per source, array columns)."""
        from astropy import units as u
        from astropy.table import Table

        t = Table({"source_id": self.source_id, "flux": self.flux * u.Unit("W nm-1 m-2"),
                   "flux_error": self.flux_error * u.Unit("W nm-1 m-2")})
        t.meta["wavelength_nm"] = self.wavelength.tolist()
        return t


def calibrate(data, *, truncation: bool = False) -> CalibratedSpectra:
    """Calibrate XP_CONTINUOUS spectra to absolute flux on GaiaXPy's default grid (336-1020 nm, 2 nm).

    Parameters
    ----------
    data : path, astropy Table, pandas DataFrame or XpBatch
        Anything the ingest readers accept, in the archive layout (or the flat layout).
    truncation : bool, optional
        Keep only the first ``n_relevant_bases`` coefficients of each band (GaiaXPy's
        ``truncation=True``).

    Returns
    -------
    CalibratedSpectra
        ``flux`` and ``flux_error`` of shape (n, 343). Errors use the full covariance when
        the input has correlations, the diagonal otherwise. Where only one band exists,
        its own flux is used and the wavelengths it does not cover are NaN, as in GaiaXPy.

    Examples
    --------
    >>> spectra = calibrate("XP_CONTINUOUS_RAW.fits")            # doctest: +SKIP
    >>> spectra.flux.shape                                         # doctest: +SKIP
    (2, 343)
    """
    batch = to_batch(data)
    bases, merge = calibration_bases()
    wl = bases.grid
    needed = band_spans(wl)
    for band in BANDS:
        outside = np.ones(len(wl), dtype=bool)
        outside[needed[band]] = False
        assert not (merge[band][outside] > 0).any(), "merge weights outside the band's coverage"
    bands = sample_bands(batch, bases, truncation=truncation, columns=needed)
    (bp_ok, bp_f, bp_e), (rp_ok, rp_f, rp_e) = bands["bp"], bands["rp"]
    flux = np.zeros((batch.n, len(wl)))
    var = np.zeros((batch.n, len(wl)))
    for band, f, e in (("bp", bp_f, bp_e), ("rp", rp_f, rp_e)):
        cs, w = needed[band], merge[band][needed[band]]
        flux[:, cs] += f[:, cs] * w
        var[:, cs] += (e[:, cs] * w) ** 2
    error = np.sqrt(var, out=var)
    both = bp_ok & rp_ok
    if not both.all():
        flux[~both] = np.nan
        error[~both] = np.nan
        only_bp = bp_ok & ~rp_ok
        cs = needed["bp"]
        flux[np.ix_(only_bp, np.arange(len(wl))[cs])] = bp_f[only_bp][:, cs]
        error[np.ix_(only_bp, np.arange(len(wl))[cs])] = bp_e[only_bp][:, cs]
        only_rp = rp_ok & ~bp_ok
        cs = needed["rp"]
        flux[np.ix_(only_rp, np.arange(len(wl))[cs])] = rp_f[only_rp][:, cs]
        error[np.ix_(only_rp, np.arange(len(wl))[cs])] = rp_e[only_rp][:, cs]
    return CalibratedSpectra(batch.source_id.values.copy(), wl.copy(), flux, error)


@dataclass
class ConvertedSpectra:
    """Internally calibrated spectra per band on a pseudo-wavelength grid (GaiaXPy ``convert``)."""

    source_id: np.ndarray
    pseudo_wavelength: np.ndarray
    flux: dict[str, np.ndarray]  # 'bp'/'rp' -> (n, n_samples), NaN for a missing band
    flux_error: dict[str, np.ndarray]


def convert(data, *, truncation: bool = False, n_samples: int = 600) -> ConvertedSpectra:
    """Sample BP and RP on GaiaXPy's default pseudo-wavelength grid (``linspace(0, 60, 600)``)."""
    batch = to_batch(data)
    bases = conversion_bases(n_samples)
    bands = sample_bands(batch, bases, truncation=truncation)
    return ConvertedSpectra(batch.source_id.values.copy(), bases.grid.copy(),
                            {b: bands[b][1] for b in BANDS}, {b: bands[b][2] for b in BANDS})
