"""The transformer foundation model: tokens, embedding and masking, loss, artifacts, and on a slice of
the real APOGEE library: training, leased inference into ``label_prediction``, the catalogue's new
columns, spectrum generation and ADQL over the new table.
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from xpdb.models import tokens as tk
from xpdb.models import transformer as tf_model

TINY = dict(d_model=16, encoder=((2, 32),), decoder=((2, 32),), head=(32,), batch_size=64, dropout=0.1)


def _random_inputs(rng, n=5, q=3):
    tokens = np.where(rng.random((n, tk.N_KINDS)) < 0.5, np.arange(1, tk.N_KINDS + 1), 0).astype(np.int32)
    values = np.where(tokens > 0, rng.normal(size=(n, tk.N_KINDS)), 0).astype(np.float32)
    requests = rng.integers(1, tk.N_KINDS + 1, size=(n, q)).astype(np.int32)
    return {"values": values, "tokens": tokens, "requests": requests}


@pytest.fixture(scope="module")
def network():
    return tf_model.build_network(tf_model.TransformerConfig(**TINY))


def test_embedding_is_gelu_of_value_times_kind_vector_plus_bias(network):
    from scipy.special import erf

    emb = network.embedding
    w, b = (np.asarray(x) for x in (emb.embeddings, emb.bias))
    tokens = np.array([[3, 0, 60]], np.int32)
    values = np.array([[0.7, 5.0, -1.2]], np.float32)
    got = np.asarray(emb.context(tokens, values))
    x = w[[3, 60]] * values[0, [0, 2], None] + b[[3, 60]]
    expected = 0.5 * x * (1 + erf(x / np.sqrt(2)))  # exact GELU, after the bias (the authors' code)
    np.testing.assert_allclose(got[0, [0, 2]], expected, rtol=1e-5, atol=1e-6)
    assert not got[0, 1].any()  # padding embeds to zero whatever its value
    np.testing.assert_allclose(np.asarray(emb.request(np.array([[3, 0]], np.int32)))[0], [w[3], np.zeros_like(w[3])])


def test_padding_is_ignored(network):
    """Adding padded tokens (any value), or changing a padded token's value, changes no output."""
    rng = np.random.default_rng(1)
    x = _random_inputs(rng)
    base = np.asarray(network(x, training=False))
    padded = {"values": np.concatenate([x["values"], rng.normal(size=(5, 7)).astype(np.float32)], axis=1),
              "tokens": np.concatenate([x["tokens"], np.zeros((5, 7), np.int32)], axis=1), "requests": x["requests"]}
    np.testing.assert_allclose(np.asarray(network(padded, training=False)), base, rtol=1e-5, atol=1e-6)
    changed = dict(x, values=np.where(x["tokens"] == 0, 99.0, x["values"]).astype(np.float32))
    np.testing.assert_allclose(np.asarray(network(changed, training=False)), base, rtol=1e-5, atol=1e-6)
    # an empty context is defined (the null token alone), and a real token does change the answer
    empty = dict(x, tokens=np.zeros_like(x["tokens"]), values=np.zeros_like(x["values"]))
    out = np.asarray(network(empty, training=False))
    assert np.isfinite(out).all() and not np.allclose(out, base)
    # requests are decoded independently: one at a time gives the same as all together
    single = np.asarray(network(dict(x, requests=x["requests"][:, 1:2]), training=False))
    np.testing.assert_allclose(single[:, 0], base[:, 1], rtol=1e-5, atol=1e-6)


