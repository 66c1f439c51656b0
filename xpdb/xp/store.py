"""Features in the database: preprocessing versions, batch computation and storage, read-back.

``compute_missing_features`` is what ``xpdb features`` runs: it walks the sources that
have XP spectra but no features for the chosen preprocessing, in source_id order and in
batches, reads spectra and E(B-V), computes the 60-pixel features and COPYs them in, one
committed transaction per batch (so an interrupted run keeps what it finished).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

from xpdb.db.copy import Column, copy_binary, decode_bytea
from xpdb.ingest.xp import fetch_xp
from xpdb.flags import FeatureFlag
from xpdb.ingest.sampled import fetch_sampled
from xpdb.xp.features import Features, Preprocessing, compute_features, features_from_sampled


def preprocessing_id(conn: psycopg.Connection, preprocessing: Preprocessing) -> int:
    """The id of a preprocessing version, registering it on first use."""
    row = conn.execute("SELECT preprocessing_id FROM xpdb.preprocessing WHERE version = %s",
                       (preprocessing.version,)).fetchone()
    if row:
        return row[0]
    return conn.execute("INSERT INTO xpdb.preprocessing (version) VALUES (%s) ON CONFLICT (version) DO UPDATE "
                        "SET version = EXCLUDED.version RETURNING preprocessing_id", (preprocessing.version,)).fetchone()[0]


def store_features(conn: psycopg.Connection, features: Features, pid: int) -> int:
    """Replace the features of these sources for this preprocessing. Returns rows written."""
    ids = np.asarray(features.source_id, dtype=np.int64)
    if not len(ids):
        return 0
    conn.execute("DELETE FROM xpdb.xp_features WHERE preprocessing_id = %s AND source_id = ANY(%s)",
                 (pid, ids.tolist()))
    unusable = ~features.usable
    cols = [
        Column("preprocessing_id", "int2", np.full(len(ids), pid, dtype=np.int16)),
        Column("source_id", "int8", ids),
        Column("flux", "bytea_f4", features.flux, unusable),
        Column("flux_error", "bytea_f4", features.flux_error, unusable),
        Column("flags", "int4", features.flags.astype(np.int32)),
        Column("xp_input", "text", np.where(features.sampled if features.sampled is not None
                                            else np.zeros(len(ids), bool), "sampled", "continuous")),
    ]
    return copy_binary(conn, "xpdb.xp_features", cols)


def fetch_features(conn: psycopg.Connection, source_ids: Sequence[int], pid: int,
                   preprocessing: Preprocessing | None = None, *, between: tuple[int, int] | None = None) -> Features:
    """Stored features for ``source_ids`` (in that order); missing rows come back NaN and flagged.

    ``between`` (first, last) scans that source_id range instead of looking ids up.
    """
    from xpdb.xp.features import FLAG_NO_SPECTRUM, N_PIXELS

    ids = np.asarray(source_ids, dtype=np.int64)
    cur = conn.cursor(binary=True)
    if between is not None:
        cur.execute("SELECT source_id, flux, flux_error, flags FROM xpdb.xp_features "
                    "WHERE preprocessing_id = %s AND source_id BETWEEN %s AND %s", (pid, int(between[0]), int(between[1])))
        rows = cur.fetchall()
        if rows:
            got = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            keep = np.isin(got, ids)
            rows = [r for r, k in zip(rows, keep) if k]
    else:
        cur.execute("SELECT source_id, flux, flux_error, flags FROM xpdb.xp_features "
                    "WHERE preprocessing_id = %s AND source_id = ANY(%s)", (pid, ids.tolist()))
        rows = cur.fetchall()
    return features_from_rows(ids, rows, preprocessing or Preprocessing(), N_PIXELS, FLAG_NO_SPECTRUM)


def features_from_rows(ids: np.ndarray, rows, preprocessing: Preprocessing, width: int, missing_flag: int) -> Features:
    """Assemble ``Features`` in the order of ``ids`` from (source_id, flux, flux_error, flags) rows."""
    n = len(ids)
    flux = np.full((n, width), np.nan, dtype=np.float32)
    err = np.full((n, width), np.nan, dtype=np.float32)
    flags = np.full(n, missing_flag, dtype=np.int32)
    if rows:
        got = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        order = np.argsort(ids)
        pos = order[np.searchsorted(ids, got, sorter=order)]
        flags[pos] = [r[3] for r in rows]
        present = np.array([r[1] is not None for r in rows])
        if present.any():
            flux[pos[present]] = decode_bytea([r[1] for r in rows if r[1] is not None], "<f4", width)
            err[pos[present]] = decode_bytea([r[2] for r in rows if r[2] is not None], "<f4", width)
    return Features(ids, flux, err, flags, preprocessing)


@dataclass
class FeatureRun:
    processed: int = 0
    usable: int = 0
    flagged: int = 0


def source_columns(conn: psycopg.Connection, ids: np.ndarray, columns: Sequence[str], *, table: str = "xpdb.gaia_source",
                   between: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Float columns of ``table`` aligned with ``ids`` (NaN where the row or value is missing)."""
    where = "source_id BETWEEN %s AND %s" if between is not None else "source_id = ANY(%s)"
    args = (int(between[0]), int(between[1])) if between is not None else (ids.tolist(),)
    rows = conn.execute(f"SELECT source_id, {', '.join(columns)} FROM {table} WHERE {where}", args).fetchall()
    out = {c: np.full(len(ids), np.nan) for c in columns}
    if rows:
        got = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        order = np.argsort(ids)
        pos = np.searchsorted(ids, got, sorter=order)
        found = (pos < len(ids)) & (ids[order[np.minimum(pos, len(ids) - 1)]] == got)
        target = order[np.minimum(pos, len(ids) - 1)][found]
        values = np.array([[np.nan if v is None else float(v) for v in r[1:]] for r in rows], dtype=float)
        for j, c in enumerate(columns):
            out[c][target] = values[found, j]
    return out


