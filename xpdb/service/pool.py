"""A small thread-safe pool of psycopg connections (psycopg_pool is not a dependency).

Handlers run in worker threads (``starlette.concurrency.run_in_threadpool``) and borrow a
connection for one request. A connection that comes back broken or inside a transaction
is closed instead of being reused; at most ``size`` connections exist at once, and a
borrower waits at most ``wait_s`` seconds before :class:`PoolTimeout`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg.pq import TransactionStatus


class PoolTimeout(RuntimeError):
    """No connection became free in time: the service is overloaded."""


class ConnectionPool:
    """At most ``size`` connections made by ``connect``; idle ones are reused."""

    def __init__(self, connect: Callable[[], psycopg.Connection], size: int, *, wait_s: float = 30.0):
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._wait_s = wait_s
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """Borrow a connection for the duration of the ``with`` block."""
        if self._closed:
            raise PoolTimeout("the service is shutting down")
        if not self._slots.acquire(timeout=self._wait_s):
            raise PoolTimeout(f"no database connection became free within {self._wait_s:g} s; try again later")
        conn = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _give_back(self, conn: psycopg.Connection) -> None:
        reusable = (not conn.closed and not conn.broken and not self._closed
                    and conn.info.transaction_status == TransactionStatus.IDLE)
        if reusable:
            with self._lock:
                self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the idle connections; connections in use are closed when returned."""
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
