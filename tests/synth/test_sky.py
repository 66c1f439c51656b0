"""The synthetic sky: metallicity information, fidelity to its generating SED, files, noise relations."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import REAL
from xpdb.ingest.readers import TableReader
from xpdb.synth import noise
from xpdb.synth.sky import make_sky
from xpdb.synth.writers import write_sky
from xpdb.xp.calibrate import calibrate
from xpdb.xp.features import compute_features


@pytest.fixture(scope="module")
def sky():
    return make_sky(6000, seed=11)


def test_features_carry_metallicity(sky):
    """A plain ridge regression, fit on half of the G < 15 giants, predicts the other half well."""
    gs, truth = sky.gaia_source.to_pandas(), sky.truth.to_pandas()
    feats = compute_features(sky.xp_continuous, gs["ebv"].to_numpy())
    giants = ((truth["logg"] < 3.8) & (gs["phot_g_mean_mag"] < 15) & feats.usable).to_numpy()
    x = np.hstack([np.log(np.clip(feats.flux[giants].astype(float), 1e-4, None)), np.ones((giants.sum(), 1))])
    y = truth["feh"].to_numpy()[giants]
    order = np.random.default_rng(0).permutation(len(y))
    fit, test = order[: len(y) // 2], order[len(y) // 2:]
    w = np.linalg.solve(x[fit].T @ x[fit] + 1e-3 * np.eye(x.shape[1]), x[fit].T @ y[fit])
    scatter = np.std(x[test] @ w - y[test])
    assert len(y) > 2000
    assert scatter < 0.6 * np.std(y[test]), (scatter, np.std(y[test]))


def test_calibrated_spectra_return_the_generating_sed(sky):
    """Calibrating the noisy synthetic coefficients returns the (reddened) SED within the injected noise."""
    from xpdb.xp.extinction import dereddening_factor

    spectra = calibrate(sky.xp_continuous)
    ebv = sky.truth["ebv"].to_numpy()
    sed = sky.spectra.sed / dereddening_factor(spectra.wavelength, ebv)
    g = sky.gaia_source["phot_g_mean_mag"].to_numpy()
    inner = (spectra.wavelength >= 360) & (spectra.wavelength <= 1000)
    rows = np.isfinite(spectra.flux).all(axis=1) & (g > 12)
    pull = ((spectra.flux - sed) / spectra.flux_error)[np.ix_(rows, inner)]
    assert 0.7 < np.std(pull) < 1.5, np.std(pull)  # residuals are the injected noise, not model error
    assert abs(np.median(pull)) < 0.15
    # and the noiseless coefficients reproduce the SED to the projection accuracy
    rel = np.abs(calibrate_noiseless(sky, spectra.wavelength) / sed - 1)[np.ix_(rows, inner)]
    assert np.median(rel) < 0.005 and np.percentile(rel, 99) < 0.02


def calibrate_noiseless(sky, wavelength):
    import pyarrow as pa

    table = sky.xp_continuous
    for band in ("bp", "rp"):
        clean = sky.spectra.noiseless[band]
        present = table[f"{band}_coefficients"].is_valid().to_numpy(zero_copy_only=False)
        values = [clean[i].tolist() if present[i] else None for i in range(len(clean))]
        table = table.set_column(table.schema.get_field_index(f"{band}_coefficients"), f"{band}_coefficients",
                                 pa.array(values, type=pa.list_(pa.float64())))
    return calibrate(table).flux


def test_groups_labels_and_clusters(sky):
    pastel, saga = sky.labels["pastel"].to_pandas(), sky.labels["saga"].to_pandas()
    assert not set(pastel["source_id"]) & set(saga["source_id"])
    assert (pastel["feh"] < -2).mean() < 0.2 and (pastel["feh"] < -3).sum() >= 3  # imbalanced, a handful of EMP
    assert (saga["feh"] < -2).mean() > 0.3
    refs = dict(zip(sky.clusters["cluster"].to_pylist(), sky.clusters["feh_ref"].to_pylist()))
    assert refs == {"NGC6397": -2.02, "NGC6752": -1.47, "NGC5904": -1.18, "NGC2682": 0.0, "NGC6791": 0.31}
    truth = sky.truth.to_pandas()
    for name, members in sky.members.items():
        feh = truth.set_index("source_id").loc[members["source_id"].to_numpy(), "feh"]
        assert abs(feh.mean() - refs[name]) < 0.05
    ids = sky.gaia_source["source_id"].to_numpy()
    assert len(np.unique(ids)) == len(ids) and (ids > 0).all()


def test_same_seed_same_sky():
    a, b = make_sky(300, seed=5), make_sky(300, seed=5)
    assert a.gaia_source.equals(b.gaia_source) and a.xp_continuous.equals(b.xp_continuous)
    assert not make_sky(300, seed=6).gaia_source.equals(a.gaia_source)


@pytest.mark.parametrize("fmt", ["fits", "parquet", "ecsv", "csv"])
def test_every_file_says_it_is_synthetic(fmt, tmp_path):
    paths = write_sky(make_sky(300, seed=2), tmp_path, fmt)
    for name, path in paths.items():
        reader = TableReader(path)
        assert str(reader.meta.get("synthetic")).lower() == "true", (name, reader.meta)
        reader.close()
    assert "NOT real Gaia data" in (tmp_path / "README.txt").read_text()


@pytest.mark.real_data
def test_noise_relations_match_the_real_spectra():
    """The constants in xpdb.synth.noise are what xpdb.synth.measure finds in ../shared/data/real."""
    if not REAL.exists():
        pytest.skip(f"real data not available: {REAL} is absent")
    from xpdb.synth.measure import measure_correlations, measure_errors

    fits = measure_errors(REAL)
    for band in ("bp", "rp"):
        np.testing.assert_allclose(fits[band]["log10_abc"], noise.E0_LOG10_ABC[band], atol=0.01)
        np.testing.assert_allclose(fits[band]["profile_ln"], noise.PROFILE_LN[band], atol=0.01)
        assert fits[band]["scatter_dex"] == pytest.approx(noise.E0_SCATTER_DEX, abs=0.01)
    g, amp = measure_correlations(REAL)
    np.testing.assert_allclose(noise.mean_abs_correlation(g), amp, atol=0.03)


def test_synthetic_noise_has_the_stated_size():
    rng = np.random.default_rng(1)
    g = np.repeat([10.0, 13.0, 16.0], 400)
    errors = noise.coefficient_errors(g, "bp", 55, rng)
    draws, corr = noise.correlated_noise(errors, g, rng)
    assert np.std(draws / errors) == pytest.approx(1.0, abs=0.05)
    for mag in (10.0, 13.0, 16.0):
        m = g == mag
        assert np.mean(np.abs(corr[m])) == pytest.approx(noise.mean_abs_correlation(np.array([mag]))[0], abs=0.01)
        assert np.median(errors[m, 0]) == pytest.approx(noise.e0(np.array([mag]), "bp")[0], rel=0.1)
