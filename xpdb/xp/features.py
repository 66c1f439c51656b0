"""The model's input: dereddened XP spectra resampled to 60 pixels and normalised near 5500 A.

Section 2.1 of the UA-CSNet paper: the (corrected,) dereddened 343-point spectrum is
resampled to 60 pixels by the median flux within wavelength bins, divided by the mean
flux at 5500 A; the errors are the RMS of the original errors within each bin, scaled by
the same divisor. The paper gives neither the bins nor the 5500 A window, so xpdb uses:

* **Bins**: 60 bins of equal width in ln(lambda) between 360 and 1000 nm. The first
  12 and last 10 samples of GaiaXPy's grid (336-358 nm, 1002-1020 nm) are left out:
  there the BP and RP responses fall steeply and the Hermite representation produces
  the spurious wiggles the paper wants to suppress. Log-spacing keeps the blue, where
  the metallicity information concentrates (Ca II H&K, the CH G band, Mg b), finely
  sampled: the bins are about 6 nm wide at 360 nm (3 samples) and 17 nm at 1000 nm
  (8-9 samples), roughly following the XP resolution. Every bin holds at least three
  samples, so the median rejects single-sample wiggles.
* **Normalisation**: the mean dereddened flux of the samples in 545-555 nm (546 to
  554 nm, five samples), a window free of strong absorption in giants.

All choices, the extinction recipe and the optional systematic correction are part of
the ``preprocessing version`` string stored with every feature row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xpdb.flags import UNUSABLE_FEATURES, FeatureFlag
from xpdb.xp.calibrate import CalibratedSpectra, calibrate
from xpdb.xp.extinction import E4455_OFFSET, E4455_SLOPE, deredden

N_PIXELS = 60
BIN_RANGE_NM = (360.0, 1000.0)
NORM_WINDOW_NM = (545.0, 555.0)

# The bits of ``Features.flags`` (xpdb.flags.FeatureFlag), by their short names here.
FLAG_MISSING_EBV = int(FeatureFlag.MISSING_EBV)
FLAG_MISSING_BAND = int(FeatureFlag.MISSING_BAND)
FLAG_NOT_COMPUTABLE = int(FeatureFlag.NOT_COMPUTABLE)
FLAG_CORRECTION_RANGE = int(FeatureFlag.CORRECTION_RANGE)
FLAG_NO_SPECTRUM = int(FeatureFlag.NO_SPECTRUM)
UNUSABLE = int(UNUSABLE_FEATURES)


@dataclass(frozen=True)
class Preprocessing:
    """Choices that define a feature set; ``version`` names it in the database.

    ``window`` is the wavelength range [nm] the 60 bins span (default 360-1000 nm; the
    paper's 330-1020 nm window is clipped to the 336-1020 nm XP grid).
    """

    correction: str | None = None  # None or "huang2024"
    truncation: bool = False
    window: tuple[float, float] = BIN_RANGE_NM

    @property
    def version(self) -> str:
        lo, hi = self.window
        n0, n1 = NORM_WINDOW_NM
        return (f"xpf1;bins=ln{lo:g}-{hi:g}nmx{N_PIXELS};median;err=rms;norm=mean{n0:g}-{n1:g}nm;"
                f"dered=zhang2024,E4455={E4455_SLOPE:g}EBV+{E4455_OFFSET:g};"
                f"correction={self.correction or 'none'};truncation={'yes' if self.truncation else 'no'}")

    @classmethod
    def from_version(cls, version: str) -> Preprocessing:
        """The choices behind a stored version string (this xpdb must be able to compute it)."""
        import re

        parts = dict(p.split("=", 1) for p in version.split(";") if "=" in p)
        m = re.match(r"ln([\d.]+)-([\d.]+)nmx", parts.get("bins", ""))
        window = (float(m.group(1)), float(m.group(2))) if m else BIN_RANGE_NM
        pre = cls(correction=None if parts.get("correction", "none") == "none" else parts["correction"],
                  truncation=parts.get("truncation") == "yes", window=window)
        if pre.version != version:
            raise ValueError(f"features of preprocessing {version!r} cannot be computed by this version of xpdb "
                             f"(it computes {pre.version!r})")
        return pre


def bin_edges(window: tuple[float, float] = BIN_RANGE_NM) -> np.ndarray:
    """The 61 bin edges [nm], equal steps in ln(lambda)."""
    return np.geomspace(window[0], window[1], N_PIXELS + 1)


def bin_slices(wavelength: np.ndarray, window: tuple[float, float] = BIN_RANGE_NM) -> list[slice]:
    """Sample index range of each bin: edges[i] <= lambda < edges[i+1] (the last bin includes its end)."""
    edges = bin_edges(window)
    idx = np.searchsorted(wavelength, edges, side="left")
    idx[-1] = np.searchsorted(wavelength, edges[-1], side="right")
    slices = [slice(int(a), int(b)) for a, b in zip(idx[:-1], idx[1:])]
    if min(s.stop - s.start for s in slices) < 1:
        raise ValueError("a feature bin holds no sample of this wavelength grid")
    return slices


def pixel_wavelengths(wavelength: np.ndarray, window: tuple[float, float] = BIN_RANGE_NM) -> np.ndarray:
    """Mean wavelength of the samples in each bin [nm] (for plots and documentation)."""
    return np.array([wavelength[s].mean() for s in bin_slices(wavelength, window)])


def resample(wavelength: np.ndarray, flux: np.ndarray, flux_error: np.ndarray,
             window: tuple[float, float] = BIN_RANGE_NM) -> tuple[np.ndarray, np.ndarray]:
    """Median flux and RMS error in each of the 60 bins. Shapes (n, m) -> (n, 60)."""
    flux = np.atleast_2d(flux)
    flux_error = np.atleast_2d(flux_error)
    out_f = np.empty((flux.shape[0], N_PIXELS))
    out_e = np.empty((flux.shape[0], N_PIXELS))
    for j, s in enumerate(bin_slices(wavelength, window)):
        out_f[:, j] = np.median(flux[:, s], axis=1)
        out_e[:, j] = np.sqrt(np.mean(flux_error[:, s] ** 2, axis=1))
    return out_f, out_e


def normalisation(wavelength: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Mean flux of the samples within the 5500 A window, per spectrum."""
    window = (wavelength >= NORM_WINDOW_NM[0]) & (wavelength <= NORM_WINDOW_NM[1])
    return np.mean(np.atleast_2d(flux)[:, window], axis=1)


@dataclass
class Features:
    """60-pixel normalised fluxes and errors (float32) with per-source flags.

    ``sampled`` marks the rows computed from a sampled spectrum (XP_SAMPLED) rather than
    from XP_CONTINUOUS calibrated by xpdb.
    """

    source_id: np.ndarray
    flux: np.ndarray
    flux_error: np.ndarray
    flags: np.ndarray
    preprocessing: Preprocessing
    sampled: np.ndarray | None = None

    @property
    def usable(self) -> np.ndarray:
        return (self.flags & UNUSABLE) == 0


def features_from_spectra(spectra: CalibratedSpectra, ebv, *, g=None, bp_rp=None,
                          preprocessing: Preprocessing = Preprocessing(),
                          missing_band: np.ndarray | None = None) -> Features:
    """Correct (optionally), deredden, resample and normalise calibrated spectra."""
    n = len(spectra.source_id)
    ebv = np.asarray(ebv, dtype=float).reshape(n)
    flags = np.zeros(n, dtype=np.int32)
    flags[~np.isfinite(ebv)] |= FLAG_MISSING_EBV
    if missing_band is not None:
        flags[missing_band] |= FLAG_MISSING_BAND
    flux, err = spectra.flux, spectra.flux_error
    if preprocessing.correction:
        from xpdb.xp.correction import apply_correction

        flux, err, out_of_range = apply_correction(preprocessing.correction, spectra.wavelength, flux, err,
                                                   g=g, bp_rp=bp_rp, ebv=ebv, truncation=preprocessing.truncation)
        flags[out_of_range] |= FLAG_CORRECTION_RANGE
    flux, err = deredden(spectra.wavelength, flux, err, ebv)
    f60, e60 = resample(spectra.wavelength, flux, err, preprocessing.window)
    norm = normalisation(spectra.wavelength, flux)
    with np.errstate(invalid="ignore", divide="ignore"):
        f60 /= norm[:, None]
        e60 /= norm[:, None]
        bad = ~(norm > 0) | ~np.isfinite(f60).all(axis=1) | ~np.isfinite(e60).all(axis=1)
    flags[bad & ~(flags & FLAG_MISSING_EBV).astype(bool)] |= FLAG_NOT_COMPUTABLE
    unusable = (flags & UNUSABLE) != 0
    f60[unusable] = np.nan
    e60[unusable] = np.nan
    return Features(spectra.source_id, f60.astype(np.float32), e60.astype(np.float32), flags, preprocessing)


def features_from_sampled(source_id, wavelength, flux, flux_error, ebv, *, g=None, bp_rp=None,
                          preprocessing: Preprocessing = Preprocessing()) -> Features:
    """Features from sampled spectra (XP_SAMPLED, GaiaXPy output): absolute flux in W m^-2 nm^-1.

    The same dereddening, resampling and normalisation as for XP_CONTINUOUS input; the
    grid must cover the feature window with at least one sample per bin.
    """
    if preprocessing.truncation:
        raise ValueError("truncation applies to XP_CONTINUOUS coefficients; sampled spectra are used as they are")
    spectra = CalibratedSpectra(np.asarray(source_id, dtype=np.int64), np.asarray(wavelength, dtype=float),
                                np.atleast_2d(np.asarray(flux, dtype=float)),
                                np.atleast_2d(np.asarray(flux_error, dtype=float)))
    feats = features_from_spectra(spectra, ebv, g=g, bp_rp=bp_rp, preprocessing=preprocessing)
    feats.sampled = np.ones(len(feats.source_id), dtype=bool)
    return feats


def compute_features(data, ebv, *, g=None, bp_rp=None, preprocessing: Preprocessing = Preprocessing(),
                     array_path: bool = True) -> Features:
    """Features straight from XP_CONTINUOUS input (path, Table, DataFrame or XpBatch).

    When this process has chosen an accelerator (``xpdb.xp.accel.use``, done by ``xpdb jobs
    work --device``) the stars go through its array path; ``array_path=False`` forces NumPy.
    """
    from xpdb.xp import accel
    from xpdb.xp.inputs import to_batch

    batch = to_batch(data)
    path = accel.active() if array_path else None
    if path is not None and preprocessing.correction is None:
        return path.compute_features(batch, ebv, preprocessing=preprocessing)
    spectra = calibrate(batch, truncation=preprocessing.truncation)
    missing = batch.arrays["bp_coefficients"].null | batch.arrays["rp_coefficients"].null
    feats = features_from_spectra(spectra, ebv, g=g, bp_rp=bp_rp, preprocessing=preprocessing, missing_band=missing)
    nothing = batch.arrays["bp_coefficients"].null & batch.arrays["rp_coefficients"].null
    feats.flags[nothing] |= FLAG_NO_SPECTRUM
    return feats


def features_of(data, ebv, *, wavelength=None, flux_error=None, source_id=None, g=None, bp_rp=None,
                preprocessing: Preprocessing = Preprocessing()) -> Features:
    """The model's 60-pixel features from any XP input, with no database.

    ``data`` is XP_CONTINUOUS input (a file path, astropy Table, DataFrame or ``XpBatch``),
    calibrated spectra (``CalibratedSpectra``, e.g. from ``xpdb.calibrate``), or sampled
    fluxes (an (n, m) array, with ``wavelength`` in nm and ``flux_error``; W m^-2 nm^-1).
    ``ebv`` is E(B-V) on the SFD scale per star.

    Examples
    --------
    >>> import numpy as np, xpdb
    >>> wl = 336.0 + 2.0 * np.arange(343)
    >>> flux = np.tile(1e-15 * (wl / 550.0) ** -2, (2, 1))
    >>> f = xpdb.features(flux, [0.0, 0.1], wavelength=wl, flux_error=0.01 * flux)
    >>> f.flux.shape, bool(f.usable.all())
    ((2, 60), True)
    """
    if isinstance(data, CalibratedSpectra):
        return features_from_sampled(data.source_id, data.wavelength, data.flux, data.flux_error, ebv, g=g,
                                     bp_rp=bp_rp, preprocessing=preprocessing)
    if wavelength is not None:
        flux = np.atleast_2d(np.asarray(data, dtype=float))
        if flux_error is None:
            raise ValueError("sampled fluxes need flux_error (same shape)")
        ids = np.arange(len(flux)) if source_id is None else source_id
        return features_from_sampled(ids, wavelength, flux, flux_error, ebv, g=g, bp_rp=bp_rp,
                                     preprocessing=preprocessing)
    return compute_features(data, ebv, g=g, bp_rp=bp_rp, preprocessing=preprocessing)
