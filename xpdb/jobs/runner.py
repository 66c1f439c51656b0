"""Run a job's workers as processes on this machine and follow their progress from the database.

Each worker is ``xpdb jobs work --job ID`` in its own process (the same command runs on
other machines, in a Slurm array or a docker-compose ``worker`` service). With K workers
on this machine, each gets cores/K threads for BLAS and TensorFlow so they do not fight.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg

from xpdb.jobs.batches import batch_counts, refresh_state


def worker_env(workers: int) -> dict[str, str]:
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env[var] = threads
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    return env


def spawn_workers(url: str, job_id: int, workers: int) -> list[subprocess.Popen]:
    env = worker_env(workers)
    env["XPDB_DATABASE_URL"] = url
    cmd = [sys.executable, "-m", "xpdb.cli.main", "jobs", "work", "--job", str(job_id), "--quiet"]
    return [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(workers)]


def follow(url: str, job_id: int, procs: list[subprocess.Popen],
           progress: Callable[[int, int], None] | None = None, poll: float = 0.5) -> dict:
    """Wait for the workers, reporting sources done; returns the final batch counts."""
    with psycopg.connect(url, autocommit=True) as conn:
        total = conn.execute("SELECT n_sources FROM xpdb.job WHERE job_id = %s", (job_id,)).fetchone()[0]
        while True:
            counts = batch_counts(conn, job_id)
            if progress:
                progress(counts.get("done", {}).get("sources", 0), total)
            alive = [p for p in procs if p.poll() is None]
            if not alive:
                break
            time.sleep(poll)
        refresh_state(conn, job_id)
        counts = batch_counts(conn, job_id)
        if progress:
            progress(counts.get("done", {}).get("sources", 0), total)
    errors = []
    for p in procs:
        p.wait()
        if p.stderr:
            text = p.stderr.read().decode(errors="replace")
            p.stderr.close()
            if p.returncode != 0 and text.strip():
                errors.append(text)
    return {"counts": counts, "worker_errors": errors}
