"""Inference jobs in the database: create, split into source_id ranges, lease, finish, list, retry, cancel.

This module owns ``xpdb.job`` and ``xpdb.job_batch``: every statement that writes them is here
(the worker and the commands call these functions).

A job selects sources (by default the model's domain: ``giant_sample``, which includes
0.7 < (BP-RP)_0 < 1.9; ``final_sample`` is the paper's catalogue selection, the first three
cuts; ``--all`` drops the cuts) that have XP spectra, and splits them in
source_id order into batches of ``batch_size``, each stored as a (first, last) source_id
range in ``job_batch``. Workers anywhere that reach the database lease batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg

from xpdb.errors import JobError
from xpdb.selection import SELECTIONS as SELECTION_DEFINITIONS

SELECTIONS = tuple(name for name, s in SELECTION_DEFINITIONS.items() if s.view) + ("all",)


def selection_sql(selection: str, where: str | None = None) -> str:
    """SQL returning the ``source_id`` of every selected source with an XP spectrum (alias x)."""
    if selection not in SELECTIONS:
        raise JobError(f"unknown selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
    if selection == "all":
        body = ("SELECT x.source_id FROM xpdb.xp_sources AS x "
                "LEFT JOIN xpdb.source_photometry AS s ON s.source_id = x.source_id WHERE true")
    else:
        body = (f"SELECT x.source_id FROM xpdb.{selection} AS s JOIN xpdb.xp_sources "
                f"AS x ON x.source_id = s.source_id WHERE true")
    if where:
        body += f" AND ({where})"
    return body


@dataclass
class Job:
    job_id: int
    model_id: int
    model_ref: str
    selection: str
    spec: dict
    batch_size: int
    state: str
    n_sources: int
    n_batches: int
    created_at: object
    finished_at: object
    max_attempts: int
    lease_seconds: int


def create_job(conn: psycopg.Connection, *, model_id: int, selection: str = "giant_sample", where: str | None = None,
               batch_size: int = 20000, max_attempts: int = 3, lease_seconds: int = 600, spec: dict | None = None) -> int:
    """Create a job and its batches in one transaction. Returns the job id."""
    if batch_size < 1:
        raise JobError("batch_size (CLI: --batch) must be a positive number of sources")
    sql = selection_sql(selection, where)
    try:
        with conn.transaction():
            conn.execute(f"EXPLAIN {sql}")  # a bad --where fails here, clearly
    except psycopg.Error as exc:
        raise JobError(f"the selection does not run: {exc.diag.message_primary or exc}") from exc
    with conn.transaction():
        spec = {**(spec or {}), "where": where}
        job_id = conn.execute(
            "INSERT INTO xpdb.job (kind, model_id, selection, spec, batch_size, max_attempts, lease_seconds) "
            "VALUES ('infer', %s, %s, %s, %s, %s, %s) RETURNING job_id",
            (model_id, selection, json.dumps(spec), batch_size, max_attempts, lease_seconds)).fetchone()[0]
        conn.execute(f"""
            INSERT INTO xpdb.job_batch (job_id, first_source_id, last_source_id, n_sources)
            SELECT %(job)s, min(source_id), max(source_id), count(*)
            FROM (SELECT source_id, (row_number() OVER (ORDER BY source_id) - 1) / %(size)s AS b
                  FROM ({sql}) AS selected) AS numbered
            GROUP BY b ORDER BY b""", {"job": job_id, "size": batch_size})
        n_sources, n_batches = conn.execute(
            "SELECT coalesce(sum(n_sources), 0), count(*) FROM xpdb.job_batch WHERE job_id = %s", (job_id,)).fetchone()
        conn.execute("UPDATE xpdb.job SET n_sources = %s, n_batches = %s, state = CASE WHEN %s = 0 THEN 'done' "
                     "ELSE 'pending' END, finished_at = CASE WHEN %s = 0 THEN now() END WHERE job_id = %s",
                     (n_sources, n_batches, n_batches, n_batches, job_id))
    return job_id


_JOB_COLUMNS = ("j.job_id, j.model_id, m.name || ':' || m.version, j.selection, j.spec, j.batch_size, j.state, "
                "j.n_sources, j.n_batches, j.created_at, j.finished_at, j.max_attempts, j.lease_seconds")


def get_job(conn: psycopg.Connection, job_id: int) -> Job:
    row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM xpdb.job j JOIN xpdb.model m USING (model_id) "
                       f"WHERE j.job_id = %s", (job_id,)).fetchone()
    if row is None:
        raise JobError(f"no job {job_id}")
    return Job(*row)


def list_jobs(conn: psycopg.Connection, limit: int = 50) -> list[Job]:
    rows = conn.execute(f"SELECT {_JOB_COLUMNS} FROM xpdb.job j JOIN xpdb.model m USING (model_id) "
                        f"ORDER BY j.job_id DESC LIMIT %s", (limit,)).fetchall()
    return [Job(*r) for r in rows]


def batch_counts(conn: psycopg.Connection, job_id: int) -> dict[str, dict[str, int]]:
    """Per batch state: number of batches and of sources."""
    rows = conn.execute("SELECT state, count(*), coalesce(sum(n_sources), 0) FROM xpdb.job_batch "
                        "WHERE job_id = %s GROUP BY state", (job_id,)).fetchall()
    return {state: {"batches": n, "sources": int(s)} for state, n, s in rows}


def refresh_state(conn: psycopg.Connection, job_id: int) -> str:
    """Derive the job's state from its batches (done / failed / running / pending / cancelled)."""
    counts = batch_counts(conn, job_id)
    current = conn.execute("SELECT state FROM xpdb.job WHERE job_id = %s", (job_id,)).fetchone()[0]
    if current == "cancelled":
        return current
    if counts.get("pending") or counts.get("running"):
        state = "running" if counts.get("running") or counts.get("done") or counts.get("failed") else "pending"
    elif counts.get("failed"):
        state = "failed"
    else:
        state = "done"
    conn.execute("UPDATE xpdb.job SET state = %s, finished_at = CASE WHEN %s IN ('done', 'failed') "
                 "THEN coalesce(finished_at, now()) END WHERE job_id = %s", (state, state, job_id))
    return state


