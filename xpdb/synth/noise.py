"""Noise of synthetic XP coefficients, following relations measured on real Gaia DR3 spectra.

Measured with ``scripts/measure_xp_noise.py`` on ``../shared/data/real``:

* Coefficient errors versus brightness, from the 2,000 DR3 sources of
  ``xp_chunk/xp_continuous_combined_chunk0.fits`` (G from their own XP spectra by
  synthetic photometry, 7.3 < G < 19.8). The error of the first coefficient follows
  photon, calibration and background terms,

      e_0(G)^2 = (a F)^2 + b F + c^2,   F = 10**(-0.4 (G - 15)),

  with log10 (a, b, c) = (-0.095, 0.399, -0.526) for BP and (-0.592, 0.188, -0.425) for
  RP (e in the archive's coefficient units); a source scatters about it by 0.10 dex
  (lognormal). Higher coefficients scale by a median profile e_k / e_0 that falls from 1
  to about 0.03 (BP) and 0.06 (RP) at k = 54, tabulated below at knots in k.
* The number of relevant bases falls from about 20 at G = 8 to 4 at G >= 16.
* Correlations, from the seven real sources with full correlation matrices
  (``gaiaxpy/XP_CONTINUOUS_RAW.*``, ``18Sco-XP-spectra.csv`` and the four of
  ``xp_continuous_combined_weiler2023_examples.vot``, 14 source-bands, 5.3 < G < 16.3):
  near-zero mean at every lag, and a mean |r_kl| over all pairs of
  0.071 - 0.0030 (G - 9), kept within [0.03, 0.12]. Synthetic correlation
  matrices are random positive-definite matrices with that mean |r|:
  ``S = I + s Z Z^T`` (Z a 55 x 20 Gaussian matrix per source and band), scaled to unit
  diagonal, with s set from the target mean |r|.

Noise is drawn as ``delta = e * (u + sqrt(s) Z w) / sqrt(diag S)`` (u, w standard normal),
which has exactly the covariance ``D R D`` that GaiaXPy propagates.
"""

from __future__ import annotations

import numpy as np

E0_LOG10_ABC = {"bp": (-0.095, 0.399, -0.526), "rp": (-0.592, 0.188, -0.425)}
E0_SCATTER_DEX = 0.10
PROFILE_KNOTS = np.array([0, 1, 2, 3, 5, 10, 20, 30, 40, 45, 50, 52, 54])
PROFILE_LN = {
    "bp": np.array([0.0, -0.158, -0.11, -0.104, -0.274, -0.111, -0.313, -0.864, -1.135, -1.126, -1.771, -2.147, -3.343]),
    "rp": np.array([0.0, -0.082, -0.082, 0.031, -0.044, -0.139, -0.247, -0.298, -0.812, -0.904, -1.331, -1.541, -2.89]),
}
NREL_G = np.array([8.0, 12.0, 16.0, 18.0])
NREL_VALUE = np.array([20.0, 9.0, 4.0, 4.0])
LATENT = 20


def e0(g: np.ndarray, band: str) -> np.ndarray:
    """Median error of the first coefficient at magnitude G."""
    a, b, c = (10.0 ** p for p in E0_LOG10_ABC[band])
    f = 10 ** (-0.4 * (np.asarray(g, float) - 15.0))
    return np.sqrt((a * f) ** 2 + b * f + c ** 2)


def error_profile(k: int, band: str) -> np.ndarray:
    """Median e_k / e_0 for k coefficients (interpolated between knots; flat beyond)."""
    return np.exp(np.interp(np.arange(k), PROFILE_KNOTS, PROFILE_LN[band]))


def coefficient_errors(g: np.ndarray, band: str, k: int, rng: np.random.Generator) -> np.ndarray:
    """Archive-like coefficient errors, shape (n, k)."""
    scatter = 10 ** rng.normal(0.0, E0_SCATTER_DEX, size=len(g))
    return (e0(g, band) * scatter)[:, None] * error_profile(k, band)[None, :]


def n_relevant_bases(g: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    base = np.interp(np.asarray(g, float), NREL_G, NREL_VALUE)
    return np.clip(np.round(base * 10 ** rng.normal(0, 0.1, len(g))), 1, k).astype(np.int16)


def mean_abs_correlation(g: np.ndarray) -> np.ndarray:
    return np.clip(0.071 - 0.0030 * (np.asarray(g, float) - 9.0), 0.03, 0.12)


def _scale_for(target: np.ndarray, q: int = LATENT) -> np.ndarray:
    """s such that mean |r| of I + s Z Z^T (after normalising) is about ``target``.

    Off-diagonal S_kl ~ s sqrt(q) N(0,1) and S_kk ~ 1 + s q, so mean |r| ~
    sqrt(2/pi) s sqrt(q) / (1 + s q); solved for s.
    """
    c = target / np.sqrt(2 / np.pi)
    return c / (np.sqrt(q) - c * q)


def correlated_noise(errors: np.ndarray, g: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw coefficient noise and the packed correlations (archive order) for each source.

    Returns (noise (n, k), packed lower-triangle correlations (n, k(k-1)/2) as float32).
    """
    n, k = errors.shape
    s = _scale_for(mean_abs_correlation(g))
    z = rng.normal(size=(n, k, LATENT))
    cov = s[:, None, None] * (z @ np.transpose(z, (0, 2, 1)))
    cov[:, np.arange(k), np.arange(k)] += 1.0
    scale = np.sqrt(np.einsum("nkk->nk", cov))
    rows, cols = np.tril_indices(k, -1)
    corr = (cov[:, rows, cols] / (scale[:, rows] * scale[:, cols])).astype(np.float32)
    draw = rng.normal(size=(n, k)) + np.sqrt(s)[:, None] * np.einsum("nkq,nq->nk", z, rng.normal(size=(n, LATENT)))
    return errors * draw / scale, corr
