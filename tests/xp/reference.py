"""Inputs for GaiaXPy built from the real files, so both sides see identical numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy.table import Table


def gaiaxpy_frame_from_flat(path, correlations: str = "none", seed: int = 0) -> pd.DataFrame:
    """The flat chunk (bp_coeff_0.. columns) as a GaiaXPy input DataFrame.

    correlations: "none" gives zero off-diagonal correlations (GaiaXPy then uses the
    diagonal, as xpdb does for a file without correlations); "random" gives valid
    correlation matrices with off-diagonal terms of a few per cent.
    """
    t = Table.read(path)
    rng = np.random.default_rng(seed)
    k = 55
    npairs = k * (k - 1) // 2
    data = {"source_id": np.asarray(t["source_id"], dtype=np.int64)}
    for band in ("bp", "rp"):
        coeff = np.stack([np.asarray(t[f"{band}_coeff_{i}"], dtype=np.float64) for i in range(k)], axis=1)
        err = np.stack([np.asarray(t[f"{band}_coeff_{i}"] * 0 + t[f"e_{band}_coeff_{i}"], dtype=np.float64)
                        for i in range(k)], axis=1)
        if correlations == "random":
            corr = rng.uniform(-0.04, 0.04, size=(len(t), npairs))
        else:
            corr = np.zeros((len(t), npairs))
        data[f"{band}_n_parameters"] = np.full(len(t), k)
        data[f"{band}_standard_deviation"] = np.ones(len(t))
        data[f"{band}_n_relevant_bases"] = np.asarray(t[f"{band}_n_relevant_bases"], dtype=int)
        data[f"{band}_coefficients"] = list(coeff)
        data[f"{band}_coefficient_errors"] = list(err.astype(np.float32).astype(np.float64))
        data[f"{band}_coefficient_correlations"] = list(corr.astype(np.float32).astype(np.float64))
    return pd.DataFrame(data)


def gaiaxpy_frame_from_table(path) -> pd.DataFrame:
    """An archive-layout file with array columns (e.g. a VOTable) as a GaiaXPy input DataFrame."""
    t = Table.read(path)
    data = {}
    for name in t.colnames:
        col = t[name]
        if col.dtype == object or col.ndim > 1:
            data[name] = [np.asarray(np.ma.filled(np.ma.asarray(v, dtype=float), np.nan)) for v in col]
        else:
            data[name] = np.asarray(col)
    return pd.DataFrame(data)
