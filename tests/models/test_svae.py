"""The scatter VAE: its loss against numpy, artifact round trips, and the database path on real stars.

The database tests use a slice of the real APOGEE x Gaia XP library (sampled spectra) and
the real 2,000-star XP_CONTINUOUS chunk (coefficients, no photometry: G synthesised from
the spectra); they skip with a message when either is absent.
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from tests.conftest import real_path
from tests.models.test_real_stars import library_file
from xpdb.models import pca as pca_mod
from xpdb.models import svae


def _data(n=300, d=24, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    x = np.tanh(latent @ rng.normal(size=(3, d))) + 1.5
    err = np.full((n, d), 0.02) * rng.uniform(0.5, 2.0, size=(n, 1))
    return x + rng.normal(size=x.shape) * err, err


def test_loss_terms_equal_a_direct_numpy_computation():
    rng = np.random.default_rng(3)
    x, err = rng.normal(size=(7, 11)), rng.uniform(0.01, 0.5, (7, 11))
    x_hat, s_hat = rng.normal(size=(7, 11)), rng.uniform(0, 1, (7, 11))
    mu, log_var = rng.normal(size=(7, 6)), rng.normal(size=(7, 6))
    nll, kl = (np.asarray(t) for t in svae.loss_terms(*(a.astype(np.float32) for a in (x, err, x_hat, s_hat, mu,
                                                                                        log_var))))
    w = err ** 2 + s_hat ** 2 + 1e-8
    direct_nll = np.array([sum(0.5 * (x[i, j] - x_hat[i, j]) ** 2 / w[i, j] + 0.5 * np.log(w[i, j])
                               for j in range(11)) for i in range(7)])
    direct_kl = np.array([sum(0.5 * (mu[i, j] ** 2 + np.exp(log_var[i, j]) - 1 - log_var[i, j]) for j in range(6))
                          for i in range(7)])
    np.testing.assert_allclose(nll, direct_nll, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(kl, direct_kl, rtol=1e-5, atol=1e-5)
    ref_nll, ref_kl = svae.loss_terms_numpy(x, err, x_hat, s_hat, mu, log_var)
    np.testing.assert_allclose(ref_nll, direct_nll, rtol=1e-12)
    np.testing.assert_allclose(ref_kl, direct_kl, rtol=1e-12)


def test_training_loss_is_the_batch_mean_of_nll_plus_kl():
    x, err = _data()
    result = svae.train(x, err, svae.SVAEConfig(epochs=2, batch_size=64, validation_fraction=0.0))
    model = result.model
    xs, es = model.standardiser.apply(x, err)
    out = svae.evaluate_stars(model, xs, es)  # its own float32 arithmetic, against the float64 reference
    ref_nll, ref_kl = svae.loss_terms_numpy(xs, es, out["x_hat"], out["s_hat"], out["mu"], out["log_var"])
    np.testing.assert_allclose(out["nll"], ref_nll, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out["kl"], ref_kl, rtol=1e-6, atol=1e-9)
    y_pred = model.network((xs, es), training=False)
    loss = float(model.network.compute_loss(x=(xs, es), y_pred=y_pred))
    f = model.forward(xs)
    nll, kl = svae.loss_terms_numpy(xs, es, f["x_hat"], f["s_hat"], f["mu"], f["log_var"])
    assert loss == pytest.approx(float(np.mean(nll) + np.mean(kl)), rel=1e-4)
    assert np.all(f["s_hat"] > 0) and np.all(f["s_hat"] < 1)  # sigmoid scatter, standardised units


def test_model_and_baseline_round_trip_through_bytes():
    x, err = _data(seed=1)
    config = svae.SVAEConfig(epochs=3, batch_size=64, representation="coefficients")
    model = svae.train(x, err, config, inputs={"representation": "coefficients", "n_pixels": 24}).model
    back = svae.from_bytes(svae.to_bytes(model))
    assert back.config == model.config and back.inputs == model.inputs
    xs, es = model.standardiser.apply(x, err)
    for key, values in model.forward(xs).items():
        np.testing.assert_array_equal(back.forward(xs)[key], values)
    base = pca_mod.fit_pca(x, err, components=6, config={"representation": "coefficients"})
    _numpy_network_equals_keras(model, xs)
    again = pca_mod.PCABaseline.from_bytes(base.to_bytes())
    np.testing.assert_array_equal(again.components, base.components)
    np.testing.assert_array_equal(again.scatter, base.scatter)
    with pytest.raises(ValueError):
        svae.from_bytes(base.to_bytes())
    with pytest.raises(ValueError):
        pca_mod.PCABaseline.from_bytes(svae.to_bytes(model))


def _numpy_network_equals_keras(model, xs):
    light = svae.from_bytes(svae.to_bytes(model), keras_network=False)
    assert isinstance(light.network, svae.NumpyNetwork)
    heavy, fast = model.forward(xs), light.forward(xs)
    for key, values in heavy.items():
        np.testing.assert_allclose(fast[key], values, rtol=2e-4, atol=2e-5, err_msg=key)


def test_numpy_network_equals_keras_with_batch_norm():
    """The authors' code architecture (BatchNorm, five layers): BN folded into the Dense layers."""
    x, err = _data(seed=2)
    config = svae.SVAEConfig(epochs=3, batch_size=64, hidden=(90, 70, 50, 30, 10), batch_norm=True)
    model = svae.train(x, err, config).model
    _numpy_network_equals_keras(model, model.standardiser.apply(x, err)[0])


