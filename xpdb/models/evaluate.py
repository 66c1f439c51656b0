"""Validation statistics as the paper reports them: bias and sigma of Delta[Fe/H] by a Gaussian fit.

Delta[Fe/H] = [Fe/H]_model - [Fe/H]_ref. Overall, in reference-[Fe/H] bins (<= -3,
-3..-2, -2..-1, > -1), for the very metal-poor ([Fe/H] <= -2) and metal-poor ([Fe/H] <=
-1.5) stars and, for Figure 5, per G-magnitude bin the median predicted error
next to the residual sigma. The Gaussian is fitted to the histogram of the residuals
(32 bins of a quarter robust sigma from 4 robust sigma below the median); below 50 stars,
or if the fit fails, the robust estimates (median, 1.4826 MAD) are reported instead and
``method`` says so. The SQL views use the same fit (``xpdb.gaussian_fit``, created by the migrations).

Cluster means (Figure 9) are a Gaussian fitted with iterative 3-sigma clipping,
``clipped_gaussian_fit``, equal to the SQL function ``xpdb.clipped_gaussian_fit`` that
``cluster_summary`` uses.
"""

from __future__ import annotations

import numpy as np

FEH_BINS = ((-np.inf, -3.0, "feh<=-3"), (-3.0, -2.0, "-3<feh<=-2"), (-2.0, -1.0, "-2<feh<=-1"),
            (-1.0, np.inf, "feh>-1"))
MIN_FIT = 50  # fewer residuals than this: robust estimates (a 32-bin histogram fit is unstable)
G_EDGES = (6.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0)


def robust(delta: np.ndarray) -> tuple[float, float]:
    med = float(np.median(delta))
    return med, float(1.4826 * np.median(np.abs(delta - med)))


def gaussian_fit(delta) -> dict:
    """{n, bias, sigma, method, mean, std, median, robust_sigma} of the residuals.

    32 bins of a quarter robust sigma from median - 4 robust sigma; a Gaussian is fitted to
    the counts by least squares (scipy's curve_fit). The SQL function xpdb.gaussian_fit
    does the same on the same bins.
    """
    delta = np.asarray(delta, float)
    delta = delta[np.isfinite(delta)]
    n = len(delta)
    if n == 0:
        return {"n": 0, "bias": None, "sigma": None, "method": "none"}
    med, rsig = robust(delta)
    out = {"n": n, "mean": float(delta.mean()), "std": float(delta.std()), "median": med, "robust_sigma": rsig}
    out.update(bias=med, sigma=rsig, method="robust")
    if n >= MIN_FIT and rsig > 0:
        from scipy.optimize import curve_fit

        width = rsig / 4
        edges = med - 4 * rsig + width * np.arange(33)
        counts, _ = np.histogram(delta, bins=edges)
        centres = 0.5 * (edges[1:] + edges[:-1])

        def gauss(x, a, mu, sig):
            return a * np.exp(-0.5 * ((x - mu) / sig) ** 2)

        try:
            (a, mu, sig), _ = curve_fit(gauss, centres, counts, p0=(counts.max(), med, rsig), maxfev=5000)
            if np.isfinite(mu) and 0 < sig < 10 * rsig and abs(mu - med) < 4 * rsig:
                out.update(bias=float(mu), sigma=float(sig), method="gaussian fit")
        except RuntimeError:
            pass
    return out


def clipped_gaussian_fit(values, nsigma: float = 3.0, max_passes: int = 20) -> dict:
    """{n, n_clipped, mean, sigma, method}: a Gaussian fitted with iterative ``nsigma``-sigma clipping.

    Each pass fits the kept values - by ``gaussian_fit`` (the histogram fit) when there are at
    least ``MIN_FIT`` of them, by maximum likelihood (mean and population standard deviation)
    below - and keeps, out of all finite values, those within ``nsigma`` sigma of the fitted
    centre; it stops when the kept values no longer change (or after ``max_passes``). The
    result is the last fit and the values it used. ``xpdb.clipped_gaussian_fit`` in SQL does
    the same (tested equal).

    Examples
    --------
    >>> r = clipped_gaussian_fit([0.1, 0.0, -0.1, 0.05, -0.05, 0.02] * 5 + [3.0])
    >>> r["n_clipped"], r["method"]
    (1, 'maximum likelihood')
    """
    v = np.asarray(values, float)
    finite = np.sort(v[np.isfinite(v)])
    kept = finite
    mean = sigma = None
    method = "none"
    for k in range(max_passes):
        if len(kept) == 0:
            break
        if len(kept) >= MIN_FIT:
            fit = gaussian_fit(kept)
            mean, sigma, method = fit["bias"], fit["sigma"], fit["method"]
        else:
            mean, sigma, method = float(kept.mean()), float(kept.std()), "maximum likelihood"
        if sigma is None or not sigma > 0:
            break
        nxt = finite[np.abs(finite - mean) <= nsigma * sigma]
        if np.array_equal(nxt, kept) or k == max_passes - 1:
            break
        kept = nxt
    return {"n": int(len(kept)), "n_clipped": int(len(finite) - len(kept)), "mean": mean, "sigma": sigma,
            "method": method}


def evaluate(pred: np.ndarray, pred_err: np.ndarray, ref: np.ndarray, g: np.ndarray) -> dict:
    """The paper's validation numbers for one reference catalogue."""
    pred, pred_err, ref, g = (np.asarray(a, float) for a in (pred, pred_err, ref, g))
    ok = np.isfinite(pred) & np.isfinite(ref)
    delta = pred - ref
    metrics = {"overall": gaussian_fit(delta[ok]), "by_feh": {}, "by_g": []}
    for lo, hi, label in FEH_BINS:
        m = ok & (ref > lo) & (ref <= hi)
        metrics["by_feh"][label] = gaussian_fit(delta[m])
    metrics["vmp"] = gaussian_fit(delta[ok & (ref <= -2.0)])
    metrics["metal_poor"] = gaussian_fit(delta[ok & (ref <= -1.5)])
    for lo, hi in zip(G_EDGES[:-1], G_EDGES[1:]):
        m = ok & (g >= lo) & (g < hi)
        if not m.any():
            continue
        stats = gaussian_fit(delta[m])
        metrics["by_g"].append({"g_min": lo, "g_max": hi, "n": int(m.sum()),
                                "median_predicted_error": float(np.median(pred_err[m])),
                                "residual_sigma": stats["sigma"], "residual_robust_sigma": stats.get("robust_sigma"),
                                "bias": stats["bias"]})
    return metrics
