"""UWS jobs kept in PostgreSQL (``xpdb.uws_job`` and ``xpdb.uws_result``).

The service writes these tables with the main role; users' queries, which run as
``xpdb_reader``, cannot read them. A job being executed is marked by its executor's
session-level advisory lock (``xpdb.db.lease``, space ``UWS_JOB``), taken in
the same transaction that sets the phase to EXECUTING. A job left EXECUTING whose lock
is free has lost its executor (the server died or lost its connection):
:meth:`JobStore.recover` queues it again, or gives up with ERROR after
:data:`MAX_ATTEMPTS` attempts. So jobs survive a server restart, and several servers may
share one database.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg

from xpdb.service.pool import ConnectionPool
from xpdb.db.lease import LockSpace, is_free, try_lock, unlock

PHASES = ("PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "UNKNOWN", "HELD", "SUSPENDED",
          "ARCHIVED")
ACTIVE = ("PENDING", "QUEUED", "EXECUTING")
MAX_ATTEMPTS = 3
# parameters that act on the job instead of being job parameters
CONTROL = ("PHASE", "RUNID", "EXECUTIONDURATION", "DESTRUCTION", "ACTION")

_COLUMNS = ("job_id, run_id, phase, parameters, creation_time, start_time, end_time, execution_duration, "
            "destruction, error_message, result_type, result_rows, overflow, attempts, owner_id")
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class JobNotFound(LookupError):
    """No job with this id (never existed, deleted or destroyed)."""


class JobStateError(ValueError):
    """The request does not fit the job's phase (HTTP 400)."""


def check_access(job: Job, user: str | None) -> None:
    """Whether ``user`` (None: anonymous) may see and act on ``job``.

    A job made with a token belongs to its user alone (401 without credentials, 403 for
    another user). An anonymous job has no owner: its unguessable id (128 random bits)
    is the only key to it, and it is never listed.
    """
    from xpdb.service.auth import AuthenticationError, Forbidden

    if job.owner_id is None or job.owner_id == user:
        return
    if user is None:
        raise AuthenticationError(f"job {job.job_id} belongs to a user: send that user's token")
    raise Forbidden(f"job {job.job_id} belongs to another user")


@dataclass
class Job:
    job_id: str
    run_id: str | None
    phase: str
    parameters: dict
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    execution_duration: int
    destruction: datetime
    error_message: str | None
    result_type: str | None
    result_rows: int | None
    overflow: bool | None
    attempts: int = 0
    owner_id: str | None = None