def retry(conn: psycopg.Connection, job_id: int) -> int:
    """Put failed (and cancelled) batches back to pending with fresh attempts. Returns how many."""
    get_job(conn, job_id)
    with conn.transaction():
        n = conn.execute("UPDATE xpdb.job_batch SET state = 'pending', attempts = 0, error = NULL, lease_owner = NULL, "
                         "lease_expires = NULL WHERE job_id = %s AND state IN ('failed', 'cancelled')",
                         (job_id,)).rowcount
        conn.execute("UPDATE xpdb.job SET state = 'pending', finished_at = NULL WHERE job_id = %s", (job_id,))
        refresh_state(conn, job_id)
    return n


def cancel(conn: psycopg.Connection, job_id: int) -> int:
    """Cancel the batches not yet done; running ones finish but are not leased again."""
    get_job(conn, job_id)
    with conn.transaction():
        n = conn.execute("UPDATE xpdb.job_batch SET state = 'cancelled' WHERE job_id = %s AND state = 'pending'",
                         (job_id,)).rowcount
        conn.execute("UPDATE xpdb.job SET state = 'cancelled', finished_at = now() WHERE job_id = %s", (job_id,))
    return n


# -- the worker's side: lease candidates, take, finish, fail ---------------------------------------
_CANDIDATES = """
    SELECT b.batch_id, b.job_id, b.first_source_id, b.last_source_id, b.n_sources, b.attempts, b.state,
           b.lease_expires < now() AS expired, j.max_attempts, j.lease_seconds
    FROM xpdb.job_batch b JOIN xpdb.job j USING (job_id)
    WHERE b.state = %(state)s AND j.state IN ('pending', 'running')
      AND (%(jobs)s::int[] IS NULL OR b.job_id = ANY(%(jobs)s::int[]))
    ORDER BY b.job_id, b.batch_id
    FOR UPDATE OF b SKIP LOCKED LIMIT %(limit)s"""


