"""Every Keras model kind on every installed Keras backend: one artifact, the same predictions (1e-5).

Keras fixes its backend per process, so each backend runs ``backend_probe.py`` in a
subprocess: it trains a tiny model of each kind for a few steps, saves the artifact,
predicts with it, and predicts with the TensorFlow run's artifacts. This process (the
default backend) then loads the other backend's artifacts and predicts the same numbers.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.models.backend_probe import KINDS, predictions

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "tests" / "models" / "backend_probe.py"


def probe(backend: str, out: Path, load: Path | None = None) -> None:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
           "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, str(PROBE), str(out), *([str(load)] if load else [])], env=env,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    assert (out / "backend.txt").read_text() == backend


def need(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} backend is not installed (pip install "
                    + ("'jax[cpu]'" if backend == "jax" else backend) + "); not tested on it")


@pytest.fixture(scope="module")
def tensorflow_run(tmp_path_factory) -> Path:
    need("tensorflow")
    out = tmp_path_factory.mktemp("tensorflow")
    probe("tensorflow", out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_same_artifact_same_predictions_on_every_backend(backend, tensorflow_run, tmp_path):
    need(backend)
    probe(backend, tmp_path, tensorflow_run)
    for kind in KINDS:
        # the TensorFlow-trained artifact, loaded and run on this backend
        tf_own = np.load(tensorflow_run / f"{kind}_own.npz")
        loaded = np.load(tmp_path / f"{kind}_loaded.npz")
        assert set(loaded.files) == set(tf_own.files) - {"losses"}
        for key in loaded.files:
            assert np.isfinite(loaded[key]).all(), (kind, key)
            np.testing.assert_allclose(loaded[key], tf_own[key], rtol=1e-5, atol=1e-5, err_msg=f"{kind} {key}")
        # this backend trained its own (a few finite steps) and its artifact runs here the same
        own = np.load(tmp_path / f"{kind}_own.npz")
        assert len(own["losses"]) and np.isfinite(own["losses"]).all(), kind
        here = predictions(kind, (tmp_path / f"{kind}.bin").read_bytes())
        for key, value in here.items():
            np.testing.assert_allclose(value, own[key], rtol=1e-5, atol=1e-5, err_msg=f"{kind} {key} back here")
