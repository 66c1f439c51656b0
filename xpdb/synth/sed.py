"""A parametric SED for giants (and a few dwarfs) whose blue flux carries [Fe/H].

The continuum is a BOSZ model spectrum shipped with the XP-Extinction-Toolkit (solar
metallicity, Teff 3750-7250 K, log g 0-5; interpolated linearly in Teff in log flux at
the nearest log g). Metallicity enters as line blanketing, an optical depth that grows sub-linearly with
the metal abundance (lines on the flat part of the curve of growth), as Z^0.25
(``BLANKETING_EXPONENT``):

    F(lambda) = F_BOSZ(lambda; Teff, logg) * exp(-tau(lambda; Teff) * (10**(0.25 [Fe/H]) - 1))

so [Fe/H] = 0 returns the BOSZ model, metal-poor stars are brighter in the blue and
metal-rich ones fainter. The blanketing profile is a smooth blue pseudo-continuum (below
about 450 nm) plus Gaussian features at Ca II H&K (395 nm), the CH G band (430 nm), Mg b
(517 nm) and, in cool stars, TiO (710, 760 nm):

    tau = a(Teff) * [1/(1+exp((lambda-430)/30)) + 0.6 g(395, 8) + 0.35 g(430, 6)
                     + 0.15 g(517, 5)] + t(Teff) * [0.3 g(710, 15) + 0.25 g(760, 12)]
    a(Teff) = 0.45 (5500 K / Teff)^4,    t(Teff) = max(0, (4200 K - Teff) / 400 K)

a(Teff) grows steeply towards cool stars, so the same [Fe/H] step changes the blue flux
more in redder stars (the paper's Figure 1).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from xpdb.xp.extinction import toolkit

BLANKETING_EXPONENT = 0.25


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


def blanketing_depth(wavelength_nm: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """tau(lambda; Teff) of the module docstring, shape (n, m)."""
    wl = np.asarray(wavelength_nm, float)
    teff = np.asarray(teff, float)[:, None]
    metals = 1.0 / (1.0 + np.exp((wl - 430.0) / 30.0)) + 0.6 * _gauss(wl, 395, 8) + 0.35 * _gauss(wl, 430, 6) \
        + 0.15 * _gauss(wl, 517, 5)
    tio = 0.3 * _gauss(wl, 710, 15) + 0.25 * _gauss(wl, 760, 12)
    a = 0.45 * (5500.0 / teff) ** 4
    t = np.clip((4200.0 - teff) / 400.0, 0, None)
    return a * metals[None, :] + t * tio[None, :]


def giant_sed(wavelength_nm: np.ndarray, teff, logg, feh) -> np.ndarray:
    """Unreddened SED (arbitrary flux scale) for each star, shape (n, m)."""
    feh = np.asarray(feh, float)[:, None]
    tau = blanketing_depth(wavelength_nm, teff)
    return continuum(wavelength_nm, teff, logg) * np.exp(-tau * (10 ** (BLANKETING_EXPONENT * feh) - 1.0))