def lease_candidates(conn: psycopg.Connection, job_ids: list[int] | None) -> list[tuple]:
    """Batches a worker may take, locked FOR UPDATE SKIP LOCKED: the next pending one, then running ones
    (abandoned when their worker's advisory lock is free, or expired). One pending row at a time, so
    that concurrent workers never starve each other."""
    rows = conn.execute(_CANDIDATES, {"state": "pending", "jobs": job_ids, "limit": 1}).fetchall()
    return rows + conn.execute(_CANDIDATES, {"state": "running", "jobs": job_ids, "limit": 64}).fetchall()


def give_up(conn: psycopg.Connection, batch_id: int, job_id: int) -> None:
    """A batch that used all its attempts: failed, with the last error kept."""
    conn.execute("UPDATE xpdb.job_batch SET state = 'failed', finished_at = now(), error = coalesce("
                 "error, 'abandoned by its worker') || ' (after ' || attempts || ' attempts)' "
                 "WHERE batch_id = %s", (batch_id,))
    refresh_state(conn, job_id)


def start(conn: psycopg.Connection, batch_id: int, job_id: int, owner: str, lease_seconds: int) -> None:
    """Lease a batch to ``owner`` for ``lease_seconds`` (counting an attempt)."""
    conn.execute("UPDATE xpdb.job_batch SET state = 'running', lease_owner = %s, attempts = attempts + 1, "
                 "lease_expires = now() + make_interval(secs => %s), started_at = now() "
                 "WHERE batch_id = %s", (owner, lease_seconds, batch_id))
    conn.execute("UPDATE xpdb.job SET state = 'running' WHERE job_id = %s AND state = 'pending'", (job_id,))


def holder(conn: psycopg.Connection, batch_id: int) -> tuple[str | None, str]:
    """(lease owner, state) of a batch, locked until the end of the transaction."""
    return conn.execute("SELECT lease_owner, state FROM xpdb.job_batch WHERE batch_id = %s FOR UPDATE",
                        (batch_id,)).fetchone()


def finish(conn: psycopg.Connection, batch_id: int, job_id: int, n: int, seconds: float) -> None:
    """A batch written back: done, in the write-back's transaction."""
    conn.execute("UPDATE xpdb.job_batch SET state = 'done', finished_at = now(), n_predicted = %s, "
                 "seconds = %s, error = NULL WHERE batch_id = %s", (n, seconds, batch_id))
    refresh_state(conn, job_id)


def fail_attempt(conn: psycopg.Connection, batch_id: int, job_id: int, owner: str, error: str) -> None:
    """A failed attempt: back to pending, or failed after the last attempt."""
    conn.execute("""
        UPDATE xpdb.job_batch b SET state = CASE WHEN b.attempts >= j.max_attempts THEN 'failed'
                                                 ELSE 'pending' END,
               error = %s, lease_owner = NULL, lease_expires = NULL,
               finished_at = CASE WHEN b.attempts >= j.max_attempts THEN now() END
        FROM xpdb.job j WHERE j.job_id = b.job_id AND b.batch_id = %s AND b.lease_owner = %s""",
                 (error[-2000:], batch_id, owner))
    refresh_state(conn, job_id)


def count_batches(conn: psycopg.Connection, state: str, job_ids: list[int] | None) -> int:
    """How many batches of these jobs (all when None) are in ``state``."""
    return conn.execute("SELECT count(*) FROM xpdb.job_batch WHERE state = %(state)s AND "
                        "(%(jobs)s::int[] IS NULL OR job_id = ANY(%(jobs)s::int[]))",
                        {"state": state, "jobs": job_ids}).fetchone()[0]


def resume(conn: psycopg.Connection, job_id: int) -> Job:
    """Let a failed job run again (its pending and abandoned batches); returns it."""
    job = get_job(conn, job_id)
    conn.execute("UPDATE xpdb.job SET state = 'running' WHERE job_id = %s AND state = 'failed'", (job_id,))
    conn.commit()
    return job
