"""Measure the XP noise relations of ``xpdb.synth.noise`` on real Gaia DR3 spectra.

    python -m xpdb.synth.measure ../shared/data/real

prints the fitted constants; ``tests/synth`` checks that the ones in ``noise.py`` agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from xpdb.synth import noise
from xpdb.xp.inputs import to_batch
from xpdb.xp.photometry import synthetic_photometry

CHUNK = ("xp_chunk", "xp_continuous_combined_chunk0.fits")
WITH_CORRELATIONS = (("gaiaxpy", "XP_CONTINUOUS_RAW.fits"), ("gaiaxpy", "18Sco-XP-spectra.csv"),
                     ("xp_chunk", "xp_continuous_combined_weiler2023_examples.vot"))


def measure_errors(real: Path) -> dict:
    """Fit e_0(G) per band, its scatter, and the e_k/e_0 profile at the knots."""
    batch = to_batch(real.joinpath(*CHUNK))
    g = synthetic_photometry(batch)["G"]
    out = {}
    for band in ("bp", "rp"):
        e = batch.arrays[f"{band}_coefficient_errors"].values.astype(float)
        ok = np.isfinite(g) & np.isfinite(e[:, 0]) & (e[:, 0] > 0)
        gg, y = g[ok], e[ok, 0]

        def model(p, mags):
            f = 10 ** (-0.4 * (mags - 15))
            return np.sqrt((10 ** p[0] * f) ** 2 + 10 ** p[1] * f + (10 ** p[2]) ** 2)

        fit = least_squares(lambda p: np.log10(model(p, gg)) - np.log10(y), [0, 0, -1], loss="soft_l1", f_scale=0.1)
        profile = np.log(np.nanmedian(e[ok] / e[ok, :1], axis=0))
        out[band] = {"log10_abc": fit.x, "scatter_dex": float(np.std(np.log10(model(fit.x, gg)) - np.log10(y))),
                     "profile_ln": profile[noise.PROFILE_KNOTS]}
    return out


def measure_correlations(real: Path) -> tuple[np.ndarray, np.ndarray]:
    """(G, mean |r|) of every real source-band with correlations."""
    gs, amps = [], []
    for parts in WITH_CORRELATIONS:
        batch = to_batch(real.joinpath(*parts))
        g = synthetic_photometry(batch)["G"]
        for band in ("bp", "rp"):
            corr = batch.arrays[f"{band}_coefficient_correlations"]
            for i in range(batch.n):
                if not corr.null[i]:
                    gs.append(g[i])
                    amps.append(float(np.mean(np.abs(corr.values[i]))))
    return np.array(gs), np.array(amps)


def main(argv: list[str]) -> None:
    real = Path(argv[0] if argv else "../shared/data/real")
    for band, fit in measure_errors(real).items():
        print(f"{band}: log10(a, b, c) = {np.round(fit['log10_abc'], 3).tolist()}  scatter {fit['scatter_dex']:.3f} dex")
        print(f"{band}: ln(e_k/e_0) at knots {noise.PROFILE_KNOTS.tolist()}: {np.round(fit['profile_ln'], 3).tolist()}")
    g, amp = measure_correlations(real)
    slope, intercept = np.polyfit(g - 9.0, amp, 1)
    print(f"mean |r| = {intercept:.3f} + {slope:.4f} (G - 9) over {len(g)} source-bands, G {g.min():.1f}-{g.max():.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
