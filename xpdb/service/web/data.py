"""What the web pages show, read from the database.

Everything a visitor can influence (a source_id, a cluster name, a position, ADQL) is read
through the read-only role (the service's ``readers`` pool) with bound parameters or the
ADQL translator, as TAP does. Two summaries read the service's own bookkeeping, which the
read-only role may not see: the inference jobs' progress and the last ingest runs. They are
fixed statements with no visitor input, run through the service's own pool in READ ONLY
transactions, and they return counts, states and times only (no file paths, job
specifications or error texts).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import psycopg

# the tables counted on the landing page, with what one row is
COUNTED = (("gaia_source", "sources (gaia_source)"), ("xp_band", "XP_CONTINUOUS bands (2 per spectrum)"),
           ("xp_sampled", "XP_SAMPLED spectra"), ("xp_features", "feature rows (60 pixels each)"),
           ("reference_label", "reference labels"), ("cluster_member", "cluster members"),
           ("prediction", "[Fe/H] predictions"), ("label_prediction", "label predictions (transformer)"),
           ("svae_output", "scatter-VAE outputs"))
EXACT_BELOW = 1_000_000  # rows: counted exactly below this planner estimate, estimated above
CMD_RADIUS_DEG = 0.5
CMD_MAX_STARS = 3000
NEIGHBOURS = 10


class NotFound(LookupError):
    """No such star (or model)."""


def _rows(conn: psycopg.Connection, sql: str, params=None) -> list[dict]:
    cur = conn.execute(sql, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


class readonly:  # noqa: N801 - used as a context manager
    """``with readonly(conn, timeout_s):`` - one READ ONLY transaction, rolled back at the end."""

    def __init__(self, conn: psycopg.Connection, timeout_s: float):
        self.conn, self.timeout_s = conn, timeout_s

    def __enter__(self) -> psycopg.Connection:
        self.conn.rollback()
        self.conn.autocommit = False
        self.conn.execute("SET TRANSACTION READ ONLY")
        self.conn.execute(f"SET LOCAL statement_timeout = {max(1, int(self.timeout_s * 1000))}")
        return self.conn

    def __exit__(self, *exc) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.autocommit = True


# ---------------------------------------------------------------- landing page
def table_counts(conn: psycopg.Connection) -> list[dict]:
    """Rows per public table: exact below EXACT_BELOW estimated rows, else the planner's estimate."""
    out = []
    for table, label in COUNTED:
        row = conn.execute("SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE n.nspname = 'xpdb' AND c.relname = %s", (table,)).fetchone()
        if row is None:
            continue
        estimate = int(row[0])
        if estimate < 0 or estimate < EXACT_BELOW:
            count = conn.execute(psycopg.sql.SQL("SELECT count(*) FROM xpdb.{}").format(
                psycopg.sql.Identifier(table))).fetchone()[0]
            out.append({"table": table, "label": label, "rows": int(count), "estimated": False})
        else:
            out.append({"table": table, "label": label, "rows": estimate, "estimated": True})
    return out


def models(conn: psycopg.Connection) -> list[dict]:
    """The model registry (``model_info``: without the saved models), newest first."""
    return _rows(conn, "SELECT model_id, name || ':' || version AS ref, kind, training_catalog, test_catalog, n_train, "
                       "created_at, metrics, preprocessing_id, artifact_bytes FROM xpdb.model_info "
                       "ORDER BY created_at DESC, model_id DESC")


def last_ingests(conn: psycopg.Connection, limit: int = 5) -> list[dict]:
    """The newest ingest runs (service bookkeeping: kind, target, state, rows and times; no paths)."""
    return _rows(conn, "SELECT run_id, kind, target, status, rows_loaded, rows_rejected, started_at, finished_at "
                       "FROM xpdb.ingest_run ORDER BY started_at DESC, run_id DESC LIMIT %s", (limit,))


