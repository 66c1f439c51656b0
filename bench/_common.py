"""Helpers shared by the benchmark scripts: a scratch database, a timer and a timed inference job."""

from __future__ import annotations

import time
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

from xpdb.db.engine import database_url
from xpdb.db.migrate import upgrade


def scratch_database(name: str) -> str:
    """Create (or recreate) database ``name`` next to the configured one and migrate it."""
    base = database_url()
    parts = urlsplit(base)
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    upgrade(url)
    return url


@contextmanager
def timer():
    t = {"seconds": 0.0}
    t0 = time.perf_counter()
    yield t
    t["seconds"] = time.perf_counter() - t0


def ratio_line(label: str, ours: float, base: float, unit: str) -> str:
    return f"{label:<44s} {ours:>12,.0f} {unit}   baseline {base:>12,.0f} {unit}   ratio {ours / base:6.2f}"


def run_job(url: str, model_id: int, workers: int, batch: int, *,
            output_table: str = "xpdb.prediction") -> tuple[float, float, int]:
    """(processing rate, wall-clock rate, stars) of one leased inference job over every source.

    ``output_table`` (the kind's output) is emptied of the model's rows first. The processing
    rate is over the batches (first lease to last commit); the wall-clock rate includes
    worker start-up.
    """
    import sys

    from xpdb.jobs.batches import create_job
    from xpdb.jobs.runner import follow, spawn_workers

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {output_table} WHERE model_id = %s", (model_id,))
        job_id = create_job(conn, model_id=model_id, selection="all", batch_size=batch)
        n = conn.execute("SELECT n_sources FROM xpdb.job WHERE job_id = %s", (job_id,)).fetchone()[0]
    t0 = time.perf_counter()
    result = follow(url, job_id, spawn_workers(url, job_id, workers), poll=0.2)
    wall = time.perf_counter() - t0
    if result["worker_errors"]:
        sys.exit("\n".join(result["worker_errors"]))
    with psycopg.connect(url, autocommit=True) as conn:
        first, last, done = conn.execute(
            "SELECT min(started_at), max(finished_at), sum(n_predicted) FROM xpdb.job_batch WHERE job_id = %s",
            (job_id,)).fetchone()
    assert done == n, (done, n)
    return n / (last - first).total_seconds(), n / wall, n
