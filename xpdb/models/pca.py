"""PCA baseline for the scatter VAE: the same inputs, split and number of components.

A linear auto-encoder: the standardised training spectra's mean and first ``k`` principal
components (k = the sVAE's latent size). A spectrum's "latent" is its ``k`` component
scores and its reconstruction the projection back. PCA has no per-star scatter; beside
the errors-only residuals it gets a per-pixel *population* scatter (fitted by maximum
likelihood to the training residuals), the kind of scatter the seed's Cannon comparison
uses, so that its goodness of fit and anomaly score are defined as the sVAE's.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> x = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8)); err = np.full_like(x, 0.05)
>>> model = fit_pca(x, err, components=3)
>>> model.transform(model.standardiser.apply(x, err)[0]).shape
(500, 3)
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from xpdb.models.artifact import pack, unpack
from xpdb.models.svae import VARIANCE_FLOOR, Standardiser, anomaly_scores

ARTIFACT_MAGIC = b"XPDBPCA1"


@dataclass
class PCABaseline:
    """Mean, components and per-pixel population scatter, in standardised units."""

    standardiser: Standardiser
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), orthonormal rows
    scatter: np.ndarray  # (d,)
    config: dict = field(default_factory=dict)  # representation, sample_step, components
    inputs: dict = field(default_factory=dict)

    def transform(self, xs: np.ndarray) -> np.ndarray:
        return (np.asarray(xs, float) - self.mean) @ self.components.T

    def reconstruct(self, scores: np.ndarray) -> np.ndarray:
        return self.mean + np.asarray(scores, float) @ self.components

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, scaling_mean=self.standardiser.mean, scaling_scale=self.standardiser.scale, mean=self.mean,
                 components=self.components, scatter=self.scatter)
        return pack(ARTIFACT_MAGIC, {"config": self.config, "inputs": self.inputs}, buf.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes) -> PCABaseline:
        header, payload = unpack(data, ARTIFACT_MAGIC, "PCA")
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            return cls(Standardiser(z["scaling_mean"], z["scaling_scale"]), z["mean"], z["components"], z["scatter"],
                       header["config"], header.get("inputs", {}))


def population_scatter(residual: np.ndarray, err: np.ndarray, iterations: int = 60) -> np.ndarray:
    """Per pixel, the s >= 0 maximising prod N(r | 0, err^2 + s^2) over the stars (bisection in log s^2)."""
    r2 = np.asarray(residual, float) ** 2
    e2 = np.asarray(err, float) ** 2

    def slope(s2):  # d logL / d s^2 per pixel (decreasing in s^2 at the maximum)
        v = e2 + s2[None, :]
        return np.sum((r2 - v) / v ** 2, axis=0)

    lo = np.full(r2.shape[1], -30.0)
    hi = np.log(np.maximum(np.mean(r2, axis=0), 1e-12)) + 2.0
    zero = slope(np.zeros(r2.shape[1])) <= 0  # no scatter needed
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        up = slope(np.exp(mid)) > 0
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    return np.where(zero, 0.0, np.sqrt(np.exp(0.5 * (lo + hi))))


def fit_pca(x: np.ndarray, err: np.ndarray, *, components: int = 6, config: dict | None = None,
            inputs: dict | None = None) -> PCABaseline:
    """Fit on flux-normalised training spectra (standardised here, like the sVAE's)."""
    x = np.asarray(x, float)
    err = np.asarray(err, float)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(err).all(axis=1) & (err > 0).all(axis=1)
    standardiser = Standardiser.fit(x[ok])
    xs, es = (a.astype(float) for a in standardiser.apply(x[ok], err[ok]))
    mean = xs.mean(axis=0)
    _, _, vt = np.linalg.svd(xs - mean, full_matrices=False)
    comps = vt[:components]
    model = PCABaseline(standardiser, mean, comps, np.zeros(xs.shape[1]),
                        {**(config or {}), "components": int(components)}, dict(inputs or {}))
    model.scatter = population_scatter(xs - model.reconstruct(model.transform(xs)), es)
    return model


def evaluate_stars(model: PCABaseline, xs: np.ndarray, es: np.ndarray) -> dict[str, np.ndarray]:
    """The outputs of ``xpdb.models.svae.evaluate_stars`` for the PCA baseline (log-variances NaN)."""
    xs = np.asarray(xs, float)
    es = np.asarray(es, float)
    n, d = xs.shape
    k = len(model.components)
    ok = np.isfinite(xs).all(axis=1) & np.isfinite(es).all(axis=1) & (es > 0).all(axis=1)
    out = {"mu": np.full((n, k), np.nan, np.float32), "log_var": np.full((n, k), np.nan, np.float32),
           "x_hat": np.full((n, d), np.nan, np.float32), "s_hat": np.full((n, d), np.nan, np.float32)}
    for name in ("chi2_red", "chi2_red_scatter", "nll", "kl", "max_abs_residual"):
        out[name] = np.full(n, np.nan)
    if ok.any():
        scores = model.transform(xs[ok])
        x_hat = model.reconstruct(scores)
        out["mu"][ok], out["x_hat"][ok] = scores, x_hat
        out["s_hat"][ok] = model.scatter[None, :]
        r2 = (xs[ok] - x_hat) ** 2
        e2 = es[ok] ** 2
        w = e2 + model.scatter[None, :] ** 2 + VARIANCE_FLOOR
        out["chi2_red"][ok] = np.mean(r2 / e2, axis=1)
        out["chi2_red_scatter"][ok] = np.mean(r2 / w, axis=1)
        out["max_abs_residual"][ok] = np.sqrt(np.max(r2 / w, axis=1))
        out["nll"][ok] = np.sum(0.5 * r2 / w + 0.5 * np.log(w), axis=1)
    out.update(anomaly_scores(out, d))
    return out
