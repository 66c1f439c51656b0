"""Cone search, read-only safety, the SQL views on a hand-made fixture, and streamed exports."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from typer.testing import CliRunner

from tests.conftest import real_path
from xpdb.cli.main import app
from xpdb.ingest.runs import ingest_file
from xpdb.errors import QueryError
from xpdb.models.evaluate import clipped_gaussian_fit, gaussian_fit
from xpdb.query.cone import cone, parse_position, parse_radius
from xpdb.query.export import export_catalog


@pytest.mark.real_data
def test_cone_on_ngc5904_returns_exactly_the_members_within_the_radius(db_url, conn):
    path = real_path("clusters", "NGC5904_gc_detector.ecsv")
    ingest_file(db_url, "sources", path, options={"map": {"phot_g_mean_mag": "g"}})
    members = Table.read(path)
    ra, dec = parse_position("15:18:33.22", "+02:04:51.7")  # NGC 5904, Harris (2010)
    radius = parse_radius("6arcmin")
    result = cone(ra, dec, radius, max_rows=100000)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    sep = centre.separation(SkyCoord(members["ra"], members["dec"], unit="deg"))
    expected = set(int(s) for s in members["source_id"][sep <= radius * u.deg])
    got = [r[0] for r in result.rows]
    assert set(got) == expected and len(got) == len(expected) > 500
    dists = [r[-1] for r in result.rows]
    assert dists == sorted(dists)  # nearest first
    np.testing.assert_allclose(sorted(dists), np.sort(sep[sep <= radius * u.deg].arcsec), atol=1e-6)
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT * FROM xpdb.source_photometry s WHERE q3c_radial_query(s.ra, s.dec, 229.6, 2.08, 0.1)"))
    assert "gaia_source_q3c_idx" in plan


def test_radius_and_position_parsing():
    assert parse_radius("10.5arcmin") == pytest.approx(10.5 / 60)
    assert parse_radius("30arcsec") == pytest.approx(30 / 3600)
    assert parse_radius("0.2") == pytest.approx(0.2)
    ra, dec = parse_position("10h00m00s", "-30d00m00s")
    assert ra == pytest.approx(150.0) and dec == pytest.approx(-30.0)


@pytest.mark.parametrize("ra, dec, radius", [("nan", "10", "1"), ("10", "nan", "1"), ("10", "10", "nan"),
                                             ("10", "10", "inf"), ("10", "10", "0")])
def test_positions_and_radii_that_are_not_finite_are_refused(ra, dec, radius):
    """Found by bench/security_probe.py: ``xpdb cone nan 10 1`` answered with an empty table."""
    with pytest.raises(QueryError, match="not a finite|radius must be in"):
        parse_position(ra, dec)
        parse_radius(radius)


@pytest.fixture
def few_sources(db_url, conn, tmp_path):
    rng = np.random.default_rng(4)
    n = 200
    lines = ["source_id,ra,dec,phot_g_mean_mag,bp_rp,ebv,phot_bp_rp_excess_factor,r_med_geo"]
    for i in range(n):
        lines.append(f"{1000 + i},{rng.uniform(200, 201)},{rng.uniform(40, 41)},{rng.uniform(9, 16):.3f},"
                     f"{rng.uniform(0.9, 1.6):.3f},{rng.uniform(0.01, 0.1):.3f},1.25,{rng.uniform(1000, 5000):.1f}")
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    ingest_file(db_url, "sources", tmp_path / "s.csv")
    return n


def test_writes_through_query_fail_and_change_nothing(few_sources, conn):
    runner = CliRunner()
    before = conn.execute("SELECT count(*), sum(phot_g_mean_mag) FROM xpdb.gaia_source").fetchone()
    attempts = [
        ["query", "INSERT INTO xpdb.gaia_source (source_id, ra, dec) VALUES (1, 1, 1)"],
        ["query", "--sql", "INSERT INTO xpdb.gaia_source (source_id, ra, dec) VALUES (1, 1, 1)"],
        ["query", "--sql", "UPDATE xpdb.gaia_source SET phot_g_mean_mag = 0"],
        ["query", "--sql", "DELETE FROM xpdb.gaia_source"],
        ["query", "--sql", "DROP TABLE xpdb.gaia_source"],
        ["query", "--sql", "SELECT 1; DELETE FROM xpdb.gaia_source"],
        ["query", "--sql", "SELECT set_config('role', 'xpdb', false)"],
        ["query", "--sql", "SELECT lo_import('/etc/passwd')"],
        ["query", "--sql", "SELECT nextval('xpdb.ingest_run_run_id_seq')"],
        ["query", "--sql", "SELECT pg_terminate_backend(pg_backend_pid())"],
    ]
    for args in attempts:
        result = runner.invoke(app, args)
        assert result.exit_code != 0, (args, result.output)
        assert "error" in result.output.lower(), (args, result.output)
    after = conn.execute("SELECT count(*), sum(phot_g_mean_mag) FROM xpdb.gaia_source").fetchone()
    assert before == after


def test_timeout_and_overflow(few_sources):
    runner = CliRunner()
    slow = runner.invoke(app, ["query", "--sql", "--timeout", "0.3", "SELECT pg_sleep(3)"])
    assert slow.exit_code == 1 and "timeout" in slow.output
    over = runner.invoke(app, ["query", "--sql", "--limit", "5", "--format", "csv", "SELECT source_id FROM gaia_source"])
    assert over.exit_code == 0 and "overflow" in over.output
    assert len([line for line in over.output.splitlines() if line.strip().isdigit()]) == 5


def _hand_made_predictions(conn, n_sources: int):
    """A model and predictions with known residuals against two catalogues and one cluster."""
    rng = np.random.default_rng(9)
    conn.execute("INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact) "
                 "VALUES ('uacsnet', 'hand', 1, '{}', '\\x00')")
    mid = conn.execute("SELECT model_id FROM xpdb.model WHERE name = 'hand'").fetchone()[0]
    ids = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.gaia_source ORDER BY 1")]
    feh = rng.normal(-1, 0.8, len(ids))
    with conn.cursor().copy("COPY xpdb.prediction (model_id, source_id, feh, feh_err, flags) FROM STDIN") as cp:
        for sid, f in zip(ids, feh):
            cp.write_row((mid, sid, float(f), 0.1, 0))
    conn.execute("INSERT INTO xpdb.reference_catalog (name) VALUES ('HAND-A'), ('Hand B')")
    delta_a = rng.normal(0.05, 0.2, 150)
    with conn.cursor().copy("COPY xpdb.reference_label (catalog, source_id, feh) FROM STDIN") as cp:
        for sid, f, d in zip(ids[:150], feh[:150], delta_a):
            cp.write_row(("HAND-A", sid, float(np.float32(f) - d)))
        for sid, f in zip(ids[150:160], feh[150:160]):
            cp.write_row(("Hand B", sid, float(f)))
    conn.execute("INSERT INTO xpdb.cluster (name, feh_ref) VALUES ('TOY', -1.0)")
    cluster_feh = np.concatenate([rng.normal(-1.1, 0.1, 40), [2.0]])  # one far outlier to clip
    conn.execute("UPDATE xpdb.prediction SET feh = v.f FROM (SELECT unnest(%s::bigint[]) AS s, "
                 "unnest(%s::real[]) AS f) AS v WHERE source_id = v.s", (ids[:41], cluster_feh.tolist()))
    with conn.cursor().copy("COPY xpdb.cluster_member (cluster, source_id, membership_probability) FROM STDIN") as cp:
        for i, sid in enumerate(ids[:41]):
            cp.write_row(("TOY", sid, 0.3 if i == 5 else 0.9))  # one improbable member: kept but not counted
    conn.execute("SELECT xpdb.refresh_xm_views()")
    return mid, ids, cluster_feh


def _in_selection(conn, ids, name: str) -> set[int]:
    """The ids that pass a selection of xpdb.selection, evaluated here on source_photometry (not by the views)."""
    from xpdb import selection

    return {r[0] for r in conn.execute(f"SELECT source_id FROM xpdb.source_photometry WHERE source_id = ANY(%s) "
                                       f"AND {selection.get(name).where()}", (list(ids),))}


def test_views_return_the_right_numbers(few_sources, conn):
    assert conn.execute("SELECT count(*) FROM xpdb.catalog").fetchone()[0] == 0  # empty before predictions
    assert conn.execute("SELECT count(*) FROM xpdb.validation_summary").fetchone()[0] == 0
    mid, ids, cluster_feh = _hand_made_predictions(conn, few_sources)
    assert conn.execute("SELECT count(*) FROM xpdb.catalog").fetchone()[0] == len(ids)
    views = {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'xpdb'")}
    assert {"xm_hand_a", "xm_hand_b"} <= views  # made by the function, no hand-written SQL
    rows = conn.execute("SELECT source_id, delta_feh, feh, feh_ref, phot_g_mean_mag FROM xpdb.xm_hand_a").fetchall()
    assert len(rows) == 150 and all(abs(d - (f - r)) < 1e-6 for _, d, f, r, _ in rows)
    # HAND-A is a survey by name: the first three cuts and E(B-V) < 0.5, evaluated on the live photometry
    scope = _in_selection(conn, [r[0] for r in rows], "survey_validation")
    assert 50 < len(scope) < 150
    for where, scope_name in (("true", "all"), ("g < 15", "g<15")):
        deltas = np.array([d for s, d, _, _, g in sorted(rows) if s in scope and (scope_name == "all" or g < 15)])
        n, bias, sigma, method, selection, cuts = conn.execute(
            "SELECT n, bias, sigma, method, selection, cuts FROM xpdb.validation_summary WHERE catalog = 'HAND-A' "
            "AND scope = %s AND subset = 'all'", (scope_name,)).fetchone()
        expected = gaussian_fit(deltas)
        assert n == len(deltas) and method == expected["method"]
        assert bias == pytest.approx(expected["bias"], abs=1e-6) and sigma == pytest.approx(expected["sigma"], abs=1e-6)
        assert (selection, cuts) == ("survey_validation", "cuts 1-3 of section 2.3 and E(B-V) < 0.5")
    assert bias == pytest.approx(0.05, abs=0.08) and sigma == pytest.approx(0.2, abs=0.08)
    # one row set per catalogue, each with its catalogue's cuts; a catalogue re-scoped to the six cuts
    conn.execute("UPDATE xpdb.reference_catalog SET validation_selection = 'giant_sample' WHERE name = 'HAND-A'")
    six = _in_selection(conn, [r[0] for r in rows], "giant_sample")
    n, selection = conn.execute("SELECT n, selection FROM xpdb.validation_summary WHERE catalog = 'HAND-A' "
                                "AND scope = 'all' AND subset = 'all'").fetchone()
    assert (n, selection) == (len(six), "giant_sample") and six <= scope
    sets = conn.execute("SELECT catalog, count(DISTINCT selection), count(DISTINCT scope) FROM xpdb.validation_summary "
                        "GROUP BY catalog ORDER BY catalog").fetchall()
    assert [s[1] for s in sets] == [1, 1]
    small = conn.execute("SELECT n, method FROM xpdb.validation_summary WHERE catalog = 'Hand B' "
                         "AND scope = 'all' AND subset = 'all'").fetchone()
    hand_b = _in_selection(conn, ids[150:160], "survey_validation")
    assert small == (len(hand_b), "robust")  # too few for a fit
    # the cluster: members that pass the first three cuts and the probability cut, a clipped Gaussian fit
    n_members, n_selected, n, clipped, mean, sigma, method, ref, paper = conn.execute(
        "SELECT n_members, n_selected, n, n_clipped, feh_mean, feh_sigma, method, feh_ref, feh_paper "
        "FROM xpdb.cluster_summary WHERE cluster = 'TOY'").fetchone()
    sample = _in_selection(conn, ids[:41], "final_sample") - {ids[5]}
    values = [float(np.float32(f)) for sid, f in zip(ids[:41], cluster_feh) if sid in sample]
    expected = clipped_gaussian_fit(values)
    assert n_members == 41 and n_selected == len(values) and ref == -1.0 and paper is None
    assert (n, clipped, method) == (expected["n"], expected["n_clipped"], expected["method"])
    assert mean == pytest.approx(expected["mean"], abs=1e-9) and sigma == pytest.approx(expected["sigma"], abs=1e-9)
    if ids[40] in sample:  # the far outlier is clipped
        assert clipped >= 1


def test_sql_gaussian_fit_equals_python(conn):
    rng = np.random.default_rng(1)
    for data in (rng.normal(0.1, 0.3, 500), rng.standard_t(3, 800) * 0.2, rng.normal(0, 1, 25)):
        sql = conn.execute("SELECT (s).n, (s).bias, (s).sigma, (s).method FROM "
                           "(SELECT xpdb.gaussian_fit(%s::double precision[]) AS s) x", (data.tolist(),)).fetchone()
        py = gaussian_fit(data)
        assert sql[0] == py["n"] and sql[3] == py["method"]
        assert sql[1] == pytest.approx(py["bias"], abs=1e-6) and sql[2] == pytest.approx(py["sigma"], abs=1e-6)


def test_sql_clipped_gaussian_fit_equals_python(conn):
    """Figure 9's statistic: the SQL function of cluster_summary and xpdb.models.evaluate agree on the same data."""
    rng = np.random.default_rng(7)
    cases = [rng.normal(-1.2, 0.15, 30),                                            # few: maximum likelihood
             np.r_[rng.normal(-1.2, 0.15, 30), [0.5, 0.8, -3.5]],                    # few, with field stars
             np.r_[rng.normal(0.3, 0.1, 200), rng.normal(-0.8, 0.5, 25)],           # many, with contamination
             np.r_[rng.normal(-2.0, 0.2, 80), [np.nan, np.inf]],                     # non-finite values ignored
             rng.standard_t(2, 400) * 0.1, np.array([0.1]), np.array([0.2, 0.2, 0.2]), np.array([])]
    for data in cases:
        data = data.astype(np.float32).astype(float)
        sql = conn.execute("SELECT (f).n, (f).n_clipped, (f).mean, (f).sigma, (f).method FROM "
                           "(SELECT xpdb.clipped_gaussian_fit(%s::double precision[]) AS f) x",
                           ([None if not np.isfinite(v) and np.isnan(v) else float(v) for v in data],)).fetchone()
        py = clipped_gaussian_fit(data)
        assert (sql[0], sql[1], sql[4]) == (py["n"], py["n_clipped"], py["method"]), data[:5]
        if py["mean"] is None:
            assert sql[2] is None
        else:
            # equal to the fits' convergence (scipy's curve_fit stops at a relative cost change of 1.5e-8)
            assert sql[2] == pytest.approx(py["mean"], abs=1e-5) and sql[3] == pytest.approx(py["sigma"], abs=1e-5)
    assert clipped_gaussian_fit(cases[1])["n_clipped"] >= 2 and clipped_gaussian_fit(cases[2])["method"] == "gaussian fit"


