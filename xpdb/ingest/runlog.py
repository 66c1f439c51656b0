"""The ingest log: the one owner of ``xpdb.ingest_run`` and ``xpdb.ingest_reject``.

Every loader records a file load here: which file (path, size, sha256, format) went into
which kind of table (``kind``, and ``target`` for a named catalogue or cluster), how many
rows were read, loaded and rejected, and each rejected row with its column and reason.
The sha256 makes a second load of the same file a reported no-op; ``next_row`` lets an
interrupted chunked load resume.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg

RejectRow = tuple[int, int | None, str | None, str, str | None]  # (row, source_id, column, reason, value)


def _text(value: str | None) -> str | None:
    """Text as PostgreSQL can store it: a NUL byte (from a file's contents) is written as \\x00."""
    return None if value is None else str(value).replace("\x00", "\\x00")


@dataclass
class PreviousRun:
    run_id: int
    status: str
    next_row: int


@dataclass
class RunSummary:
    run_id: int
    kind: str
    target: str
    path: str
    status: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    started_at: object
    error: str | None


def seen_size(conn: psycopg.Connection, kind: str, target: str, size: int) -> bool:
    """True when a done or running load of this kind saw a file of this size (its sha256 is then needed)."""
    return conn.execute("SELECT 1 FROM xpdb.ingest_run WHERE kind = %s AND target = %s AND file_size = %s "
                        "AND status IN ('done', 'running') LIMIT 1", (kind, target, size)).fetchone() is not None


def previous(conn: psycopg.Connection, kind: str, target: str, sha256: str,
             statuses: tuple[str, ...] = ("done", "running")) -> PreviousRun | None:
    """The newest done or running load of the same file (by sha256) into the same target."""
    row = conn.execute("SELECT run_id, status, next_row FROM xpdb.ingest_run WHERE kind = %s AND target = %s "
                       "AND sha256 = %s AND status = ANY(%s) ORDER BY run_id DESC LIMIT 1",
                       (kind, target, sha256, list(statuses))).fetchone()
    return PreviousRun(row[0], row[1], int(row[2])) if row else None


def start(conn: psycopg.Connection, *, kind: str, path: Path | str, size: int, fmt: str | None,
          options: dict, target: str = "", sha256: str = "") -> int:
    """A new running load; returns its run_id (in the caller's transaction)."""
    return conn.execute(
        "INSERT INTO xpdb.ingest_run (kind, target, path, sha256, file_size, file_format, options) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING run_id",
        (kind, target, str(Path(path).resolve()), sha256, size, fmt, json.dumps(options))).fetchone()[0]


def record_failed(conn: psycopg.Connection, *, kind: str, path: Path | str, size: int | None, error: str,
                  target: str = "", sha256: str = "", fmt: str | None = None) -> int:
    """A load that failed before (or without) keeping any row, recorded as one failed run."""
    return conn.execute(
        "INSERT INTO xpdb.ingest_run (kind, target, path, sha256, file_size, file_format, status, error, "
        "finished_at) VALUES (%s, %s, %s, %s, %s, %s, 'failed', %s, now()) RETURNING run_id",
        (kind, target, str(Path(path).resolve()), sha256, size, fmt, _text(error))).fetchone()[0]


def mark_failed(conn: psycopg.Connection, run_id: int, error: str) -> None:
    """A running load that failed: its rejects go (its rows are the caller's to remove)."""
    conn.execute("DELETE FROM xpdb.ingest_reject WHERE run_id = %s", (run_id,))
    conn.execute("UPDATE xpdb.ingest_run SET status = 'failed', error = %s, finished_at = now() WHERE run_id = %s",
                 (_text(error), run_id))


def mark_resumed(conn: psycopg.Connection, run_id: int) -> None:
    conn.execute("UPDATE xpdb.ingest_run SET options = options || %s::jsonb WHERE run_id = %s",
                 (json.dumps({"resumed": True}), run_id))


def set_sha256(conn: psycopg.Connection, run_id: int, sha256: str) -> None:
    conn.execute("UPDATE xpdb.ingest_run SET sha256 = %s WHERE run_id = %s", (sha256, run_id))


def add_progress(conn: psycopg.Connection, run_id: int, *, next_row: int, read: int, loaded: int,
                 rejected: int) -> None:
    """Count one more chunk (committed with the chunk, so a resume starts after ``next_row``)."""
    conn.execute("UPDATE xpdb.ingest_run SET next_row = %s, rows_read = rows_read + %s, "
                 "rows_loaded = rows_loaded + %s, rows_rejected = rows_rejected + %s WHERE run_id = %s",
                 (next_row, read, loaded, rejected, run_id))


def finish(conn: psycopg.Connection, run_id: int, *, read: int, loaded: int, rejected: int,
           sha256: str | None = None, next_row: int | None = None) -> None:
    """The load is done: final counts (and the sha256 if it was computed meanwhile)."""
    conn.execute("UPDATE xpdb.ingest_run SET status = 'done', finished_at = now(), rows_read = %s, "
                 "rows_loaded = %s, rows_rejected = %s, sha256 = coalesce(%s, sha256), "
                 "next_row = coalesce(%s, next_row) WHERE run_id = %s",
                 (read, loaded, rejected, sha256, next_row, run_id))


def store_rejects(conn: psycopg.Connection, run_id: int, rejects: Iterable[RejectRow]) -> None:
    """Rejected rows with their file row number, source_id, column, reason and (cut) value."""
    with conn.cursor() as cur:
        with cur.copy("COPY xpdb.ingest_reject (run_id, row_number, source_id, column_name, reason, value) "
                      "FROM STDIN") as copy:
            for row, sid, column, reason, value in rejects:
                copy.write_row((run_id, row, sid, _text(column), _text(reason),
                                None if value is None else _text(str(value)[:200])))


def recent_runs(conn: psycopg.Connection, limit: int = 20) -> list[RunSummary]:
    """The newest loads first."""
    rows = conn.execute("SELECT run_id, kind, target, path, status, rows_read, rows_loaded, rows_rejected, "
                        "started_at, error FROM xpdb.ingest_run ORDER BY run_id DESC LIMIT %s", (limit,)).fetchall()
    return [RunSummary(*r) for r in rows]


def run_path(conn: psycopg.Connection, run_id: int) -> str | None:
    row = conn.execute("SELECT path FROM xpdb.ingest_run WHERE run_id = %s", (run_id,)).fetchone()
    return row[0] if row else None


def rejects_of(conn: psycopg.Connection, run_id: int, limit: int = 1000) -> list[RejectRow]:
    """(row, source_id, column, reason, value) of one run's rejected rows, in file order."""
    return conn.execute("SELECT row_number, source_id, column_name, reason, value FROM xpdb.ingest_reject "
                        "WHERE run_id = %s ORDER BY row_number LIMIT %s", (run_id, limit)).fetchall()
