"""Cone search: q3c_radial_query on gaia_source, joined with a model's predictions, nearest first.

Positions and radii are parsed by astropy: degrees (``229.64 2.08``), sexagesimal
(``15:18:33.2 +02:04:51.7`` or ``15h18m33.2s +2d04m51.7s``) and radii with units
(``10.5arcmin``, ``30arcsec``, ``0.1deg``; a bare number is degrees).
"""

from __future__ import annotations

import math

import psycopg

from xpdb.query.run import DEFAULT_MAX_ROWS, QueryError, QueryResult, run_readonly

DEFAULT_COLUMNS = ("source_id", "ra", "dec", "phot_g_mean_mag", "bp_rp", "bp_rp0", "ebv")
SOURCE_COLUMNS = ("source_id", "ra", "dec", "l", "b", "parallax", "phot_g_mean_mag", "bp_rp",
                  "phot_bp_rp_excess_factor", "ebv", "rgeo", "bp_rp0", "g0", "m_g", "distance_pc", "z_kpc")
PREDICTION_COLUMNS = ("feh", "feh_err", "flags")


def parse_position(ra: str, dec: str) -> tuple[float, float]:
    """(ra, dec) in degrees from degrees or sexagesimal strings."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    ra_s, dec_s = str(ra).strip(), str(dec).strip()
    try:
        if any(ch in ra_s for ch in ":hms ") and not ra_s.replace(".", "", 1).lstrip("+-").isdigit():
            coord = SkyCoord(ra_s, dec_s, unit=(u.hourangle, u.deg), frame="icrs")
        else:
            coord = SkyCoord(float(ra_s) * u.deg, float(dec_s) * u.deg, frame="icrs")
    except (ValueError, TypeError) as exc:
        raise QueryError(f"cannot read the position {ra_s!r} {dec_s!r}: {exc}") from exc
    ra_deg, dec_deg = float(coord.ra.deg), float(coord.dec.deg)
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg)):
        raise QueryError(f"the position {ra_s!r} {dec_s!r} is not a finite RA and Dec")
    return ra_deg, dec_deg


def parse_radius(text: str | float) -> float:
    """Radius in degrees; '10.5arcmin', '30arcsec', '0.1deg' or a bare number of degrees."""
    from astropy import units as u
    from astropy.coordinates import Angle

    try:
        value = float(text)
        angle = Angle(value, u.deg)
    except (TypeError, ValueError):
        try:
            angle = Angle(str(text).strip())
        except (ValueError, u.UnitsError) as exc:
            raise QueryError(f"cannot read the radius {text!r} (give degrees or e.g. 10arcmin, 30arcsec)") from exc
    if not math.isfinite(angle.deg) or not 0 < angle.deg <= 180:
        raise QueryError(f"the radius must be in (0, 180] deg, got {angle.deg:g} deg")
    return float(angle.deg)


NEWEST_MODEL = "SELECT model_id, name || ':' || version FROM xpdb.model_info ORDER BY created_at DESC, model_id DESC LIMIT 1"


def cone_query(ra: float, dec: float, radius: float, *, columns: tuple[str, ...] = DEFAULT_COLUMNS,
               model_id: int | str | None = None, limit: int | None = None) -> tuple[str, dict]:
    """SQL and parameters of a cone search (index-friendly argument order).

    ``model_id``: whose predictions to join; ``"newest"`` is the newest model (:data:`NEWEST_MODEL`), found by
    the query itself (run it in the snapshot of a query of ``NEWEST_MODEL`` to know which).

    The model's predictions are looked up row by row (a LATERAL subquery that OFFSET 0 keeps from being
    flattened into a join): a generic plan (``run_readonly(prepared=True)``) cannot know the cone's size, and
    with q3c's default estimate it would otherwise read and hash every prediction of the model.
    """
    unknown = [c for c in columns if c not in SOURCE_COLUMNS]
    if unknown:
        raise QueryError(f"unknown column(s) {', '.join(unknown)}; available: {', '.join(SOURCE_COLUMNS)}")
    select = [f"s.{c}" for c in columns]
    join = ""
    if model_id is not None:
        select += [f"p.{c}" for c in PREDICTION_COLUMNS]
        model = f"(SELECT n.model_id FROM ({NEWEST_MODEL}) AS n)" if model_id == "newest" else "%(model_id)s"
        join = (f"LEFT JOIN LATERAL (SELECT {', '.join(PREDICTION_COLUMNS)} FROM xpdb.prediction AS q "
                f"WHERE q.source_id = s.source_id AND q.model_id = {model} OFFSET 0) AS p ON true")
    select.append("q3c_dist(s.ra, s.dec, %(ra)s, %(dec)s) * 3600 AS dist_arcsec")
    sql = (f"SELECT {', '.join(select)} FROM xpdb.source_photometry AS s {join} "
           f"WHERE q3c_radial_query(s.ra, s.dec, %(ra)s, %(dec)s, %(radius)s) ORDER BY dist_arcsec")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, {"ra": ra, "dec": dec, "radius": radius, **({"model_id": model_id} if model_id != "newest" else {})}


def cone(ra: float, dec: float, radius: float, *, columns: tuple[str, ...] = DEFAULT_COLUMNS,
         model_id: int | None = None, limit: int | None = None, max_rows: int = DEFAULT_MAX_ROWS,
         conn: psycopg.Connection | None = None) -> QueryResult:
    """Run a cone search read-only; ``overflow`` is set when more than ``max_rows`` rows match."""
    sql, params = cone_query(ra, dec, radius, columns=columns, model_id=model_id, limit=limit)
    return run_readonly(sql, params, max_rows=max_rows, conn=conn, prepared=True)
