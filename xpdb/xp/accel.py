"""Calibration and the 60 features as array-backend matrix products: on a GPU when the backend sees one.

The same mathematics as ``xpdb.xp.calibrate`` and ``xpdb.xp.features`` (the NumPy path,
the reference), written once in ``keras.ops`` so that it runs on whichever backend Keras
uses (JAX, torch or TensorFlow) and on whichever device that backend puts arrays:

* per band, ``flux = c @ B`` and ``var = (e^2) @ B^2 + U @ P`` (``U`` the packed
  ``e_k e_l r_kl`` products, ``P`` the pair products of design rows), each band evaluated
  only where its merge weight is non-zero, then merged with GaiaXPy's weights;
* dereddening by the toolkit's factor ``10**(0.4 R55 E(44-55) A(lambda)/A(55))`` (the curve
  read from the toolkit at the grid once);
* the 60 bins: the median flux (a sort per group of equally wide bins) and the RMS error
  (a product with an averaging matrix); the normalisation, a product with the window's
  averaging vector.

Precision: float64 wherever the backend has it (JAX after ``jax_enable_x64``, which this
module switches on; torch; TensorFlow), float32 on request. Stars the array path does not
cover (a band missing, a width other than the bases', the optional systematic correction)
go through the NumPy path; the result is the same ``Features`` either way.

The constants (design matrices, merge weights, the curve) come from GaiaXPy and the
toolkit, or from an ``.npz`` written by ``export_constants``, so that a machine without
those packages (a GPU node) can run ``bench/gpu.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from xpdb.xp.batch import BANDS, DenseArrays, Scalar, XpBatch

CONSTANTS_FORMAT = "xpdb-accel-constants-1"


@dataclass(frozen=True)
class Constants:
    """Everything the array path needs that is not the stars: grids, bases, weights, curve."""

    grid: np.ndarray  # (m,) nm
    design: dict[str, np.ndarray]  # band -> (K, m)
    merge: dict[str, np.ndarray]  # band -> (m,)
    span: dict[str, tuple[int, int]]  # band -> [start, stop) of the grid the band is needed for
    curve: np.ndarray  # (m,) A(lambda)/A(55) at the grid
    r55: float

    def save(self, path: str | Path) -> None:
        np.savez(path, format=CONSTANTS_FORMAT, grid=self.grid, curve=self.curve, r55=self.r55,
                 **{f"{b}_design": self.design[b] for b in BANDS}, **{f"{b}_merge": self.merge[b] for b in BANDS},
                 **{f"{b}_span": np.array(self.span[b]) for b in BANDS})

    @classmethod
    def load(cls, path: str | Path) -> Constants:
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not an xpdb accelerator constants file ({exc})") from exc
        with z:
            if "format" not in z.files or str(z["format"]) != CONSTANTS_FORMAT:
                raise ValueError(f"{path}: not an xpdb accelerator constants file (no {CONSTANTS_FORMAT!r} format)")
            return cls(z["grid"], {b: z[f"{b}_design"] for b in BANDS}, {b: z[f"{b}_merge"] for b in BANDS},
                       {b: tuple(int(v) for v in z[f"{b}_span"]) for b in BANDS}, z["curve"], float(z["r55"]))


@lru_cache(maxsize=1)
def constants() -> Constants:
    """The constants from GaiaXPy (calibration) and the XP-Extinction-Toolkit (dereddening)."""
    from scipy.interpolate import interp1d

    from xpdb.xp.calibrate import band_spans, calibration_bases
    from xpdb.xp.extinction import toolkit

    bases, merge = calibration_bases()
    wl = bases.grid
    spans = band_spans(wl)
    tk = toolkit()
    curve = np.asarray(interp1d(tk.λ, tk.Ecurve["A(λ)/A(55)"])(wl * 10.0), float)
    return Constants(wl.copy(), {b: bases.design[b].copy() for b in BANDS}, {b: merge[b].copy() for b in BANDS},
                     {b: (spans[b].start, spans[b].stop) for b in BANDS}, curve, float(tk.XPEC_R55))


def export_constants(path: str | Path) -> Path:
    """Write ``constants()`` to ``path`` (an ``.npz`` of a few hundred kB) for machines without GaiaXPy."""
    constants().save(path)
    return Path(path)


def enable_float64() -> bool:
    """Switch the backend to allow float64 arrays (JAX needs ``jax_enable_x64``); False where it cannot."""
    from xpdb.models.backend import keras

    name = keras().backend.backend()
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    return name in ("jax", "torch", "tensorflow", "numpy")


class ArrayPath:
    """Calibration + features on the Keras backend's arrays, in chunks of ``chunk`` stars.

    Examples
    --------
    >>> path = ArrayPath()                                          # doctest: +SKIP
    >>> f60, e60, norm = path.features_arrays(bp_c, bp_e, bp_r, rp_c, rp_e, rp_r, ebv)  # doctest: +SKIP
    """

    def __init__(self, dtype: str = "float64", chunk: int = 8192, consts: Constants | None = None, window=None):
        from xpdb.models.backend import keras
        from xpdb.xp.features import BIN_RANGE_NM, NORM_WINDOW_NM, bin_slices

        self.k = keras()
        ops = self.k.ops
        if dtype == "float64" and not enable_float64():
            raise ValueError(f"the {self.k.backend.backend()} backend has no float64")
        self.dtype, self.chunk = dtype, int(chunk)
        c = consts or constants()
        self.consts = c
        self.k_coeff = {b: c.design[b].shape[0] for b in BANDS}
        m = len(c.grid)
        self.m = m
        self.bands = {}
        # The design matrices (~1e-17 W m^-2 nm^-1 per e-/s) are scaled by a power of two to order
        # unity: their squares would be denormal in float32, and a power of two changes no float64 bit.
        peak = max(float(np.abs(c.design[b]).max()) for b in BANDS)
        self.scale = float(2.0 ** -np.floor(np.log2(peak)))
        for b in BANDS:
            lo, hi = c.span[b]
            d = c.design[b][:, lo:hi] * self.scale
            kk = d.shape[0]
            rows, cols = np.tril_indices(kk, -1)
            self.bands[b] = dict(
                lo=lo, hi=hi,
                design=ops.convert_to_tensor(d, dtype),
                squared=ops.convert_to_tensor(d * d, dtype),
                products=ops.convert_to_tensor(2.0 * d[rows] * d[cols], dtype),
                rows=ops.convert_to_tensor(rows.astype(np.int32)), cols=ops.convert_to_tensor(cols.astype(np.int32)),
                weight=ops.convert_to_tensor(c.merge[b][lo:hi], dtype))
        self.curve = ops.convert_to_tensor(0.4 * c.r55 * np.log(10.0) * c.curve, dtype)
        # the 60 bins: groups of equally wide bins (one gather and sort each) and an averaging matrix
        slices = bin_slices(c.grid, tuple(window) if window else BIN_RANGE_NM)
        self.n_pixels = len(slices)
        groups: dict[int, list[int]] = {}
        for j, s in enumerate(slices):
            groups.setdefault(s.stop - s.start, []).append(j)
        self.groups = []
        for width, pixels in sorted(groups.items()):
            index = np.array([np.arange(slices[j].start, slices[j].stop) for j in pixels], np.int32)
            self.groups.append((width, np.array(pixels), ops.convert_to_tensor(index.reshape(-1))))
        order = np.concatenate([p for _, p, _ in self.groups])
        self.unscramble = ops.convert_to_tensor(np.argsort(order).astype(np.int32))
        average = np.zeros((m, self.n_pixels))
        for j, s in enumerate(slices):
            average[s, j] = 1.0 / (s.stop - s.start)
        self.average = ops.convert_to_tensor(average, dtype)
        window_mask = (c.grid >= NORM_WINDOW_NM[0]) & (c.grid <= NORM_WINDOW_NM[1])
        self.norm_vector = ops.convert_to_tensor((window_mask / window_mask.sum())[:, None], dtype)
        used = np.zeros(m, bool)
        for s in slices:
            used[s] = True
        self.used = ops.convert_to_tensor(used[None, :] | window_mask[None, :])
        # On JAX the whole chain is one compiled XLA program per chunk shape (fused, no per-op dispatch).
        self.compiled = self.k.backend.backend() == "jax"
        if self.compiled:
            import jax

            self._compute = jax.jit(self._features)
        else:
            self._compute = self._features

    # -- the mathematics, on tensors ------------------------------------------------------------
    def _band(self, b: str, c, e, r):
        """(flux, variance) of one band on its span, unmerged; r the packed correlations (0 where unknown)."""
        ops, p = self.k.ops, self.bands[b]
        flux = ops.matmul(c, p["design"])
        u = ops.take(e, p["rows"], axis=1) * ops.take(e, p["cols"], axis=1) * r
        var = ops.matmul(e * e, p["squared"]) + ops.matmul(u, p["products"])
        return flux, ops.maximum(var, 0.0)

    def calibrate_tensors(self, bp, rp):
        """Merged (flux, error), (n, m), from per-band (coefficients, errors, correlations) tensors.

        In units of ``1 / self.scale`` W m^-2 nm^-1 (divide by ``scale`` for physical units): the
        features are ratios, so they never leave these units, where float32 neither under- nor overflows.
        """
        ops = self.k.ops
        parts = []
        for b, arrays in (("bp", bp), ("rp", rp)):
            p = self.bands[b]
            flux, var = self._band(b, *arrays)
            err = ops.sqrt(var) * p["weight"]
            pad = [(0, 0), (p["lo"], self.m - p["hi"])]
            parts.append((ops.pad(flux * p["weight"], pad), ops.pad(err * err, pad)))
        flux = parts[0][0] + parts[1][0]
        return flux, ops.sqrt(parts[0][1] + parts[1][1])

    def features_tensors(self, flux, err, ebv):
        """(f60, e60, norm) from calibrated spectra and E(B-V): deredden, bin, normalise."""
        ops = self.k.ops
        e4455 = 0.961 * ebv + 1.1e-3
        factor = ops.exp(ops.expand_dims(e4455, 1) * ops.expand_dims(self.curve, 0))
        flux = flux * factor
        err = err * factor
        n = ops.shape(flux)[0]
        medians = []
        for width, pixels, index in self.groups:
            x = ops.reshape(ops.take(flux, index, axis=1), (n, len(pixels), width))
            x = ops.sort(x, axis=-1)
            half = width // 2
            medians.append(x[..., half] if width % 2 else 0.5 * (x[..., half - 1] + x[..., half]))
        f60 = ops.take(ops.concatenate(medians, axis=1), self.unscramble, axis=1)
        e60 = ops.sqrt(ops.matmul(err * err, self.average))
        norm = ops.matmul(flux, self.norm_vector)[:, 0]
        finite = ops.all(ops.logical_or(ops.isfinite(flux), ops.logical_not(self.used)), axis=1)
        nan = ops.convert_to_tensor(np.nan, self.dtype)
        f60 = ops.where(ops.expand_dims(finite, 1), f60, nan)
        return f60 / ops.expand_dims(norm, 1), e60 / ops.expand_dims(norm, 1), norm

    def _features(self, bp_c, bp_e, bp_r, rp_c, rp_e, rp_r, ebv):
        """The whole chain on raw chunk tensors: errors and correlations arrive in their stored
        precision (float32: half the bytes to move) with NaN for unknown, cast and zeroed here."""
        ops = self.k.ops

        def clean(x):
            x = ops.cast(x, self.dtype)
            return ops.where(ops.isnan(x), ops.zeros_like(x), x)

        bands = [(ops.cast(c, self.dtype), clean(e), clean(r)) for c, e, r in ((bp_c, bp_e, bp_r), (rp_c, rp_e, rp_r))]
        flux, err = self.calibrate_tensors(*bands)
        return self.features_tensors(flux, err, ops.cast(ebv, self.dtype))

    def _padded(self, rows: int) -> int:
        """Rows a chunk is padded to on a compiling backend: a power of two up to ``chunk`` (few compilations)."""
        if not self.compiled:
            return rows
        return min(self.chunk, 1 << max(0, int(rows - 1).bit_length())) if rows < self.chunk else rows

    # -- NumPy in, NumPy out ----------------------------------------------------------------------
    def features_arrays(self, bp_c, bp_e, bp_r, rp_c, rp_e, rp_r, ebv, *, bp_limit=None, rp_limit=None):
        """(f60, e60, norm) as NumPy float64 for per-band arrays (n, K), (n, K), (n, K(K-1)/2) and E(B-V) (n,).

        Errors that are NaN count as 0 and correlations that are NaN as 0 (uncorrelated), as
        in the NumPy path; ``*_limit`` (n,) keeps the first ``limit`` coefficients (truncation).
        """
        ops = self.k.ops
        n = len(ebv)
        out = [np.empty((n, self.n_pixels)), np.empty((n, self.n_pixels)), np.empty(n)]
        for start in range(0, n, self.chunk):
            sl = slice(start, start + self.chunk)
            rows = min(n, start + self.chunk) - start
            pad = self._padded(rows) - rows
            bands = []
            for b, (c, e, r, limit) in (("bp", (bp_c, bp_e, bp_r, bp_limit)), ("rp", (rp_c, rp_e, rp_r, rp_limit))):
                kk = self.k_coeff[b]
                c_, e_, r_ = np.asarray(c[sl, :kk], np.float64), np.asarray(e[sl, :kk]), np.asarray(r[sl])
                if limit is not None:
                    keep = np.arange(kk)[None, :] < np.asarray(limit[sl])[:, None]
                    c_, e_ = c_ * keep, np.where(keep, e_, 0.0).astype(e_.dtype)
                for a in (c_, e_, r_):
                    bands.append(ops.convert_to_tensor(_pad_rows(a, pad), _wire_dtype(a, self.dtype)))
            e = ops.convert_to_tensor(_pad_rows(np.asarray(ebv[sl], np.float64), pad), self.dtype)
            got = self._compute(*bands, e)
            for dst, src in zip(out, got):
                dst[sl] = ops.convert_to_numpy(src)[:rows]
        out[2] /= self.scale  # the normalisation in W m^-2 nm^-1
        return tuple(out)

    def compute_features(self, batch: XpBatch, ebv, *, preprocessing=None):
        """``xpdb.xp.features.compute_features`` with the stars it covers computed here (same flags)."""
        from xpdb.xp.features import (
            FLAG_MISSING_EBV,
            FLAG_NOT_COMPUTABLE,
            UNUSABLE,
            Features,
            Preprocessing,
            compute_features,
        )

        pre = preprocessing or Preprocessing()
        ebv = np.asarray(ebv, float).reshape(batch.n)
        covered = np.ones(batch.n, bool)
        for b in BANDS:
            coeff = batch.arrays[f"{b}_coefficients"]
            covered &= ~coeff.null & (coeff.lengths == self.k_coeff[b])
        if pre.correction is not None or not covered.any():
            return compute_features(batch, ebv, preprocessing=pre, array_path=False)
        rows = np.flatnonzero(covered)
        args = []
        for b in BANDS:
            kk = self.k_coeff[b]
            corr = batch.arrays[f"{b}_coefficient_correlations"]
            errs = batch.arrays[f"{b}_coefficient_errors"]
            has_corr = ~corr.null[rows] & (corr.lengths[rows] == kk * (kk - 1) // 2)
            r = np.zeros((len(rows), kk * (kk - 1) // 2), corr.values.dtype if corr.width else np.float32)
            if corr.width and has_corr.any():
                r[has_corr] = corr.values[rows[has_corr], :kk * (kk - 1) // 2]
            e = errs.values[rows, :kk] if errs.width else np.zeros((len(rows), kk))
            args += [batch.arrays[f"{b}_coefficients"].values[rows, :kk], e, r]
        limits = {}
        if pre.truncation:
            for b in BANDS:
                nrel = batch.scalars[f"{b}_n_relevant_bases"]
                kk = self.k_coeff[b]
                limits[f"{b}_limit"] = np.where(nrel.null | (nrel.values <= 0), kk, nrel.values)[rows].astype(np.int64)
        f60, e60, norm = self.features_arrays(*args, ebv[rows], **limits)
        flux = np.full((batch.n, self.n_pixels), np.nan, np.float32)
        error = np.full((batch.n, self.n_pixels), np.nan, np.float32)
        flags = np.zeros(batch.n, np.int32)
        sub = np.zeros(len(rows), np.int32)
        sub[~np.isfinite(ebv[rows])] |= FLAG_MISSING_EBV
        bad = ~(norm > 0) | ~np.isfinite(f60).all(axis=1) | ~np.isfinite(e60).all(axis=1)
        sub[bad & ((sub & FLAG_MISSING_EBV) == 0)] |= FLAG_NOT_COMPUTABLE
        ok = (sub & UNUSABLE) == 0
        flux[rows[ok]], error[rows[ok]] = f60[ok], e60[ok]
        flags[rows] = sub
        rest = np.flatnonzero(~covered)
        if len(rest):
            part = compute_features(take(batch, rest), ebv[rest], preprocessing=pre, array_path=False)
            flux[rest], error[rest], flags[rest] = part.flux, part.flux_error, part.flags
        return Features(batch.source_id.values.copy(), flux, error, flags, pre)


def _wire_dtype(a: np.ndarray, dtype: str) -> str:
    """Arrays stored in float32 travel to the device as float32 (cast there); the rest in ``dtype``."""
    return "float32" if a.dtype == np.float32 else dtype


def _pad_rows(a: np.ndarray, pad: int) -> np.ndarray:
    return np.concatenate([a, np.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a


def take(batch: XpBatch, rows: np.ndarray) -> XpBatch:
    """The rows ``rows`` of a batch (for the stars the array path leaves to the NumPy path)."""
    rows = np.asarray(rows)

    def scalar(s: Scalar) -> Scalar:
        return Scalar(s.values[rows], s.null[rows])

    def dense(a: DenseArrays) -> DenseArrays:
        where = {int(i): j for j, i in enumerate(rows)}
        return DenseArrays(a.values[rows], a.lengths[rows], a.null[rows],
                           {where[i]: why for i, why in a.bad_rows.items() if i in where})

    return XpBatch(len(rows), scalar(batch.source_id), scalar(batch.solution_id),
                   {k: scalar(v) for k, v in batch.scalars.items()}, {k: dense(v) for k, v in batch.arrays.items()})


# -- the process's choice: set by the worker (``xpdb jobs work --device``) ------------------------------
_ACTIVE: ArrayPath | None = None


def use(path: ArrayPath | None) -> None:
    """Compute features through ``path`` in this process (None: the NumPy path)."""
    global _ACTIVE
    _ACTIVE = path


def active() -> ArrayPath | None:
    """The array path this process computes features with, or None for NumPy."""
    return _ACTIVE
