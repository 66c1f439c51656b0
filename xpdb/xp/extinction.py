"""Dereddening with the empirical XP extinction curve of Zhang et al. (2024).

The curve and its dereddening function come from the ``XP-Extinction-Toolkit`` package
(by an author of the UA-CSNet paper); xpdb only supplies the reddening scale of the
paper's eq. 1:

    E(44-55) = 0.961 E(B-V)_SFD + 1.1e-3

and multiplies fluxes and errors by the toolkit's ``deredden`` factor
``10**(0.4 R55 E(44-55) A(lambda)/A(55))`` with R55 = 2.730.

Photometry. For the selection (section 2.3) the dereddened colour and magnitudes are
needed in SQL, before any spectrum is processed, so they use constant reddening
coefficients R_X = A_X / E(B-V)_SFD derived from the same curve: the toolkit's Gaia DR3
G, BP and RP passbands integrated (photon counting) over its BOSZ model spectrum of a
Teff = 4500 K, log g = 2.5 giant, the middle of the model's colour domain, reddened by
E(B-V)_SFD = 0.1 through eq. 1. Then

    (BP-RP)_0 = BP-RP - (R_BP - R_RP) E(B-V)_SFD
    G_0       = G - R_G E(B-V)_SFD
    M_G       = G_0 - 5 log10(d / 10 pc),  d = rgeo (Bailer-Jones) or else 1000/parallax

E(BP-RP)/E(B-V)_SFD varies by about +-5 per cent between 4000 and 5000 K (0.01 mag in
(BP-RP)_0 at the E(B-V) < 0.2 of the training cuts).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

E4455_SLOPE = 0.961
E4455_OFFSET = 1.1e-3
REFERENCE_TEFF = 4500.0
REFERENCE_LOGG = 2.5
REFERENCE_EBV = 0.1
# R_X = A_X / E(B-V)_SFD, from reddening_coefficients() (a test keeps them in step).
R_G = 2.0867
R_BP = 2.7186
R_RP = 1.5967
R_BP_RP = R_BP - R_RP


@lru_cache(maxsize=1)
def toolkit():
    """The XP-Extinction-Toolkit (its curve, passbands and BOSZ spectra), loaded once."""
    from xp_extinction_toolkit.ExtinctionToolkit import ExtinctionToolkit

    return ExtinctionToolkit()


def e4455_from_sfd(ebv) -> np.ndarray:
    """Paper eq. 1: E(44-55) = 0.961 E(B-V)_SFD + 1.1e-3."""
    return E4455_SLOPE * np.asarray(ebv, dtype=float) + E4455_OFFSET


def dereddening_factor(wavelength_nm: np.ndarray, ebv) -> np.ndarray:
    """Multiplicative factor (n, n_wavelengths) that removes the extinction, from the toolkit itself."""
    e4455 = np.atleast_1d(e4455_from_sfd(ebv))
    wave = np.asarray(wavelength_nm, dtype=float) * 10.0  # toolkit wants Angstrom
    factor = toolkit().deredden(E4455=e4455, wave=wave)
    return np.asarray(factor, dtype=float).reshape(len(e4455), len(wave))


def deredden(wavelength_nm: np.ndarray, flux: np.ndarray, flux_error: np.ndarray, ebv) -> tuple[np.ndarray, np.ndarray]:
    """Dereddened flux and error; a NaN E(B-V) gives NaN spectra (never a silent zero)."""
    ebv = np.asarray(ebv, dtype=float)
    factor = np.full((len(ebv), len(wavelength_nm)), np.nan)
    ok = np.isfinite(ebv)
    if ok.any():
        factor[ok] = dereddening_factor(wavelength_nm, ebv[ok])
    return flux * factor, flux_error * factor


def reddening_coefficients(teff: float = REFERENCE_TEFF, logg: float = REFERENCE_LOGG,
                           ebv: float = REFERENCE_EBV) -> dict[str, float]:
    """A_X / E(B-V)_SFD for Gaia G, BP, RP: the curve through a BOSZ giant and the DR3 passbands."""
    tk = toolkit()
    spectra = np.load(tk.start_path + "/BOSZ_spectra.npy", allow_pickle=True)
    row = np.flatnonzero((tk.teff_list == teff) & (tk.logg_list == logg))
    if not len(row):
        raise ValueError(f"no BOSZ model at Teff={teff}, logg={logg} in the toolkit grid")
    sed = spectra[row[0]]
    transmission = 10 ** (-0.4 * tk.XPEC_R55 * float(e4455_from_sfd(ebv)) * tk.Ecurve["A(λ)/A(55)"])
    out = {}
    for name, band in (("G", "GAIA3.G"), ("BP", "GAIA3.Gbp"), ("RP", "GAIA3.Grp")):
        weight = np.asarray(tk.Filters[band]) * tk.λ * tk.λ_intvl  # photon-counting passband
        out[name] = float(-2.5 * np.log10(np.sum(sed * transmission * weight) / np.sum(sed * weight)) / ebv)
    return out


def bp_rp0(bp_rp, ebv) -> np.ndarray:
    """Dereddened colour (BP-RP)_0 = BP-RP - (R_BP - R_RP) E(B-V)_SFD."""
    return np.asarray(bp_rp, dtype=float) - R_BP_RP * np.asarray(ebv, dtype=float)


def g0(g, ebv) -> np.ndarray:
    """Dereddened G_0 = G - R_G E(B-V)_SFD."""
    return np.asarray(g, dtype=float) - R_G * np.asarray(ebv, dtype=float)


def distance_pc(rgeo, parallax) -> np.ndarray:
    """rgeo [pc] where given, else 1000/parallax [mas] for positive parallaxes, else NaN."""
    rgeo = np.asarray(rgeo, dtype=float)
    parallax = np.asarray(parallax, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        from_plx = np.where(parallax > 0, 1000.0 / parallax, np.nan)
    return np.where(np.isfinite(rgeo) & (rgeo > 0), rgeo, from_plx)


def absolute_g(g, ebv, rgeo, parallax) -> np.ndarray:
    """M_G = G_0 - 5 log10(d / 10 pc)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return g0(g, ebv) - 5.0 * np.log10(distance_pc(rgeo, parallax) / 10.0)