def compute_for_sources(conn: psycopg.Connection, source_ids: Sequence[int], preprocessing: Preprocessing, *,
                        between: tuple[int, int] | None = None) -> Features:
    """Features for these sources from the stored spectra and gaia_source (E(B-V), G, BP-RP).

    XP_CONTINUOUS (calibrated here) where stored; otherwise the sampled spectrum.
    """
    ids = np.asarray(source_ids, dtype=np.int64)
    phot = source_columns(conn, ids, ("ebv", "phot_g_mean_mag", "bp_rp"), between=between)
    feats = compute_features(fetch_xp(conn, ids, between=between), phot["ebv"], g=phot["phot_g_mean_mag"],
                             bp_rp=phot["bp_rp"], preprocessing=preprocessing)
    feats.sampled = np.zeros(len(ids), dtype=bool)
    lacking = (feats.flags & FeatureFlag.NO_SPECTRUM) != 0
    if lacking.any() and not preprocessing.truncation:
        stored = fetch_sampled(conn, ids[lacking], between=between)
        if stored.present.any():
            rows = np.flatnonzero(lacking)[stored.present]
            p = stored.present
            part = features_from_sampled(ids[rows], stored.wavelength, stored.flux[p], stored.flux_error[p],
                                         phot["ebv"][rows], g=phot["phot_g_mean_mag"][rows], bp_rp=phot["bp_rp"][rows],
                                         preprocessing=preprocessing)
            feats.flux[rows], feats.flux_error[rows], feats.flags[rows] = part.flux, part.flux_error, part.flags
            feats.sampled[rows] = True
    return feats


def compute_missing_features(url: str, *, preprocessing: Preprocessing = Preprocessing(), where: str | None = None,
                             batch_size: int = 5000, recompute: bool = False,
                             progress: Callable[[int, int | None], None] | None = None) -> FeatureRun:
    """Compute and store features for every source with XP spectra that lacks them (or all, ``recompute``)."""
    from xpdb.xp.correction import check_available

    check_available(preprocessing.correction)
    run = FeatureRun()
    with psycopg.connect(url) as conn:
        pid = preprocessing_id(conn, preprocessing)
        conn.commit()
        condition = f"AND ({where})" if where else ""
        missing = "" if recompute else ("AND NOT EXISTS (SELECT 1 FROM xpdb.xp_features f WHERE "
                                        "f.preprocessing_id = %(pid)s AND f.source_id = x.source_id)")
        query = (f"SELECT x.source_id FROM xpdb.xp_sources AS x "
                 f"LEFT JOIN xpdb.gaia_source AS s ON s.source_id = x.source_id WHERE true {missing} {condition} "
                 f"ORDER BY x.source_id")
        ids = np.array([r[0] for r in conn.execute(query, {"pid": pid})], dtype=np.int64)
        conn.commit()
        total = len(ids)
        for start in range(0, total, batch_size):
            chunk = ids[start:start + batch_size]
            feats = compute_for_sources(conn, chunk, preprocessing)
            store_features(conn, feats, pid)
            conn.commit()
            run.processed += len(chunk)
            run.usable += int(feats.usable.sum())
            run.flagged += int((feats.flags != 0).sum())
            if progress:
                progress(run.processed, total)
    return run


def features_for(conn: psycopg.Connection, source_ids: Sequence[int], pid: int, preprocessing: Preprocessing, *,
                 between: tuple[int, int] | None = None) -> tuple[Features, int]:
    """Stored features of these sources, computing (and storing) the missing ones first.

    Returns the features in the order of ``source_ids`` and how many were computed now.
    """
    ids = np.asarray(source_ids, dtype=np.int64)
    feats = fetch_features(conn, ids, pid, preprocessing, between=between)
    missing = (feats.flags & FeatureFlag.NO_SPECTRUM) != 0
    computed = int(missing.sum())
    if computed:
        fresh = compute_for_sources(conn, ids[missing], preprocessing, between=between)
        store_features(conn, fresh, pid)
        conn.commit()
        feats.flux[missing], feats.flux_error[missing], feats.flags[missing] = \
            fresh.flux, fresh.flux_error, fresh.flags
    return feats, computed
