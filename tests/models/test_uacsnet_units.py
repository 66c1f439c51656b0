"""UA-CSNet pieces against the paper's equations and Table 1, and save/load through the database."""

from __future__ import annotations

import numpy as np
import pytest

from xpdb.models.evaluate import gaussian_fit
from xpdb.models.uacsnet import UACSNetConfig, build_model, cost_weights, custom_objects, from_bytes, predict, to_bytes


def test_loss_is_eq_12_by_hand():
    """c_i [(y - mu)^2 / (2 sigma^2) + log sigma], averaged, with the costs as sample weights."""
    nll = custom_objects()["gaussian_nll"]
    y = np.array([[0.1], [-1.0], [-2.5]], np.float32)
    pred = np.array([[0.0, 0.1], [-0.8, 0.3], [-2.0, 0.05]], np.float32)
    by_hand = (y[:, 0] - pred[:, 0]) ** 2 / (2 * pred[:, 1] ** 2) + np.log(pred[:, 1])
    np.testing.assert_allclose(np.asarray(nll(y, pred)), by_hand, rtol=1e-6)
    # and what Keras minimises for this model (L2 off here): the cost-weighted mean over the batch
    rng = np.random.default_rng(0)
    model = build_model(UACSNetConfig(l2=0.0))
    x = rng.uniform(0.5, 1.5, (5, 60)).astype(np.float32)
    e = rng.uniform(1e-3, 1e-2, (5, 60)).astype(np.float32)
    target = rng.normal(-1, 1, (5, 1)).astype(np.float32)
    c = np.array([1.0, 2.0, 4.0, 0.5, 1.5], np.float32)
    out = model.predict([x, e], verbose=0)
    expected = np.mean(c * ((target[:, 0] - out[:, 0]) ** 2 / (2 * out[:, 1] ** 2) + np.log(out[:, 1])))
    got = model.evaluate([x, e], target, sample_weight=c, verbose=0, batch_size=5)
    assert got == pytest.approx(expected, rel=1e-5)


def test_cost_weights_are_eq_11_on_a_toy_histogram():
    # 2 x 2 cells: counts 6, 2, 1, 1 -> c = (f / 6)^-0.5
    bp_rp0 = np.array([0.8] * 6 + [0.8] * 2 + [1.6] + [1.6])
    feh = np.array([0.0] * 6 + [-3.0] * 2 + [0.0] + [-3.0])
    c = cost_weights(bp_rp0, feh, bins=(2, 2), gamma=0.5)
    expected = np.array([1.0] * 6 + [(2 / 6) ** -0.5] * 2 + [(1 / 6) ** -0.5] * 2)
    np.testing.assert_allclose(c, expected)
    assert np.allclose(cost_weights(bp_rp0, feh, bins=(2, 2), gamma=0.0), 1.0)


def test_layer_sizes_match_table_1():
    model = build_model(UACSNetConfig())
    size = {layer.name: layer.output.shape[-1] for layer in model.layers}
    assert model.input_shape == [(None, 60), (None, 60)]
    assert [size[f"fc{i}"] for i in (1, 2, 3, 4)] == [256, 64, 16, 8]
    assert size["fc5_mu"] == 1
    assert size["fc1_err"] == 16 and size["concat"] == 32 and size["fc2_err"] == 8 and size["fc3_err"] == 1
    assert size["mu_sigma"] == 2
    # the latent Z (fc3) feeds the uncertainty branch
    concat = model.get_layer("concat")
    assert concat.input[0] is model.get_layer("fc3").output
    assert concat.input[1] is model.get_layer("fc1_err").output


def test_sigma_is_floored_at_epsilon():
    model = build_model(UACSNetConfig(epsilon=0.02))
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, (64, 60)).astype(np.float32)
    e = rng.uniform(1e-3, 1e-2, (64, 60)).astype(np.float32)
    w = model.get_layer("fc3_err").get_weights()
    model.get_layer("fc3_err").set_weights([w[0] * 0, np.array([-50.0], np.float32)])
    _, sigma = predict(model, x, e)
    np.testing.assert_allclose(sigma, 0.02, rtol=1e-5)


