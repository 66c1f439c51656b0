"""Features computed from the database, stored per preprocessing version, and the selection views."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import real_path
from xpdb.cli.main import app
from xpdb.ingest.runs import ingest_file
from xpdb.xp.extinction import R_BP_RP, R_G
from xpdb.xp.features import FLAG_MISSING_BAND, FLAG_MISSING_EBV, Preprocessing, compute_features
from xpdb.xp.store import fetch_features, preprocessing_id


@pytest.mark.real_data
def test_features_command_stores_what_the_library_computes(db_url, conn, tmp_path):
    xp = real_path("gaiaxpy", "XP_CONTINUOUS_RAW_with_missing_BP.csv")
    ingest_file(db_url, "xp", xp)
    ids = [r[0] for r in conn.execute("SELECT DISTINCT source_id FROM xpdb.xp_band ORDER BY 1")]
    (tmp_path / "s.csv").write_text("source_id,ra,dec,phot_g_mean_mag,bp_rp,ebv\n"
                                    + "\n".join(f"{s},{10 + i},{-5 - i},12.0,1.1,{'' if i == 0 else 0.05}"
                                                for i, s in enumerate(ids)) + "\n")
    ingest_file(db_url, "sources", tmp_path / "s.csv")
    result = CliRunner().invoke(app, ["features"])
    assert result.exit_code == 0, result.output
    assert "3 sources processed" in result.output
    with conn.transaction():
        pid = preprocessing_id(conn, Preprocessing())
    stored = fetch_features(conn, ids, pid)
    direct = compute_features(xp, ebv=[np.nan if s == ids[0] else 0.05 for s in
                                        [int(x) for x in __import__("xpdb").xp.inputs.to_batch(xp).source_id.values]])
    order = [list(direct.source_id).index(s) for s in ids]
    np.testing.assert_array_equal(stored.flags, direct.flags[order])
    np.testing.assert_array_equal(stored.flux, direct.flux[order])
    assert stored.flags[0] & FLAG_MISSING_EBV
    missing_bp = ids.index(5405570973190252288)
    assert stored.flags[missing_bp] & FLAG_MISSING_BAND and np.isnan(stored.flux[missing_bp]).all()
    # a second run has nothing left to do
    again = CliRunner().invoke(app, ["features"])
    assert "0 sources processed" in again.output


def test_giant_sample_applies_each_cut(db_url, conn, tmp_path):
    """One star passes; each other star fails exactly one of the six cuts of section 2.3."""
    good = dict(ra=150.0, dec=40.0, b=50.0, g=12.0, bp_rp=1.2, excess=1.25, ebv=0.02, rgeo=2000.0)

    def row(sid, **change):
        v = {**good, **change}
        return (f"{sid},{v['ra']},{v['dec']},{v['b']},{v['g']},{v['bp_rp']},{v['excess']},{v['ebv']},"
                f"{v['rgeo']}")

    rows = [row(1), row(2, excess=1.6), row(3, bp_rp=0.6), row(4, g=16.0, rgeo=500.0),
            row(5, b=2.0, rgeo=20000.0), row(6, b=15.0), row(7, ebv=0.3), row(8, g=5.5, rgeo=150.0),
            row(9, bp_rp=2.3)]
    (tmp_path / "s.csv").write_text("source_id,ra,dec,b,phot_g_mean_mag,bp_rp,phot_bp_rp_excess_factor,ebv,"
                                    "r_med_geo\n" + "\n".join(rows) + "\n")
    ingest_file(db_url, "sources", tmp_path / "s.csv")
    got = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.giant_sample ORDER BY 1")]
    assert got == [1]
    domain = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.model_domain ORDER BY 1")]
    assert 3 not in domain and 9 not in domain and 1 in domain
    bp_rp0, g0, m_g, z = conn.execute("SELECT bp_rp0, g0, m_g, z_kpc FROM xpdb.source_photometry WHERE source_id = 1"
                                      ).fetchone()
    assert bp_rp0 == pytest.approx(1.2 - R_BP_RP * 0.02, abs=1e-6)
    assert g0 == pytest.approx(12.0 - R_G * 0.02, abs=1e-6)
    assert m_g == pytest.approx(12.0 - R_G * 0.02 - 5 * np.log10(200), abs=1e-5)
    assert z == pytest.approx(2.0 * np.sin(np.radians(50)), abs=1e-6)