@pytest.mark.parametrize("fmt", ["fits", "parquet", "csv", "votable"])
def test_export_streams_every_format_with_units(few_sources, db_url, conn, tmp_path, fmt):
    mid, ids, _ = _hand_made_predictions(conn, few_sources)
    out = tmp_path / f"catalog.{fmt}"
    n = export_catalog(db_url, mid, fmt, out, chunk_rows=37, info={"model": "hand:1"})  # several chunks
    assert n == len(ids)
    if fmt == "csv":
        table = Table.read(out, format="ascii.csv", comment="#")
        assert "# FEH []: [Fe/H] from UA-CSNet [dex]" in out.read_text()
    else:
        table = Table.read(out, format={"fits": "fits", "parquet": "parquet", "votable": "votable"}[fmt])
    assert len(table) == len(ids)
    assert table.colnames[:13] == ["source_id", "gl", "gb", "ra", "dec", "phot_bp_rp_excess_factor", "BP_RP0",
                                   "PHOT_G_MEAN_MAG", "M_G", "EBV", "rgeo", "FEH", "FEH_err"]
    expected = dict(conn.execute("SELECT source_id, feh FROM xpdb.catalog_all WHERE model_id = %s", (mid,)).fetchall())
    got = dict(zip(np.asarray(table["source_id"]).tolist(), np.asarray(table["FEH"], dtype=float).tolist()))
    assert all(abs(got[k] - v) < 1e-6 for k, v in expected.items())
    if fmt in ("fits", "votable"):
        assert str(table["ra"].unit) == "deg" and str(table["PHOT_G_MEAN_MAG"].unit) == "mag"
    if fmt == "votable":
        assert "UA-CSNet" in table["FEH"].description
    if fmt == "fits":
        from astropy.io import fits

        header = fits.getheader(out, 1)
        assert "UA-CSNet" in header["TCOMM12"] and header["TTYPE12"] == "FEH"
    if fmt == "parquet":
        import pyarrow.parquet as pq

        field = pq.read_schema(out).field("FEH")
        assert b"UA-CSNet" in field.metadata[b"description"]
