"""Labelled stars with model inputs, read from the database: training and test sets.

A set is the stars of a selection (``xpdb.selection``) with a label in one reference
catalogue and usable features, optionally restricted to one side of the fixed split
(``xpdb.split_of``: test = source_id % 5 = 0 or a cluster member). Photometric inputs
(``PHOTOMETRY``) are dereddened colours and magnitudes from ``gaia_source``, computed in
SQL with constant coefficients, so that training and inference read them the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg

from xpdb import selection as selections
from xpdb.db.copy import decode_bytea
from xpdb.xp.dust import AK_PER_EBV
from xpdb.xp.extinction import R_BP_RP, R_G
from xpdb.xp.features import N_PIXELS

A_J_PER_EBV, A_H_PER_EBV = 0.723, 0.460  # Schlafly & Finkbeiner (2011), Table 6, 2MASS, R_V = 3.1

# name -> (SQL on gaia_source, description)
PHOTOMETRY: dict[str, tuple[str, str]] = {
    "g0": (f"phot_g_mean_mag - {R_G:.4f} * ebv", "dereddened G [mag]"),
    "bp_rp0": (f"bp_rp - {R_BP_RP:.4f} * ebv", "dereddened BP-RP [mag]"),
    "j_h0": (f"j_m - h_m - {A_J_PER_EBV - A_H_PER_EBV:.3f} * ebv", "dereddened 2MASS J-H [mag]"),
    "j_ks0": (f"j_m - ks_m - {A_J_PER_EBV - AK_PER_EBV:.3f} * ebv", "dereddened 2MASS J-Ks [mag]"),
    "g_ks0": (f"phot_g_mean_mag - ks_m - {R_G - AK_PER_EBV:.4f} * ebv", "dereddened G-Ks [mag]"),
    "ebv": ("ebv", "E(B-V) used for dereddening [mag]"),
}
# Sides of the fixed split (xpdb.split_of), and the development split inside its training side:
# choices (inputs, windows, hyperparameters) are made by training on dev_train and scoring on dev.
SPLIT_CONDITIONS = {
    "train": "xpdb.split_of(p.source_id) = 'train'",
    "test": "xpdb.split_of(p.source_id) = 'test'",
    "dev_train": "xpdb.split_of(p.source_id) = 'train' AND p.source_id %% 5 <> 1",  # %% : psycopg placeholder escape
    "dev": "xpdb.split_of(p.source_id) = 'train' AND p.source_id %% 5 = 1",
}
LABELS = ("feh", "feh_err", "teff", "teff_err", "logg", "logg_err", "alpha_m", "alpha_m_err")


def photometry_sql(names: Sequence[str], alias: str = "s") -> list[str]:
    """SQL expressions of the photometric inputs ``names`` on gaia_source (alias ``alias``)."""
    import re

    unknown = [n for n in names if n not in PHOTOMETRY]
    if unknown:
        raise ValueError(f"unknown photometric input(s) {', '.join(unknown)}; known: {', '.join(PHOTOMETRY)}")
    cols = ("phot_g_mean_mag", "bp_rp", "j_m", "h_m", "ks_m", "ebv")
    prefix = f"{alias}." if alias else ""
    return [re.sub(r"\b(" + "|".join(cols) + r")\b", lambda m: prefix + m.group(1), PHOTOMETRY[n][0])
            for n in names]


@dataclass
class Stars:
    """Stars with their model inputs (features, photometry) and reference labels, in source_id order."""

    source_id: np.ndarray
    flux: np.ndarray  # (n, 60) float32 features
    flux_error: np.ndarray
    photometry: np.ndarray  # (n, k) float32, the columns named by ``photometry_names``
    photometry_names: tuple[str, ...]
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # LABELS, NaN where missing
    bp_rp0: np.ndarray | None = None
    g: np.ndarray | None = None
    ebv: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source_id)

    @property
    def feh(self) -> np.ndarray:
        return self.labels["feh"]

    def subset(self, mask: np.ndarray) -> Stars:
        return Stars(self.source_id[mask], self.flux[mask], self.flux_error[mask], self.photometry[mask],
                     self.photometry_names, {k: v[mask] for k, v in self.labels.items()}, self.bp_rp0[mask],
                     self.g[mask], self.ebv[mask])

    def digest(self, version: str) -> str:
        """sha256 of the ids, labels and inputs: the identity of a training or test set."""
        h = hashlib.sha256((version + ";" + ",".join(self.photometry_names)).encode())
        for part in (self.source_id, self.feh.astype(np.float32), self.flux, self.flux_error, self.photometry):
            h.update(np.ascontiguousarray(part).tobytes())
        return h.hexdigest()


def labelled_stars(conn: psycopg.Connection, *, catalog: str, pid: int, selection: str = "giant_sample",
                   split: str | None = None, photometry: Sequence[str] = (), require: Sequence[str] = ("feh",),
                   exclude_catalog: str | None = None) -> Stars:
    """Stars of ``selection`` with labels in ``catalog`` and usable features (see module doc).

    ``split`` is None (every star) or a side of ``SPLIT_CONDITIONS``; ``require`` lists labels that must
    be present; stars without every photometric input are left out.
    """
    sel = selections.get(selection)
    conditions = [sel.where("p")]
    if sel.label_condition:
        conditions.append(sel.label_condition)
    conditions += [f"l.{name} IS NOT NULL" for name in require]
    if split is not None:
        if split not in SPLIT_CONDITIONS:
            raise ValueError(f"split must be one of {', '.join(SPLIT_CONDITIONS)}, not {split!r}")
        conditions.append(SPLIT_CONDITIONS[split])
    if exclude_catalog:
        conditions.append("NOT EXISTS (SELECT 1 FROM xpdb.reference_label e WHERE e.catalog = %(exclude)s "
                          "AND e.source_id = p.source_id)")
    phot = photometry_sql(photometry)
    conditions += [f"({expr}) IS NOT NULL" for expr in phot]
    cur = conn.cursor(binary=True)
    cur.execute(f"""
        SELECT p.source_id, p.bp_rp0, p.phot_g_mean_mag, f.flux, f.flux_error,
               {", ".join(f"l.{name}" for name in LABELS)}, p.ebv{"".join(f", {e}" for e in phot)}
        FROM xpdb.source_photometry AS p
        JOIN xpdb.gaia_source AS s ON s.source_id = p.source_id
        JOIN xpdb.reference_label AS l ON l.source_id = p.source_id AND l.catalog = %(catalog)s
        JOIN xpdb.xp_features AS f ON f.source_id = p.source_id AND f.preprocessing_id = %(pid)s
        WHERE f.flux IS NOT NULL AND {" AND ".join(conditions)}
        ORDER BY p.source_id""", {"catalog": catalog, "pid": pid, "exclude": exclude_catalog})
    rows = cur.fetchall()

    def column(j: int) -> np.ndarray:
        return np.array([np.nan if r[j] is None else r[j] for r in rows], dtype=float)

    n_labels = len(LABELS)
    return Stars(
        np.array([r[0] for r in rows], dtype=np.int64),
        decode_bytea([r[3] for r in rows], "<f4", N_PIXELS),
        decode_bytea([r[4] for r in rows], "<f4", N_PIXELS),
        np.stack([column(6 + n_labels + k) for k in range(len(phot))], axis=1).astype(np.float32)
        if phot else np.zeros((len(rows), 0), np.float32),
        tuple(photometry),
        {name: column(5 + k) for k, name in enumerate(LABELS)},
        column(1), column(2), column(5 + n_labels),
    )


def photometry_for(conn: psycopg.Connection, ids: np.ndarray, names: Sequence[str], *,
                   between: tuple[int, int] | None = None) -> np.ndarray:
    """The photometric inputs of these sources (NaN where missing), shape (n, len(names))."""
    from xpdb.xp.store import source_columns

    if not names:
        return np.zeros((len(ids), 0), np.float32)
    exprs = photometry_sql(names, alias="")
    got = source_columns(conn, ids, exprs, between=between)
    return np.stack([got[e] for e in exprs], axis=1).astype(np.float32)
