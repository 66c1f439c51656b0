"""The transformer's vocabulary: what each token kind is, its physical value, and its standardisation.

A star is a set of tokens, each one number with a kind (Leung & Bovy 2024). The kinds here
(64; id 0 is padding):

* ``xp_336`` ... ``xp_1020``: the XP spectrum **reduced to 55 values**. The APOGEE library
  (and the archive's XP_SAMPLED product) stores sampled spectra, not the 110 basis-function
  coefficients the authors use, so every spectrum - sampled where that is what is stored,
  else calibrated from XP_CONTINUOUS onto the same 343-sample grid - is fitted by least
  squares with a cubic B-spline of 55 coefficients uniform in ln(wavelength) and read at the
  spline's 55 Greville wavelengths (336, 338, 343, 351, ..., 998, 1013, 1020 nm: about 8 nm
  apart in the blue and 20 nm in the red). The flux is scaled to G = 0 mag (``flux * 10**(0.4 G)``, in units of
  1e-11 W m^-2 nm^-1), the authors' G-flux normalisation. Each token is local in
  wavelength, so "the blue half withheld" is a set of tokens left out, and the 55 values map
  back onto the 343-sample grid with one matrix (``XP_RECONSTRUCTION``): reconstructing the
  library's spectra this way leaves a median chi-square per sample of about 1 against their
  own errors.
* ``g`` (apparent G), ``bp_rp``, ``j_h``, ``j_k`` (observed colours, not dereddened) and
  ``ebv``: ln E(B-V), floored at exp(-7) as the authors do;
* ``teff``, ``logg``, ``m_h``, ``alpha_m``: APOGEE labels. The library has no separate
  [M/H]: its [Fe/H] is used as [M/H].

Values are standardised per kind with the median and 1.4826 x MAD of the training stars
(errors divided by the same scale), as ``model_core.standardize`` does. Then (``Standardiser``,
on by default) the standardised XP values of each half of the spectrum (<= 640 nm, > 640 nm)
are rotated onto that half's principal components, each standardised again: inside the
network, the token of kind ``xp_<nm>`` carries the k-th component of its half (k = its
position in the half) - the role the basis-function coefficients play in the authors'
model. Raw neighbouring values are nearly collinear, and a network fed one of them per
token does not learn [M/H] in a CPU budget (see ``Standardiser``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

XP_GRID = 336.0 + 2.0 * np.arange(343)  # nm: Gaia XP_SAMPLED / GaiaXPy's default calibration grid
N_XP = 55
XP_UNIT = 1e-11  # W m^-2 nm^-1: XP tokens are flux at G = 0 mag in this unit
EBV_FLOOR = float(np.exp(-7.0))
PHOTOMETRY_KINDS = ("g", "bp_rp", "j_h", "j_k", "ebv")
LABEL_KINDS = ("teff", "logg", "m_h", "alpha_m")
MAD_TO_SIGMA = 1.4826


@lru_cache(maxsize=1)
def _spline() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Greville wavelengths [nm], reduction matrix 55 x 343, reconstruction matrix 343 x 55)."""
    from scipy.interpolate import BSpline

    x = np.log(XP_GRID)
    k = 3
    inner = np.linspace(x[0], x[-1], N_XP - k + 1)
    knots = np.r_[[x[0]] * k, inner, [x[-1]] * k]
    design = BSpline.design_matrix(x, knots, k).toarray()  # 343 x 55
    greville = np.array([knots[i + 1:i + k + 1].mean() for i in range(N_XP)])
    at_greville = BSpline.design_matrix(greville, knots, k).toarray()  # 55 x 55, invertible
    coefficients = np.linalg.pinv(design)  # 55 x 343: least-squares spline coefficients
    reduction = at_greville @ coefficients  # spectrum -> the spline's values at the Greville points
    reconstruction = design @ np.linalg.inv(at_greville)  # values -> the spline on the full grid
    return np.exp(greville), reduction, reconstruction