# ---------------------------------------------------------------- jobs
def jobs(conn: psycopg.Connection, limit: int = 50) -> list[dict]:
    """Inference jobs with their batches' progress, unfinished ones first (service bookkeeping)."""
    rows = _rows(conn, """
        SELECT j.job_id, j.kind, m.name || ':' || m.version AS model, j.state, j.n_sources, j.n_batches,
               count(b.batch_id) FILTER (WHERE b.state = 'done') AS batches_done,
               count(b.batch_id) FILTER (WHERE b.state = 'running') AS batches_running,
               count(b.batch_id) FILTER (WHERE b.state = 'failed') AS batches_failed,
               coalesce(sum(b.n_predicted) FILTER (WHERE b.state = 'done'), 0) AS n_done,
               coalesce(sum(b.n_sources) FILTER (WHERE b.state = 'done'), 0) AS sources_done,
               j.created_at, j.finished_at, min(b.started_at) AS first_started, max(b.finished_at) AS last_finished
        FROM xpdb.job AS j
        LEFT JOIN xpdb.model AS m ON m.model_id = j.model_id
        LEFT JOIN xpdb.job_batch AS b ON b.job_id = j.job_id
        GROUP BY j.job_id, m.name, m.version
        ORDER BY j.state IN ('pending', 'running') DESC, j.job_id DESC
        LIMIT %s""", (limit,))
    now = datetime.now(timezone.utc)
    for r in rows:
        total = r["n_sources"] or 0
        r["percent"] = round(100.0 * r["sources_done"] / total, 1) if total else (100.0 if r["state"] == "done" else 0.0)
        rate = None
        if r["first_started"] and r["sources_done"]:
            end = r["last_finished"] if r["state"] not in ("pending", "running") else now
            seconds = (end - r["first_started"]).total_seconds()
            rate = r["sources_done"] / seconds if seconds > 0 else None
        r["rate"] = rate
        r["eta_s"] = ((total - r["sources_done"]) / rate) if rate and r["state"] == "running" else None
    return rows


def jobs_json(rows: list[dict]) -> list[dict]:
    """The job rows as JSON values (times as ISO 8601)."""
    keep = ("job_id", "kind", "model", "state", "n_sources", "n_batches", "batches_done", "batches_running",
            "batches_failed", "sources_done", "n_done", "percent", "rate", "eta_s", "created_at", "finished_at")
    out = []
    for r in rows:
        item = {}
        for k in keep:
            v = r.get(k)
            item[k] = v.isoformat() if isinstance(v, datetime) else (float(v) if isinstance(v, float) else v)
        out.append(item)
    return out


# ---------------------------------------------------------------- TAP_SCHEMA browser
def schema_tables(conn: psycopg.Connection) -> list[dict]:
    return _rows(conn, "SELECT table_name, table_type, description FROM tap_schema.tables "
                       "ORDER BY schema_name = 'tap_schema', table_index, table_name")


def schema_columns(conn: psycopg.Connection, table: str) -> list[dict]:
    rows = _rows(conn, "SELECT column_name, datatype, arraysize, unit, ucd, description, indexed, principal "
                       "FROM tap_schema.columns WHERE table_name = %s ORDER BY column_index", (table,))
    if not rows and not conn.execute("SELECT 1 FROM tap_schema.tables WHERE table_name = %s", (table,)).fetchone():
        raise NotFound(f"no table {table!r} is published in TAP_SCHEMA")
    return rows


# ---------------------------------------------------------------- cone search
@dataclass
class Target:
    """A resolved cone-search centre."""

    ra: float
    dec: float
    name: str | None = None  # the cluster's name when the text named one
    n_members: int = 0


_GAIA_ID = re.compile(r"^\s*gaia\s*dr3\s*(\d{1,19})\s*$", re.IGNORECASE)


def gaia_id(text: str) -> int | None:
    """The source_id of 'Gaia DR3 <id>', else None."""
    m = _GAIA_ID.match(text or "")
    return int(m.group(1)) if m and int(m.group(1)) < 2 ** 63 else None


