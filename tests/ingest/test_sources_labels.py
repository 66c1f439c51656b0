"""gaia_source, reference labels and cluster members: column mapping, matching and q3c."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from tests.conftest import real_path
from xpdb.ingest.labels import ingest_labels, ingest_members
from xpdb.ingest.runs import ingest_file


@pytest.fixture
def m5_sources(db_url, conn):
    path = real_path("clusters", "NGC5904_gc_detector.ecsv")
    report = ingest_file(db_url, "sources", path, options={"map": {"phot_g_mean_mag": "g"}})
    assert report.rows_rejected == 0
    return Table.read(path)


def test_sources_with_mapping_and_derived_columns(m5_sources, conn):
    n, g_null, l_null = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE phot_g_mean_mag IS NULL), count(*) FILTER (WHERE l IS NULL) "
        "FROM xpdb.gaia_source").fetchone()
    assert n == len(m5_sources) and l_null == 0
    assert g_null == int(np.sum(~np.isfinite(np.asarray(m5_sources["g"], dtype=float))))
    sid = int(m5_sources["source_id"][5])
    ra, g, bp_rp = conn.execute("SELECT ra, phot_g_mean_mag, bp_rp FROM xpdb.gaia_source WHERE source_id = %s",
                                (sid,)).fetchone()
    assert ra == m5_sources["ra"][5] and np.float32(g) == np.float32(m5_sources["g"][5])
    assert np.float32(bp_rp) == np.float32(m5_sources["bp_rp"][5])


def test_cone_uses_q3c_index(m5_sources, conn):
    """q3c_radial_query returns exactly the sources within the radius, through the index."""
    centre = SkyCoord(229.638417 * u.deg, 2.081028 * u.deg)  # NGC 5904 (Harris 2010)
    radius = 0.1
    got = {r[0] for r in conn.execute(
        "SELECT source_id FROM xpdb.gaia_source WHERE q3c_radial_query(ra, dec, %s, %s, %s)",
        (centre.ra.deg, centre.dec.deg, radius))}
    sep = centre.separation(SkyCoord(m5_sources["ra"], m5_sources["dec"], unit="deg")).deg
    expected = {int(s) for s in m5_sources["source_id"][sep <= radius]}
    assert got == expected and len(expected) > 100
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT source_id FROM xpdb.gaia_source WHERE q3c_radial_query(ra, dec, 229.6, 2.08, 0.1)"))
    assert "gaia_source_q3c_idx" in plan, plan


def test_sources_rejects_absurd_positions(db_url, conn, tmp_path):
    (tmp_path / "s.csv").write_text("source_id,ra,dec,phot_g_mean_mag\n1,10,20,12\n2,400,20,12\n3,10,-95,12\n"
                                    "4,10,20,99\n,10,20,12\n1,11,21,13\n")
    report = ingest_file(db_url, "sources", tmp_path / "s.csv")
    assert report.rows_loaded == 1 and report.rows_rejected == 5
    reasons = dict(conn.execute("SELECT row_number, column_name FROM xpdb.ingest_reject").fetchall())
    assert reasons == {2: "ra", 3: "dec", 4: "phot_g_mean_mag", 5: "source_id", 6: "source_id"}


def test_labels_by_position_and_by_source_id(m5_sources, db_url, conn, tmp_path):
    ra, dec = np.asarray(m5_sources["ra"][:5]), np.asarray(m5_sources["dec"][:5])
    offset = 0.5 / 3600  # 0.5 arcsec north
    lines = ["RA_deg,DEC_deg,FE_H,FE_H_ERR,TEFF,APOGEE_ID"]
    for i in range(4):
        lines.append(f"{ra[i]:.9f},{dec[i] + offset:.9f},-1.2{i},0.1,4800,star{i}")
    lines.append(f"{ra[0]:.9f},{dec[0] + 0.2 / 3600:.9f},-1.30,0.1,4800,closer")  # same source, closer
    lines.append("10.0,10.0,-1.0,0.1,4800,nomatch")  # no Gaia source nearby
    lines.append(f"{ra[4]:.9f},{dec[4]:.9f},9.0,0.1,4800,absurd")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    report = ingest_labels(db_url, tmp_path / "labels.csv", catalog="TESTCAT",
                           mapping={"ra": "RA_deg", "dec": "DEC_deg"}, radius_arcsec=1.0)
    assert report.rows_loaded == 5 and report.rows_rejected == 2
    rows = conn.execute("SELECT original_id, source_id, feh, round(match_sep_arcsec::numeric, 1) "
                        "FROM xpdb.reference_label WHERE catalog = 'TESTCAT' ORDER BY original_id").fetchall()
    got = {r[0]: r for r in rows}
    assert got["closer"][1] == int(m5_sources["source_id"][0]) and float(got["closer"][3]) == pytest.approx(0.2)
    assert "star0" not in got  # the farther duplicate is rejected
    assert got["star1"][1] == int(m5_sources["source_id"][1])
    assert got["nomatch"][1] is None
    reasons = [r[0] for r in conn.execute("SELECT reason FROM xpdb.ingest_reject ORDER BY row_number")]
    assert any("same source_id" in r for r in reasons) and any("absurd value: feh" in r for r in reasons)
    again = ingest_labels(db_url, tmp_path / "labels.csv", catalog="TESTCAT",
                          mapping={"ra": "RA_deg", "dec": "DEC_deg"})
    assert again.status == "no-op"
    # by source_id, into another catalogue
    sid = int(m5_sources["source_id"][2])
    (tmp_path / "byid.csv").write_text(f"source_id,feh,feh_err\n{sid},-2.5,0.2\n")
    assert ingest_labels(db_url, tmp_path / "byid.csv", catalog="OTHER").rows_loaded == 1
    pos = conn.execute("SELECT ra FROM xpdb.reference_label WHERE catalog = 'OTHER'").fetchone()[0]
    assert pos == pytest.approx(float(m5_sources["ra"][2]))


def test_members_filtered_by_cluster_and_galactic_positions(m5_sources, db_url, conn, tmp_path):
    sel = m5_sources[:3]
    c = SkyCoord(sel["ra"], sel["dec"], unit="deg").galactic
    lines = ["CLUSTER,GLON,GLAT,PM_PROB"]
    lines += [f"NGC 5904,{c.l.deg[i]:.10f},{c.b.deg[i]:.10f},0.9" for i in range(3)]
    lines.append("NGC 6791,70.0,11.0,0.9")
    (tmp_path / "members.csv").write_text("\n".join(lines) + "\n")
    report = ingest_members(db_url, tmp_path / "members.csv", cluster="NGC5904", feh_ref=-1.18,
                            mapping={"membership_probability": "PM_PROB"})
    assert report.rows_loaded == 3 and report.rows_rejected == 0
    got = sorted(r[0] for r in conn.execute("SELECT source_id FROM xpdb.cluster_member WHERE cluster = 'NGC5904'"))
    assert got == sorted(int(s) for s in sel["source_id"])
    assert conn.execute("SELECT feh_ref FROM xpdb.cluster WHERE name = 'NGC5904'").fetchone()[0] == pytest.approx(-1.18)


def test_real_member_list_by_source_id(db_url, conn):
    path = real_path("clusters", "NGC5904_gc_detector.ecsv")
    report = ingest_members(db_url, path, cluster="NGC 5904", min_probability=0.5)
    probs = np.asarray(Table.read(path)["gmm_mem_prob"])
    assert report.rows_loaded == int(np.sum(probs >= 0.5))
    assert conn.execute("SELECT min(membership_probability) FROM xpdb.cluster_member").fetchone()[0] >= 0.5
