"""ADQL -> PostgreSQL/q3c: a corpus of queries run on a random sky, checked against numpy, and the q3c index used."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from xpdb.query.adql import ADQLError, to_postgresql

N_UNIFORM, N_WRAP, N_POLE, N_LABELS, N_LOST = 3000, 200, 200, 400, 100
XMATCH = 2.0 / 3600  # cross-match radius, degrees


@dataclass
class Sky:
    sid: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    plx: np.ndarray  # NaN where NULL
    g: np.ndarray
    lid: np.ndarray
    lra: np.ndarray
    ldec: np.ndarray
    lsid: list  # None where the label has no source
    feh: np.ndarray


def sep(ra1, dec1, ra2, dec2):
    """Angular separation in degrees (haversine)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, dtype=float)) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def offset(ra, dec, distance, angle):
    """Positions moved by distance (deg) towards position angle (rad), on the sphere."""
    ra, dec, d = np.radians(ra), np.radians(dec), np.radians(distance)
    p = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    east = np.stack([-np.sin(ra), np.cos(ra), np.zeros_like(ra)])
    north = np.stack([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)])
    q = p * np.cos(d) + (east * np.sin(angle) + north * np.cos(angle)) * np.sin(d)
    return np.degrees(np.arctan2(q[1], q[0])) % 360, np.degrees(np.arcsin(np.clip(q[2], -1, 1)))


def in_polygon(ra, dec, vertices):
    """Inside a polygon with great-circle edges: ray casting in the gnomonic projection about its centre."""
    vra, vdec = np.radians(vertices[0::2]), np.radians(vertices[1::2])
    centre = np.array([np.cos(vdec) * np.cos(vra), np.cos(vdec) * np.sin(vra), np.sin(vdec)]).sum(axis=1)
    ra0, dec0 = math.atan2(centre[1], centre[0]), math.asin(centre[2] / np.linalg.norm(centre))

    def project(r, d):
        cos_c = np.sin(dec0) * np.sin(d) + np.cos(dec0) * np.cos(d) * np.cos(r - ra0)
        x = np.cos(d) * np.sin(r - ra0) / cos_c
        y = (np.cos(dec0) * np.sin(d) - np.sin(dec0) * np.cos(d) * np.cos(r - ra0)) / cos_c
        return x, y, cos_c > 0

    x, y, front = project(np.radians(ra), np.radians(dec))
    vx, vy, _ = project(vra, vdec)
    inside = np.zeros(len(x), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(vx)):
            x1, y1, x2, y2 = vx[i], vy[i], vx[i - 1], vy[i - 1]
            crosses = (y1 > y) != (y2 > y)
            inside ^= crosses & (x < x1 + (y - y1) * (x2 - x1) / (y2 - y1))
    return inside & front


def box(ra, dec, width, height):
    """The corners of an ADQL BOX as translated: ra ± w/2, dec ± h/2."""
    w, h = width / 2, height / 2
    return [ra - w, dec - h, ra + w, dec - h, ra + w, dec + h, ra - w, dec + h]


def make_sky() -> Sky:
    rng = np.random.default_rng(20240501)
    ra = np.concatenate([rng.uniform(0, 360, N_UNIFORM), rng.uniform(-1.5, 1.5, N_WRAP) % 360,
                         rng.uniform(0, 360, N_POLE)])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, N_UNIFORM))), rng.uniform(-1.5, 1.5, N_WRAP),
                          rng.uniform(87.0, 89.999, N_POLE)])
    n = len(ra)
    sid = (np.arange(n, dtype=np.int64) + 1) * 2**35 + rng.integers(0, 2**35, n)
    plx = np.where(rng.uniform(size=n) < 0.1, np.nan, rng.normal(1, 0.5, n))
    g = rng.uniform(10, 20, n).astype(np.float32)
    matched = rng.choice(n, N_LABELS, replace=False)
    mra, mdec = offset(ra[matched], dec[matched], rng.uniform(0, 1.5 / 3600, N_LABELS),
                       rng.uniform(0, 2 * np.pi, N_LABELS))
    lra = np.concatenate([mra, rng.uniform(0, 360, N_LOST)])
    ldec = np.concatenate([mdec, np.degrees(np.arcsin(rng.uniform(-1, 1, N_LOST)))])
    lsid = [int(s) for s in sid[matched]] + [None] * N_LOST
    feh = rng.uniform(-2.5, 0.5, len(lra)).astype(np.float32)
    return Sky(sid, ra, dec, plx, g, np.arange(1, len(lra) + 1), lra, ldec, lsid, feh)