def test_loss_matches_numpy():
    rng = np.random.default_rng(2)
    y, err, mu, s = (rng.normal(size=(6, 4)) for _ in range(4))
    err = np.abs(err)
    w = (rng.random((6, 4)) < 0.7).astype(float)
    w[0] = 0  # a star without requests contributes 0
    y_true = np.stack([y, err, w], axis=-1).astype(np.float32)
    y_pred = np.stack([mu, s], axis=-1).astype(np.float32)
    got = np.asarray(tf_model.gaussian_nll(y_true, y_pred))
    var = np.exp(s) + err ** 2
    per = 0.5 * ((y - mu) ** 2 / var + np.log(var))
    expected = (w * per).sum(axis=1) / np.maximum(w.sum(axis=1), 1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert tf_model.gaussian_nll_numpy(y, err, mu, s, w) == pytest.approx(float(expected.mean()), rel=1e-6)


def test_xp_tokens_reduce_and_rebuild_a_spectrum():
    wl = tk.XP_GRID
    flux = (1e-15 * (wl / 500.0) ** -2 * (1 - 0.3 * np.exp(-0.5 * ((wl - 430) / 15) ** 2)))[None, :]
    values, errors = tk.xp_tokens(flux, 0.01 * flux, np.array([11.0]))
    assert values.shape == (1, tk.N_XP) and np.isfinite(errors).all() and (errors > 0).all()
    grid, rebuilt, _ = tk.xp_spectrum(values, errors, g=11.0)
    assert np.array_equal(grid, wl)
    assert np.max(np.abs(rebuilt - flux) / flux) < 0.01  # 55 values hold a smooth XP-like spectrum
    assert tk.XP_KINDS[0] == "xp_336" and tk.XP_KINDS[-1] == "xp_1020" and len(tk.KINDS) == 64
    table = tk.token_table([1, 2], flux=np.vstack([flux, np.full((1, 343), np.nan)]),
                           flux_error=np.vstack([0.01 * flux, flux]), g=[11, 12], ebv=[0.0, 0.2])
    assert np.isnan(table.values[1, : tk.N_XP]).all()
    np.testing.assert_allclose(table.column("ebv"), [-7.0, np.log(0.2)])  # ln E(B-V), floored at exp(-7)
    assert np.isnan(table.only(["ebv"]).column("g")).all() and np.isnan(table.without(["xp"]).values[0, :55]).all()


def test_decorrelated_xp_tokens_round_trip_and_leave_out_whole_halves():
    """Each half's XP values become standardised principal components: the inverse gives the values back,
    errors propagate, and a half with any value missing is missing whole."""
    rng = np.random.default_rng(5)
    n = 400
    wl = tk.XP_GRID
    teff, depth = rng.uniform(4000, 6500, n), rng.uniform(0, 0.3, n)
    flux = 1e-15 * (wl[None, :] / 500.0) ** (-teff[:, None] / 2000.0) * (
        1 - depth[:, None] * np.exp(-0.5 * ((wl - 430) / 20) ** 2))
    table = tk.token_table(np.arange(n), flux=flux, flux_error=0.01 * flux, g=rng.uniform(9, 14, n),
                           ebv=rng.uniform(0, 0.5, n), labels={"teff": teff})
    st = tk.Standardiser.fit(table.values)
    assert st.rotations is not None and len(st.rotations) == 2
    assert len(tk.XP_HALVES[0]) + len(tk.XP_HALVES[1]) == tk.N_XP
    z, ze = st.forward(table.values, table.errors)
    assert np.isfinite(z[:, : tk.N_XP]).all() and (ze[:, : tk.N_XP] > 0).all()
    # the components are uncorrelated, unlike the neighbouring values themselves
    blue = tk.XP_HALVES[0]
    raw = np.corrcoef(table.values[:, blue[:2]].T)[0, 1]
    rot = np.corrcoef(z[:, blue[:2]].T)[0, 1]
    assert abs(raw) > 0.9 and abs(rot) < 0.1
    cols = np.arange(tk.N_KINDS)
    back, sigma = st.inverse(z, np.full_like(z, 0.1), cols)
    np.testing.assert_allclose(back, table.values, rtol=1e-8, atol=1e-12)
    assert (sigma > 0).all()
    with pytest.raises(ValueError, match="whole half"):
        st.inverse(z[:, :3], z[:, :3], np.arange(3))
    # one value of the red half missing: every red token is missing, the blue ones are kept
    gap = table.values.copy()
    gap[:, tk.XP_HALVES[1][4]] = np.nan
    zg = st.forward(gap)
    assert np.isnan(zg[:, tk.XP_HALVES[1]]).all() and np.isfinite(zg[:, blue]).all()
    np.testing.assert_allclose(zg[:, blue], z[:, blue])
    again = tk.Standardiser.from_dict(st.to_dict())
    np.testing.assert_allclose(again.forward(table.values), z)
    plain = tk.Standardiser.fit(table.values, decorrelate=False)
    assert plain.rotations is None and tk.Standardiser.from_dict(plain.to_dict()).rotations is None


def test_sampled_tasks_are_subsets_with_valid_requests():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(400, tk.N_KINDS))
    values[rng.random(values.shape) < 0.1] = np.nan
    errors = np.abs(rng.normal(size=values.shape))
    config = tf_model.TransformerConfig(**TINY)
    batch = tf_model.sample_tasks(values, errors, config, rng)
    cols = np.arange(tk.N_KINDS)
    present = batch.tokens > 0
    assert np.isfinite(values[present]).all()
    assert np.array_equal(batch.tokens[present], np.broadcast_to(cols + 1, present.shape)[present])
    np.testing.assert_allclose(batch.values[present], values[present])
    n_ctx = present.sum(axis=1)
    assert n_ctx.min() < 12 and n_ctx.max() > 50  # short (labels) and long (observations) contexts both occur
    req = batch.requests
    rows = np.arange(len(req))[:, None]
    valid = req > 0
    assert np.isfinite(values[rows, np.maximum(req - 1, 0)][valid]).all()
    np.testing.assert_array_equal(batch.targets[..., 2], valid.astype(np.float32))
    compacted = tf_model.compact(batch)
    assert ((compacted.tokens > 0).sum(axis=1) == n_ctx).all()
    assert all((compacted.tokens[i, : n_ctx[i]] > 0).all() for i in range(len(n_ctx)))
    steps = tf_model.bucketed_steps(compacted, 64, rng)
    assert sorted(np.concatenate([r for r, _ in steps]).tolist()) == list(range(len(n_ctx)))
    assert all(n_ctx[r].max() <= length for r, length in steps)