XP_WAVELENGTHS, XP_REDUCTION, XP_RECONSTRUCTION = _spline()
XP_KINDS = tuple(f"xp_{w:.0f}" for w in XP_WAVELENGTHS)
KINDS = XP_KINDS + PHOTOMETRY_KINDS + LABEL_KINDS  # token id = position + 1
N_KINDS = len(KINDS)
TOKEN_ID = {name: i + 1 for i, name in enumerate(KINDS)}
UNITS = {**{k: "1e-11 W m-2 nm-1 at G = 0" for k in XP_KINDS}, "g": "mag", "bp_rp": "mag", "j_h": "mag",
         "j_k": "mag", "ebv": "mag", "teff": "K", "logg": "dex", "m_h": "dex", "alpha_m": "dex"}
assert len(set(XP_KINDS)) == N_XP and N_KINDS == 64


def kind_ids(names) -> np.ndarray:
    """Column indices (token id - 1) of these kind names; 'xp' stands for every XP kind."""
    out: list[int] = []
    for name in names:
        if name == "xp":
            out.extend(range(N_XP))
        elif name in TOKEN_ID:
            out.append(TOKEN_ID[name] - 1)
        else:
            raise ValueError(f"unknown token kind {name!r}; kinds are xp (all XP values), "
                             f"{', '.join(PHOTOMETRY_KINDS + LABEL_KINDS)} or one of xp_336 ... xp_1020")
    return np.asarray(out, dtype=np.int64)


def xp_tokens(flux: np.ndarray, flux_error: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 55 XP values and their errors from spectra on ``XP_GRID`` (W m^-2 nm^-1) and G [mag].

    Rows with any non-finite flux or G give NaN. Errors assume independent samples
    (``sqrt(A^2 e^2)``); the archive's samples are correlated, so these are lower bounds.

    Examples
    --------
    >>> import numpy as np
    >>> flux = np.full((1, 343), 1e-15); values, errors = xp_tokens(flux, flux * 0.01, np.array([12.0]))
    >>> values.shape, round(float(values[0, 20]), 3)
    ((1, 55), 6.31)
    """
    flux = np.asarray(flux, dtype=float)
    flux_error = np.asarray(flux_error, dtype=float)
    scale = 10.0 ** (0.4 * np.asarray(g, dtype=float)) / XP_UNIT
    ok = np.isfinite(flux).all(axis=1) & np.isfinite(scale)
    ok_err = ok & np.isfinite(flux_error).all(axis=1)
    values = np.full((len(flux), N_XP), np.nan)
    errors = np.full((len(flux), N_XP), np.nan)
    values[ok] = (flux[ok] @ XP_REDUCTION.T) * scale[ok, None]
    errors[ok_err] = np.sqrt(flux_error[ok_err] ** 2 @ (XP_REDUCTION ** 2).T) * scale[ok_err, None]
    return values, errors


def xp_spectrum(values: np.ndarray, errors: np.ndarray | None = None, *, g: float | np.ndarray = 0.0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(wavelength [nm], flux, flux_error) on ``XP_GRID`` in W m^-2 nm^-1 for a star of magnitude ``g``.

    The inverse of ``xp_tokens``. Errors of neighbouring values are taken as fully
    correlated (a generated spectrum's residuals are smooth): ``sigma = |R| e``.
    """
    values = np.atleast_2d(np.asarray(values, dtype=float))
    scale = XP_UNIT * 10.0 ** (-0.4 * np.asarray(g, dtype=float))
    scale = np.reshape(scale, (-1, 1)) if np.ndim(scale) else scale
    flux = values @ XP_RECONSTRUCTION.T * scale
    flux_error = None
    if errors is not None:
        flux_error = np.atleast_2d(np.asarray(errors, dtype=float)) @ np.abs(XP_RECONSTRUCTION).T * scale
    return XP_GRID.copy(), flux, flux_error


@dataclass
class TokenTable:
    """Physical token values and errors of stars, one column per kind (``KINDS``), NaN where missing."""

    source_id: np.ndarray
    values: np.ndarray  # (n, 64) float64
    errors: np.ndarray  # (n, 64) float64; NaN or 0 where unknown

    def __len__(self) -> int:
        return len(self.source_id)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, TOKEN_ID[name] - 1]

    def error(self, name: str) -> np.ndarray:
        return self.errors[:, TOKEN_ID[name] - 1]

    def subset(self, rows) -> TokenTable:
        return TokenTable(self.source_id[rows], self.values[rows], self.errors[rows])

    def without(self, names) -> TokenTable:
        """A copy with the kinds ``names`` ('xp' for every XP kind) set missing."""
        cols = kind_ids(names)
        values, errors = self.values.copy(), self.errors.copy()
        values[:, cols] = np.nan
        errors[:, cols] = np.nan
        return TokenTable(self.source_id, values, errors)

    def only(self, names) -> TokenTable:
        """A copy keeping only the kinds ``names`` (the others set missing)."""
        keep = set(kind_ids(names).tolist())
        return self.without([KINDS[i] for i in range(N_KINDS) if i not in keep])