def test_save_and_load_through_the_database_give_identical_predictions(db_url, conn):
    from xpdb.models import registry

    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 1.5, (200, 60)).astype(np.float32)
    e = rng.uniform(1e-3, 1e-2, (200, 60)).astype(np.float32)
    model = build_model(UACSNetConfig(), x, e)
    before = predict(model, x, e)
    with conn.transaction():
        record = registry.save(conn, kind="uacsnet", name="unit", hyperparameters=UACSNetConfig().to_dict(),
                               artifact=to_bytes(model), preprocessing_id=None, metrics={"note": "untrained"})
    assert record.ref == "unit:1"
    loaded_record, loaded = registry.load(conn, "unit")
    after = predict(loaded, x, e)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert loaded_record.metrics == {"note": "untrained"}
    with conn.transaction():
        assert registry.save(conn, kind="uacsnet", name="unit", hyperparameters={}, artifact=to_bytes(model),
                             preprocessing_id=None, metrics={}).version == 2
    assert registry.find(conn, "unit").version == 2 and registry.find(conn, "unit:1").version == 1
    with pytest.raises(registry.ModelNotFound, match="known: unit:1, unit:2"):
        registry.find(conn, "other")
    assert np.array_equal(predict(from_bytes(to_bytes(loaded)), x, e)[0], after[0])


def test_gaussian_fit_recovers_a_gaussian():
    rng = np.random.default_rng(2)
    delta = rng.normal(0.05, 0.2, 4000)
    fit = gaussian_fit(delta)
    assert fit["method"] == "gaussian fit"
    assert fit["bias"] == pytest.approx(0.05, abs=0.015) and fit["sigma"] == pytest.approx(0.2, rel=0.06)
    small = gaussian_fit(delta[:40])
    assert small["method"] == "robust" and small["n"] == 40


def test_same_seed_same_model_and_metrics():
    """Deterministic training: the same seed and data give identical predictions (tolerance 0)."""
    from xpdb.models.evaluate import evaluate
    from xpdb.models.uacsnet import train

    rng = np.random.default_rng(5)
    n = 300
    feh = rng.uniform(-3, 0.3, n)
    flux = (1 + 0.1 * feh[:, None] * np.linspace(1, 0, 60)[None, :] + rng.normal(0, 0.01, (n, 60))).astype(np.float32)
    err = np.full((n, 60), 0.01, np.float32)
    colour = rng.uniform(0.8, 1.6, n)
    config = UACSNetConfig(epochs=30, patience=30, seed=7)
    runs = [train(flux, err, feh, colour, config) for _ in range(2)]
    preds = [predict(r.model, flux, err) for r in runs]
    np.testing.assert_array_equal(preds[0][0], preds[1][0])
    np.testing.assert_array_equal(preds[0][1], preds[1][1])
    g = np.full(n, 12.0)
    assert evaluate(*preds[0], feh, g) == evaluate(*preds[1], feh, g)
    other = predict(train(flux, err, feh, colour, UACSNetConfig(epochs=30, patience=30, seed=8)).model, flux, err)
    assert not np.array_equal(other[0], preds[0][0])


def _linear_stars(n: int = 400, seed: int = 3):
    rng = np.random.default_rng(seed)
    feh = rng.uniform(-3, 0.3, n)
    slope = np.linspace(1, -0.5, 60)
    flux = (1 + 0.1 * feh[:, None] * slope[None, :] + rng.normal(0, 0.01, (n, 60))).astype(np.float32)
    return flux, np.full((n, 60), 0.01, np.float32), feh, rng.uniform(0.8, 1.6, n)