def test_artifact_round_trip_and_generation():
    rng = np.random.default_rng(4)
    n = 300
    labels = {"teff": rng.uniform(4000, 6000, n), "logg": rng.uniform(1, 4.5, n), "m_h": rng.uniform(-2, 0.3, n),
              "alpha_m": rng.uniform(0, 0.3, n)}
    wl = tk.XP_GRID
    flux = 1e-15 * (wl[None, :] / 500.0) ** (-labels["teff"][:, None] / 2000.0)
    table = tk.token_table(np.arange(n), flux=flux, flux_error=0.01 * flux, g=rng.uniform(9, 14, n),
                           bp_rp=rng.uniform(0.8, 1.5, n), j=np.full(n, 10.0), h=np.full(n, 9.5), ks=np.full(n, 9.4),
                           ebv=rng.uniform(0, 0.5, n), labels=labels)
    result = tf_model.train(table, tf_model.TransformerConfig(**TINY, epochs=2))
    assert result.epochs_run == 2 and 1 <= result.best_epoch <= 2 and np.isfinite(result.best_val_loss)
    model = result.model
    again = tf_model.FoundationModel.from_bytes(model.to_bytes())
    a = model.predict(table.subset(np.arange(20)), ["teff", "m_h", "xp_504"], context=["xp", "g"])
    b = again.predict(table.subset(np.arange(20)), ["teff", "m_h", "xp_504"], context=["xp", "g"])
    for name in a:
        np.testing.assert_array_equal(a[name][0], b[name][0])
        np.testing.assert_array_equal(a[name][1], b[name][1])
        assert (a[name][1] > 0).all()
    wl, gen, err = again.generate(teff=[4500, 5000], logg=2.0, m_h=-1.5, alpha_m=0.2, g=12.0)
    assert wl.shape == (343,) and gen.shape == err.shape == (2, 343) and (err > 0).all()
    with pytest.raises(ValueError, match="not an xpdb transformer"):
        tf_model.FoundationModel.from_bytes(b"nonsense")


