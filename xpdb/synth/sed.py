"""A parametric SED for giants (and a few dwarfs) whose blue flux carries [Fe/H], [alpha/Fe] and [C/Fe].

The continuum is a BOSZ model spectrum shipped with the XP-Extinction-Toolkit (solar
metallicity, Teff 3750-7250 K, log g 0-5; interpolated linearly in Teff in log flux at
the nearest log g). Abundances enter as line and band blanketing, an optical depth per
group of features that grows with the abundance of the element that makes it, relative to
the solar model:

    F(lambda) = F_BOSZ(lambda; Teff, logg) * exp(-sum_k tau_k(lambda; Teff) * (s_k(abundances) - 1))

so solar abundances return the BOSZ model, metal-poor stars are brighter in the blue and
metal-rich ones fainter. The groups and their growth with abundance:

* **weak iron-peak lines** (the blue line forest, a smooth pseudo-continuum below about
  450 nm): on the linear part of the curve of growth at low metallicity, saturating above
  ``WEAK_LINE_SATURATION`` ([X/H] = -2), so they fade with Z below [Fe/H] of about -2 and
  only the strong lines stay:

      s_weak(Z) = g(Z) / g(1),   g(Z) = Z / (1 + Z / Z_s)^(1 - 0.25),   Z_s = 10**-2

  (g grows as Z below Z_s and as Z^0.25 above it);
* **strong alpha-element lines**, Ca II H&K (395 nm), Mg b (517 nm) and the Ca II triplet
  (850-866 nm), on the flat and damping parts of the curve of growth at every metallicity:
  ``s = Z_alpha ** BLANKETING_EXPONENT`` (0.25), with Z_alpha = 10**([Fe/H] + [alpha/Fe]);
* **carbon molecular bands**, CH (the G band, 430 nm) and CN (388, 421 nm), weak-line-like
  in the carbon abundance: ``s_weak(Z_C)``, Z_C = 10**([Fe/H] + [C/Fe]); and the C2 Swan
  bands (474, 516, 564 nm), which need carbon left over from CO: ``s_weak(Z_C) * 10**clip([C/Fe]
  - [alpha/Fe], 0, 1.5)`` (oxygen follows the alpha elements), strong only in carbon-enhanced stars;
* **TiO** in cool giants (710, 760 nm): ``s_weak(Z_alpha)``.

The depths at solar abundances:

    tau_weak   = a(Teff) / (1 + exp((lambda - 430) / 30))
    tau_strong = a(Teff) [0.6 g(395, 8) + 0.15 g(517, 5) + 0.08 (g(849.8, 3) + g(854.2, 3) + g(866.2, 3))]
    tau_CH/CN  = a(Teff) [0.35 g(430, 6) + 0.25 g(388, 5) + 0.12 g(421, 4)]
    tau_C2     = 0.04 a(Teff) [g(473.7, 6) + g(516.5, 6) + 0.7 g(563.5, 6)]
    tau_TiO    = t(Teff) [0.3 g(710, 15) + 0.25 g(760, 12)]
    a(Teff) = 0.45 (5500 K / Teff)^4,    t(Teff) = max(0, (4200 K - Teff) / 400 K)

(g(mu, s) a Gaussian profile in nm). a(Teff) grows steeply towards cool stars, so the same
[Fe/H] step changes the blue flux more in redder stars (the paper's Figure 1). With
[alpha/Fe] = [C/Fe] = 0 and [Fe/H] > -1 the SED is close to the single Z^0.25 law of
earlier versions of this module; below [Fe/H] = -2 it carries much less metallicity
signal, as real spectra do.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from xpdb.xp.extinction import toolkit

BLANKETING_EXPONENT = 0.25  # growth of the strong lines with abundance (flat part of the curve of growth)
WEAK_LINE_SATURATION = -2.0  # log10 Z_s: below it the weak lines grow (and fade) linearly with Z
C2_MAX_EXCESS = 1.5  # dex of carbon left over from CO that the Swan bands see at most


@lru_cache(maxsize=1)
def bosz_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(wavelength_nm, teff, logg, log10 flux) of the toolkit's BOSZ models."""
    tk = toolkit()
    spectra = np.load(tk.start_path + "/BOSZ_spectra.npy", allow_pickle=True).astype(float)
    return tk.λ / 10.0, np.asarray(tk.teff_list, float), np.asarray(tk.logg_list, float), np.log10(spectra)


