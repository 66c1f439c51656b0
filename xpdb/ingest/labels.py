"""Reference labels and cluster members: loaded in one transaction and matched to Gaia sources.

A row is matched by its ``source_id`` when the file has one, otherwise to the nearest
``gaia_source`` within ``radius_arcsec`` using q3c (``q3c_join`` on the indexed side).
Unmatched rows are kept with a NULL source_id (they can be matched again later by
re-loading with ``--replace``). Two rows that land on the same source keep the closer
one; the other is rejected with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa

from xpdb.errors import ConfigurationError
from xpdb.ingest.readers import IngestFileError, TableReader, check_integer_key, check_regular_file
from xpdb.ingest import runlog
from xpdb.ingest.columns import resolve
from xpdb.ingest.runs import IngestReport, ProgressCallback, file_sha256

_COMMON = {
    "source_id": ("source_id", "source", "gaiadr3", "dr3_source_id", "gaia_source_id", "gaia_dr3_source_id",
                  "gaiaedr3_source_id", "gaia_id"),
    "ra": ("ra", "ra_icrs", "raj2000", "ra_deg", "radeg", "_raj2000"),
    "dec": ("dec", "de_icrs", "dej2000", "dec_deg", "dedeg", "de", "_dej2000"),
    "l": ("l", "glon", "gl", "gal_l"),
    "b": ("b", "glat", "gb", "gal_b"),
    "original_id": ("original_id", "apogee_id", "obj_id", "objid", "id", "name", "star", "designation", "tmass_id"),
}
LABEL_COLUMNS = {
    **_COMMON,
    "feh": ("feh", "fe_h", "[fe/h]", "feh_spec", "fe/h", "m_h_feh"),
    "feh_err": ("feh_err", "e_feh", "fe_h_err", "e_[fe/h]", "efeh", "feh_error", "e_fe_h", "sig_feh"),
    "teff": ("teff", "teff_spec", "t_eff"),
    "teff_err": ("teff_err", "e_teff", "teff_error"),
    "logg": ("logg", "log_g", "logg_spec"),
    "logg_err": ("logg_err", "e_logg", "logg_error"),
    "alpha_m": ("alpha_m", "[alpha/m]", "alpha_fe", "[alpha/fe]", "alpham", "alphafe"),
    "alpha_m_err": ("alpha_m_err", "e_alpha_m", "e_[alpha/m]", "alpha_fe_err", "e_alpha_fe"),
}
MEMBER_COLUMNS = {
    **_COMMON,
    "membership_probability": ("membership_probability", "gmm_mem_prob", "mem_prob", "pmem", "prob", "p_mem",
                               "probability", "membership", "memb_prob"),
    "cluster": ("cluster", "cluster_name", "cl_name"),
}
LABEL_RANGES = {"feh": (-6.0, 1.5), "feh_err": (0.0, 5.0), "teff": (2000.0, 60000.0), "teff_err": (0.0, 10000.0),
                "logg": (-1.0, 6.5), "logg_err": (0.0, 5.0), "alpha_m": (-1.5, 2.0), "alpha_m_err": (0.0, 5.0)}


@dataclass
class _Target:
    kind: str  # labels | members
    table: str
    registry: str
    name_column: str
    columns: dict[str, tuple[str, ...]]
    values: tuple[str, ...]


LABELS = _Target("labels", "xpdb.reference_label", "xpdb.reference_catalog", "catalog", LABEL_COLUMNS,
                 ("feh", "feh_err", "teff", "teff_err", "logg", "logg_err", "alpha_m", "alpha_m_err"))
MEMBERS = _Target("members", "xpdb.cluster_member", "xpdb.cluster", "cluster", MEMBER_COLUMNS,
                  ("membership_probability",))


def _norm_name(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _read_all(path: Path, fmt: str | None) -> tuple[pa.Table, np.ndarray]:
    reader = TableReader(path, fmt=fmt, chunk_rows=200_000)
    try:
        chunks = list(reader.chunks())
    finally:
        reader.close()
    if not chunks:
        return pa.table({}), np.empty(0, dtype=np.int64)
    tables = [c.table for c in chunks]
    numbers = np.concatenate([c.numbers() for c in chunks])
    return pa.concat_tables(tables, promote_options="permissive"), numbers


def _float(table: pa.Table, name: str | None) -> np.ndarray:
    n = table.num_rows
    if name is None:
        return np.full(n, np.nan)
    col = table.column(name)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pa.array([_to_float(v) for v in col.to_pylist()], type=pa.float64())
    return np.asarray(col.cast(pa.float64(), safe=False).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=float)


def _to_float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _load(url: str, target: _Target, path: Path, name: str, mapping: dict[str, str], radius_arcsec: float,
          replace: bool, fmt: str | None, registry_values: dict, min_probability: float | None,
          progress: ProgressCallback | None) -> IngestReport:
    t0 = time.perf_counter()
    path = Path(path)
    report = IngestReport(str(path), target.kind, "loaded")
    check_regular_file(path)
    sha = file_sha256(path)
    with psycopg.connect(url) as conn:
        prev = runlog.previous(conn, target.kind, name, sha, statuses=("done",))
        if prev and not replace:
            report.status, report.run_id = "no-op", prev.run_id
            report.message = (f"already loaded into {name} by run {prev.run_id} (same sha256); "
                              "replace=True (CLI: --replace) loads it again")
            return report
        try:
            table, numbers = _read_all(path, fmt)
        except IngestFileError as exc:
            runlog.record_failed(conn, kind=target.kind, target=name, path=path, size=path.stat().st_size,
                                 error=str(exc), sha256=sha)
            conn.commit()
            raise
        load_table(conn, target, table, numbers, report, path=path, sha=sha, fmt=fmt, name=name, mapping=mapping,
                   radius_arcsec=radius_arcsec, replace=replace, registry_values=registry_values,
                   min_probability=min_probability, progress=progress)
        conn.commit()
        conn.autocommit = True
        conn.execute(f"ANALYZE {target.table}")
        refresh_views(conn)
    report.seconds = time.perf_counter() - t0
    return report


def load_table(conn: psycopg.Connection, target: _Target, table: pa.Table, numbers: np.ndarray,
               report: IngestReport, *, path: Path, sha: str, fmt: str | None, name: str, mapping: dict[str, str],
               radius_arcsec: float, replace: bool, registry_values: dict, min_probability: float | None = None,
               progress: ProgressCallback | None = None, require_feh: bool = True,
               run_options: dict | None = None) -> None:
    """Validate, match and store the rows of ``table`` (file rows ``numbers``) in the caller's transaction.

    ``require_feh`` rejects label rows without [Fe/H] (catalogues of other labels, such as
    APOGEE's hot stars with Teff and logg only, pass False).
    """
    cols, _ = resolve(table.column_names, target.columns, mapping)
    n = table.num_rows
    rejects: list[tuple] = []
    keep = np.ones(n, dtype=bool)
    if target is MEMBERS and "cluster" in cols:
        in_cluster = np.array([_norm_name(v) == _norm_name(name) for v in table.column(cols["cluster"]).to_pylist()])
        table, numbers = table.filter(pa.array(in_cluster)), numbers[in_cluster]
        n = table.num_rows
        keep = np.ones(n, dtype=bool)
        if n == 0:
            raise IngestFileError(path, f"no rows of cluster {name!r} in the file's {cols['cluster']} column")
    sid_col = cols.get("source_id")
    if sid_col:
        check_integer_key(table, sid_col, path, numbers)  # ids in floats would be changed: refused
        sid_arr = table.column(sid_col).cast(pa.int64(), safe=False)
        sid_null = np.asarray(sid_arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        sid = np.asarray(sid_arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    else:
        sid, sid_null = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
    ra, dec = _float(table, cols.get("ra")), _float(table, cols.get("dec"))
    if ("ra" not in cols or "dec" not in cols) and "l" in cols and "b" in cols:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        lon, lat = _float(table, cols["l"]), _float(table, cols["b"])
        ok = np.isfinite(lon) & np.isfinite(lat)
        icrs = SkyCoord(l=lon[ok] * u.deg, b=lat[ok] * u.deg, frame="galactic").icrs
        ra[ok], dec[ok] = icrs.ra.deg, icrs.dec.deg
    has_pos = np.isfinite(ra) & np.isfinite(dec)
    if not sid_col and not has_pos.any():
        raise IngestFileError(path, "the file has neither source_id nor positions (ra/dec or l/b); map them with mapping={...} (CLI: --map)")
    values = {v: _float(table, cols.get(v)) for v in target.values}
    original = (table.column(cols["original_id"]).cast(pa.string()).to_pylist() if "original_id" in cols
                else [None] * n)

    def reject(mask, column, reason, vals=None):
        for i in np.flatnonzero(mask & keep):
            rejects.append((int(numbers[i]), None if sid_null[i] else int(sid[i]), column, reason,
                            None if vals is None else str(vals[i])))
        keep[mask] = False

    reject(sid_null & ~has_pos, "source_id", "neither source_id nor a position")
    with np.errstate(invalid="ignore"):
        reject(has_pos & ((ra < 0) | (ra >= 360) | (dec < -90) | (dec > 90)), "ra/dec",
               "absurd value: position outside the sky", ra)
        for v, (lo, hi) in LABEL_RANGES.items():
            if v in values and v in cols:
                x = values[v]
                reject(np.isfinite(x) & ((x < lo) | (x > hi)), cols[v], f"absurd value: {v} outside [{lo:g}, {hi:g}]", x)
        if target is LABELS and "feh" in cols and require_feh:
            reject(~np.isfinite(values["feh"]), cols["feh"], "missing or non-finite [Fe/H]")
        if target is MEMBERS and min_probability is not None:
            p = values["membership_probability"]
            below = ~(p >= min_probability)
            keep[below] = False  # a selection, not an error

    extra_names = [c for c in table.column_names if c not in cols.values()]
    extras = _extras(table, extra_names) if target is LABELS else [None] * n

    if progress:
        progress(n, n)
    reg_cols = ", ".join(["name", *registry_values])
    reg_vals = ", ".join(["%s"] * (1 + len(registry_values)))
    updates = ", ".join(f"{k} = coalesce(EXCLUDED.{k}, {target.registry}.{k})" for k in registry_values) or "name = EXCLUDED.name"
    conn.execute(f"INSERT INTO {target.registry} ({reg_cols}) VALUES ({reg_vals}) "
                 f"ON CONFLICT (name) DO UPDATE SET {updates}", (name, *registry_values.values()))
    run_id = runlog.start(conn, kind=target.kind, target=name, path=path, size=path.stat().st_size,
                          fmt=fmt or path.suffix.lstrip("."), sha256=sha,
                          options={"map": mapping, "radius_arcsec": radius_arcsec, "replace": replace,
                                   **(run_options or {})})
    report.run_id = run_id
    conn.execute("CREATE TEMP TABLE _incoming (row_number bigint, source_id bigint, ra float8, dec float8, "
                 + ", ".join(f"{v} real" for v in target.values)
                 + ", original_id text, extra jsonb, match_sep real) ON COMMIT DROP")
    with conn.cursor() as cur:
        with cur.copy("COPY _incoming (row_number, source_id, ra, dec, " + ", ".join(target.values)
                      + ", original_id, extra) FROM STDIN") as copy:
            for i in np.flatnonzero(keep):
                copy.write_row((int(numbers[i]), None if sid_null[i] else int(sid[i]),
                                float(ra[i]) if has_pos[i] else None, float(dec[i]) if has_pos[i] else None,
                                *[(float(values[v][i]) if np.isfinite(values[v][i]) else None) for v in target.values],
                                original[i], extras[i]))
    conn.execute("CREATE INDEX ON _incoming (q3c_ang2ipix(ra, dec))")
    conn.execute("ANALYZE _incoming")
    matched = conn.execute(f"""
        UPDATE _incoming i SET source_id = m.source_id, match_sep = m.sep
        FROM (SELECT t.row_number, s.source_id, q3c_dist(t.ra, t.dec, s.ra, s.dec) * 3600 AS sep
              FROM _incoming t CROSS JOIN LATERAL (
                  SELECT g.source_id, g.ra, g.dec FROM xpdb.gaia_source g
                  WHERE q3c_join(t.ra, t.dec, g.ra, g.dec, {float(radius_arcsec) / 3600.0})
                  ORDER BY q3c_dist(t.ra, t.dec, g.ra, g.dec) LIMIT 1) s
              WHERE t.source_id IS NULL AND t.ra IS NOT NULL) m
        WHERE i.row_number = m.row_number""").rowcount
    conn.execute("""UPDATE _incoming i SET ra = g.ra, dec = g.dec FROM xpdb.gaia_source g
                    WHERE i.source_id = g.source_id AND i.ra IS NULL""")
    dup_rows = conn.execute("""
        SELECT row_number, source_id, first_row FROM (
            SELECT row_number, source_id,
                   first_value(row_number) OVER w AS first_row, row_number() OVER w AS k
            FROM _incoming WHERE source_id IS NOT NULL
            WINDOW w AS (PARTITION BY source_id ORDER BY match_sep NULLS FIRST, row_number)) d
        WHERE k > 1""").fetchall()
    for row, s, first in dup_rows:
        rejects.append((row, s, "source_id", f"another row of this {target.name_column} matches the same "
                                             f"source_id (row {first})", str(s)))
    if dup_rows:
        conn.execute("DELETE FROM _incoming WHERE row_number = ANY(%s)", ([r[0] for r in dup_rows],))
    existing = conn.execute(f"SELECT i.row_number, i.source_id FROM _incoming i JOIN {target.table} t "
                            f"ON t.{target.name_column} = %s AND t.source_id = i.source_id", (name,)).fetchall()
    if existing and replace:
        conn.execute(f"DELETE FROM {target.table} t USING _incoming i WHERE t.{target.name_column} = %s "
                     "AND t.source_id = i.source_id", (name,))
    elif existing:
        for row, s in existing:
            rejects.append((row, s, "source_id", f"already stored in {name}; update it with replace=True (CLI: --replace)", str(s)))
        conn.execute("DELETE FROM _incoming WHERE row_number = ANY(%s)", ([r[0] for r in existing],))
    value_cols = ", ".join(target.values)
    extra_col = ", extra" if target is LABELS else ""
    loaded = conn.execute(
        f"INSERT INTO {target.table} ({target.name_column}, source_id, ra, dec, {value_cols}, original_id, "
        f"match_sep_arcsec{extra_col}, ingest_run_id) SELECT %s, source_id, ra, dec, {value_cols}, original_id, "
        f"match_sep{extra_col}, %s FROM _incoming ORDER BY row_number", (name, run_id)).rowcount
    unmatched = conn.execute("SELECT count(*) FROM _incoming WHERE source_id IS NULL").fetchone()[0]
    if rejects:
        runlog.store_rejects(conn, run_id, rejects)
    report.rows_read = n
    report.rows_loaded = loaded
    report.rows_rejected = len({r[0] for r in rejects})
    report.rejects = [(r[0], r[2], r[3]) for r in rejects[:20]]
    report.message = (f"{name}: {loaded} rows stored, {matched} matched by position within {radius_arcsec:g} arcsec, "
                      f"{unmatched} without a Gaia source")
    runlog.finish(conn, run_id, read=n, loaded=loaded, rejected=report.rows_rejected,
                  next_row=int(numbers.max()) if n else 0)


def _extras(table: pa.Table, names: list[str]) -> list[str | None]:
    """Other columns of the file as a JSON object per row (numbers and short strings only)."""
    if not names:
        return [None] * table.num_rows
    keep = [n for n in names if pa.types.is_integer(table.schema.field(n).type)
            or pa.types.is_floating(table.schema.field(n).type) or pa.types.is_string(table.schema.field(n).type)]
    if not keep:
        return [None] * table.num_rows
    sub = table.select(keep).to_pandas()
    return sub.to_json(orient="records", lines=True).splitlines()


def refresh_views(conn: psycopg.Connection) -> None:
    """Regenerate the per-catalogue cross-match views when the query stage has installed them."""
    exists = conn.execute("SELECT to_regprocedure('xpdb.refresh_xm_views()')").fetchone()[0]
    if exists:
        conn.execute("SELECT xpdb.refresh_xm_views()")


def ingest_labels(url: str, path: Path | str, *, catalog: str, mapping: dict[str, str] | None = None,
                  radius_arcsec: float = 1.0, description: str | None = None, replace: bool = False,
                  fmt: str | None = None, validation_selection: str | None = None,
                  progress: ProgressCallback | None = None) -> IngestReport:
    """Load a reference-label catalogue (PASTEL, SAGA, LAMOST, SDSS, ...) into ``reference_label``.

    ``validation_selection`` says which of its stars the validation uses (``xpdb.validation``);
    a new catalogue gets the paper's choice by its name (SAGA, PASTEL: the six cuts; APOGEE:
    spectroscopic giants; any other: the first three cuts and E(B-V) < 0.5), a known one keeps
    what it had unless this is given.
    """
    from xpdb.validation import VALIDATION_SELECTIONS

    registry = {"match_radius_arcsec": float(radius_arcsec)}
    if description:
        registry["description"] = description
    if validation_selection is not None:
        if validation_selection not in VALIDATION_SELECTIONS:
            raise ConfigurationError(f"unknown validation selection {validation_selection!r}; one of "
                             f"{', '.join(VALIDATION_SELECTIONS)}")
        registry["validation_selection"] = validation_selection
    return _load(url, LABELS, Path(path), catalog, mapping or {}, radius_arcsec, replace, fmt, registry, None, progress)


def ingest_members(url: str, path: Path | str, *, cluster: str, mapping: dict[str, str] | None = None,
                   radius_arcsec: float = 1.0, feh_ref: float | None = None, feh_ref_err: float | None = None,
                   min_probability: float | None = None, replace: bool = False, fmt: str | None = None,
                   selection: str | None = None, bp_rp0_min: float | None = None,
                   min_membership_probability: float | None = None,
                   progress: ProgressCallback | None = None) -> IngestReport:
    """Load the members of one star cluster into ``cluster_member``.

    ``min_probability`` drops less probable members at load time. The cluster's sample cuts
    (``xpdb.validation``), which keep every member stored but decide which count in
    ``cluster_summary``: ``selection`` (default ``final_sample``, the first three cuts),
    ``bp_rp0_min`` (default: 1.05 for NGC 6791, none otherwise) and
    ``min_membership_probability`` (default 0.5); given values replace stored ones.
    """
    from xpdb.validation import CLUSTER_SELECTIONS

    if selection is not None and selection not in CLUSTER_SELECTIONS:
        raise ConfigurationError(f"unknown cluster selection {selection!r}; one of {', '.join(CLUSTER_SELECTIONS)}")
    registry = {k: v for k, v in (("feh_ref", feh_ref), ("feh_ref_err", feh_ref_err), ("selection", selection),
                                  ("bp_rp0_min", bp_rp0_min),
                                  ("min_membership_probability", min_membership_probability)) if v is not None}
    return _load(url, MEMBERS, Path(path), cluster, mapping or {}, radius_arcsec, replace, fmt, registry,
                 min_probability, progress)
