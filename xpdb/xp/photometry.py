"""Synthetic photometry from XP coefficients (GaiaXPy ``generate``), vectorised.

Used for the Gaia DR3 Vega system (G, BP, RP synthesised from the spectra) by the
synthetic sky, and available for any built-in GaiaXPy system that needs no flux
correction. Same filter files and zero points as GaiaXPy, read from the installed package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from xpdb.xp.batch import BANDS
from xpdb.xp.calibrate import SampledBases, sample_bands
from xpdb.xp.inputs import to_batch


@dataclass(frozen=True)
class System:
    name: str
    bands: tuple[str, ...]
    bases: SampledBases
    merge: dict[str, np.ndarray]
    zero_points: np.ndarray


@lru_cache(maxsize=8)
def photometric_system(name: str = "Gaia_DR3_Vega") -> System:
    """Load a GaiaXPy photometric system's sampled bases, merge weights and zero points."""
    from gaiaxpy.generator.photometric_system import PhotometricSystem

    internal = PhotometricSystem[name].value
    design = internal.load_xpsampling_from_xml()
    grid, merge = internal.load_xpmerge_from_xml()
    bases = SampledBases.from_design(np.arange(len(grid)), {b: np.asarray(design[b], dtype=float) for b in BANDS})
    return System(name, tuple(internal.get_bands()), bases, {b: np.asarray(merge[b], float) for b in BANDS},
                  np.asarray(internal.get_zero_points(), dtype=float))


def synthetic_photometry(data, system: str = "Gaia_DR3_Vega") -> dict[str, np.ndarray]:
    """Magnitudes per band, shape (n,) each; NaN where a needed band is missing."""
    sys = photometric_system(system)
    batch = to_batch(data)
    bands = sample_bands(batch, sys.bases)
    flux = bands["bp"][1] * sys.merge["bp"] + bands["rp"][1] * sys.merge["rp"]
    with np.errstate(invalid="ignore", divide="ignore"):
        mags = -2.5 * np.log10(flux) + sys.zero_points
    return {band: mags[:, i] for i, band in enumerate(sys.bands)}