def test_population_scatter_is_the_maximum_likelihood_value():
    rng = np.random.default_rng(5)
    err = rng.uniform(0.5, 1.5, size=(20000, 3))
    true = np.array([0.0, 0.7, 2.0])
    r = rng.normal(size=err.shape) * np.sqrt(err ** 2 + true ** 2)
    s = pca_mod.population_scatter(r, err)
    assert s[0] < 0.15 and s[1] == pytest.approx(0.7, abs=0.06) and s[2] == pytest.approx(2.0, rel=0.05)


def test_anomaly_score_is_the_chi_square_tail_probability():
    from scipy.stats import chi2

    from scipy.stats import norm

    out = {"chi2_red_scatter": np.array([1.0, 2.0, 50.0]), "chi2_red": np.array([1.0, 2.0, 50.0]),
           "nll": np.zeros(3), "kl": np.zeros(3), "max_abs_residual": np.array([2.0, 6.0, 60.0])}
    all_scores = svae.anomaly_scores(out, 100)
    scores = all_scores["score_chi2_scatter_p"]
    np.testing.assert_allclose(scores[:2], -np.log10(chi2.sf([100.0, 200.0], 100)), rtol=1e-6)
    assert np.isfinite(scores[2]) and scores[2] > scores[1] > scores[0]  # no underflow to inf in the far tail
    # the largest of 100 unit-Gaussian residuals: P(max |R| > m) = 1 - (1 - P(|R| > m))^100
    biggest = all_scores["score_max_residual_p"]
    np.testing.assert_allclose(biggest[:2], -np.log10(1 - (1 - 2 * norm.sf([2.0, 6.0])) ** 100), rtol=1e-6)
    assert np.isfinite(biggest[2]) and biggest[2] > 700
    np.testing.assert_array_equal(all_scores["score_combined"], np.maximum(scores, biggest))


# -- the database path on real stars -----------------------------------------------------------------
@pytest.fixture(scope="module")
def svae_slice(tmp_path_factory):
    """800 rows of the real library, chosen at random."""
    from astropy.io import fits

    with fits.open(library_file()) as hdul:
        data = hdul[1].data
        rows = np.sort(np.random.default_rng(17).choice(len(data), 800, replace=False))
        hdu = fits.BinTableHDU(data=data[rows], header=hdul[1].header)
    path = tmp_path_factory.mktemp("svae") / "apogee_svae_slice.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


