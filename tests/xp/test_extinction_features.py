"""Dereddening against the toolkit itself, feature extraction on hand-made spectra, flags."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from xpdb.xp import extinction
from xpdb.xp.calibrate import CalibratedSpectra, calibration_bases
from xpdb.xp.correction import CorrectionUnavailable, check_available
from xpdb.xp.features import (FLAG_MISSING_EBV, FLAG_NOT_COMPUTABLE, N_PIXELS, Preprocessing, bin_edges,
                              bin_slices, features_from_spectra, normalisation, resample)


def test_dereddening_equals_the_toolkit():
    from xp_extinction_toolkit.ExtinctionToolkit import ExtinctionToolkit

    wl = calibration_bases()[0].grid
    ebv = np.array([0.0, 0.05, 0.3, 1.2])
    ours = extinction.dereddening_factor(wl, ebv)
    e4455 = 0.961 * ebv + 1.1e-3
    theirs = ExtinctionToolkit().deredden(E4455=e4455, wave=wl * 10)
    np.testing.assert_array_equal(ours, theirs)
    flux = np.ones((4, len(wl)))
    got, err = extinction.deredden(wl, flux, flux * 0.1, ebv)
    np.testing.assert_array_equal(got, theirs)
    np.testing.assert_allclose(err, 0.1 * theirs)
    # more extinction removed in the blue than in the red
    assert ours[2][wl == 400][0] > ours[2][wl == 800][0] > 1.0


def test_missing_ebv_is_nan_never_zero():
    wl = calibration_bases()[0].grid
    flux, _ = extinction.deredden(wl, np.ones((2, len(wl))), np.ones((2, len(wl))), [np.nan, 0.1])
    assert np.isnan(flux[0]).all() and np.isfinite(flux[1]).all()


def test_reddening_coefficients_follow_from_the_curve():
    derived = extinction.reddening_coefficients()
    assert derived["G"] == pytest.approx(extinction.R_G, abs=1e-4)
    assert derived["BP"] == pytest.approx(extinction.R_BP, abs=1e-4)
    assert derived["RP"] == pytest.approx(extinction.R_RP, abs=1e-4)
    assert extinction.bp_rp0(1.5, 0.1) == pytest.approx(1.5 - 0.1 * (extinction.R_BP - extinction.R_RP))
    assert extinction.absolute_g(10.0, 0.0, 1000.0, np.nan) == pytest.approx(0.0)
    assert extinction.absolute_g(10.0, 0.0, np.nan, 1.0) == pytest.approx(0.0)  # parallax fallback


def test_bins_cover_the_blue_finely_and_hold_three_samples():
    wl = calibration_bases()[0].grid
    edges = bin_edges()
    assert len(edges) == N_PIXELS + 1 and edges[0] == 360 and edges[-1] == pytest.approx(1000)
    widths = np.diff(edges)
    assert widths[0] < 6.5 and widths[-1] > 16  # equal steps in ln(lambda)
    counts = [s.stop - s.start for s in bin_slices(wl)]
    assert min(counts) >= 3
    assert sum(counts) == np.sum((wl >= 360) & (wl <= 1000))


def test_resample_medians_and_rms_on_hand_made_spectra():
    wl = np.arange(336.0, 1021.0, 2.0)
    slices = bin_slices(wl)
    rng = np.random.default_rng(3)
    flux = rng.uniform(1, 2, (2, len(wl)))
    err = rng.uniform(0.01, 0.2, (2, len(wl)))
    f60, e60 = resample(wl, flux, err)
    for j, s in enumerate(slices):
        assert f60[0, j] == pytest.approx(np.median(flux[0, s]))
        assert e60[1, j] == pytest.approx(np.sqrt(np.mean(err[1, s] ** 2)))
    # a single spurious spike inside a bin does not move the median
    spiky = np.ones((1, len(wl)))
    spiky[0, slices[10].start + 1] = 100.0
    assert resample(wl, spiky, spiky)[0][0, 10] == 1.0


def test_normalisation_window_and_features_from_flat_spectrum():
    wl = calibration_bases()[0].grid
    flux = np.where((wl >= 545) & (wl <= 555), 4.0, 2.0)[None, :]
    assert normalisation(wl, flux)[0] == 4.0
    spectra = CalibratedSpectra(np.array([7]), wl, flux, 0.1 * flux)
    feats = features_from_spectra(spectra, ebv=[0.0])
    factor = extinction.dereddening_factor(wl, [0.0])[0]
    window = (wl >= 545) & (wl <= 555)
    expected = np.median((flux[0] * factor)[bin_slices(wl)[0]]) / np.mean((flux[0] * factor)[window])
    assert feats.flux[0, 0] == pytest.approx(expected, rel=1e-6)
    assert feats.flux.dtype == np.float32 and feats.flags[0] == 0


def test_flags_for_missing_ebv_and_bad_spectra():
    wl = calibration_bases()[0].grid
    flux = np.ones((3, len(wl)))
    flux[2, 100] = np.nan
    feats = features_from_spectra(CalibratedSpectra(np.arange(3), wl, flux, flux * 0.1), ebv=[np.nan, 0.05, 0.05])
    assert feats.flags[0] == FLAG_MISSING_EBV and not feats.usable[0] and np.isnan(feats.flux[0]).all()
    assert feats.flags[1] == 0 and feats.usable[1]
    assert feats.flags[2] & FLAG_NOT_COMPUTABLE and np.isnan(feats.flux[2]).all()


def test_preprocessing_version_names_every_choice():
    version = Preprocessing().version
    for part in ("ln360-1000nmx60", "median", "rms", "545-555nm", "zhang2024", "0.961EBV+0.0011", "correction=none"):
        assert part in version
    assert Preprocessing(correction="huang2024").version != version


def test_huang2024_correction_missing_package_is_a_clear_error():
    with pytest.raises(CorrectionUnavailable, match="GaiaDR3XPspectracorrectionV1.*pip install"):
        check_available("huang2024")
    with pytest.raises(ValueError, match="unknown XP correction"):
        check_available("nope")


@pytest.mark.real_data
def test_synthetic_photometry_equals_gaiaxpy_generate():
    from gaiaxpy import PhotometricSystem, generate

    from tests.conftest import real_path
    from xpdb.xp.photometry import synthetic_photometry

    path = real_path("gaiaxpy", "XP_CONTINUOUS_RAW.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = generate(str(path), photometric_system=PhotometricSystem.Gaia_DR3_Vega, save_file=False)
    ours = synthetic_photometry(path)
    for band in ("G", "BP", "RP"):
        np.testing.assert_allclose(ours[band], ref[f"GaiaDr3Vega_mag_{band}"].to_numpy(), rtol=0, atol=1e-9)
