"""The background executor of asynchronous TAP jobs, running inside the server process.

``workers`` threads each keep a bookkeeping connection (main role) and a read-only query
connection (``xpdb_reader``). They claim QUEUED jobs oldest first, run them exactly like
``/tap/sync`` but with the job's execution duration as the statement timeout, and store
the result document in PostgreSQL. A maintenance thread destroys expired jobs and
re-queues jobs whose executor died (see :mod:`xpdb.service.jobs`). ABORT and DELETE
cancel a query running here through libpq's cancel request. On shutdown, running jobs are
cancelled and queued again, so that the next server start finishes them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import psycopg

from xpdb.query.run import reader_connect
from xpdb.service.execute import check_request, describe_failure, run_query, stored_uploads
from xpdb.service.jobs import JobStore
from xpdb.service.params import Params
from xpdb.service.settings import ServiceSettings

log = logging.getLogger("xpdb.service")


class JobExecutor:
    """Threads that execute QUEUED jobs; ``notify(job_id)`` is called at every phase change."""

    def __init__(self, database_url: str, reader_url: str, settings: ServiceSettings,
                 notify: Callable[[str], None] = lambda job_id: None, translate=None, published=None):
        self.database_url = database_url
        self.translate = translate
        self.published = published
        self.reader_url = reader_url
        self.settings = settings
        self.notify = notify
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._running: dict[str, psycopg.Connection] = {}
        self._threads: list[threading.Thread] = []

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Recover orphaned jobs, then start the worker and maintenance threads."""
        self.maintain()
        for i in range(self.settings.async_workers):
            self._threads.append(threading.Thread(target=self._work, name=f"xpdb-uws-{i}", daemon=True))
        self._threads.append(threading.Thread(target=self._maintenance, name="xpdb-uws-maintenance", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the threads; running jobs are cancelled and queued again.

        Cancelling repeats until the threads have ended: a cancel request that reaches a
        connection between two statements does nothing, and the next statement would run on.
        """
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        while any(t.is_alive() for t in self._threads) and time.monotonic() < deadline:
            with self._lock:
                for conn in self._running.values():
                    _cancel(conn)
            for _ in self._threads:
                self._wake.release()
            for thread in self._threads:
                thread.join(0.1)
        self._threads.clear()

    def submit(self) -> None:
        """A job was queued: wake a worker now rather than at its next poll."""
        self._wake.release()

    def cancel(self, job_id: str, wait_s: float = 5.0) -> bool:
        """Cancel the query of ``job_id`` if it runs in this process; True if it did.

        Repeats (for at most ``wait_s``) until the worker lets go of the job, since a cancel
        request that arrives between two statements is lost.
        """
        deadline = time.monotonic() + wait_s
        cancelled = False
        while True:
            with self._lock:  # held while cancelling, so that the connection cannot move on to another job
                conn = self._running.get(job_id)
                if conn is None:
                    return cancelled
                _cancel(conn)
                cancelled = True
            if time.monotonic() > deadline:
                return cancelled
            time.sleep(0.05)

    @property
    def running(self) -> list[str]:
        with self._lock:
            return list(self._running)

    # -- maintenance ---------------------------------------------------------------------------
    def maintain(self) -> None:
        """One round: re-queue orphaned jobs and destroy expired ones."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            for job_id in JobStore.recover(conn):
                log.warning("job %s lost its executor; queued again", job_id)
                self.notify(job_id)
                self._wake.release()
            for job_id in JobStore.destroy_expired(conn):
                log.info("job %s destroyed (destruction time reached)", job_id)
                self.cancel(job_id)
                self.notify(job_id)

    def _maintenance(self) -> None:
        while not self._stop.wait(self.settings.maintenance_s):
            try:
                self.maintain()
            except Exception as exc:  # keep maintaining after database hiccups
                log.warning("job maintenance failed: %s", exc)

    # -- workers -------------------------------------------------------------------------------
    def _work(self) -> None:
        book: psycopg.Connection | None = None
        reader: psycopg.Connection | None = None
        try:
            while not self._stop.is_set():
                try:
                    if book is None or book.closed or book.broken:
                        book = psycopg.connect(self.database_url, autocommit=True)
                    job = JobStore.claim(book, self.name)
                    if job is None:
                        self._wake.acquire(timeout=self.settings.poll_s)
                        continue
                    log.debug("job %s: executing (attempt %d)", job.job_id, job.attempts)
                    self.notify(job.job_id)
                    reader = self._execute(book, reader, job)
                except Exception as exc:
                    log.warning("job executor: %s", exc)
                    if book is not None and (book.closed or book.broken):
                        book.close()
                        book = None
                    self._stop.wait(self.settings.poll_s)
        finally:
            for conn in (book, reader):
                if conn is not None:
                    conn.close()

    def _execute(self, book: psycopg.Connection, reader: psycopg.Connection | None, job) -> psycopg.Connection | None:
        """Run one claimed job; returns the reader connection to reuse (None when it broke)."""
        try:
            request = check_request(Params(job.parameters.items()), self.settings)
            if request.upload_param is not None:  # the tables sent with the job (read and checked then)
                stored_uploads(request, JobStore.uploads(book, job.job_id), self.settings)
            if reader is None or reader.closed or reader.broken:
                reader = reader_connect(self.reader_url, timeout_s=self.settings.async_duration_limit_s)
            with self._lock:
                self._running[job.job_id] = reader
            if self._stop.is_set():
                raise InterruptedError("the server is stopping")
            if JobStore.phase(book, job.job_id) != "EXECUTING":  # aborted or deleted before it was registered
                raise InterruptedError("the job was aborted")
            outcome = run_query(request, conn=reader, timeout_s=job.execution_duration,
                                max_result_bytes=self.settings.max_result_bytes, infos={"JOB_ID": job.job_id},
                                translate=self.translate, published=self.published)
            JobStore.finish(book, job.job_id, self.name, media_type=outcome.media_type, body=outcome.body,
                            rows=outcome.rows, overflow=outcome.overflow)
            log.debug("job %s: %d rows", job.job_id, outcome.rows)
        except Exception as exc:
            if self._stop.is_set():
                JobStore.requeue(book, job.job_id, self.name)
                log.info("job %s: queued again (the server is stopping)", job.job_id)
            else:
                JobStore.fail(book, job.job_id, self.name, describe_failure(exc).message)
                log.debug("job %s: %s", job.job_id, exc)
        finally:
            with self._lock:
                self._running.pop(job.job_id, None)
            JobStore.release(book, job.job_id)
            self.notify(job.job_id)
        if reader is not None and (reader.closed or reader.broken):
            reader.close()
            reader = None
        return reader


def _cancel(conn: psycopg.Connection) -> None:
    try:
        if hasattr(conn, "cancel_safe"):
            conn.cancel_safe(timeout=5.0)
        else:  # pragma: no cover - psycopg < 3.2
            conn.cancel()
    except Exception as exc:  # the query may have ended meanwhile
        log.debug("cancel failed: %s", exc)
