"""A worker: lease a batch, compute what is missing, predict, write back exactly once.

Leasing. ``SELECT ... FOR UPDATE SKIP LOCKED`` picks a batch that is pending, or running
but abandoned. While it works on a batch, a worker holds a session advisory lock on it:
when a worker dies (even by SIGKILL, on any machine) PostgreSQL drops its session and the
lock, so the next worker sees the batch abandoned at once; a batch whose lease has
expired is also taken over (a hung worker). Each lease counts an attempt; a batch that
fails ``max_attempts`` times is marked failed with its error.

Writing. Predictions go through COPY into a temporary staging table and one
``INSERT ... ON CONFLICT (model_id, source_id) DO UPDATE`` into ``prediction``; the batch is
marked done in the same transaction, after checking that this worker still holds the
lease. A batch is therefore either entirely written and done, or not at all; re-running
it overwrites, never duplicates.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg

from xpdb.db.lease import LockSpace, claim, unlock
from xpdb.errors import LeaseLost
from xpdb.jobs import batches
from xpdb.jobs.batches import get_job, selection_sql


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Lease:
    batch_id: int
    job_id: int
    first: int
    last: int
    n_sources: int
    attempts: int


@dataclass
class BatchOutcome:
    batch_id: int
    n: int
    seconds: float
    computed_features: int


class Worker:
    """One process's worker: a connection, the loaded models, the staging table."""

    def __init__(self, url: str, *, name: str | None = None, device: str = "cpu"):
        """``device`` is 'cpu' or 'gpu' (``xpdb.models.backend.choose_device``); on 'gpu' the
        features are computed on the accelerator and the models are called in larger chunks."""
        from xpdb.models.backend import batch_sizes

        self.url = url
        self.name = name or worker_name()
        self.device = device
        self.batch_sizes = batch_sizes(device)
        if device == "gpu":
            from xpdb.xp import accel

            accel.use(accel.ArrayPath("float64", chunk=self.batch_sizes["features"]))
        self.conn = psycopg.connect(url)
        self._models: dict[int, tuple] = {}
        self.before_commit: Callable[[], None] | None = None  # fault injection in tests

    def close(self) -> None:
        self.conn.close()

    # -- leasing ------------------------------------------------------------------------------
    def lease(self, job_ids: list[int] | None = None) -> Lease | None:
        """Take the next pending batch, else an abandoned running one, of these jobs (any when None)."""
        conn = self.conn
        with conn.transaction():
            while True:
                # a running batch whose lock is free was abandoned; one whose lease expired is taken over
                row, got = claim(conn, LockSpace.JOB_BATCH, batches.lease_candidates(conn, job_ids),
                                 take_unlocked=lambda r: r[6] == "running" and r[7])
                if row is None:
                    return None
                batch_id, job_id, first, last, n, attempts, state, expired, max_attempts, lease_seconds = row
                if attempts >= max_attempts:
                    batches.give_up(conn, batch_id, job_id)
                    if got:
                        unlock(conn, LockSpace.JOB_BATCH, batch_id)
                    continue
                batches.start(conn, batch_id, job_id, self.name, lease_seconds)
                return Lease(batch_id, job_id, first, last, n, attempts + 1)

    def release(self, held: Lease) -> None:
        unlock(self.conn, LockSpace.JOB_BATCH, held.batch_id)
        self.conn.commit()

    # -- work -----------------------------------------------------------------------------------
    def _model(self, model_id: int):
        """(kind, loaded predictor, record) of a model, loaded once per worker."""
        if model_id not in self._models:
            from xpdb.models import kinds
            from xpdb.models.registry import artifact, by_id

            record = by_id(self.conn, model_id)
            kind = kinds.get(record.kind)
            kind.predict_batch = self.batch_sizes["model"]
            self._models[model_id] = (kind, kind.load(record, artifact(self.conn, model_id)), record)
            self.conn.commit()
        return self._models[model_id]

    def process(self, lease: Lease) -> BatchOutcome:
        """Predict every selected source of the leased range and write back; see the module docstring."""
        from xpdb.models.kinds import write_back

        t0 = time.perf_counter()
        conn = self.conn
        job = get_job(conn, lease.job_id)
        kind, loaded, record = self._model(job.model_id)
        sql = selection_sql(job.selection, job.spec.get("where"))
        ids = np.array([r[0] for r in conn.execute(f"{sql} AND x.source_id BETWEEN %s AND %s ORDER BY 1",
                                                   (lease.first, lease.last))], dtype=np.int64)
        conn.commit()
        inputs = kind.inputs(conn, record, ids, between=(lease.first, lease.last))
        outputs = kind.predict(loaded, inputs)
        nulls = {name: ~np.isfinite(values) if values.ndim == 1 else ~np.isfinite(values).any(axis=1)
                 for name, values in outputs.items() if values.dtype.kind == "f"}  # 2-D: per-pixel arrays
        with conn.transaction():
            owner = batches.holder(conn, lease.batch_id)
            if owner != (self.name, "running"):
                raise LeaseLost(f"batch {lease.batch_id} was taken over by {owner[0]} ({owner[1]})")
            if self.before_commit:
                self.before_commit()
            writer = getattr(kind, "write_back", write_back)  # a kind may write its own way (same arguments)
            writer(conn, kind.output, model_id=job.model_id, job_id=job.job_id, source_ids=ids, outputs=outputs,
                       nulls=nulls)
            seconds = time.perf_counter() - t0
            batches.finish(conn, lease.batch_id, lease.job_id, len(ids), seconds)
        return BatchOutcome(lease.batch_id, len(ids), seconds, getattr(inputs, "computed_features", 0))

    def fail(self, lease: Lease, error: str) -> None:
        """Record a failed attempt: back to pending, or failed after the last attempt."""
        conn = self.conn
        conn.rollback()
        with conn.transaction():
            batches.fail_attempt(conn, lease.batch_id, lease.job_id, self.name, error)

    def run(self, job_ids: list[int] | None = None, *, wait: bool = False, poll_seconds: float = 2.0,
            on_batch: Callable[[BatchOutcome], None] | None = None) -> int:
        """Work until no batch is left (or forever with ``wait``). Returns the number of batches done."""
        done = 0
        for job_id in job_ids or ():  # load the models before leasing, so a lease is never spent starting up
            try:
                self._model(get_job(self.conn, job_id).model_id)
            except Exception:  # a broken model fails its batches, with the error recorded there
                self.conn.rollback()
        while True:
            lease = self.lease(job_ids)
            if lease is None:
                if self._pending(job_ids):  # momentarily locked by another worker's lease
                    time.sleep(0.05)
                    continue
                if wait or self._others_running(job_ids):
                    time.sleep(poll_seconds)
                    if not wait and not self._others_running(job_ids) and not self._pending(job_ids):
                        return done
                    continue
                return done
            try:
                outcome = self.process(lease)
                done += 1
                if on_batch:
                    on_batch(outcome)
            except LeaseLost:
                self.conn.rollback()
            except Exception:  # one batch's failure is recorded, the worker goes on
                self.fail(lease, traceback.format_exc(limit=8))
            finally:
                self.release(lease)

    def _others_running(self, job_ids) -> bool:
        """Batches running elsewhere may still be abandoned and need taking over."""
        n = batches.count_batches(self.conn, "running", job_ids)
        self.conn.commit()
        return n > 0

    def _pending(self, job_ids) -> bool:
        n = batches.count_batches(self.conn, "pending", job_ids)
        self.conn.commit()
        return n > 0
