"""The synthetic sky: metallicity information, fidelity to its generating SED, the nuisances and their truth
columns, files, noise relations."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import REAL
from xpdb.ingest.readers import TableReader
from xpdb.synth import noise
from xpdb.synth import sed as sed_mod
from xpdb.synth import sky as sky_mod
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
    """Calibrating the noisy synthetic coefficients returns the SED as observed (reddened at the star's own R(V),
    with the blue systematic) within the injected noise."""
    spectra = calibrate(sky.xp_continuous)
    sed = sky.spectra.observed
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
    clusters = sky.clusters.to_pandas().set_index("cluster")
    assert clusters["feh_ref"].to_dict() == {"NGC6397": -2.02, "NGC6752": -1.47, "NGC5904": -1.18, "NGC2682": 0.0,
                                             "NGC6791": 0.31}
    assert (abs(clusters["feh_true"] - clusters["feh_ref"]) < 0.2).all()  # the reference is not the truth
    truth = sky.truth.to_pandas().set_index("source_id")
    for name, members in sky.members.items():
        listed = truth.loc[members["source_id"].to_numpy()]
        true = listed[listed["member"]]
        assert (true["cluster"] == name).all() and (listed["listed_cluster"] == name).all()
        assert abs(true["feh"].mean() - clusters.loc[name, "feh_true"]) < 0.06
        assert true["feh"].std() > 0.01  # a spread, not one value
        assert (~listed["member"]).sum() >= 1  # field stars in the member list
        prob = members.to_pandas().set_index("source_id")["membership_probability"]
        assert prob[true.index].median() > prob[listed.index[~listed["member"]]].median()
    ngc6791 = truth[truth["member"] & (truth["cluster"] == "NGC6791")]
    assert (ngc6791["bp_rp0"] < 1.05).any() and (ngc6791["logg"] > 3.4).any()  # subgiants for the colour cut
    ids = sky.gaia_source["source_id"].to_numpy()
    assert len(np.unique(ids)) == len(ids) and (ids > 0).all()


def test_nuisances_and_their_truth(sky):
    """Every nuisance is applied and recorded per star in the truth table."""
    t = sky.truth.to_pandas()
    for column in ("alpha_fe", "c_fe", "carbon_enhanced", "r_v", "sfd_scale", "ebv_sfd", "blue_systematic",
                   "label_catalog", "label_offset", "label_error", "listed_cluster", "member"):
        assert column in t.columns, column
    poor, rich = t[t["feh"] < -1.2], t[t["feh"] > 0.05]
    assert poor["alpha_fe"].mean() == pytest.approx(0.4, abs=0.02) and rich["alpha_fe"].mean() < 0.05
    vmp = t[t["feh"] <= -2]
    assert 0.1 < vmp["carbon_enhanced"].mean() < 0.4 and not t.loc[t["feh"] > -2, "carbon_enhanced"].any()
    assert (t.loc[t["carbon_enhanced"], "c_fe"] >= 0.7).all() and abs(t.loc[~t["carbon_enhanced"], "c_fe"].mean()) < 0.05
    assert t["sfd_scale"].mean() == pytest.approx(1.10, abs=0.02) and t["r_v"].std() == pytest.approx(0.2, abs=0.03)
    gs = sky.gaia_source.to_pandas()
    np.testing.assert_allclose(gs["ebv"], t["ebv_sfd"], atol=1e-6)  # the catalogue carries the scale error
    g = gs["phot_g_mean_mag"].to_numpy()
    assert t.loc[g > 16, "blue_systematic"].mean() > 0.02 > -0.02 > t.loc[g < 10, "blue_systematic"].mean()
    # the label catalogues: SAGA-like offset by +0.10 with larger VMP errors, PASTEL-like unbiased
    for group, offset in (("pastel", 0.0), ("saga", 0.10)):
        lab = sky.labels[group].to_pandas().set_index("source_id")
        true = t.set_index("source_id").loc[lab.index]
        delta = lab["feh"] - true["feh"]
        assert delta.mean() == pytest.approx(offset, abs=0.03), group
        assert (true["label_offset"] == offset).all()
        np.testing.assert_allclose(lab["feh_err"], true["label_error"], atol=1e-3)
    saga = t[t["label_catalog"] == "saga"]
    assert saga.loc[saga["feh"] < -3, "label_error"].min() > saga.loc[saga["feh"] > -2, "label_error"].max()


def test_sed_physics():
    """Alpha and carbon features, and weak lines that fade with Z below [Fe/H] of about -2."""
    wl = np.linspace(336, 1020, 343)
    teff, logg = np.full(1, 4400.0), np.full(1, 1.8)
    blue = (wl > 380) & (wl < 420)

    def flux(feh, alpha=0.0, carbon=0.0):
        return sed_mod.giant_sed(wl, teff, logg, np.full(1, feh), alpha, carbon)[0]

    # the metallicity signal in the blue per dex: strong at -1, much weaker at -3 (only strong lines stay)
    slope_1 = np.log(flux(-1.5)[blue] / flux(-0.5)[blue]).mean()
    slope_3 = np.log(flux(-3.5)[blue] / flux(-2.5)[blue]).mean()
    assert slope_1 > 3 * slope_3 > 0
    assert sed_mod.weak_line_growth(-3.0) < 0.5 * sed_mod.strong_line_growth(-3.0)
    assert sed_mod.weak_line_growth(0.0) == pytest.approx(1.0) and sed_mod.strong_line_growth(0.0) == 1.0
    # alpha enhancement deepens Ca II H&K and Mg b; carbon the G band and the Swan bands
    hk, gband, swan = np.abs(wl - 395) < 6, np.abs(wl - 430) < 5, np.abs(wl - 516) < 5
    assert flux(-2.0, alpha=0.4)[hk].mean() < flux(-2.0)[hk].mean()
    assert flux(-2.5, carbon=1.5)[gband].mean() < 0.9 * flux(-2.5)[gband].mean()
    assert flux(-2.5, carbon=1.5, alpha=0.4)[swan].mean() < 0.95 * flux(-2.5, alpha=0.4)[swan].mean()
    np.testing.assert_allclose(flux(0.0), sed_mod.continuum(wl, teff, logg)[0])  # solar: the BOSZ model


def test_extinction_nuisance_is_not_what_the_pipeline_assumes():
    """The sky reddens with the star's own R(V) (CCM89's R(V) term on the Zhang curve); xpdb dereddens at 3.1."""
    from xpdb.xp.extinction import dereddening_factor

    wl = np.linspace(360, 1000, 50)
    ebv = np.array([0.2, 0.2])
    red = sky_mod.reddening_factor(wl, ebv, np.array([3.1, 3.5]))
    np.testing.assert_allclose(red[0] * dereddening_factor(wl, ebv[:1])[0], 1.0, rtol=1e-10)
    slope = np.log(red[1] * dereddening_factor(wl, ebv[:1])[0])
    assert slope[0] < slope[-1] < 0  # more extinction everywhere, most in the blue
    assert sky_mod.ccm_a(np.array([1000 / 1.82]))[0] == pytest.approx(1.0, abs=1e-6)


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
