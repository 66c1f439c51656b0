"""gaia_source rows: archive column names (or common VizieR aliases) to validated COPY columns.

Any subset of the archive's ``gaia_source`` columns is accepted; ``source_id``, ``ra`` and
``dec`` are required. Galactic ``l``/``b`` are computed with astropy when absent, and
``bp_rp`` from the BP and RP magnitudes. ``ebv`` (SFD) and ``rgeo`` (Bailer-Jones
``r_med_geo``) are the two non-archive columns the science needs; 2MASS ``j_m``, ``h_m``,
``ks_m`` (the archive's ``tmass_psc_xsc`` names) are optional inputs. This module owns
``xpdb.gaia_source``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from xpdb.db.copy import Column, copy_binary
from xpdb.ingest.columns import resolve
from xpdb.ingest.xp import Reject
from xpdb.xp.batch import Scalar

COLUMNS: dict[str, str] = {
    "source_id": "int8", "ra": "float8", "dec": "float8", "ra_error": "float4", "dec_error": "float4",
    "l": "float8", "b": "float8", "parallax": "float8", "parallax_error": "float4",
    "pmra": "float8", "pmra_error": "float4", "pmdec": "float8", "pmdec_error": "float4", "ruwe": "float4",
    "phot_g_mean_mag": "float4", "phot_bp_mean_mag": "float4", "phot_rp_mean_mag": "float4", "bp_rp": "float4",
    "phot_bp_rp_excess_factor": "float4", "radial_velocity": "float4", "ebv": "float4", "rgeo": "float4",
    "j_m": "float4", "h_m": "float4", "ks_m": "float4",
}
ALIASES: dict[str, tuple[str, ...]] = {
    "source_id": ("source", "gaiadr3", "dr3_source_id", "gaia_dr3_source_id"),
    "ra": ("ra_icrs",), "dec": ("de_icrs", "de"),
    "ra_error": ("e_ra_icrs",), "dec_error": ("e_de_icrs",),
    "l": ("glon", "gl"), "b": ("glat", "gb"),
    "parallax": ("plx",), "parallax_error": ("e_plx", "e_parallax"),
    "pmra_error": ("e_pmra",), "pmdec": ("pmde",), "pmdec_error": ("e_pmde", "e_pmdec"),
    "phot_g_mean_mag": ("gmag",), "phot_bp_mean_mag": ("bpmag",), "phot_rp_mean_mag": ("rpmag",),
    "bp_rp": ("bp-rp",), "phot_bp_rp_excess_factor": ("e(bp/rp)", "excess_factor"),
    "radial_velocity": ("rv",), "ebv": ("e_bv", "ebv_sfd", "sfd_ebv", "sfdebv", "e(b-v)", "ebv_sfd98"),
    "rgeo": ("r_med_geo", "rmedgeo", "r_geo"),
    "j_m": ("jmag", "j_mag", "tmass_j"), "h_m": ("hmag", "h_mag", "tmass_h"),
    "ks_m": ("kmag", "ksmag", "k_m", "ks_mag", "tmass_k", "tmass_ks"),
}
_NUMPY = {"int8": np.int64, "float4": np.float32, "float8": np.float64}
# Plausible ranges: outside them a value is an "absurd value" reject, not data.
RANGES: dict[str, tuple[float, float]] = {
    "phot_g_mean_mag": (-3.0, 30.0), "phot_bp_mean_mag": (-3.0, 30.0), "phot_rp_mean_mag": (-3.0, 30.0),
    "bp_rp": (-10.0, 15.0), "phot_bp_rp_excess_factor": (0.0, 100.0), "ebv": (0.0, 30.0),
    "rgeo": (0.0, 1e7), "parallax_error": (0.0, 1e4), "ruwe": (0.0, 1e4),
    "j_m": (-5.0, 30.0), "h_m": (-5.0, 30.0), "ks_m": (-5.0, 30.0),
}


def resolve_columns(file_columns: list[str], mapping: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Map schema columns to file columns. Returns (schema -> file name, ignored file columns)."""
    return resolve(file_columns, {name: ALIASES.get(name, ()) for name in COLUMNS}, mapping)


@dataclass
class SourceBatch:
    n: int
    columns: dict[str, Scalar]


