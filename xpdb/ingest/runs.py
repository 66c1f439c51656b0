"""Loading one file into one keyed table: runs, transactions, rejects, resume and no-ops.

Every file load is an ``ingest_run`` row keyed by the file's sha256:
- a file already loaded is a reported no-op (``--replace`` loads it again as an upsert);
- small files load in one transaction; large ones in committed chunks whose progress
  (``next_row``) commits with the chunk, so an interrupted load resumes without
  duplicates; a corrupt position found mid-file removes the rows the run committed;
- invalid rows go to ``ingest_reject`` with file, row, column and reason.
Reading and validating the next chunk overlaps the COPY of the current one.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from xpdb.db.copy import Column, copy_binary
from xpdb.db.lease import LockSpace, try_lock, unlock
from xpdb.ingest import runlog
from xpdb.ingest import sampled as sampled_mod
from xpdb.ingest import sources as sources_mod
from xpdb.ingest import xp as xp_mod
from xpdb.ingest.readers import (Chunk, IngestFileError, TableReader, check_integer_key, check_regular_file,
                                 locate_bad_text)
from xpdb.ingest.xp import Reject

ProgressCallback = Callable[[int, int | None], None]


@dataclass
class TableSpec:
    """How one kind of file maps onto one table keyed by ``source_id``.

    ``prepare(reader, options)`` looks at the file once and returns a context that the
    other steps receive; ``bind(conn, context)`` resolves what needs the database (e.g. a
    wavelength grid's id) before rows are copied; ``row_index(batch)`` maps batch rows to
    the chunk's rows when a spectrum spans several rows (the long layout of XP_SAMPLED).
    """

    kind: str
    table: str
    convert: Callable[[Chunk, Any], Any]
    validate: Callable[[Any, Any], list[Reject]]
    ids: Callable[[Any], np.ndarray]
    ids_null: Callable[[Any], np.ndarray]
    copy_columns: Callable[[Any, np.ndarray, int, Any], list[list[Column]]]
    prepare: Callable[[TableReader, dict], Any] = lambda reader, options: None
    bind: Callable[[psycopg.Connection, Any], None] = lambda conn, context: None
    row_index: Callable[[Any], np.ndarray | None] = lambda batch: None
    cluster_index: str | None = None


def _prepare_sources(reader: TableReader, options: dict) -> dict[str, str]:
    resolved, ignored = sources_mod.resolve_columns(reader.column_names(), options.get("map"))
    missing = [c for c in ("source_id", "ra", "dec") if c not in resolved]
    if missing:
        shown = ", ".join(ascii(name)[1:-1][:40] for name in reader.column_names()[:20])
        raise IngestFileError(reader.path, f"required column(s) {', '.join(missing)} not found "
                                           f"(columns: {shown}...); map them with mapping={...} (CLI: --map)")
    options["ignored_columns"] = ignored
    return resolved


def _prepare_xp(reader: TableReader, options: dict) -> None:
    if reader.format in ("csv", "ecsv"):
        xp_mod.warm_up_text_parser()  # overlaps the parser's one-off start-up with reading the first rows


def _convert_xp(chunk: Chunk, ctx) -> xp_mod.XpBatch:
    try:
        return xp_mod.from_arrow(chunk.table)
    except KeyError as exc:
        raise ValueError(f"required column {exc.args[0]} not found") from exc


SPECS: dict[str, TableSpec] = {
    "xp": TableSpec(
        kind="xp", table="xpdb.xp_band",
        convert=_convert_xp,
        validate=lambda batch, ctx: xp_mod.validate(batch),
        ids=lambda b: b.source_id.values,
        ids_null=lambda b: b.source_id.null,
        copy_columns=lambda batch, keep, run_id, ctx: xp_mod.copy_columns(batch, keep, run_id),
        prepare=_prepare_xp,
    ),
    "xp_sampled": TableSpec(
        kind="xp_sampled", table="xpdb.xp_sampled",
        convert=sampled_mod.convert,
        validate=lambda batch, ctx: sampled_mod.validate(batch, len(ctx.wavelength)),
        ids=lambda b: b.source_id.values,
        ids_null=lambda b: b.source_id.null,
        copy_columns=sampled_mod.copy_columns,
        prepare=sampled_mod.prepare,
        bind=sampled_mod.bind,
        row_index=lambda batch: batch.row_of,
    ),
    "sources": TableSpec(
        kind="sources", table="xpdb.gaia_source",
        convert=lambda chunk, resolved: sources_mod.from_arrow(chunk.table, resolved),
        validate=lambda batch, ctx: sources_mod.validate(batch),
        ids=lambda b: b.columns["source_id"].values,
        ids_null=lambda b: b.columns["source_id"].null,
        copy_columns=lambda batch, keep, run_id, ctx: sources_mod.copy_columns(batch, keep, run_id),
        prepare=_prepare_sources,
        cluster_index="gaia_source_q3c_idx",
    ),
}


@dataclass
class IngestReport:
    """What one file load did, for the CLI summary and for tests."""

    path: str
    kind: str
    status: str  # loaded | no-op | failed
    run_id: int | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None
    rejects: list[tuple[int, str | None, str]] = field(default_factory=list)  # first few (row, column, reason)
    message: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _prefetch(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a background thread, ``depth`` items ahead of the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(message) -> bool:
        """Queue ``message``; give up when the consumer has gone (so the thread ends)."""
        while not stop.is_set():
            try:
                q.put(message, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterator:
                if not put(("item", item)):
                    return
            put(("done", done))
        except BaseException as exc:  # delivered to the consumer
            put(("error", exc))

    thread = threading.Thread(target=produce, daemon=True, name="xpdb-ingest-reader")
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "item":
                yield item
            elif kind == "done":
                return
            else:
                raise item
    finally:
        stop.set()


def ingest_file(
    url: str,
    kind: str,
    path: Path | str,
    *,
    replace: bool = False,
    fmt: str | None = None,
    options: dict | None = None,
    chunk_rows: int = 5_000,
    single_transaction_rows: int = 250_000,
    progress: ProgressCallback | None = None,
    max_reported_rejects: int = 20,
) -> IngestReport:
    """Load one file of ``kind`` ('xp' or 'sources') into its table. See the module docstring."""
    spec = SPECS[kind]
    path = Path(path)
    options = dict(options or {})
    t0 = time.perf_counter()
    report = IngestReport(str(path), kind, "loaded")
    check_regular_file(path)
    size = path.stat().st_size
    with psycopg.connect(url) as conn:
        lock_key = f"{kind}:{path.resolve()}"
        if not try_lock(conn, LockSpace.INGEST_FILE, lock_key):
            raise IngestFileError(path, "this file is being loaded by another process right now")
        conn.commit()
        try:
            # The sha256 identifies the file. Only when a previous run saw a file of this size
            # must it be known before loading (no-op or resume); otherwise it is computed in
            # the background while the file loads.
            seen_size = runlog.seen_size(conn, kind, "", size)
            sha = _Sha256(path, background=not seen_size)
            previous = runlog.previous(conn, kind, "", sha.result()) if seen_size else None
            conn.commit()
            if previous and previous.status == "done" and not replace:
                report.status = "no-op"
                report.run_id = previous.run_id
                report.message = (f"already loaded by run {previous.run_id} (same sha256); "
                                  "replace=True (CLI: --replace) loads it again")
                report.seconds = time.perf_counter() - t0
                return report
            reader = _open_reader(conn, kind, path, sha, fmt, chunk_rows)
            ctx = spec.prepare(reader, options)
            resume = previous if previous and previous.status == "running" else None
            chunked = (reader.n_rows is None and size > 256 << 20) or (reader.n_rows or 0) > single_transaction_rows
            if resume:
                run_id, start_row = resume.run_id, resume.next_row + 1
                report.resumed_from = start_row
                runlog.mark_resumed(conn, run_id)
                chunked = True
            else:
                run_id = runlog.start(conn, kind=kind, path=path, size=size, fmt=reader.format,
                                      options=_jsonable(options, replace))
                start_row = 1
                if chunked:
                    conn.commit()
            report.run_id = run_id
            try:
                _load(conn, spec, reader, ctx, run_id, start_row, chunked, replace, report, progress,
                      max_reported_rejects, path, sha=None if resume else sha)
            except psycopg.OperationalError as exc:  # the database went away: nothing can be recorded
                raise _connection_lost(path, exc, chunked, report) from exc
            except BaseException as exc:
                conn.rollback()
                if isinstance(exc, KeyboardInterrupt) and chunked:
                    raise  # leave the run 'running': the next ingest of this file resumes it
                try:
                    _record_failure(conn, spec, run_id, chunked, exc, kind, path, sha, size, reader.format)
                except psycopg.OperationalError as lost:
                    raise _connection_lost(path, lost, chunked, report) from exc
                raise
            finally:
                reader.close()
            runlog.finish(conn, run_id, read=report.rows_read, loaded=report.rows_loaded,
                          rejected=report.rows_rejected, sha256=sha.result())
            conn.commit()
            if report.rows_loaded:
                _after_bulk_load(conn, spec, report.rows_loaded)
        except psycopg.OperationalError as exc:
            raise _connection_lost(path, exc, False, report) from exc
        finally:
            if not conn.broken and not conn.closed:
                conn.rollback()
                unlock(conn, LockSpace.INGEST_FILE, lock_key)
                conn.commit()
    report.seconds = time.perf_counter() - t0
    return report


def _connection_lost(path: Path, exc: BaseException, chunked: bool, report: IngestReport) -> IngestFileError:
    """The error for a load whose database connection broke (server stopped, session killed)."""
    if isinstance(exc, IngestFileError):
        return exc
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kept = None
    if chunked and report.run_id is not None:
        kept = (f"the chunks committed before stay in run {report.run_id}; load the same file again to resume "
                "where it stopped")
    return IngestFileError(path, f"the database connection was lost during the load ({reason})",
                           f"after data row {report.rows_read}", kept=kept)


class _Sha256:
    """A file's sha256, computed now or in a background thread (hashlib releases the GIL)."""

    def __init__(self, path: Path, background: bool):
        self._value: str | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._compute, args=(path,), daemon=True, name="xpdb-sha256")
            self._thread.start()
        else:
            self._compute(path)

    def _compute(self, path: Path) -> None:
        try:
            self._value = file_sha256(path)
        except OSError as exc:  # reported by result(), in the loading thread
            self._error = IngestFileError(path, f"cannot read the file to hash it ({exc.strerror or exc})")

    def result(self) -> str:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._value is None:
            raise getattr(self, "_error", None) or IngestFileError("?", "the file's sha256 could not be computed")
        return self._value


