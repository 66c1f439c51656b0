"""The array-backend path of calibration + features (xpdb.xp.accel) equals the NumPy path.

Run here on the CPU with this process's Keras backend (float64), and in a JAX subprocess
(float64 through ``jax_enable_x64``): the same flags, the same NaN rows, and the float32
features equal to float32 rounding. The float32 variant (for accelerators without fast
float64) is compared with float64 against the features' own errors.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpdb.xp import accel
from xpdb.xp.features import Preprocessing, compute_features
from xpdb.xp.inputs import to_batch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stars():
    """A synthetic sky's XP_CONTINUOUS rows (one made to lack BP), E(B-V) with one NaN, one row without correlations."""
    from xpdb.synth.sky import make_sky

    sky = make_sky(300, seed=5)
    batch = to_batch(sky.xp_continuous)
    ebv_of = dict(zip(sky.gaia_source.column("source_id").to_pylist(), sky.gaia_source.column("ebv").to_pylist()))
    ebv = np.array([ebv_of[s] for s in batch.source_id.values], float)
    both = np.flatnonzero(batch.band_present("bp") & batch.band_present("rp"))
    ebv[both[3]] = np.nan
    corr = batch.arrays["rp_coefficient_correlations"]
    corr.null[both[5]], corr.lengths[both[5]] = True, 0
    corr.values[both[5]] = np.nan
    for name, array in batch.arrays.items():  # one star without BP: the NumPy fallback is exercised
        if name.startswith("bp_"):
            array.null[both[7]], array.lengths[both[7]] = True, 0
            array.values[both[7]] = np.nan
    assert (~batch.band_present("bp")).sum() == 1
    return batch, ebv


def assert_same_features(got, ref, rtol=2e-6):
    np.testing.assert_array_equal(got.flags, ref.flags)
    np.testing.assert_array_equal(np.isnan(got.flux), np.isnan(ref.flux))
    np.testing.assert_array_equal(np.isnan(got.flux_error), np.isnan(ref.flux_error))
    np.testing.assert_allclose(got.flux, ref.flux, rtol=rtol, atol=0)
    np.testing.assert_allclose(got.flux_error, ref.flux_error, rtol=rtol, atol=0)
    np.testing.assert_array_equal(got.source_id, ref.source_id)


@pytest.mark.parametrize("truncation", [False, True])
def test_array_path_equals_numpy_path(stars, truncation):
    batch, ebv = stars
    pre = Preprocessing(truncation=truncation)
    ref = compute_features(batch, ebv, preprocessing=pre, array_path=False)
    assert ref.usable.sum() > 250  # a few rows are flagged (no E(B-V), not computable): compared too
    got = accel.ArrayPath("float64", chunk=128).compute_features(batch, ebv, preprocessing=pre)
    assert_same_features(got, ref)


def test_worker_choice_routes_compute_features(stars):
    """``accel.use`` (what ``jobs work --device gpu`` does) sends compute_features through the array path."""
    batch, ebv = stars
    ref = compute_features(batch, ebv, array_path=False)
    path = accel.ArrayPath("float64", chunk=4096)
    calls = []
    original = path.features_arrays
    path.features_arrays = lambda *a, **k: calls.append(len(a[-1])) or original(*a, **k)
    accel.use(path)
    try:
        got = compute_features(batch, ebv)
    finally:
        accel.use(None)
    assert calls == [int((batch.band_present("bp") & batch.band_present("rp")).sum())]
    assert_same_features(got, ref)


def test_float32_differs_from_float64_by_far_less_than_the_feature_errors(stars):
    batch, ebv = stars
    f64 = accel.ArrayPath("float64").compute_features(batch, ebv)
    f32 = accel.ArrayPath("float32").compute_features(batch, ebv)
    np.testing.assert_array_equal(f32.flags, f64.flags)
    ok = f64.usable
    ratio = np.abs(f32.flux[ok].astype(float) - f64.flux[ok]) / f64.flux_error[ok]
    assert ratio.max() < 0.01, ratio.max()  # under 1 per cent of each pixel's own error
    np.testing.assert_allclose(f32.flux_error[ok], f64.flux_error[ok], rtol=1e-3)


def test_constants_file_round_trip(tmp_path, stars):
    """The constants a GPU node reads from a file (no GaiaXPy there) give the same features."""
    batch, ebv = stars
    path = accel.export_constants(tmp_path / "constants.npz")
    assert path.stat().st_size < 2_000_000
    got = accel.ArrayPath("float64", consts=accel.Constants.load(path)).compute_features(batch, ebv)
    assert_same_features(got, compute_features(batch, ebv, array_path=False))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz: not an xpdb accelerator constants file"):
        accel.Constants.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", grid=np.arange(3))
    with pytest.raises(ValueError, match="other.npz: not an xpdb accelerator constants file"):
        accel.Constants.load(tmp_path / "other.npz")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (pip install 'jax[cpu]')")
def test_jax_float64_path_equals_numpy_path(stars, tmp_path):
    batch, ebv = stars
    both = batch.band_present("bp") & batch.band_present("rp")
    rows = np.flatnonzero(both)
    arrays = {f"{b}_{name}": batch.arrays[f"{b}_{key}"].values[rows]
              for b in ("bp", "rp") for name, key in (("c", "coefficients"), ("e", "coefficient_errors"),
                                                     ("r", "coefficient_correlations"))}
    np.savez(tmp_path / "in.npz", ebv=ebv[rows], **arrays)
    accel.export_constants(tmp_path / "constants.npz")
    script = (
        "import sys, numpy as np\n"
        "from xpdb.xp import accel\n"
        "from xpdb.models.backend import keras\n"
        "z = np.load(sys.argv[1])\n"
        "p = accel.ArrayPath('float64', chunk=100, consts=accel.Constants.load(sys.argv[2]))\n"
        "f, e, n = p.features_arrays(*(z[f'{b}_{x}'] for b in ('bp', 'rp') for x in 'cer'), z['ebv'])\n"
        "np.savez(sys.argv[3], flux=f, error=e, norm=n, backend=keras().backend.backend(), dtype=str(p.k.ops.convert_to_tensor(1.0, 'float64').dtype))\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "in.npz"), str(tmp_path / "constants.npz"),
                          str(tmp_path / "out.npz")], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    assert str(out["backend"]) == "jax" and "64" in str(out["dtype"])
    ref = compute_features(batch, ebv, array_path=False)
    usable = ref.usable[rows]
    assert usable.sum() == len(rows) - 1  # the NaN E(B-V)
    np.testing.assert_allclose(out["flux"][usable].astype(np.float32), ref.flux[rows][usable], rtol=2e-6, atol=0)
    np.testing.assert_allclose(out["error"][usable].astype(np.float32), ref.flux_error[rows][usable], rtol=2e-6,
                               atol=0)
    assert np.isnan(out["flux"][~usable]).all()
