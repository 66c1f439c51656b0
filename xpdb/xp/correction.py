"""Adapter for the systematic-error correction of Huang et al. (2024), when the user has it.

The authors' package ``GaiaDR3XPspectracorrectionV1`` (https://github.com/HiromonGON/GaiaXPcorrection)
is not on PyPI and carries no licence, so xpdb does not bundle it. With it installed,
``--xp-correction huang2024`` applies

    Gaia_Correction_V1.correction(flux, G, error, Truncation=..., absolute_correction=True)

spectrum by spectrum (its API takes one spectrum), before dereddening, as the paper does.
Sources outside its validated range (-0.5 < BP-RP < 2, 3 < G < 17.5, E(B-V) < 0.8) are
still corrected but flagged. The errors are kept as GaiaXPy gives them.
"""

from __future__ import annotations

import numpy as np

from xpdb.errors import CorrectionUnavailable

CORRECTIONS = ("huang2024",)
INSTALL_HINT = ("the Huang et al. (2024) correction needs the authors' package GaiaDR3XPspectracorrectionV1, "
                "which is not on PyPI: download it from https://github.com/HiromonGON/GaiaXPcorrection "
                "(or doi:10.12149/101375) and `pip install` it into this environment")


def load_huang2024():
    """The authors' ``Gaia_Correction_V1`` module, or a clear error saying how to get it."""
    try:
        from GaiaDR3XPspectracorrectionV1 import Gaia_Correction_V1  # type: ignore[import-not-found]
    except ImportError as exc:
        raise CorrectionUnavailable(INSTALL_HINT) from exc
    return Gaia_Correction_V1


def check_available(name: str | None) -> None:
    """Fail early (before any batch runs) when a requested correction cannot be applied."""
    if name is None:
        return
    if name not in CORRECTIONS:
        raise ValueError(f"unknown XP correction {name!r}; known: {', '.join(CORRECTIONS)}")
    load_huang2024()


def validity_mask(g, bp_rp, ebv) -> np.ndarray:
    """True inside the range the correction was validated for."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(bp_rp) > -0.5) & (np.asarray(bp_rp) < 2) & (np.asarray(g) > 3) & \
            (np.asarray(g) < 17.5) & (np.asarray(ebv) < 0.8)


def apply_correction(name: str, wavelength, flux, flux_error, *, g, bp_rp, ebv, truncation: bool):
    """Return (corrected flux, errors, out_of_range mask)."""
    check_available(name)
    module = load_huang2024()
    if g is None:
        raise ValueError("the huang2024 correction needs G magnitudes (phot_g_mean_mag)")
    g = np.asarray(g, dtype=float)
    out = np.array(flux, dtype=float, copy=True)
    for i in range(len(out)):
        if np.isfinite(out[i]).all() and np.isfinite(g[i]):
            corrected = module.correction(out[i], g[i], flux_error[i], Truncation=truncation, absolute_correction=True)
            out[i] = np.asarray(corrected[0], dtype=float)
    out_of_range = ~validity_mask(g, bp_rp if bp_rp is not None else np.full(len(g), np.nan), ebv)
    return out, flux_error, out_of_range