def token_table(source_id, *, flux=None, flux_error=None, g=None, bp_rp=None, j=None, h=None, ks=None, ebv=None,
                labels: dict[str, np.ndarray] | None = None) -> TokenTable:
    """Physical tokens from spectra (on ``XP_GRID``), photometry and labels (any may be None).

    ``labels`` maps teff, logg, m_h, alpha_m and their ``_err`` to arrays. E(B-V) becomes
    ln(max(E(B-V), exp(-7))).
    """
    sid = np.asarray(source_id, dtype=np.int64)
    n = len(sid)
    values = np.full((n, N_KINDS), np.nan)
    errors = np.full((n, N_KINDS), np.nan)

    def arr(x):
        return np.full(n, np.nan) if x is None else np.asarray(x, dtype=float).reshape(n)

    g_, bp_rp_, j_, h_, ks_, ebv_ = arr(g), arr(bp_rp), arr(j), arr(h), arr(ks), arr(ebv)
    if flux is not None:
        values[:, :N_XP], errors[:, :N_XP] = xp_tokens(flux, flux_error, g_)
    with np.errstate(invalid="ignore"):
        phot = {"g": g_, "bp_rp": bp_rp_, "j_h": j_ - h_, "j_k": j_ - ks_,
                "ebv": np.where(np.isfinite(ebv_), np.log(np.maximum(ebv_, EBV_FLOOR)), np.nan)}
    for name, value in phot.items():
        values[:, TOKEN_ID[name] - 1] = value
    for name in LABEL_KINDS:
        if labels is not None and name in labels:
            values[:, TOKEN_ID[name] - 1] = arr(labels[name])
            errors[:, TOKEN_ID[name] - 1] = arr(labels.get(name + "_err"))
    values[~np.isfinite(values)] = np.nan
    return TokenTable(sid, values, errors)


XP_HALF_NM = 640.0  # the blue (BP-like) and red (RP-like) halves of the XP values, each decorrelated on its own
XP_HALVES = (np.flatnonzero(XP_WAVELENGTHS <= XP_HALF_NM), np.flatnonzero(XP_WAVELENGTHS > XP_HALF_NM))