@pytest.mark.slow
def test_sampled_model_trains_infers_ranks_and_finds_neighbours(db_url, svae_slice):
    import xpdb

    from typer.testing import CliRunner

    from xpdb.cli.main import app

    db = xpdb.connect(db_url)
    db.ingest("apogee_library", svae_slice)
    cli = CliRunner()
    trained = cli.invoke(app, ["train", "svae", "--epochs", "4", "--set", "batch_size=128"])
    assert trained.exit_code == 0, trained.output
    assert "svae:1" in trained.output and "svae-pca:1" in trained.output  # the model and its stored baseline
    model = db.model("svae")
    m = model.metrics
    assert m["training"]["epochs"] == 4 and model.hyperparameters["batch_size"] == 128
    shown = cli.invoke(app, ["models", "show", "svae"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "sVAE vs PCA" in shown.output and "|residual| > 5 sigma, errors + scatter" in shown.output  # side by side
    assert model.kind == "svae" and m["representation"] == "sampled" and m["split"].startswith("fixed")
    with psycopg.connect(db_url) as conn:
        n_train, n_test = conn.execute("""SELECT count(*) FILTER (WHERE xpdb.split_of(source_id) = 'train'),
                                                 count(*) FILTER (WHERE xpdb.split_of(source_id) = 'test')
                                          FROM xpdb.xp_sampled""").fetchone()
        kinds = dict(conn.execute("SELECT name, kind FROM xpdb.model").fetchall())
    assert m["training"]["n"] == n_train and m["evaluation"]["n"] == n_test > 50
    assert 0 <= m["evaluation"]["frac_beyond_5sigma_scatter"] <= m["evaluation"]["frac_beyond_5sigma_errors"]
    assert m["baseline_pca"]["evaluation"]["n"] == n_test and kinds == {"svae": "svae", "svae-pca": "xp_pca"}
    assert {"teff", "logg", "feh"} <= set(m["knn"]) and m["knn"]["teff"]["n"] > 50
    assert m["knn"]["teff"]["sigma"] > 0

    job = db.infer(model.ref, workers=1, batch_size=300)
    assert job.state == "done", job.worker_errors
    with psycopg.connect(db_url) as conn:
        n_rows, n_scored, n_pix = conn.execute(
            "SELECT count(*), count(anomaly_score), min(n_pixels) FROM xpdb.svae_output WHERE model_id = %s",
            (model.model_id,)).fetchone()
        n_spectra = conn.execute("SELECT count(*) FROM xpdb.xp_sampled").fetchone()[0]
        first = conn.execute("SELECT source_id, z1, chi2_red, chi2_red_scatter "
                             "FROM xpdb.svae_output WHERE model_id = %s ORDER BY source_id LIMIT 1",
                             (model.model_id,)).fetchone()
        # the per-pixel scatter is kept where the anomaly score reaches scatter_min_score
        kept = conn.execute("SELECT xpdb.float4_array(scatter), anomaly_score >= %s FROM xpdb.svae_output "
                            "WHERE model_id = %s", (svae.SVAEConfig.scatter_min_score, model.model_id)).fetchall()
        outliers = conn.execute("SELECT rank, source_id, anomaly_score FROM xpdb.xp_outliers").fetchall()
    assert n_rows == n_spectra and n_scored == n_rows and n_pix == 115 and first[3] <= first[2]
    assert all((values is not None) == flagged for values, flagged in kept)
    assert all(len(v) == 115 and min(v) > 0 for v, _ in kept if v is not None)
    # the outlier view: the newest sVAE's rows, most anomalous first
    assert len(outliers) == n_rows and [r[0] for r in outliers[:3]] == [1, 2, 3]
    assert all(a[2] >= b[2] for a, b in zip(outliers, outliers[1:]))

    # outputs equal the model's own numbers for the same spectra
    from xpdb.models.kinds import get
    from xpdb.models.registry import load

    with psycopg.connect(db_url) as conn:
        record, loaded = load(conn, model.ref)
        kind = get("svae")
        got = kind.predict(loaded, kind.inputs(conn, record, np.array([first[0]])))
    assert got["z1"][0] == pytest.approx(first[1], rel=1e-5)

    # similarity: a star's nearest neighbour is itself at distance 0; then the others, nearest first
    near = db.similar(first[0], k=5, include_self=True)
    assert near["source_id"][0] == first[0] and near["latent_distance"][0] == 0 and list(near["rank"]) == [1, 2, 3, 4, 5]
    assert np.all(np.diff(near["latent_distance"]) >= 0)
    others = db.similar(first[0], k=4)
    assert list(others["source_id"]) == list(near["source_id"][1:])
    listed = cli.invoke(app, ["similar", str(first[0]), "-k", "4", "--format", "csv"])
    assert listed.exit_code == 0, listed.output
    csv_ids = [int(line.split(",")[1]) for line in listed.output.splitlines() if line[:1].isdigit()]
    assert csv_ids == list(others["source_id"])
    with psycopg.connect(db_url) as conn:  # the same order as a plain scan of every latent
        rows = conn.execute("SELECT source_id, z1, z2, z3, z4, z5, z6 FROM xpdb.svae_output "
                            "WHERE model_id = %s", (model.model_id,)).fetchall()
        conn.execute("SET enable_sort = off")  # a table this small is cheaper to sort; show that the index can order
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT source_id FROM xpdb.svae_output WHERE model_id = %s "
            "ORDER BY latent <-> cube(array[0,0,0,0,0,0]::float8[]) LIMIT 5", (model.model_id,)))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    z = np.array([r[1:] for r in rows], dtype=float)
    order = np.argsort(np.linalg.norm(z - z[ids == first[0]][0], axis=1), kind="stable")
    assert set(ids[order[1:5]]) == set(others["source_id"])
    assert "svae_output_latent_idx" in plan

    # ADQL reaches the outputs, the outlier view and the neighbours view (ADQL has no <->)
    top = db.query(f"SELECT TOP 3 source_id, anomaly_score, chi2_red_scatter FROM svae_output "
                   f"WHERE model_id = {model.model_id} ORDER BY anomaly_score DESC")
    assert list(top["source_id"]) == [r[1] for r in outliers[:3]]
    adql = db.query(f"SELECT neighbour_id, latent_distance FROM svae_neighbours WHERE source_id = {first[0]} "
                    f"AND model_id = {model.model_id} AND rank <= 4 ORDER BY rank")
    assert list(adql["neighbour_id"]) == list(others["source_id"])
    listed = db.query("SELECT table_name FROM tap_schema.tables WHERE table_name LIKE 'xpdb.%'")
    assert {"xpdb.svae_output", "xpdb.svae_neighbours", "xpdb.xp_outliers"} <= set(listed["table_name"])

    # a source without a usable spectrum gets a flagged row without latent, never anyone's neighbour
    with psycopg.connect(db_url) as conn:
        out = kind.predict(loaded, kind.inputs(conn, record, np.array([1], dtype=np.int64)))
        assert out["flags"][0] == 1 and np.isnan(out["z1"][0]) and np.isnan(out["anomaly_score"][0])
        nulls = {k: ~np.isfinite(v) if v.ndim == 1 else ~np.isfinite(v).any(axis=1) for k, v in out.items()
                 if v.dtype.kind == "f"}
        kind.write_back(conn, kind.output, model_id=model.model_id, job_id=None, source_ids=np.array([1]),
                        outputs=out, nulls=nulls)
        conn.commit()
        assert conn.execute("SELECT latent IS NULL FROM xpdb.svae_output WHERE model_id = %s AND source_id = 1",
                            (model.model_id,)).fetchone()[0]
    assert 1 not in list(db.similar(first[0], k=len(ids), include_self=True)["source_id"])
    with pytest.raises(Exception, match="no latent"):
        db.similar(1)

    # the PCA baseline runs through the same jobs and table
    base = db.model("svae-pca")
    assert db.infer(base.ref, workers=1).state == "done"
    with psycopg.connect(db_url) as conn:
        n_base, n_logvar = conn.execute("SELECT count(*), count(z1_log_var) FROM xpdb.svae_output "
                                        "WHERE model_id = %s", (base.model_id,)).fetchone()
    assert n_base == n_spectra and n_logvar == 0
    assert db.similar(first[0], k=3, model=base.ref, include_self=True)["source_id"][0] == first[0]


@pytest.mark.slow
def test_coefficient_model_on_the_real_chunk_uses_synthetic_g(db_url, tmp_path):
    import xpdb

    chunk = real_path("xp_chunk", "xp_continuous_combined_chunk0.fits")
    db = xpdb.connect(db_url)
    db.ingest("xp", chunk)
    model = db.train("svae", representation="coefficients", epochs=3, batch_size=256, name="svae-xp")
    m = model.metrics
    assert m["representation"] == "coefficients" and m["training"]["synthetic_g"] == m["training"]["n"] > 1000
    assert "knn" not in m  # no labels for these stars
    assert db.infer(model.ref, workers=1).state == "done"
    with psycopg.connect(db_url) as conn:
        n, n_pix, flagged = conn.execute("SELECT count(*), max(n_pixels), count(*) FILTER (WHERE flags <> 0) "
                                         "FROM xpdb.svae_output WHERE model_id = %s", (model.model_id,)).fetchone()
        sources = conn.execute("SELECT count(*) FROM xpdb.xp_sources").fetchone()[0]
    assert n == sources and n_pix == 110 and flagged < 0.05 * n
