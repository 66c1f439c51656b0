"""ADQL translation for the service: in worker processes, with a time limit, in two lanes.

Parsing is pure Python (ANTLR) and holds the GIL: a large query parsed in a server thread
would slow every other request of the process, event loop included, and nothing could
stop it. So queries are translated by :class:`ParserPool`'s worker processes:

- a worker that has not answered within ``timeout_s`` is killed (and replaced), and the
  query is refused with an ADQLError saying so;
- queries up to ``SMALL`` characters go to their own lane of workers, so that a burst
  of huge queries (which take the other lane's workers) never delays a small one;
- a lane with every worker busy makes the caller wait at most ``timeout_s`` for one.

Workers are started lazily (``spawn``: the server has threads, so no fork) and are
daemons: they end with the server process.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from multiprocessing.connection import Connection

from xpdb.query.adql import MAX_QUERY_LENGTH, ADQLError, TranslatedQuery
from xpdb.query.adql_cache import TranslationCache

log = logging.getLogger("xpdb.service")

SMALL = 16_384  # characters: queries up to this long use the small-query lane


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the worker process
    """The worker's loop: (adql, max_rows, max_length, want_template) in, ('ok', sql, top, tables, template) or
    ('error', ...) out; ``template`` (an adql_cache.Template or None) when asked for."""
    from functools import partial

    from xpdb.query.adql import to_postgresql
    from xpdb.query.adql_cache import make_template

    while True:
        try:
            adql, max_rows, max_length, want_template = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            t = to_postgresql(adql, max_rows=max_rows, max_length=max_length)
            template = None
            if want_template:
                try:
                    template = make_template(adql, t, partial(to_postgresql, max_length=max_length),
                                             max_rows=max_rows)
                except Exception:  # a template is an optimisation: the translation stands without it
                    template = None
            reply = ("ok", t.sql, t.top, t.tables, template, want_template)
        except ADQLError as exc:
            reply = ("error", exc.message, exc.line, exc.column)
        except Exception as exc:  # a bug in the translator: reported, the worker lives on
            reply = ("error", f"the query could not be translated ({type(exc).__name__}: {exc})", None, None)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


class _Worker:
    def __init__(self, context) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True, name="xpdb-adql")
        self.process.start()
        child.close()

    def stop(self) -> None:
        try:
            self.conn.close()
        finally:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)


class _Lane:
    def __init__(self, size: int) -> None:
        self.idle: queue.Queue = queue.Queue()
        for _ in range(size):
            self.idle.put(None)  # a slot whose worker starts on first use


class ParserPool:
    """``translate(adql, max_rows=...)`` like :func:`xpdb.query.adql.to_postgresql`, in worker processes."""

    def __init__(self, *, small_workers: int = 2, large_workers: int = 1, timeout_s: float = 30.0,
                 max_length: int = MAX_QUERY_LENGTH, cache_shapes: int = 256) -> None:
        self.timeout_s = timeout_s
        # translations reused for queries that differ only in decimal numbers (0: off)
        self.cache = TranslationCache(cache_shapes) if cache_shapes > 0 else None
        self.max_length = max_length
        self._context = multiprocessing.get_context("spawn")
        self._small = _Lane(small_workers)
        self._large = _Lane(large_workers)
        self._workers: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start every worker now (they import the grammar, about a second), instead of on first use."""
        for lane in (self._small, self._large):
            slots = []
            while True:
                try:
                    slots.append(lane.idle.get_nowait())
                except queue.Empty:
                    break
            for worker in slots:
                lane.idle.put(worker if worker is not None else self._new_worker())

    def translate(self, adql: str, *, max_rows: int | None = None) -> TranslatedQuery:
        if len(adql) > self.max_length:  # refused here without a round trip
            raise ADQLError(f"the query is {len(adql):,} characters long; this service accepts at most "
                            f"{self.max_length:,} (split the query)")
        if self.cache is not None:
            cached = self.cache.lookup(adql, max_rows)
            if cached is not None:
                return cached
        want_template = self.cache is not None and not self.cache.known_uncacheable(adql, max_rows)
        deadline = time.monotonic() + self.timeout_s
        lane = self._small if len(adql) <= SMALL else self._large
        try:
            worker = lane.idle.get(timeout=self.timeout_s)
        except queue.Empty:
            raise ADQLError(f"the ADQL parser is busy with other queries; no parser became free within "
                            f"{self.timeout_s:g} s: try again") from None
        try:
            if self._closed:
                raise ADQLError("the service is shutting down")
            if worker is None or not worker.process.is_alive():
                if worker is not None:
                    self._discard(worker)
                worker = self._new_worker()
            worker.conn.send((adql, max_rows, self.max_length, want_template))
            if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                log.warning("ADQL translation of %d characters took longer than %g s; parser restarted",
                            len(adql), self.timeout_s)
                self._discard(worker)
                worker = None
                raise ADQLError(f"parsing the query took longer than {self.timeout_s:g} s; shorten it "
                                "(for example fewer IN list items)")
            reply = worker.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            if worker is not None:
                self._discard(worker)
                worker = None
            raise ADQLError(f"the ADQL parser stopped ({type(exc).__name__}); try again") from None
        finally:
            lane.idle.put(worker)  # None: the next user starts a new worker
        if reply[0] == "ok":
            if reply[5] and self.cache is not None:
                self.cache.store(adql, max_rows, reply[4])
            return TranslatedQuery(sql=reply[1], top=reply[2], tables=tuple(tuple(t) for t in reply[3]))
        raise ADQLError(reply[1], reply[2], reply[3])

    def _new_worker(self) -> _Worker:
        worker = _Worker(self._context)
        with self._lock:
            self._workers.add(worker)
        return worker

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._workers.discard(worker)
        worker.stop()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.stop()