def _jsonable(options: dict, replace: bool) -> dict:
    out = {k: v for k, v in options.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    out["replace"] = replace
    return out


def _open_reader(conn, kind, path, sha: _Sha256, fmt, chunk_rows) -> TableReader:
    try:
        return TableReader(path, fmt=fmt, chunk_rows=chunk_rows)
    except IngestFileError as exc:
        runlog.record_failed(conn, kind=kind, path=path, size=Path(path).stat().st_size, error=str(exc),
                             sha256=sha.result())
        conn.commit()
        raise


def _record_failure(conn, spec, run_id, chunked, exc, kind, path, sha: _Sha256, size, fmt) -> None:
    """Mark the run failed; in chunked mode remove the rows its committed chunks loaded."""
    message = str(exc) or type(exc).__name__
    if chunked:
        conn.execute(f"DELETE FROM {spec.table} WHERE ingest_run_id = %s", (run_id,))
        runlog.mark_failed(conn, run_id, message)
    else:
        runlog.record_failed(conn, kind=kind, path=path, size=size, error=message, sha256=sha.result(), fmt=fmt)
    conn.commit()


def _load(conn: psycopg.Connection, spec: TableSpec, reader: TableReader, ctx, run_id: int, start_row: int,
          chunked: bool, replace: bool, report: IngestReport, progress, max_reported: int, path: Path,
          sha: _Sha256 | None = None) -> None:
    """Read, convert, validate and COPY chunk by chunk, the three stages overlapping.

    A chunked load records the file's sha256 with its first commit (the hash is computed
    meanwhile), so a load interrupted after any commit can be found again and resumed.
    """
    def converted():
        # Reading (pyarrow, own threads), converting and copying run in three overlapping stages.
        for chunk in _prefetch(reader.chunks(start_row), depth=1):
            numbers = chunk.numbers()
            for key in _key_columns(spec, ctx, chunk.table):  # ids in floats would be changed: refused
                check_integer_key(chunk.table, key, path, numbers)
            try:
                batch = spec.convert(chunk, ctx)
            except (ValueError, TypeError) as exc:
                found = locate_bad_text(chunk.table, numbers, str(exc))
                if found is not None:
                    column, row, value = found
                    raise IngestFileError(path, f"column {column}: cannot read {value!r} "
                                          f"({str(exc).splitlines()[0]})", f"row {row}") from exc
                raise IngestFileError(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                                      f"data rows {chunk.first_row}-{chunk.first_row + chunk.table.num_rows - 1}") \
                    from exc
            rejects = spec.validate(batch, ctx)
            # Keep the row numbers, not the file's text: converted chunks wait in a queue.
            yield Chunk(chunk.table.schema.empty_table(), chunk.first_row, chunk.numbers(), chunk.invalid_rows), \
                batch, rejects

    if not chunked:
        _empty_table_fast_path(conn, spec.table)
    done = start_row - 1
    for chunk, batch, rejects in _prefetch(converted()):
        numbers = file_rows = chunk.numbers()
        index = spec.row_index(batch)
        if index is not None:
            numbers = numbers[index]
        n = len(numbers)
        spec.bind(conn, ctx)
        ids, ids_null = spec.ids(batch), spec.ids_null(batch)
        all_rejects = [(int(numbers[r.row]), None if ids_null[r.row] else int(ids[r.row]), r.column, r.reason, r.value)
                       for r in rejects]
        all_rejects += [(row, None, None, f"unparseable line: {why}", None) for row, why in chunk.invalid_rows]
        keep = np.ones(n, dtype=bool)
        for r in rejects:
            keep[r.row] = False
        if keep.any():
            existing = dict(conn.execute(
                f"SELECT DISTINCT source_id, ingest_run_id FROM {spec.table} WHERE source_id = ANY(%s)",
                (ids[keep].tolist(),)).fetchall())
            if existing:
                to_delete = []
                for i in np.flatnonzero(keep):
                    sid = int(ids[i])
                    if sid not in existing:
                        continue
                    if existing[sid] == run_id:
                        all_rejects.append((int(numbers[i]), sid, "source_id", "duplicate source_id within the file",
                                            str(sid)))
                        keep[i] = False
                    elif replace:
                        to_delete.append(sid)
                    else:
                        all_rejects.append((int(numbers[i]), sid, "source_id",
                                            f"source_id already stored (run {existing[sid]}); update it with replace=True (CLI: --replace)",
                                            str(sid)))
                        keep[i] = False
                if to_delete:
                    conn.execute(f"DELETE FROM {spec.table} WHERE source_id = ANY(%s)", (to_delete,))
        if keep.any():
            copy_binary(conn, spec.table, *spec.copy_columns(batch, keep, run_id, ctx))
        if all_rejects:
            runlog.store_rejects(conn, run_id, all_rejects)
            for row, _sid, column, reason, _value in all_rejects:
                if len(report.rejects) < max_reported:
                    report.rejects.append((row, column, reason))
        n_rejected_rows = len({r[0] for r in all_rejects})
        report.rows_read += n + len(chunk.invalid_rows)
        report.rows_loaded += int(keep.sum())
        report.rows_rejected += n_rejected_rows
        done = int(max(file_rows.max() if len(file_rows) else done,
                       max((r[0] for r in chunk.invalid_rows), default=done)))
        runlog.add_progress(conn, run_id, next_row=done, read=n + len(chunk.invalid_rows), loaded=int(keep.sum()),
                            rejected=n_rejected_rows)
        if chunked:
            if sha is not None:
                runlog.set_sha256(conn, run_id, sha.result())
                sha = None
            conn.commit()
        if progress:
            progress(report.rows_read, reader.n_rows)


def _key_columns(spec: TableSpec, ctx, table) -> list[str]:
    """The file's columns that hold integer ids (source_id, and solution_id for spectra)."""
    if spec.kind == "sources":
        return [ctx["source_id"]]
    return [name for name in table.column_names if name.lower() in ("source_id", "solution_id")]


def _empty_table_fast_path(conn: psycopg.Connection, table: str) -> None:
    """Loading into an empty table: TRUNCATE it in the load's transaction.

    With ``wal_level = minimal`` (the embedded cluster's setting) PostgreSQL then writes
    the COPYed rows without WAL and syncs the files at commit ("Populating a Database" in
    the PostgreSQL manual); on other servers it is a harmless no-op. The lock is taken
    only when the table looks empty, and emptiness is checked again under the lock.
    """
    if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
        return
    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    if not conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
        conn.execute(f"TRUNCATE {table}")


def _after_bulk_load(conn: psycopg.Connection, spec: TableSpec, loaded: int) -> None:
    """ANALYZE always; re-CLUSTER on the q3c index when the load is a large part of the table."""
    conn.autocommit = True
    try:
        if spec.cluster_index:
            total = conn.execute(f"SELECT reltuples::bigint FROM pg_class WHERE oid = '{spec.table}'::regclass").fetchone()[0]
            if total <= 0 or loaded >= 0.3 * max(total, loaded):
                conn.execute(f"CLUSTER {spec.table} USING {spec.cluster_index}")
        conn.execute(f"ANALYZE {spec.table}")
    finally:
        conn.autocommit = False
