"""Leases that processes share through PostgreSQL, and every advisory-lock key xpdb uses.

Work queues (inference batches in ``xpdb.job_batch``, asynchronous TAP jobs in
``xpdb.uws_job``) are leased the same way: candidate rows are picked with
``SELECT ... FOR UPDATE SKIP LOCKED`` (so concurrent workers never wait on each other),
and the worker then holds a *session* advisory lock on the item while it works. If the
worker dies, even by SIGKILL on another machine, PostgreSQL ends its session and drops
the lock, so the next worker sees the item abandoned at once.

All locks use the two-key form ``(space, key)``: the space says what is locked
(``LockSpace``), the key which one (an integer id, or ``hashtext`` of a name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import TypeVar

import psycopg

Row = TypeVar("Row", bound=Sequence)


class LockSpace(IntEnum):
    """The first key of every advisory lock xpdb takes; one value per kind of thing locked."""

    MIGRATION = 0x78706462  # "xpdb": one migration at a time (key 0)
    JOB_BATCH = 0x7870  # an inference batch, keyed by batch_id
    UWS_JOB = 0x75777331  # "uws1": an asynchronous TAP job, keyed by hashtext(job_id)
    INGEST_FILE = 0x696E6773  # "ings": one load of a file at a time, keyed by hashtext(kind:path)
    MODEL_NAME = 0x6D6F646C  # "modl": numbering a model name's versions, keyed by hashtext(name)


def _key_sql(key: int | str) -> str:
    return "hashtext(%s)" if isinstance(key, str) else "%s::int4"


def try_lock(conn: psycopg.Connection, space: LockSpace, key: int | str) -> bool:
    """Take the session lock ``(space, key)`` if free; True when this session now holds it."""
    return bool(conn.execute(f"SELECT pg_try_advisory_lock(%s, {_key_sql(key)})", (int(space), key)).fetchone()[0])


def unlock(conn: psycopg.Connection, space: LockSpace, key: int | str) -> None:
    """Release a session lock taken with ``try_lock``."""
    conn.execute(f"SELECT pg_advisory_unlock(%s, {_key_sql(key)})", (int(space), key))


def try_lock_for_transaction(conn: psycopg.Connection, space: LockSpace, key: int | str) -> bool:
    """Take ``(space, key)`` until the end of the current transaction, if free."""
    return bool(conn.execute(f"SELECT pg_try_advisory_xact_lock(%s, {_key_sql(key)})",
                             (int(space), key)).fetchone()[0])


def lock_for_transaction(conn: psycopg.Connection, space: LockSpace, key: int | str) -> None:
    """Wait for ``(space, key)`` and hold it until the end of the current transaction."""
    conn.execute(f"SELECT pg_advisory_xact_lock(%s, {_key_sql(key)})", (int(space), key))


def is_free(conn: psycopg.Connection, space: LockSpace, key: int | str) -> bool:
    """True when no session holds ``(space, key)``: its holder, if it had one, is gone.

    Checked by taking the lock for the current transaction only, so nothing is kept.
    """
    return try_lock_for_transaction(conn, space, key)


def claim(conn: psycopg.Connection, space: LockSpace, candidates: Iterable[Row], *,
          key: Callable[[Row], int | str] = lambda row: row[0],
          take_unlocked: Callable[[Row], bool] = lambda row: False) -> tuple[Row | None, bool]:
    """The first candidate (rows picked FOR UPDATE SKIP LOCKED) whose session lock this session gets.

    ``take_unlocked(row)`` may allow taking a row whose lock another session still holds
    (an expired lease of a hung worker). Returns ``(row, locked)``, or ``(None, False)``.
    """
    for row in candidates:
        got = try_lock(conn, space, key(row))
        if got or take_unlocked(row):
            return row, got
    return None, False