def from_arrow(table: pa.Table, resolved: dict[str, str]) -> SourceBatch:
    """Convert one chunk to typed numpy columns (NULLs kept as masks)."""
    n = table.num_rows
    out: dict[str, Scalar] = {}
    for target, kind in COLUMNS.items():
        dtype = _NUMPY[kind]
        if target not in resolved:
            out[target] = Scalar(np.zeros(n, dtype=dtype), np.ones(n, dtype=bool))
            continue
        col = table.column(resolved[target])
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = col.cast(pa.int64() if kind == "int8" else pa.float64())
        null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if kind == "int8":
            values = np.array(col.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            values = np.array(col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=dtype)
            null |= ~np.isfinite(values)
        out[target] = Scalar(values, null)
    batch = SourceBatch(n, out)
    derive(batch)
    return batch


def derive(batch: SourceBatch) -> None:
    """Fill l, b from (ra, dec) and bp_rp from the magnitudes where they are missing."""
    c = batch.columns
    need = (c["l"].null | c["b"].null) & ~c["ra"].null & ~c["dec"].null
    if need.any():
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        with np.errstate(invalid="ignore"):
            ok = need & (c["dec"].values >= -90) & (c["dec"].values <= 90)
        if ok.any():
            gal = SkyCoord(ra=c["ra"].values[ok] * u.deg, dec=c["dec"].values[ok] * u.deg, frame="icrs").galactic
            for name, values in (("l", gal.l.deg), ("b", gal.b.deg)):  # keep what the file gave
                fill = c[name].null[ok]
                c[name].values[np.flatnonzero(ok)[fill]] = values[fill]
                c[name].null[np.flatnonzero(ok)[fill]] = False
    need = c["bp_rp"].null & ~c["phot_bp_mean_mag"].null & ~c["phot_rp_mean_mag"].null
    c["bp_rp"].values[need] = c["phot_bp_mean_mag"].values[need] - c["phot_rp_mean_mag"].values[need]
    c["bp_rp"].null[need] = False


def validate(batch: SourceBatch) -> list[Reject]:
    rejects: list[Reject] = []
    c = batch.columns

    def flag(mask, column, reason, values=None):
        for i in np.flatnonzero(mask):
            rejects.append(Reject(int(i), column, reason, None if values is None else str(values[i])))

    flag(c["source_id"].null, "source_id", "missing source_id")
    ids = c["source_id"].values
    order = np.argsort(ids, kind="stable")
    dup = np.zeros(batch.n, dtype=bool)
    same = (ids[order][1:] == ids[order][:-1]) & ~c["source_id"].null[order][1:]
    dup[order[1:][same]] = True
    flag(dup, "source_id", "duplicate source_id within the file", ids)
    flag(c["ra"].null, "ra", "missing or non-finite ra")
    flag(c["dec"].null, "dec", "missing or non-finite dec")
    with np.errstate(invalid="ignore"):
        ra, dec = c["ra"].values, c["dec"].values
        flag(~c["ra"].null & ((ra < 0) | (ra >= 360)), "ra", "absurd value: ra outside [0, 360) deg", ra)
        flag(~c["dec"].null & ((dec < -90) | (dec > 90)), "dec", "absurd value: dec outside [-90, 90] deg", dec)
        for name, (lo, hi) in RANGES.items():
            v = c[name].values
            flag(~c[name].null & ((v < lo) | (v > hi)), name, f"absurd value: {name} outside [{lo:g}, {hi:g}]", v)
    return rejects


def copy_columns(batch: SourceBatch, keep: np.ndarray, run_id: int) -> list[list[Column]]:
    """The kept rows as one binary-COPY column set for ``xpdb.gaia_source``."""
    cols = [Column(name, kind, batch.columns[name].values[keep],
                   None if name == "source_id" else batch.columns[name].null[keep])
            for name, kind in COLUMNS.items()]
    cols.append(Column("ingest_run_id", "int4", np.full(int(keep.sum()), run_id, dtype=np.int32)))
    return [cols]


def merge(conn, batch: SourceBatch, keep: np.ndarray, run_id: int, *, ebv_source: np.ndarray | None = None,
          prefer_new: Sequence[str] = ()) -> int:
    """Insert the kept rows; for sources already stored, fill their NULL columns from these rows.

    Columns in ``prefer_new`` are overwritten where the new value is not NULL (e.g. a
    better E(B-V)). ``ebv_source`` (text per row) says where ``ebv`` came from. Returns
    the number of rows inserted or updated.
    """
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _source_stage (LIKE xpdb.gaia_source) ON COMMIT DROP")
    conn.execute("TRUNCATE _source_stage")
    sets = copy_columns(batch, keep, run_id)
    if ebv_source is not None:
        values = np.asarray(ebv_source, dtype=object)[keep]
        sets[0].append(Column("ebv_source", "text", np.array([v or "" for v in values], dtype=str),
                              np.array([v is None for v in values])))
    copy_binary(conn, "_source_stage", *sets)
    names = [c.name for c in sets[0]]
    update = ", ".join(
        f"{c} = coalesce(EXCLUDED.{c}, gaia_source.{c})" if c in prefer_new else f"{c} = coalesce(gaia_source.{c}, EXCLUDED.{c})"
        for c in names if c not in ("source_id", "ingest_run_id"))
    return conn.execute(f"INSERT INTO xpdb.gaia_source ({', '.join(names)}) SELECT {', '.join(names)} FROM _source_stage "
                        f"ON CONFLICT (source_id) DO UPDATE SET {update}").rowcount