def continuum(wavelength_nm: np.ndarray, teff: np.ndarray, logg: np.ndarray) -> np.ndarray:
    """BOSZ solar-metallicity spectra at (teff, logg), on ``wavelength_nm``, shape (n, m)."""
    wl, grid_teff, grid_logg, log_flux = bosz_grid()
    teff = np.asarray(teff, float)
    logg = np.asarray(logg, float)
    out = np.empty((len(teff), len(wavelength_nm)))
    loggs = np.unique(grid_logg)
    for g in loggs:
        rows = np.flatnonzero(grid_logg == g)
        order = rows[np.argsort(grid_teff[rows])]
        tgrid = grid_teff[order]
        near = np.abs(loggs[:, None] - logg[None, :]).argmin(axis=0)
        pick = np.flatnonzero(loggs[near] == g)
        if not len(pick):
            continue
        t = np.clip(teff[pick], tgrid[0], tgrid[-1])
        j = np.clip(np.searchsorted(tgrid, t) - 1, 0, len(tgrid) - 2)
        w = (t - tgrid[j]) / (tgrid[j + 1] - tgrid[j])
        lo = np.array([np.interp(wavelength_nm, wl, log_flux[order[i]]) for i in range(len(order))])
        out[pick] = 10 ** ((1 - w)[:, None] * lo[j] + w[:, None] * lo[j + 1])
    return out


def _gauss(wl: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((wl - centre) / sigma) ** 2)


def weak_line_growth(x_h) -> np.ndarray:
    """s_weak: the strength of weak lines at abundance [X/H] relative to solar (see the module docstring)."""
    z = 10.0 ** np.asarray(x_h, float)
    zs = 10.0 ** WEAK_LINE_SATURATION
    g = z / (1.0 + z / zs) ** (1.0 - BLANKETING_EXPONENT)
    return g / (1.0 / (1.0 + 1.0 / zs) ** (1.0 - BLANKETING_EXPONENT))


def strong_line_growth(x_h) -> np.ndarray:
    """s_strong = Z ** BLANKETING_EXPONENT for strong (saturated) lines."""
    return 10.0 ** (BLANKETING_EXPONENT * np.asarray(x_h, float))


def feature_depths(wavelength_nm: np.ndarray, teff: np.ndarray) -> dict[str, np.ndarray]:
    """tau_k(lambda; Teff) of every feature group at solar abundances, each of shape (n, m)."""
    wl = np.asarray(wavelength_nm, float)
    teff = np.asarray(teff, float)[:, None]
    a = 0.45 * (5500.0 / teff) ** 4
    t = np.clip((4200.0 - teff) / 400.0, 0, None)
    weak = 1.0 / (1.0 + np.exp((wl - 430.0) / 30.0))
    strong = 0.6 * _gauss(wl, 395, 8) + 0.15 * _gauss(wl, 517, 5) + 0.08 * (
        _gauss(wl, 849.8, 3) + _gauss(wl, 854.2, 3) + _gauss(wl, 866.2, 3))
    ch_cn = 0.35 * _gauss(wl, 430, 6) + 0.25 * _gauss(wl, 388, 5) + 0.12 * _gauss(wl, 421, 4)
    c2 = 0.04 * (_gauss(wl, 473.7, 6) + _gauss(wl, 516.5, 6) + 0.7 * _gauss(wl, 563.5, 6))
    tio = 0.3 * _gauss(wl, 710, 15) + 0.25 * _gauss(wl, 760, 12)
    return {"weak": a * weak[None, :], "strong": a * strong[None, :], "ch_cn": a * ch_cn[None, :],
            "c2": a * c2[None, :], "tio": t * tio[None, :]}


def blanketing_depth(wavelength_nm: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """The total depth at solar abundances, sum_k tau_k, shape (n, m)."""
    return sum(feature_depths(wavelength_nm, teff).values())


def growth(feh, alpha_fe=0.0, c_fe=0.0) -> dict[str, np.ndarray]:
    """s_k: the strength of every feature group relative to solar, shape (n,) each."""
    feh = np.asarray(feh, float)
    alpha_h = feh + np.broadcast_to(np.asarray(alpha_fe, float), feh.shape)
    c_fe = np.broadcast_to(np.asarray(c_fe, float), feh.shape)
    c_h = feh + c_fe
    leftover = 10.0 ** np.clip(c_fe - (alpha_h - feh), 0.0, C2_MAX_EXCESS)
    return {"weak": weak_line_growth(feh), "strong": strong_line_growth(alpha_h), "ch_cn": weak_line_growth(c_h),
            "c2": weak_line_growth(c_h) * leftover, "tio": weak_line_growth(alpha_h)}


def giant_sed(wavelength_nm: np.ndarray, teff, logg, feh, alpha_fe=0.0, c_fe=0.0) -> np.ndarray:
    """Unreddened SED (arbitrary flux scale) for each star, shape (n, m).

    ``alpha_fe`` and ``c_fe`` are [alpha/Fe] and [C/Fe] (scalars or one per star; 0 = solar ratios).
    """
    depths = feature_depths(wavelength_nm, teff)
    s = growth(np.atleast_1d(feh), alpha_fe, c_fe)
    optical_depth = sum(depths[k] * (s[k] - 1.0)[:, None] for k in depths)
    return continuum(wavelength_nm, teff, logg) * np.exp(-optical_depth)