def cluster_names(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM xpdb.cluster ORDER BY name")]


def find_cluster(conn: psycopg.Connection, text: str) -> Target | None:
    """The cluster named ``text`` (case and spaces ignored: 'NGC 5904' finds 'NGC5904') at its members' mean
    position, or None."""
    key = re.sub(r"\s+", "", text).lower()
    if not key:
        return None
    row = conn.execute("""
        SELECT c.name, count(m.ra), avg(cos(radians(m.dec)) * cos(radians(m.ra))),
               avg(cos(radians(m.dec)) * sin(radians(m.ra))), avg(sin(radians(m.dec)))
        FROM xpdb.cluster AS c LEFT JOIN xpdb.cluster_member AS m ON m.cluster = c.name AND m.ra IS NOT NULL
        WHERE lower(regexp_replace(c.name, '\\s', '', 'g')) = %s GROUP BY c.name LIMIT 1""", (key,)).fetchone()
    if row is None:
        return None
    name, n, x, y, z = row
    if not n:
        raise ValueError(f"cluster {name!r} has no member with a position, so it has no centre")
    ra = math.degrees(math.atan2(y, x)) % 360.0
    dec = math.degrees(math.atan2(z, math.hypot(x, y)))
    return Target(ra=ra, dec=dec, name=name, n_members=int(n))


def parse_target(text: str) -> Target:
    """A position in degrees ('229.6384 2.081', '229.6384, +2.081') or sexagesimal ('15:18:33.2 +02:04:51.7',
    '15h18m33.2s +2d04m51.7s', '15 18 33.2 +02 04 51.7'); ValueError saying what was not understood."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    raw = (text or "").strip()
    if not raw:
        raise ValueError("give a cluster name (e.g. NGC 5904) or a position (RA Dec)")
    parts = [p for p in re.split(r"[\s,]+", raw) if p]
    try:
        if len(parts) == 2 and all(re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", p) for p in parts):
            ra_deg, dec_deg = float(parts[0]), float(parts[1])
            if not (math.isfinite(ra_deg) and math.isfinite(dec_deg)):  # '1e400' overflows to inf
                raise ValueError("a coordinate is not a finite number")
            coord = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
        elif len(parts) in (2, 6):
            joined = raw.replace(",", " ")
            coord = SkyCoord(joined, unit=(u.hourangle, u.deg), frame="icrs")
        else:
            raise ValueError("expected two coordinates (RA Dec) or six sexagesimal fields")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{raw!r} is neither a known cluster nor a position (RA Dec in degrees or sexagesimal): "
                         f"{exc}") from None
    ra, dec = float(coord.ra.deg), float(coord.dec.deg)
    if not (math.isfinite(ra) and math.isfinite(dec)):
        raise ValueError(f"{raw!r} is not a finite position")
    return Target(ra=ra, dec=dec)


RADIUS_UNITS = {"arcsec": 1 / 3600.0, "arcmin": 1 / 60.0, "deg": 1.0}


def radius_degrees(value: str, unit: str) -> float:
    """The radius in degrees from a number and one of RADIUS_UNITS; ValueError otherwise."""
    if unit not in RADIUS_UNITS:
        raise ValueError(f"radius unit {unit!r} is not one of {', '.join(RADIUS_UNITS)}")
    try:
        number = float((value or "").strip())
    except ValueError:
        raise ValueError(f"the radius {value!r} is not a number") from None
    degrees = number * RADIUS_UNITS[unit]
    if not math.isfinite(degrees) or not 0 < degrees <= 10:
        raise ValueError(f"the radius must be above 0 and at most 10 deg (got {number:g} {unit})")
    return degrees


# ---------------------------------------------------------------- star page
@dataclass
class Star:
    """Everything the star page shows."""

    source_id: int
    source: dict | None = None
    spectrum: tuple | None = None  # (wavelength, flux, flux_error, origin)
    features: list[dict] = field(default_factory=list)
    predictions: list[dict] = field(default_factory=list)
    label_predictions: list[dict] = field(default_factory=list)
    labels: list[dict] = field(default_factory=list)
    memberships: list[dict] = field(default_factory=list)
    cmd_field: tuple = ((), ())
    cmd_members: tuple | None = None
    svae: dict | None = None
    neighbours: list[dict] = field(default_factory=list)


def _floats(blob) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(bytes(blob), dtype="<f4").astype(float)


def feature_wavelengths(version: str) -> np.ndarray:
    """The mean wavelength of each of the 60 feature bins of a preprocessing version."""
    from xpdb.xp.features import BIN_RANGE_NM, Preprocessing, pixel_wavelengths

    try:
        window = Preprocessing.from_version(version).window
    except ValueError:
        window = BIN_RANGE_NM
    return pixel_wavelengths(np.arange(336.0, 1020.1, 2.0), window)


def star(conn: psycopg.Connection, source_id: int) -> Star:
    """The star page's data, through ``conn`` (the read-only role, inside one READ ONLY transaction)."""
    from xpdb.flags import PredictionFlag, describe
    from xpdb.xp.spectrum import NoSpectrum, spectra_table

    s = Star(source_id=source_id)
    found = _rows(conn, "SELECT * FROM xpdb.source_photometry WHERE source_id = %s", (source_id,))
    s.source = found[0] if found else None
    try:
        table = spectra_table(conn, [source_id])
        s.spectrum = (np.asarray(table["wavelength"]), np.asarray(table["flux"]), np.asarray(table["flux_error"]),
                      table.meta["origin"].get(str(source_id), ""))
    except NoSpectrum:
        s.spectrum = None
    if s.source is None and s.spectrum is None:
        raise NotFound(f"no star with source_id {source_id} is stored (neither gaia_source nor an XP spectrum)")
    for r in _rows(conn, "SELECT p.version, f.flux, f.flux_error, f.flags, f.computed_at FROM xpdb.xp_features f "
                         "JOIN xpdb.preprocessing p USING (preprocessing_id) WHERE f.source_id = %s "
                         "ORDER BY f.preprocessing_id DESC", (source_id,)):
        flux, err = _floats(r["flux"]), _floats(r["flux_error"])
        from xpdb.flags import FeatureFlag

        s.features.append({"version": r["version"], "flux": flux, "flux_error": err, "flags": r["flags"],
                           "flag_words": describe(r["flags"], FeatureFlag),
                           "wavelength": feature_wavelengths(r["version"]) if flux is not None else None})
    s.predictions = _rows(conn, "SELECT m.model_id, m.name || ':' || m.version AS ref, m.kind, p.feh, p.feh_err, "
                                "p.flags, p.created_at FROM xpdb.prediction p JOIN xpdb.model_info m USING (model_id) "
                                "WHERE p.source_id = %s ORDER BY m.created_at DESC, m.model_id DESC", (source_id,))
    for p in s.predictions:
        p["flag_words"] = describe(p["flags"], PredictionFlag)
    s.label_predictions = _rows(conn, "SELECT m.model_id, m.name || ':' || m.version AS ref, m.kind, l.teff, l.teff_err, "
                                      "l.logg, l.logg_err, l.m_h, l.m_h_err, l.alpha_m, l.alpha_m_err, l.n_tokens, "
                                      "l.flags FROM xpdb.label_prediction l JOIN xpdb.model_info m USING (model_id) "
                                      "WHERE l.source_id = %s ORDER BY m.created_at DESC, m.model_id DESC",
                                (source_id,))
    s.labels = _rows(conn, "SELECT catalog, feh, feh_err, teff, teff_err, logg, logg_err, original_id, "
                           "match_sep_arcsec FROM xpdb.reference_label WHERE source_id = %s ORDER BY catalog",
                     (source_id,))
    s.memberships = _rows(conn, "SELECT m.cluster, m.membership_probability, c.feh_ref, c.feh_ref_err, c.reference "
                                "FROM xpdb.cluster_member m JOIN xpdb.cluster c ON c.name = m.cluster "
                                "WHERE m.source_id = %s ORDER BY m.cluster", (source_id,))
    if s.source is not None:
        rows = conn.execute("SELECT bp_rp, phot_g_mean_mag FROM xpdb.gaia_source WHERE "
                            "q3c_radial_query(ra, dec, %s, %s, %s) AND bp_rp IS NOT NULL "
                            "AND phot_g_mean_mag IS NOT NULL LIMIT %s",
                            (s.source["ra"], s.source["dec"], CMD_RADIUS_DEG, CMD_MAX_STARS)).fetchall()
        s.cmd_field = (tuple(r[0] for r in rows), tuple(r[1] for r in rows))
        if s.memberships:
            rows = conn.execute("SELECT g.bp_rp, g.phot_g_mean_mag FROM xpdb.cluster_member m "
                                "JOIN xpdb.gaia_source g ON g.source_id = m.source_id WHERE m.cluster = %s "
                                "AND g.bp_rp IS NOT NULL AND g.phot_g_mean_mag IS NOT NULL LIMIT %s",
                                (s.memberships[0]["cluster"], CMD_MAX_STARS)).fetchall()
            s.cmd_members = (tuple(r[0] for r in rows), tuple(r[1] for r in rows))
    svae = _rows(conn, "SELECT o.model_id, m.name || ':' || m.version AS ref, m.kind, o.anomaly_score, o.chi2_red, "
                       "o.chi2_red_scatter, o.nll, o.max_abs_residual, o.n_pixels, o.flags, o.latent IS NOT NULL "
                       "AS has_latent FROM xpdb.svae_output o JOIN xpdb.model_info m USING (model_id) "
                       "WHERE o.source_id = %s ORDER BY m.kind = 'svae' DESC, m.created_at DESC, m.model_id DESC "
                       "LIMIT 1", (source_id,))
    if svae:
        s.svae = svae[0]
        if s.svae["has_latent"]:
            from xpdb.query.similar import SIMILAR_SQL

            s.neighbours = _rows(conn, SIMILAR_SQL, {"model": s.svae["model_id"], "source": source_id,
                                                     "k": NEIGHBOURS, "self": False})
    return s


# ---------------------------------------------------------------- models page
FIGURES = {  # name -> (title, function of xpdb.report.figures, takes a catalogue)
    "errors": "Predicted errors against residual sigma per G bin (Figure 5)",
    "clusters": "Star clusters (Figure 9)",
    "distributions": "[Fe/H] and G distributions (Figure 12)",
    "error-map": "Predicted-error map in the G-[Fe/H] plane (Figure 11)",
}


def validated_models(conn: psycopg.Connection) -> dict[int, dict]:
    """model_id -> {'catalogs': [...], 'summary': [rows of validation_summary]} for models with validations."""
    out: dict[int, dict] = {}
    for r in _rows(conn, "SELECT model_id, catalog, scope, subset, n, bias, sigma, method, median_feh_err "
                         "FROM xpdb.validation_summary WHERE scope IN ('g<15', 'all') AND g_min IS NULL "
                         "ORDER BY model_id, catalog, scope DESC, subset"):
        entry = out.setdefault(r["model_id"], {"catalogs": [], "summary": []})
        if r["catalog"] not in entry["catalogs"]:
            entry["catalogs"].append(r["catalog"])
        entry["summary"].append(r)
    return out


def figure_png(conn: psycopg.Connection, model_id: int, name: str) -> bytes:
    """One validation figure of ``xpdb report`` as PNG bytes (``residuals-<catalog>`` or a FIGURES name)."""
    import io

    from xpdb.report import figures
    from xpdb.service.web.plots import PYPLOT_LOCK

    out = io.BytesIO()
    with PYPLOT_LOCK:
        if name.startswith("residuals-"):
            catalog = name[len("residuals-"):]
            known = [r[0] for r in conn.execute("SELECT DISTINCT catalog FROM xpdb.validation_summary "
                                                "WHERE model_id = %s", (model_id,))]
            if catalog not in known:
                raise NotFound(f"model {model_id} has no validation against {catalog!r}")
            figures.residual_figure(conn, model_id, catalog, out)
        elif name == "errors":
            catalogs = [r[0] for r in conn.execute("SELECT DISTINCT catalog FROM xpdb.validation_summary "
                                                   "WHERE model_id = %s ORDER BY 1", (model_id,))]
            figures.error_figure(conn, model_id, catalogs, out)
        elif name == "clusters":
            figures.cluster_figure(conn, model_id, out)
        elif name == "distributions":
            figures.distributions_figure(conn, model_id, out)
        elif name == "error-map":
            figures.error_map_figure(conn, model_id, out)
        else:
            raise NotFound(f"no figure {name!r}")
    return out.getvalue()


def figure_fingerprint(conn: psycopg.Connection, model_id: int) -> tuple:
    """What a model's figures depend on: its predictions and the reference data (for the figure cache)."""
    return tuple(conn.execute(
        "SELECT (SELECT count(*) FROM xpdb.prediction WHERE model_id = %s), "
        "(SELECT max(created_at) FROM xpdb.prediction WHERE model_id = %s), "
        "(SELECT count(*) FROM xpdb.reference_label), (SELECT count(*) FROM xpdb.cluster_member)",
        (model_id, model_id)).fetchone())