def utc_iso(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z, as UWS shows times."""
    if when is None:
        return None
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (UTC when no zone is given)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise JobStateError(f"{text!r} is not an ISO 8601 time such as 2030-01-31T12:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


class JobStore:
    """Job records; HTTP handlers use the pooled connections, executors pass their own."""

    def __init__(self, pool: ConnectionPool, *, default_duration: int, duration_limit: int, retention_s: int):
        self.pool = pool
        self.default_duration = default_duration
        self.duration_limit = duration_limit
        self.retention_s = retention_s

    # -- HTTP side -------------------------------------------------------------------------
    def create(self, parameters: dict[str, str], owner: str | None = None,
               uploads: list[tuple[str, str, bytes]] | None = None) -> Job:
        """A new PENDING job (QUEUED when PHASE=RUN is among the parameters), owned by ``owner``, with the
        tables it uploads ((name, source, bytes), kept in ``xpdb.uws_upload`` until the job is destroyed)."""
        params = {k.upper(): v for k, v in parameters.items()}
        if any("\x00" in k or "\x00" in v for k, v in params.items()):
            raise JobStateError("a parameter contains a NUL character")
        phase = params.get("PHASE", "").strip().upper()
        if phase and phase != "RUN":
            raise JobStateError(f"PHASE={params['PHASE']!r} at creation; only PHASE=RUN is allowed")
        duration = self._duration(params.get("EXECUTIONDURATION"))
        now = datetime.now(timezone.utc)
        destruction = now + timedelta(seconds=self.retention_s)
        if params.get("DESTRUCTION"):
            destruction = min(parse_time(params["DESTRUCTION"]), destruction)
        job_params = {k: v for k, v in params.items() if k not in CONTROL}
        job_id = secrets.token_urlsafe(16)  # 128 random bits: the key to an anonymous job
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                f"INSERT INTO xpdb.uws_job (job_id, run_id, phase, parameters, execution_duration, destruction, "
                f"owner_id) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (job_id, params.get("RUNID"), "QUEUED" if phase == "RUN" else "PENDING", json.dumps(job_params),
                 duration, destruction, owner)).fetchone()
            for name, source, data in uploads or ():
                conn.execute("INSERT INTO xpdb.uws_upload (job_id, name, source, content) VALUES (%s, %s, %s, %s)",
                             (job_id, name, source, data))
        return Job(*row)

    @staticmethod
    def uploads(conn, job_id: str) -> list[tuple[str, str, bytes]]:
        """The tables job ``job_id`` uploaded: (name, source, bytes)."""
        return [(name, source, bytes(content)) for name, source, content in conn.execute(
            "SELECT name, source, content FROM xpdb.uws_upload WHERE job_id = %s ORDER BY name", (job_id,))]

    def get(self, job_id: str, user: str | None | bool = False) -> Job:
        """The job; with ``user`` (None: anonymous), only if that user may see it (see :func:`check_access`)."""
        if not JOB_ID.match(job_id):
            raise JobNotFound(f"no job {job_id!r}: job ids are letters, digits, - and _")
        with self.pool.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM xpdb.uws_job WHERE job_id = %s", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id!r} (it may have been deleted or destroyed)")
        job = Job(*row)
        if user is not False:
            check_access(job, user)
        return job

    def list(self, *, owner: str | None, phases: list[str] | None = None, after: datetime | None = None,
             last: int | None = None) -> list[Job]:
        """``owner``'s jobs, oldest first; ARCHIVED ones only when asked for by PHASE (UWS 1.1).

        Anonymous jobs belong to no one and are never listed (``owner`` None lists nothing).
        """
        if owner is None:
            return []
        sql = f"SELECT {_COLUMNS} FROM xpdb.uws_job WHERE owner_id = %s AND phase = ANY(%s)"
        wanted = phases or [p for p in PHASES if p != "ARCHIVED"]
        args: list = [owner, wanted]
        if after is not None:
            sql += " AND creation_time > %s"
            args.append(after)
        if last is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY creation_time DESC LIMIT %s) AS j"
            args.append(last)
        with self.pool.connection() as conn:
            rows = conn.execute(sql + " ORDER BY creation_time, job_id", args).fetchall()
        return [Job(*r) for r in rows]

    def delete(self, job_id: str) -> None:
        with self.pool.connection() as conn:
            if conn.execute("DELETE FROM xpdb.uws_job WHERE job_id = %s", (job_id,)).rowcount == 0:
                raise JobNotFound(f"no job {job_id!r}")

    def run(self, job_id: str) -> Job:
        """PHASE=RUN: a PENDING job is queued; a queued or running one is left as it is."""
        with self.pool.connection() as conn:
            conn.execute("UPDATE xpdb.uws_job SET phase = 'QUEUED' WHERE job_id = %s AND phase IN ('PENDING', 'HELD')",
                         (job_id,))
        job = self.get(job_id)
        if job.phase not in ("QUEUED", "EXECUTING"):
            raise JobStateError(f"job {job_id} is {job.phase}; only a PENDING job can be run")
        return job

    def abort(self, job_id: str) -> Job:
        """PHASE=ABORT: a job that has not finished becomes ABORTED (its executor is told by the caller)."""
        with self.pool.connection() as conn:
            conn.execute("UPDATE xpdb.uws_job SET phase = 'ABORTED', end_time = now() "
                         "WHERE job_id = %s AND phase IN ('PENDING', 'QUEUED', 'EXECUTING', 'HELD', 'SUSPENDED')",
                         (job_id,))
        return self.get(job_id)

    def update(self, job_id: str, parameters: dict[str, str]) -> Job:
        """EXECUTIONDURATION, DESTRUCTION, RUNID and, while PENDING, the query parameters."""
        params = {k.upper(): v for k, v in parameters.items()}
        if any("\x00" in k or "\x00" in v for k, v in params.items()):
            raise JobStateError("a parameter contains a NUL character")
        job = self.get(job_id)
        sets, args = [], []
        if "EXECUTIONDURATION" in params:
            if job.phase != "PENDING":
                raise JobStateError(f"job {job_id} is {job.phase}; EXECUTIONDURATION can only change while PENDING")
            sets.append("execution_duration = %s")
            args.append(self._duration(params["EXECUTIONDURATION"]))
        if "DESTRUCTION" in params:
            limit = job.creation_time + timedelta(seconds=self.retention_s)
            sets.append("destruction = %s")
            args.append(min(parse_time(params["DESTRUCTION"]), limit))
        if "RUNID" in params:
            sets.append("run_id = %s")
            args.append(params["RUNID"])
        job_params = {k: v for k, v in params.items() if k not in CONTROL}
        if "UPLOAD" in job_params:
            raise JobStateError("UPLOAD is set when the job is created (with its tables); create another job")
        if job_params:
            if job.phase != "PENDING":
                raise JobStateError(f"job {job_id} is {job.phase}; its parameters can only change while PENDING")
            sets.append("parameters = parameters || %s::jsonb")
            args.append(json.dumps(job_params))
        if sets:
            with self.pool.connection() as conn:
                conn.execute(f"UPDATE xpdb.uws_job SET {', '.join(sets)} WHERE job_id = %s", (*args, job_id))
        return self.get(job_id)

    def result(self, job_id: str) -> tuple[str, bytes]:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT media_type, content FROM xpdb.uws_result WHERE job_id = %s",
                               (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"job {job_id!r} has no result")
        return row[0], bytes(row[1])

    def _duration(self, raw: str | None) -> int:
        if raw is None or not str(raw).strip():
            return self.default_duration
        try:
            value = float(raw)
        except ValueError:
            raise JobStateError(f"EXECUTIONDURATION must be a number of seconds, not {raw!r}") from None
        if math.isnan(value):
            raise JobStateError(f"EXECUTIONDURATION must be a number of seconds, not {raw!r}")
        seconds = int(value) if math.isfinite(value) else (self.duration_limit if value > 0 else 0)
        if seconds <= 0:  # 0 means unlimited in UWS; this service always has a limit
            return self.duration_limit
        return min(seconds, self.duration_limit)

    # -- executor side (own connections, autocommit off) -------------------------------------
    @staticmethod
    def claim(conn: psycopg.Connection, executor: str) -> Job | None:
        """Take the oldest QUEUED job: EXECUTING, with this session's advisory lock on it."""
        with conn.transaction():
            row = conn.execute("SELECT job_id FROM xpdb.uws_job WHERE phase = 'QUEUED' "
                               "ORDER BY creation_time, job_id LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
            if row is None:
                return None
            job_id = row[0]
            if not try_lock(conn, LockSpace.UWS_JOB, job_id):
                return None
            try:
                row = conn.execute(
                    f"UPDATE xpdb.uws_job SET phase = 'EXECUTING', start_time = now(), end_time = NULL, "
                    f"executor = %s, attempts = attempts + 1 WHERE job_id = %s RETURNING {_COLUMNS}",
                    (executor, job_id)).fetchone()
            except BaseException:
                JobStore.release(conn, job_id)
                raise
        return Job(*row)

    @staticmethod
    def phase(conn: psycopg.Connection, job_id: str) -> str | None:
        row = conn.execute("SELECT phase FROM xpdb.uws_job WHERE job_id = %s", (job_id,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def release(conn: psycopg.Connection, job_id: str) -> None:
        unlock(conn, LockSpace.UWS_JOB, job_id)
        conn.commit()

    @staticmethod
    def finish(conn: psycopg.Connection, job_id: str, executor: str, *, media_type: str, body: bytes, rows: int,
               overflow: bool) -> bool:
        """COMPLETED with its result, unless the job was aborted or deleted meanwhile."""
        with conn.transaction():
            done = conn.execute(
                "UPDATE xpdb.uws_job SET phase = 'COMPLETED', end_time = now(), result_type = %s, result_rows = %s, "
                "overflow = %s WHERE job_id = %s AND executor = %s AND phase = 'EXECUTING'",
                (media_type, rows, overflow, job_id, executor)).rowcount == 1
            if done:
                conn.execute("INSERT INTO xpdb.uws_result (job_id, media_type, content) VALUES (%s, %s, %s) "
                             "ON CONFLICT (job_id) DO UPDATE SET media_type = excluded.media_type, "
                             "content = excluded.content", (job_id, media_type, body))
        return done

    @staticmethod
    def fail(conn: psycopg.Connection, job_id: str, executor: str, message: str) -> bool:
        with conn.transaction():
            return conn.execute(
                "UPDATE xpdb.uws_job SET phase = 'ERROR', end_time = now(), error_message = %s "
                "WHERE job_id = %s AND executor = %s AND phase = 'EXECUTING'",
                (message, job_id, executor)).rowcount == 1

    @staticmethod
    def requeue(conn: psycopg.Connection, job_id: str, executor: str) -> bool:
        """Give a job back to the queue (the server is stopping), without counting the attempt."""
        with conn.transaction():
            return conn.execute(
                "UPDATE xpdb.uws_job SET phase = 'QUEUED', start_time = NULL, executor = NULL, "
                "attempts = greatest(attempts - 1, 0) WHERE job_id = %s AND executor = %s AND phase = 'EXECUTING'",
                (job_id, executor)).rowcount == 1

    @staticmethod
    def recover(conn: psycopg.Connection) -> list[str]:
        """Queue again the EXECUTING jobs whose executor is gone; ERROR after MAX_ATTEMPTS."""
        recovered = []
        ids = [r[0] for r in conn.execute("SELECT job_id FROM xpdb.uws_job WHERE phase = 'EXECUTING'")]
        conn.commit()
        for job_id in ids:
            with conn.transaction():
                row = conn.execute("SELECT attempts FROM xpdb.uws_job WHERE job_id = %s AND phase = 'EXECUTING' "
                                   "FOR UPDATE SKIP LOCKED", (job_id,)).fetchone()
                if row is None:
                    continue
                if not is_free(conn, LockSpace.UWS_JOB, job_id):
                    continue  # its executor is alive
                if row[0] >= MAX_ATTEMPTS:
                    conn.execute("UPDATE xpdb.uws_job SET phase = 'ERROR', end_time = now(), error_message = %s "
                                 "WHERE job_id = %s",
                                 (f"the server stopped while executing this job {row[0]} times; giving up", job_id))
                else:
                    conn.execute("UPDATE xpdb.uws_job SET phase = 'QUEUED', start_time = NULL, executor = NULL "
                                 "WHERE job_id = %s", (job_id,))
                recovered.append(job_id)
        return recovered

    @staticmethod
    def destroy_expired(conn: psycopg.Connection) -> list[str]:
        """Delete the jobs whose destruction time has passed (their results go with them)."""
        with conn.transaction():
            return [r[0] for r in conn.execute("DELETE FROM xpdb.uws_job WHERE destruction < now() RETURNING job_id")]