@dataclass
class Standardiser:
    """Per-kind median and scale (1.4826 MAD) fitted on training stars, and (``rotations``) the XP
    values of each half of the spectrum decorrelated into principal components.

    Why the rotation: neighbouring XP values are almost copies of each other (the continuum
    dominates every one of them), so the labels' signal - [M/H] above all - lies in directions
    of tiny variance that a network fed one value per token barely sees and learns very
    slowly (a quadratic regression on the same values reaches 0.18 dex on the giants while
    the network stayed at their 0.47 dex spread). The authors' tokens are the XP basis-function
    coefficients, each standardised, where that signal is spread over coefficients of unit
    variance. Here the standardised values of each half (<= 640 nm and > 640 nm, like BP and
    RP) are rotated onto that half's principal components (fitted on the training stars) and
    each component standardised again; token ``xp_<nm>`` of a half then carries that half's
    k-th component (k = its position within the half). A half with any value missing is
    missing as a whole, so "the blue half withheld" is still a set of tokens left out.
    """

    median: np.ndarray  # (64,)
    scale: np.ndarray
    rotations: list | None = None  # per half: (mean (k,), components (k, k) rows, median (k,), scale (k,))

    @classmethod
    def fit(cls, values: np.ndarray, *, decorrelate: bool = True) -> Standardiser:
        with warnings.catch_warnings():  # a kind no training star has: median 0, scale 1
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(values, axis=0)
            scale = MAD_TO_SIGMA * np.nanmedian(np.abs(values - median), axis=0)
            std = np.nanstd(values, axis=0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.where(std > 0, std, 1.0))
        out = cls(np.nan_to_num(median), scale)
        if decorrelate:
            z = (values[:, :N_XP] - out.median[:N_XP]) / out.scale[:N_XP]
            rotations = []
            for cols in XP_HALVES:
                part = z[:, cols]
                part = part[np.isfinite(part).all(axis=1)]
                if len(part) <= len(cols):  # too few complete spectra to fit the components
                    rotations = None
                    break
                mean = part.mean(axis=0)
                components = np.linalg.svd(part - mean, full_matrices=False)[2]
                pc = (part - mean) @ components.T
                pc_median = np.median(pc, axis=0)
                pc_scale = MAD_TO_SIGMA * np.median(np.abs(pc - pc_median), axis=0)
                pc_scale = np.where(pc_scale > 0, pc_scale, 1.0)
                rotations.append((mean, components, pc_median, pc_scale))
            out.rotations = rotations
        return out

    def forward(self, values: np.ndarray, errors: np.ndarray | None = None, cols=slice(None)):
        """Standardised values (and errors), NaN where missing; ``cols`` other than all only without rotations."""
        v = (values - self.median[cols]) / self.scale[cols]
        e = None if errors is None else errors / self.scale[cols]
        if self.rotations is not None:
            if not (isinstance(cols, slice) and cols == slice(None)):
                raise ValueError("a decorrelated standardiser transforms whole rows of tokens")
            v = v.copy()
            e = None if e is None else e.copy()
            for half, (mean, components, pc_median, pc_scale) in zip(XP_HALVES, self.rotations):
                part = v[:, half]
                whole = np.isfinite(part).all(axis=1)
                pc = np.full_like(part, np.nan)
                pc[whole] = ((part[whole] - mean) @ components.T - pc_median) / pc_scale
                v[:, half] = pc
                if e is not None:
                    pe = np.zeros_like(part)
                    pe[whole] = np.sqrt(np.nan_to_num(e[whole][:, half]) ** 2 @ (components.T ** 2)) / pc_scale
                    e[:, half] = pe
        return v if errors is None else (v, e)

    def inverse(self, values: np.ndarray, sigma: np.ndarray, cols) -> tuple[np.ndarray, np.ndarray]:
        """Physical values and sigmas of the columns ``cols`` (with rotations, whole halves of XP tokens:
        each component's sigma is taken as independent of the others')."""
        cols = np.asarray(cols)
        values, sigma = np.array(values, dtype=float), np.array(sigma, dtype=float)
        if self.rotations is not None:
            for half, (mean, components, pc_median, pc_scale) in zip(XP_HALVES, self.rotations):
                at = np.flatnonzero(np.isin(cols, half))
                if not len(at):
                    continue
                if len(at) != len(half):
                    raise ValueError("decorrelated XP tokens are turned back into values a whole half at a time")
                order = at[np.argsort(cols[at])]
                pc, pc_sigma = values[:, order] * pc_scale + pc_median, sigma[:, order] * pc_scale
                values[:, order] = pc @ components + mean
                sigma[:, order] = np.sqrt(pc_sigma ** 2 @ components ** 2)
        return values * self.scale[cols] + self.median[cols], sigma * self.scale[cols]

    def to_dict(self) -> dict:
        d = {"median": self.median.tolist(), "scale": self.scale.tolist()}
        if self.rotations is not None:
            d["rotations"] = [[a.tolist() for a in r] for r in self.rotations]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Standardiser:
        rotations = d.get("rotations")
        if rotations is not None:
            rotations = [tuple(np.asarray(a, float) for a in r) for r in rotations]
        return cls(np.asarray(d["median"], float), np.asarray(d["scale"], float), rotations)


def to_physical(name: str, mean: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A token's value and sigma in its physical unit: ebv back from ln E(B-V) (sigma to first order)."""
    if name == "ebv":
        e = np.exp(mean)
        return e, e * sigma
    return mean, sigma