@pytest.fixture(scope="module")
def sky_db(pg_server, template_url):
    """One migrated database for the module, with the random sky loaded (the corpus only reads)."""
    name = f"xpdb_t_adql_{uuid.uuid4().hex[:12]}"
    admin = make_conninfo(pg_server, dbname="postgres")
    template = conninfo_to_dict(template_url)["dbname"]
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    sky = make_sky()
    try:
        with psycopg.connect(make_conninfo(pg_server, dbname=name), autocommit=True) as conn:
            with conn.cursor().copy("COPY xpdb.gaia_source (source_id, ra, dec, parallax, phot_g_mean_mag) "
                                    "FROM STDIN") as copy:
                for row in zip(sky.sid.tolist(), sky.ra.tolist(), sky.dec.tolist(), sky.plx.tolist(),
                               sky.g.tolist()):
                    copy.write_row([None if isinstance(v, float) and math.isnan(v) else v for v in row])
            conn.execute("INSERT INTO xpdb.reference_catalog (name) VALUES ('TEST')")
            with conn.cursor().copy("COPY xpdb.reference_label (label_id, catalog, source_id, ra, dec, feh, "
                                    "original_id) FROM STDIN") as copy:
                for i in range(len(sky.lid)):
                    copy.write_row([int(sky.lid[i]), "TEST", sky.lsid[i], float(sky.lra[i]), float(sky.ldec[i]),
                                    float(sky.feh[i]), f"Star{i}"])
            conn.execute("ANALYZE xpdb.gaia_source")
            conn.execute("ANALYZE xpdb.reference_label")
            conn.execute("SET search_path = xpdb, public")
            yield conn, sky
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(conn, adql: str, **kwargs) -> list[tuple]:
    return conn.execute(to_postgresql(adql, **kwargs).sql).fetchall()


def plan(conn, adql: str) -> str:
    conn.execute("SET enable_seqscan = off")
    try:
        return "\n".join(r[0] for r in conn.execute("EXPLAIN " + to_postgresql(adql).sql))
    finally:
        conn.execute("RESET enable_seqscan")


def ids(sky: Sky, mask) -> list[tuple]:
    return [(int(s),) for s in sky.sid[mask]]


def nearest(sky: Sky, ra0, dec0, mask, n):
    d = sep(sky.ra, sky.dec, ra0, dec0)
    order = [i for i in np.argsort(d) if mask[i]][:n]
    return [(int(sky.sid[i]), float(d[i])) for i in order]


def pairs(sky: Sky):
    """(label_id, source_id) of every label and source within XMATCH."""
    d = sep(sky.lra[:, None], sky.ldec[:, None], sky.ra[None, :], sky.dec[None, :])
    li, gi = np.nonzero(d < XMATCH)
    return [(int(sky.lid[i]), int(sky.sid[j])) for i, j in zip(li, gi)]


@dataclass
class Case:
    id: str
    adql: str
    expected: Callable[[Sky], list[tuple]]
    ordered: bool = False
    index: str | None = "gaia_source_q3c_idx"  # the q3c index EXPLAIN must show


def cone(ra0, dec0, r):
    return lambda s: ids(s, sep(s.ra, s.dec, ra0, dec0) < r)