# -- a slice of the real library, through the database ---------------------------------------------
@pytest.fixture(scope="module")
def library_rows(tmp_path_factory):
    """500 stars of the real library (giants, dwarfs and metal-poor stars)."""
    from astropy.io import fits

    from tests.models.test_real_stars import library_file

    with fits.open(library_file()) as hdul:
        data = hdul[1].data
        rng = np.random.default_rng(11)
        giant = np.flatnonzero((data["logg"] < 3.6) & np.isfinite(data["fe_h"]))
        poor = np.flatnonzero(data["fe_h"] < -1.5)
        rows = np.unique(np.concatenate([rng.choice(giant, 300, replace=False), rng.choice(poor, 50, replace=False),
                                         rng.choice(len(data), 150, replace=False)]))
        sid = np.asarray(data["gaiaedr3_source_id"][rows])
        rows = rows[np.unique(sid, return_index=True)[1]]
        hdu = fits.BinTableHDU(data=data[rows], header=hdul[1].header)
    path = tmp_path_factory.mktemp("apogee_tf") / "apogee_slice.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


@pytest.mark.slow
def test_slice_train_infer_catalog_generate_and_adql(db_url, library_rows, tmp_path):
    import xpdb
    from typer.testing import CliRunner

    from xpdb.cli.main import app

    db = xpdb.connect(db_url)
    db.ingest("apogee_library", library_rows)
    model = db.train("transformer", labels="APOGEE", split="fixed", name="tf-slice", epochs=3, **TINY)
    m = model.metrics
    assert model.kind == "transformer" and m["split"].startswith("fixed") and m["training"]["n"] > 300
    assert m["training"]["best_epoch"] >= 1 and len(m["training"]["val_loss"]) == 3
    test = m["test"]
    with psycopg.connect(db_url) as conn:
        n_test = conn.execute("SELECT count(*) FROM xpdb.reference_label WHERE catalog = 'APOGEE' "
                              "AND xpdb.split_of(source_id) = 'test'").fetchone()[0]
    assert test["n"] == n_test > 50
    for context in ("xp", "xp_ebv_g", "observed", "red_half_ebv_g"):
        teff = test["labels"][context]["teff"]["teff_lt_7000"]
        assert teff["n"] > 30 and 0 < teff["sigma"] < 3000 and teff["median_error"] > 0
    assert test["generated_spectra"]["n"] > 30 and test["generated_spectra"]["median_chi2_dof"] > 0
    assert test["g_lt_15"]["overall"]["n"] > 10  # [M/H] of the giants in the [Fe/H] models' shape

    trees = db.train("label_xgboost", labels="APOGEE", split="fixed", n_estimators=30)
    assert trees.metrics["test"]["labels"]["xp_ebv_g"]["m_h"]["giants"]["sigma"] > 0

    # a UA-CSNet catalogue for the catalogue view's rows, then leased inference of the transformer
    net = db.train("uacsnet", labels="APOGEE", split="fixed", selection="spectroscopic_giants", epochs=5,
                   patience=5, ablation=False)
    assert db.infer(net.ref, selection="model_domain", workers=1).state == "done"
    with psycopg.connect(db_url) as conn:
        before = conn.execute("SELECT count(*), count(teff) FROM xpdb.catalog").fetchone()
    assert before[0] > 0 and before[1] == 0  # no transformer predictions yet
    job = db.infer(model.ref, selection="all", workers=1, batch_size=200)
    assert job.state == "done", job.worker_errors
    with psycopg.connect(db_url) as conn:
        n_sources = conn.execute("SELECT count(*) FROM xpdb.xp_sources").fetchone()[0]
        rows = conn.execute("SELECT count(*), count(teff), count(m_h_err), min(n_tokens), max(job_id) "
                            "FROM xpdb.label_prediction WHERE model_id = %s", (model.model_id,)).fetchone()
        assert rows[0] == rows[1] == rows[2] == n_sources and rows[3] >= 55 and rows[4] == job.job_id
        cat = conn.execute("SELECT count(*), count(teff), count(logg_err), count(m_h), count(alpha_m_err) "
                           "FROM xpdb.catalog").fetchone()
        assert cat[0] == before[0] and cat[1] == cat[2] == cat[3] == cat[4] == cat[0]
        # the catalogue's labels are those of the newest transformer with predictions, not of the tree baseline
        same = conn.execute("SELECT count(*) FROM xpdb.catalog c JOIN xpdb.label_prediction p USING (source_id) "
                            "WHERE p.model_id = %s AND p.teff = c.teff", (model.model_id,)).fetchone()[0]
        assert same == cat[0]
        stored = conn.execute("SELECT source_id, teff, m_h FROM xpdb.label_prediction WHERE model_id = %s "
                              "ORDER BY source_id LIMIT 5", (model.model_id,)).fetchall()
    # the job wrote what the model predicts from every observed token
    from xpdb.models.kinds.transformer import OBSERVED, tokens_for

    loaded = tf_model.FoundationModel.from_bytes(_artifact(db_url, model.model_id))
    with psycopg.connect(db_url) as conn:
        table, _ = tokens_for(conn, [r[0] for r in stored])
    direct = loaded.predict(table.only(OBSERVED), ["teff", "m_h"], context=list(OBSERVED))
    np.testing.assert_allclose([r[1] for r in stored], direct["teff"][0], rtol=1e-4)
    np.testing.assert_allclose([r[2] for r in stored], direct["m_h"][0], rtol=1e-4, atol=1e-4)

    # ADQL (read-only role) over the new table and views; TAP_SCHEMA lists them
    t = db.query("SELECT TOP 3 source_id, teff, teff_err, m_h FROM xpdb.label_prediction "
                 f"WHERE model_id = {model.model_id} AND teff < 9000 ORDER BY teff")
    assert len(t) == 3 and list(t["teff"]) == sorted(t["teff"])
    everything = db.query("SELECT source_id, ra, dec, teff, logg, m_h, alpha_m FROM xpdb.transformer_catalog")
    assert len(everything) == n_sources
    star = everything[0]
    near = db.query("SELECT source_id, teff FROM xpdb.transformer_catalog WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                    f"CIRCLE('ICRS', {star['ra']!r}, {star['dec']!r}, 0.0003))")
    assert star["source_id"] in list(near["source_id"])
    assert len(db.query("SELECT TOP 5 source_id, feh, teff, m_h, m_h_err FROM catalog WHERE m_h IS NOT NULL")) == 5
    listed = db.query("SELECT table_name FROM tap_schema.tables WHERE table_name LIKE 'xpdb.%label%' "
                      "OR table_name = 'xpdb.transformer_catalog'")
    assert {"xpdb.label_prediction", "xpdb.transformer_catalog"} <= set(listed["table_name"])
    units = db.query("SELECT column_name, unit FROM tap_schema.columns WHERE table_name = 'xpdb.label_prediction' "
                     "AND column_name = 'teff'")
    assert list(units["unit"]) == ["K"]

    # generate: the API and the CLI give a spectrum on the 343-sample grid
    spec = db.generate(teff=4500, logg=2.0, m_h=-1.5, alpha_m=0.2, model=model.ref)
    assert len(spec) == 343 and spec["wavelength"][0] == 336 and spec["wavelength"][-1] == 1020
    assert np.isfinite(spec["flux"]).all() and (np.asarray(spec["flux_error"]) > 0).all()
    assert spec.meta["model"] == model.ref
    out = tmp_path / "spec.ecsv"
    result = CliRunner().invoke(app, ["generate", "--teff", "4500", "--logg", "2.0", "--feh", "-1.5",
                                      "--alpha", "0.2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from astropy.table import Table

    written = Table.read(out)
    assert len(written) == 343 and str(written["flux"].unit) == str(spec["flux"].unit)
    with pytest.raises(xpdb.XpdbError, match="needs a transformer"):
        db.generate(teff=4500, logg=2.0, m_h=-1.5, model=trees.ref)


def _artifact(url: str, model_id: int) -> bytes:
    from xpdb.models.registry import artifact

    with psycopg.connect(url) as conn:
        return artifact(conn, model_id)