def test_linear_skip_starts_at_the_ridge_fit_of_the_fit_rows():
    """Before any step the skip model's mu is sklearn's RidgeCV on the standardised fit rows (the branch adds 0)."""
    from sklearn.linear_model import RidgeCV

    from xpdb.models.uacsnet import SPLIT_SEED, _split, _start_from_ridge

    flux, err, feh, _ = _linear_stars()
    config = UACSNetConfig(linear_skip="trainable")
    fit_rows, _ = _split(feh, config.validation_fraction, SPLIT_SEED)
    model = build_model(config, flux[fit_rows], err[fit_rows])
    _start_from_ridge(model, (flux[fit_rows], err[fit_rows]), feh[fit_rows].astype(np.float32))
    x = flux[fit_rows].astype(np.float64)
    scaled = (x - x.mean(axis=0)) / x.std(axis=0)
    ridge = RidgeCV(alphas=(1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0)).fit(scaled, feh[fit_rows])
    mu, _ = predict(model, flux, err)
    expected = ridge.predict((flux - x.mean(axis=0)) / x.std(axis=0))
    np.testing.assert_allclose(mu, expected, atol=2e-3)
    with pytest.raises(ValueError, match="linear_skip"):
        build_model(UACSNetConfig(linear_skip="sideways"))


def test_frozen_linear_skip_keeps_the_ridge_weights_and_survives_save_and_load():
    from xpdb.models.uacsnet import train

    flux, err, feh, colour = _linear_stars()
    frozen = train(flux, err, feh, colour, UACSNetConfig(epochs=20, patience=20, linear_skip="frozen")).model
    trained = train(flux, err, feh, colour, UACSNetConfig(epochs=20, patience=20, linear_skip="trainable")).model
    start = train(flux, err, feh, colour, UACSNetConfig(epochs=1, patience=1, linear_skip="frozen",
                                                        learning_rate=0.0)).model
    same = [np.asarray(w) for w in frozen.get_layer("linear_mu").get_weights()]
    for a, b in zip(same, start.get_layer("linear_mu").get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert not np.array_equal(np.asarray(trained.get_layer("linear_mu").get_weights()[0]), same[0])
    reloaded = from_bytes(to_bytes(trained))
    for a, b in zip(predict(trained, flux, err), predict(reloaded, flux, err)):
        np.testing.assert_array_equal(a, b)


def test_tempered_error_calibration_draws_sigma_towards_its_median_then_rescales():
    """calibrate_errors with error_temper p: sigma -> s m (sigma / m)^p, m the hold-out's median sigma and s
    the robust width of the hold-out's residuals over the tempered sigma; kept through save and load."""
    from xpdb.models.uacsnet import _forward, calibrated

    rng = np.random.default_rng(12)
    model = build_model(UACSNetConfig())
    x = rng.uniform(0.5, 1.5, (400, 60)).astype(np.float32)
    e = rng.uniform(1e-3, 5e-2, (400, 60)).astype(np.float32)
    raw = _forward(model, [x, e], 1000)
    m = np.median(raw[:, 1])
    tempered = m * (raw[:, 1] / m) ** 0.5
    y = (raw[:, 0] + 1.7 * tempered * rng.normal(size=400)).astype(np.float32)  # residuals 1.7 x the tempered sigma
    config = UACSNetConfig(calibrate_errors=True, error_temper=0.5)
    wrapped = calibrated(model, [x, e], y, config)
    out = _forward(wrapped, [x, e], 1000)
    np.testing.assert_allclose(out[:, 0], raw[:, 0], rtol=1e-6)
    ratio = out[:, 1] / tempered
    assert np.allclose(ratio, ratio[0], rtol=1e-4) and 1.4 < ratio[0] < 2.0  # one factor, near the true 1.7
    z = (y - out[:, 0]) / out[:, 1]
    assert 1.4826 * np.median(np.abs(z - np.median(z))) == pytest.approx(1.0, abs=1e-4)
    spread = np.std(np.log(out[:, 1])) / np.std(np.log(raw[:, 1]))
    assert spread == pytest.approx(0.5, rel=1e-3)  # half the star-to-star spread in log sigma
    np.testing.assert_allclose(predict(from_bytes(to_bytes(wrapped)), x, e)[1], out[:, 1], rtol=1e-5)
    plain = _forward(calibrated(model, [x, e], y, UACSNetConfig(calibrate_errors=True)), [x, e], 1000)
    assert np.allclose(plain[:, 1] / raw[:, 1], plain[0, 1] / raw[0, 1], rtol=1e-4)  # p = 1: a plain rescaling