GS = "xpdb.gaia_source"
CASES = [
    Case("cone-1-eq-contains", f"SELECT source_id FROM {GS} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
         "CIRCLE('ICRS', 45.0, 30.0, 5))", cone(45, 30, 5)),
    Case("cone-contains-eq-1", "select source_id from gaia_source where contains(point('', ra, dec), "
         "circle('', 45.0, 30.0, 5)) = 1", cone(45, 30, 5)),
    Case("cone-adql21-point-centre", f"SELECT source_id FROM {GS} WHERE CONTAINS(POINT(ra, dec), "
         "CIRCLE(POINT('ICRS GEOCENTER', 200, -40), 7.5)) = 1", cone(200, -40, 7.5)),
    Case("cone-across-ra0", f"SELECT source_id FROM {GS} WHERE 1 = CONTAINS(POINT('icrs', ra, dec), "
         "CIRCLE('ICRS', 0.2, 0.1, 0.8))", cone(0.2, 0.1, 0.8)),
    Case("cone-at-pole", f"SELECT g.source_id FROM {GS} AS g WHERE 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), "
         "CIRCLE('ICRS', 123.0, 89.5, 1.2))", cone(123, 89.5, 1.2)),
    Case("gaiadr3-schema", "SELECT source_id FROM gaiadr3.gaia_source WHERE 1 = CONTAINS(POINT('ICRS', "
         "gaiadr3.gaia_source.ra, gaiadr3.gaia_source.dec), CIRCLE('ICRS', 300, 10, 6))", cone(300, 10, 6)),
    Case("intersects-point", f"SELECT source_id FROM {GS} WHERE 1 = INTERSECTS(CIRCLE('ICRS', 45, 30, 5), "
         "POINT('ICRS', ra, dec))", cone(45, 30, 5)),
    Case("not-contains", f"SELECT COUNT(*) FROM {GS} WHERE 0 = CONTAINS(POINT('ICRS', ra, dec), "
         "CIRCLE('ICRS', 45.0, 30.0, 20))", lambda s: [(int(np.sum(sep(s.ra, s.dec, 45, 30) >= 20)),)],
         index=None),
    Case("distance-lt", f"SELECT source_id FROM {GS} WHERE DISTANCE(POINT('ICRS', ra, dec), "
         "POINT('ICRS', 200, -40)) < 4", cone(200, -40, 4)),
    Case("distance21-le", f"SELECT source_id FROM {GS} WHERE DISTANCE(ra, dec, 0.5, -0.5) <= 1.1",
         cone(0.5, -0.5, 1.1)),
    Case("distance-gt-reversed", f"SELECT source_id FROM {GS} WHERE 4 > DISTANCE(POINT('ICRS', 200, -40), "
         "POINT('ICRS', ra, dec))", cone(200, -40, 4)),
    Case("distance-select-order-top",
         f"SELECT TOP 20 source_id, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 10, 10)) AS dist FROM {GS} "
         "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 10, 15)) ORDER BY dist",
         lambda s: nearest(s, 10, 10, np.ones(len(s.ra), bool), 20), ordered=True),
    Case("order-by-distance-expression",
         f"SELECT TOP 7 source_id, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 0, 89.9)) FROM {GS} "
         "WHERE dec > 85 ORDER BY DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 0, 89.9)) ASC",
         lambda s: nearest(s, 0, 89.9, s.dec > 85, 7), ordered=True, index=None),
    Case("polygon", f"SELECT source_id FROM {GS} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
         "POLYGON('ICRS', 10, -10, 30, -10, 30, 10, 10, 10))",
         lambda s: ids(s, in_polygon(s.ra, s.dec, [10, -10, 30, -10, 30, 10, 10, 10]))),
    Case("polygon-across-ra0", f"SELECT source_id FROM {GS} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
         "POLYGON('ICRS', 359.2, -1.0, 0.9, -0.8, 0.4, 1.2))",
         lambda s: ids(s, in_polygon(s.ra, s.dec, [359.2, -1.0, 0.9, -0.8, 0.4, 1.2]))),
    Case("polygon-near-pole", f"SELECT source_id FROM {GS} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
         "POLYGON('ICRS', 0, 88, 90, 88, 180, 88, 270, 88))",
         lambda s: ids(s, in_polygon(s.ra, s.dec, [0, 88, 90, 88, 180, 88, 270, 88]))),
    Case("box", f"SELECT source_id FROM {GS} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
         "BOX('ICRS', 100, 20, 10, 6))", lambda s: ids(s, in_polygon(s.ra, s.dec, box(100, 20, 10, 6)))),
    Case("box-across-ra0", f"SELECT source_id FROM {GS} WHERE CONTAINS(POINT(ra, dec), "
         "BOX(0.1, 0.2, 1.5, 1.0)) = 1", lambda s: ids(s, in_polygon(s.ra, s.dec, box(0.1, 0.2, 1.5, 1.0)))),
    Case("crossmatch-join",
         "SELECT r.label_id, g.source_id FROM xpdb.reference_label AS r JOIN xpdb.gaia_source AS g "
         "ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', r.ra, r.dec, 2.0 / 3600))", pairs),
    Case("crossmatch-where-distance",
         "SELECT r.label_id, g.source_id FROM reference_label AS r, gaia_source AS g "
         "WHERE DISTANCE(POINT('ICRS', g.ra, g.dec), POINT('ICRS', r.ra, r.dec)) < 2.0 / 3600", pairs),
    Case("crossmatch-left-join",
         "SELECT r.label_id, g.source_id FROM reference_label AS r LEFT OUTER JOIN gaia_source AS g "
         "ON CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', r.ra, r.dec, 2.0 / 3600)) = 1",
         lambda s: pairs(s) + [(int(i), None) for i in s.lid[N_LABELS:]
                               if not np.any(sep(s.ra, s.dec, s.lra[i - 1], s.ldec[i - 1]) < XMATCH)]),
    Case("crossmatch-label-index",
         "SELECT g.source_id, r.label_id FROM gaia_source AS g JOIN reference_label AS r "
         "ON 1 = CONTAINS(POINT('ICRS', r.ra, r.dec), CIRCLE('ICRS', g.ra, g.dec, 2.0 / 3600)) "
         "WHERE g.dec > 80", lambda s: [(g, lab) for lab, g in pairs(s) if s.dec[s.sid == g][0] > 80],
         index="reference_label_q3c_idx"),
    Case("join-using", "SELECT g.source_id, r.feh FROM gaia_source AS g INNER JOIN reference_label AS r "
         "USING (source_id) WHERE r.feh < -1",
         lambda s: [(s.lsid[i], float(s.feh[i])) for i in range(N_LABELS) if s.feh[i] < -1], index=None),
    Case("aggregates-in-cone",
         f"SELECT COUNT(*), AVG(phot_g_mean_mag), MIN(dec), MAX(dec), COUNT(parallax), SUM(parallax) FROM {GS} "
         "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 20))",
         lambda s: (lambda m: [(int(m.sum()), float(s.g[m].astype(float).mean()), s.dec[m].min(), s.dec[m].max(),
                                int(np.isfinite(s.plx[m]).sum()), float(np.nansum(s.plx[m])))])(
             sep(s.ra, s.dec, 45, 30) < 20)),
    Case("group-by-having",
         f"SELECT FLOOR(ra / 30) AS zone, COUNT(*) AS n, MAX(phot_g_mean_mag) FROM {GS} "
         "GROUP BY zone HAVING COUNT(*) > 260 ORDER BY zone",
         lambda s: [(float(z), int(np.sum(np.floor(s.ra / 30) == z)), float(s.g[np.floor(s.ra / 30) == z].max()))
                    for z in np.unique(np.floor(s.ra / 30)) if np.sum(np.floor(s.ra / 30) == z) > 260],
         ordered=True, index=None),
    Case("distinct", f"SELECT DISTINCT FLOOR(dec / 10) FROM {GS} WHERE dec > 0",
         lambda s: [(float(v),) for v in np.unique(np.floor(s.dec[s.dec > 0] / 10))], index=None),
    Case("subquery-in", f"SELECT source_id FROM {GS} WHERE source_id IN "
         "(SELECT source_id FROM xpdb.reference_label WHERE feh < -2)",
         lambda s: [(s.lsid[i],) for i in range(N_LABELS) if s.feh[i] < -2], index=None),
    Case("derived-table", "SELECT c.n FROM (SELECT COUNT(*) AS n FROM gaia_source WHERE "
         "1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0, 0, 1.5))) AS c",
         lambda s: [(int(np.sum(sep(s.ra, s.dec, 0, 0) < 1.5)),)]),
    Case("exists-correlated", f"SELECT g.source_id FROM {GS} AS g WHERE g.dec > 88.5 AND EXISTS "
         "(SELECT 1 FROM reference_label AS r WHERE r.source_id = g.source_id)",
         lambda s: [(g,) for g in s.lsid[:N_LABELS] if s.dec[s.sid == g][0] > 88.5], index=None),
    Case("top-offset", f"SELECT TOP 5 source_id FROM {GS} ORDER BY source_id DESC OFFSET 3",
         lambda s: [(int(v),) for v in np.sort(s.sid)[::-1][3:8]], ordered=True, index=None),
    Case("coord1-coord2", f"SELECT source_id, COORD1(POINT('ICRS', ra, dec)), COORD2(POINT('ICRS', ra, dec)) "
         f"FROM {GS} WHERE source_id < {5 * 2**35}",
         lambda s: [(int(s.sid[i]), s.ra[i], s.dec[i]) for i in range(4)], index=None),
    Case("healpix-index", f"SELECT GAIA_HEALPIX_INDEX(12, source_id), gaia_healpix_index(11, source_id) "
         f"FROM {GS} WHERE source_id < {5 * 2**35}",
         lambda s: [(i + 1, (i + 1) // 4) for i in range(4)], index=None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_matches_numpy(sky_db, case):
    conn, sky = sky_db
    got, expected = run(conn, case.adql), case.expected(sky)
    assert len(expected) > 0 and len(got) == len(expected), (len(got), len(expected))
    if not case.ordered:
        key = lambda row: tuple((v is None, v) for v in row)  # noqa: E731
        got, expected = sorted(got, key=key), sorted(expected, key=key)
    for g_row, e_row in zip(got, expected):
        assert len(g_row) == len(e_row) and all(
            g == e if g is None or e is None else g == pytest.approx(e, rel=1e-6, abs=1e-9)
            for g, e in zip(g_row, e_row)), (g_row, e_row)
    if case.index:
        assert case.index in plan(conn, case.adql), plan(conn, case.adql)


def test_math_and_string_functions(sky_db):
    conn, sky = sky_db
    rows = run(conn, f"""
        SELECT source_id, ABS(dec), CEILING(ra), FLOOR(ra), DEGREES(RADIANS(ra)), EXP(dec / 90), LOG(ra + 1),
               LOG10(ra + 1), MOD(ra, 7), MOD(source_id, 7), POWER(dec, 2), SQRT(ra), ROUND(ra, 2), ROUND(ra),
               TRUNCATE(ra), TRUNCATE(-ra, 1), SIN(RADIANS(dec)), COS(RADIANS(dec)), TAN(RADIANS(dec) / 2),
               ASIN(dec / 90), ACOS(dec / 90), ATAN(dec), ATAN2(dec, ra), COT(RADIANS(ra) + 0.1), PI(),
               RAND(), RAND(7), 0x1F + 1, 2.5e1
        FROM {GS} WHERE source_id < {20 * 2**35} ORDER BY source_id""")
    assert len(rows) == 19
    for row, ra, dec, sid in zip(rows, sky.ra, sky.dec, sky.sid):
        expected = (int(sid), abs(dec), math.ceil(ra), math.floor(ra), ra, math.exp(dec / 90), math.log(ra + 1),
                    math.log10(ra + 1), math.fmod(ra, 7), int(sid) % 7, dec ** 2, math.sqrt(ra),
                    float(f"{ra:.2f}"), round(ra), math.trunc(ra), math.trunc(-ra * 10) / 10,
                    math.sin(math.radians(dec)), math.cos(math.radians(dec)), math.tan(math.radians(dec) / 2),
                    math.asin(dec / 90), math.acos(dec / 90), math.atan(dec), math.atan2(dec, ra),
                    1 / math.tan(math.radians(ra) + 0.1), math.pi)
        assert tuple(row[:25]) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert 0 <= row[25] < 1 and 0 <= row[26] < 1 and row[27] == 32 and row[28] == 25
    rows = run(conn, """
        SELECT LOWER(original_id), UPPER(catalog) || '-' || LOWER('ABC'), CAST(label_id AS VARCHAR(10)) || 'x',
               CAST(feh * 10 AS INTEGER), CAST('12' AS DOUBLE PRECISION) / 8, COALESCE(source_id, -1),
               label_id AS "Limit", label_id AS limit
        FROM reference_label WHERE original_id LIKE 'Star1_' AND label_id > 0 ORDER BY label_id""")
    assert [r[0] for r in rows] == [f"star{i}" for i in range(10, 20)]
    for row, i in zip(rows, range(10, 20)):
        assert row[1:] == ("TEST-abc", f"{i + 1}x", round(float(sky.feh[i]) * 10), 1.5,
                           sky.lsid[i] if sky.lsid[i] is not None else -1, i + 1, i + 1)


def test_strings_are_literals_not_sql(sky_db):
    conn, _ = sky_db
    for literal in ("'x'' OR ''1''=''1'", r"'\'' OR 1=1 --'", r"'a\\'"):
        assert run(conn, f"SELECT label_id FROM reference_label WHERE catalog = {literal}") == []
    assert run(conn, r"SELECT 'it''s', 'back\slash' FROM reference_label WHERE label_id = 1") == \
        [("it's", "back\\slash")]


def test_contains_either_side_of_equals(sky_db):
    conn, _ = sky_db
    point, circle = "POINT('ICRS', ra, dec)", "CIRCLE('ICRS', 270, 60, 8)"
    a = run(conn, f"SELECT source_id FROM gaia_source WHERE 1 = CONTAINS({point}, {circle})")
    b = run(conn, f"SELECT source_id FROM gaia_source WHERE CONTAINS({point}, {circle}) = 1")
    c = run(conn, f"SELECT source_id FROM gaia_source WHERE CONTAINS({point}, {circle}) = 0")
    assert sorted(a) == sorted(b) and len(a) > 10 and len(a) + len(c) == N_UNIFORM + N_WRAP + N_POLE
    sql = to_postgresql(f"SELECT source_id FROM gaia_source WHERE CONTAINS({point}, {circle}) = 1").sql
    assert "q3c_radial_query(ra, dec, 270, 60, 8)" in sql


def test_crossmatch_argument_order():
    sql = to_postgresql("SELECT * FROM a JOIN b ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), "
                        "CIRCLE('ICRS', b.ra, b.dec, 0.001))").sql
    assert "q3c_join(b.ra, b.dec, a.ra, a.dec, 0.001)" in sql
    sql = to_postgresql("SELECT * FROM t WHERE 1 = CONTAINS(POINT('ICRS', 10, 20), CIRCLE('ICRS', ra, dec, 1))").sql
    assert "q3c_radial_query(ra, dec, 10, 20, 1)" in sql


def test_max_rows_and_top(sky_db):
    conn, sky = sky_db
    q = "SELECT source_id FROM gaia_source"
    assert len(run(conn, q, max_rows=100)) == 101
    assert to_postgresql(q, max_rows=100).top is None
    t = to_postgresql("SELECT TOP 50 source_id FROM gaia_source", max_rows=100)
    assert t.top == 50 and len(conn.execute(t.sql).fetchall()) == 50
    t = to_postgresql("SELECT TOP 500 source_id FROM gaia_source ORDER BY source_id", max_rows=100)
    assert t.top == 500 and len(conn.execute(t.sql).fetchall()) == 101
    t = to_postgresql("SELECT TOP 100 source_id FROM gaia_source", max_rows=100)
    assert t.top == 100 and len(conn.execute(t.sql).fetchall()) == 100
    t = to_postgresql("SELECT TOP 3 source_id FROM gaia_source")
    assert t.top == 3 and len(conn.execute(t.sql).fetchall()) == 3
    union = ("SELECT source_id FROM gaia_source WHERE dec > 0 UNION "
             "SELECT TOP 2 source_id FROM gaia_source WHERE dec < 0")
    assert len(run(conn, union, max_rows=10)) == 11
    assert len(run(conn, union)) == int(np.sum(sky.dec > 0)) + 2


def test_long_and_nested_conditions(sky_db):
    conn, sky = sky_db
    chain = " AND ".join(f"source_id <> {i}" for i in range(200))
    assert len(run(conn, f"SELECT source_id FROM gaia_source WHERE dec > 0 AND {chain}")) == int(np.sum(sky.dec > 0))
    nested = "(" * 6 + "dec" + ")" * 6
    assert len(run(conn, f"SELECT source_id FROM gaia_source WHERE {nested} > 0")) == int(np.sum(sky.dec > 0))
    with pytest.raises(ADQLError, match="nest") as err:
        to_postgresql("SELECT " + "(" * 1000 + "ra" + ")" * 1000 + " FROM gaia_source")
    assert (err.value.line, err.value.column) == (1, 48)


@pytest.mark.parametrize("adql, line, column", [
    ("SELECT ra FROM FROM gaia_source", 1, 16),
    ("SELECT ra,\n       dec\nFROM gaia_source\nWHERE dec >< 3", 4, 12),
    ("SELECT source_id FROM gaia_source WHERE", 1, 40),
    ("SELECT TOP 10 ra FROM gaia_source WHERE ra ! 3", 1, 44),
    ("SELECT ra FROM gaia_source WHERE name = 'open", 1, 41),
])
def test_syntax_error_position(adql, line, column):
    with pytest.raises(ADQLError) as err:
        to_postgresql(adql)
    assert (err.value.line, err.value.column) == (line, column)
    assert f"line {line}, column {column}" in str(err.value)


@pytest.mark.parametrize("adql", [
    "INSERT INTO gaia_source (source_id) VALUES (1)",
    "UPDATE gaia_source SET ra = 0",
    "DELETE FROM gaia_source",
    "DROP TABLE gaia_source",
    "CREATE TABLE x (a int)",
    "SELECT ra FROM gaia_source; DROP TABLE gaia_source",
    "SELECT ra FROM gaia_source; SELECT dec FROM gaia_source;",
    "",
])
def test_only_one_select(adql):
    with pytest.raises(ADQLError):
        to_postgresql(adql)


@pytest.mark.parametrize("adql, words", [
    ("SELECT POINT('ICRS', ra, dec) FROM gaia_source", "POINT is only supported"),
    ("SELECT ra FROM gaia_source WHERE 2 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 3))", "0 or 1"),
    ("SELECT ra FROM gaia_source WHERE 1 = CONTAINS(POINT('GALACTIC', l, b), CIRCLE('', 1, 2, 3))", "GALACTIC"),
    ("SELECT ra FROM gaia_source WHERE 1 = CONTAINS(CIRCLE('', 1, 2, 3), CIRCLE('', 1, 2, 3))", "POINT"),
    ("SELECT pg_sleep(10) FROM gaia_source", "unknown function PG_SLEEP"),
    ("SELECT CAST(ra AS TEXT) FROM gaia_source", "CAST"),
    ("SELECT AREA(CIRCLE('ICRS', 1, 2, 3)) FROM gaia_source", "AREA"),
])
def test_unsupported_is_an_adql_error(adql, words):
    with pytest.raises(ADQLError, match=words) as err:
        to_postgresql(adql)
    assert err.value.line == 1 and err.value.column is not None
