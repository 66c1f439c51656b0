"""Inference jobs: crash safety (SIGKILL), concurrent workers, equality with direct predictions, flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from xpdb.cli.main import app
from xpdb.flags import PredictionFlag
from xpdb.jobs.batches import create_job, get_job, selection_sql
from xpdb.jobs.worker import Worker


def selected(conn, selection="giant_sample", where=None) -> list[int]:
    return [r[0] for r in conn.execute(selection_sql(selection, where) + " ORDER BY 1")]


def worker_cmd(job_id: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "xpdb.cli.main", "jobs", "work", "--job", str(job_id), *extra]


@pytest.mark.slow
def test_sigkill_mid_batch_then_rerun_gives_exactly_one_prediction_each(jobs_url):
    url, model = jobs_url
    with psycopg.connect(url, autocommit=True) as conn:
        job_id = create_job(conn, model_id=model.model_id, batch_size=150)
        expected = selected(conn)
    assert len(expected) > 300
    proc = subprocess.Popen(worker_cmd(job_id, "--pause-before-commit", "30"), env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(600):  # wait until it holds a batch inside its final transaction
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND state = 'idle in transaction' AND pid <> pg_backend_pid()").fetchone()
                running = conn.execute("SELECT count(*) FROM xpdb.job_batch WHERE job_id = %s AND state = 'running'",
                                       (job_id,)).fetchone()[0]
                if row[0] and running:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the worker never reached a batch: " + proc.stderr.read().decode()[-2000:])
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            state = conn.execute("SELECT state, attempts FROM xpdb.job_batch WHERE job_id = %s AND state = 'running'",
                                 (job_id,)).fetchall()
            assert state == [("running", 1)]  # left behind by the dead worker, lease not expired
            assert conn.execute("SELECT count(*) FROM xpdb.prediction").fetchone()[0] == 0  # nothing half-written
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    rerun = subprocess.run(worker_cmd(job_id, "--quiet"), env=dict(os.environ), capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    with psycopg.connect(url, autocommit=True) as conn:
        got = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.prediction WHERE model_id = %s ORDER BY 1",
                                          (model.model_id,))]
        assert got == expected  # none lost, none duplicated (and nothing else)
        states = conn.execute("SELECT state, max(attempts), count(*) FROM xpdb.job_batch WHERE job_id = %s "
                              "GROUP BY state", (job_id,)).fetchall()
        assert states[0][0] == "done" and len(states) == 1 and states[0][1] == 2  # the killed batch ran twice
        assert get_job(conn, job_id).state == "done"


def test_two_workers_share_a_job_without_doing_a_batch_twice(jobs_url):
    url, model = jobs_url
    with psycopg.connect(url, autocommit=True) as conn:
        job_id = create_job(conn, model_id=model.model_id, batch_size=40)
        expected = selected(conn)
        n_batches = get_job(conn, job_id).n_batches
    assert n_batches >= 10
    workers = [Worker(url, name=f"test-worker-{i}") for i in range(2)]
    for w in workers:
        w.before_commit = lambda: time.sleep(0.05)
    threads = [threading.Thread(target=w.run, args=([job_id],)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    for w in workers:
        w.close()
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT state, attempts, lease_owner FROM xpdb.job_batch WHERE job_id = %s",
                            (job_id,)).fetchall()
        assert {r[0] for r in rows} == {"done"} and {r[1] for r in rows} == {1}
        assert {r[2] for r in rows} == {"test-worker-0", "test-worker-1"}
        got = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.prediction ORDER BY 1")]
        assert got == expected


def test_written_predictions_equal_direct_model_output(jobs_url):
    from xpdb.models.registry import load
    from xpdb.models.uacsnet import predict
    from xpdb.xp.store import fetch_features

    url, model = jobs_url
    result = CliRunner().invoke(app, ["infer", "--model", model.ref, "--batch", "500", "--workers", "1"])
    assert result.exit_code == 0, result.output
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT source_id, feh, feh_err FROM xpdb.prediction WHERE feh IS NOT NULL "
                            "ORDER BY source_id").fetchall()
        ids = [r[0] for r in rows]
        record, net = load(conn, model.ref)
        feats = fetch_features(conn, ids, record.preprocessing_id)
    feh, err = predict(net, feats.flux, feats.flux_error)
    np.testing.assert_allclose([r[1] for r in rows], feh, rtol=1e-6)
    np.testing.assert_allclose([r[2] for r in rows], err, rtol=1e-6)


def test_all_sources_flags_and_a_poisoned_star(jobs_url):
    url, model = jobs_url
    with psycopg.connect(url, autocommit=True) as conn:
        # poison: a source whose BP band is gone and one whose E(B-V) is unknown
        poisoned = conn.execute("SELECT source_id FROM xpdb.giant_sample ORDER BY source_id LIMIT 2").fetchall()
        conn.execute("DELETE FROM xpdb.xp_features WHERE source_id = ANY(%s)", ([p[0] for p in poisoned],))
        conn.execute("DELETE FROM xpdb.xp_band WHERE source_id = %s AND band = 'bp'", (poisoned[0][0],))
        conn.execute("UPDATE xpdb.gaia_source SET ebv = NULL WHERE source_id = %s", (poisoned[1][0],))
        job_id = create_job(conn, model_id=model.model_id, selection="all", batch_size=400)
        n_batches = get_job(conn, job_id).n_batches
    worker = Worker(url)
    assert worker.run([job_id]) == n_batches
    worker.close()
    with psycopg.connect(url, autocommit=True) as conn:
        assert {r[0] for r in conn.execute("SELECT state FROM xpdb.job_batch WHERE job_id = %s", (job_id,))} == {"done"}
        flags = dict(conn.execute("SELECT source_id, flags FROM xpdb.prediction").fetchall())
        assert flags[poisoned[0][0]] & PredictionFlag.MISSING_BAND and flags[poisoned[0][0]] & PredictionFlag.NO_FEATURES
        assert flags[poisoned[1][0]] & PredictionFlag.NO_FEATURES
        feh = dict(conn.execute("SELECT source_id, feh FROM xpdb.prediction").fetchall())
        assert feh[poisoned[0][0]] is None and feh[poisoned[1][0]] is None
        phot = conn.execute("SELECT source_id, bp_rp0, phot_g_mean_mag FROM xpdb.source_photometry").fetchall()
        giants = {r[0] for r in conn.execute("SELECT source_id FROM xpdb.giant_sample")}
        for sid, bp_rp0, g in phot:
            if sid not in flags:
                continue
            assert bool(flags[sid] & PredictionFlag.OUTSIDE_COLOUR) == (bp_rp0 is None or not 0.7 < bp_rp0 < 1.9)
            assert bool(flags[sid] & PredictionFlag.FAINT) == (g is None or g > 15)
            assert bool(flags[sid] & PredictionFlag.NOT_GIANT) == (sid not in giants)


def test_a_failing_batch_is_retried_then_failed_with_its_error(jobs_url):
    url, model = jobs_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact, preprocessing_id) "
                     "SELECT kind, 'broken', 1, hyperparameters, 'not a keras file'::bytea, preprocessing_id "
                     "FROM xpdb.model WHERE model_id = %s", (model.model_id,))
        broken = conn.execute("SELECT model_id FROM xpdb.model WHERE name = 'broken'").fetchone()[0]
        job_id = create_job(conn, model_id=broken, batch_size=100000, max_attempts=2)
    worker = Worker(url)
    worker.run([job_id])
    worker._models.clear()
    worker.close()
    with psycopg.connect(url, autocommit=True) as conn:
        state, attempts, error = conn.execute("SELECT state, attempts, error FROM xpdb.job_batch WHERE job_id = %s",
                                              (job_id,)).fetchone()
        assert (state, attempts) == ("failed", 2) and error
        assert get_job(conn, job_id).state == "failed"
    result = CliRunner().invoke(app, ["jobs", "retry", str(job_id)])
    assert result.exit_code == 0 and "1 batches back to pending" in result.output
    shown = CliRunner().invoke(app, ["jobs", "show", str(job_id)])
    assert "pending" in shown.output


def test_bad_where_and_unknown_model_fail_clearly(jobs_url):
    result = CliRunner().invoke(app, ["infer", "--where", "no_such_column > 1", "--no-wait"])
    assert result.exit_code == 1 and "no_such_column" in result.output
    result = CliRunner().invoke(app, ["infer", "--model", "nope", "--no-wait"])
    assert result.exit_code == 1 and "no model 'nope'" in result.output
