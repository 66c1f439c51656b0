"""``xpdb jobs work --device``: the choice of device, and a worker computing features on the array path."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import psycopg
import pytest

from xpdb.jobs.batches import create_job, get_job
from xpdb.jobs.worker import Worker
from xpdb.models.backend import DeviceError, batch_sizes, choose_device


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xpdb.cli.main", "jobs", "work", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (pip install 'jax[cpu]')")
def test_device_gpu_without_a_gpu_is_a_clear_error():
    run = _cli("--device", "gpu", "--job", "1", KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    assert run.returncode == 1
    assert "--device gpu: the Keras backend 'jax' sees no GPU" in run.stdout + run.stderr


def test_device_choice_rules(monkeypatch):
    with pytest.raises(DeviceError, match="auto, cpu, gpu"):
        choose_device("tpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert choose_device("auto") == "cpu"  # no GPU device: decided without starting a backend
    assert choose_device("cpu") == "cpu"
    assert batch_sizes("gpu")["model"] > batch_sizes("cpu")["model"]


def test_worker_on_the_array_path_writes_the_numpy_paths_features_and_predictions(jobs_url):
    """A worker with device 'gpu' (here the array path on this CPU's backend) computes the missing
    features through ``xpdb.xp.accel``; they and the predictions equal the NumPy path's."""
    from xpdb.models.registry import load
    from xpdb.models.uacsnet import predict
    from xpdb.xp import accel
    from xpdb.xp.features import Preprocessing
    from xpdb.xp.store import compute_for_sources, fetch_features

    url, model = jobs_url
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.giant_sample ORDER BY 1 LIMIT 300")]
        reference = compute_for_sources(conn, np.array(ids), Preprocessing())
        conn.execute("DELETE FROM xpdb.xp_features WHERE source_id = ANY(%s)", (ids,))
        job_id = create_job(conn, model_id=model.model_id, selection="giant_sample",
                            where=f"x.source_id <= {ids[-1]}", batch_size=200)
        n_batches = get_job(conn, job_id).n_batches
    worker = Worker(url, device="gpu")
    try:
        assert isinstance(accel.active(), accel.ArrayPath)
        done = worker.run([job_id])
        errors = [r[0] for r in worker.conn.execute("SELECT error FROM xpdb.job_batch WHERE job_id = %s "
                                                    "AND error IS NOT NULL", (job_id,))]
        assert done == n_batches, errors[:1]
    finally:
        worker.close()
        accel.use(None)
    with psycopg.connect(url, autocommit=True) as conn:
        record, net = load(conn, model.ref)
        stored = fetch_features(conn, ids, record.preprocessing_id)
        rows = conn.execute("SELECT source_id, feh, feh_err FROM xpdb.prediction WHERE job_id = %s ORDER BY 1",
                            (job_id,)).fetchall()
    np.testing.assert_array_equal(stored.flags, reference.flags)
    np.testing.assert_allclose(stored.flux, reference.flux, rtol=2e-6)
    np.testing.assert_allclose(stored.flux_error, reference.flux_error, rtol=2e-6)
    assert [r[0] for r in rows] == ids
    feh, err = predict(net, reference.flux, reference.flux_error)
    got = np.array([[np.nan if v is None else v for v in r[1:]] for r in rows], float)
    np.testing.assert_allclose(got[:, 0], feh, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[:, 1], err, rtol=1e-5, atol=1e-5)
