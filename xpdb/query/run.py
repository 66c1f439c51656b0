"""Running user queries safely and turning results into astropy Tables.

Every user query (ADQL, ``--sql``, cone searches, the TAP service) runs:
- as the ``xpdb_reader`` role, which logs in on its own and can only SELECT (so a query
  cannot switch back to a writer role);
- in a READ ONLY transaction, rolled back at the end;
- with a statement timeout;
- fetching at most ``max_rows + 1`` rows, so overflow is reported, not silently cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import psycopg

from xpdb.errors import QueryError
from xpdb.query.columns import meta

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ROWS = 100_000


@dataclass
class QueryResult:
    columns: list[str]
    type_codes: list[int]
    rows: list[tuple]
    overflow: bool = False
    max_rows: int | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def to_table(self):
        """The result as an astropy Table with units and descriptions where known."""
        return rows_to_table(self.columns, self.type_codes, self.rows)


def reader_connect(url: str | None = None) -> psycopg.Connection:
    """A connection as the read-only role (``XPDB_READER_URL``, or the main URL's server as xpdb_reader)."""
    from xpdb.db.engine import reader_url

    target = url or reader_url()
    try:
        return psycopg.connect(target)
    except psycopg.OperationalError as exc:
        raise QueryError(f"cannot connect as the read-only query role ({exc.args[0].splitlines()[0] if exc.args else exc}); "
                         "create it with migrations/sql/0001_store/roles.sql and set XPDB_READER_URL with its password") from exc


def run_readonly(sql: str, params: tuple | dict | None = None, *, max_rows: int = DEFAULT_MAX_ROWS,
                 timeout_s: float = DEFAULT_TIMEOUT_S, conn: psycopg.Connection | None = None,
                 prepared: bool = False) -> QueryResult:
    """Run one SELECT read-only with a timeout; at most ``max_rows`` rows, ``overflow`` if more exist.

    ``prepared`` (for xpdb's own parameterised queries, e.g. cone searches, on a reused
    connection): a server-side prepared statement with one generic plan. q3c's cone
    predicate expands into dozens of index ranges, so planning costs more than running.
    """
    own = conn is None
    conn = conn or reader_connect()
    try:
        conn.rollback()
        conn.autocommit = True  # the transaction below is explicit, so that it can be READ ONLY
        with conn.cursor() as cur:
            # one round trip (no parameters: the simple protocol allows several statements)
            cur.execute(f"BEGIN READ ONLY; SET LOCAL statement_timeout = {int(timeout_s * 1000)}; "
                        "SET LOCAL search_path = xpdb, public"
                        + ("; SET LOCAL plan_cache_mode = force_generic_plan" if prepared else ""))
            try:
                cur.execute(sql, params, prepare=prepared)
            except psycopg.Error as exc:
                raise _query_error(exc, timeout_s) from exc
            if cur.description is None:
                raise QueryError("the statement returned no rows (only SELECT queries are allowed)")
            columns = [d.name for d in cur.description]
            types = [d.type_code for d in cur.description]
            try:
                rows = cur.fetchmany(max_rows + 1)
            except psycopg.Error as exc:
                raise _query_error(exc, timeout_s) from exc
        overflow = len(rows) > max_rows
        # COMMIT of a read-only transaction writes nothing; unlike ROLLBACK it keeps psycopg's
        # prepared statements (and their generic plans) for the next query on this connection.
        conn.execute("COMMIT")
        return QueryResult(columns, types, rows[:max_rows], overflow, max_rows)
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
        if own:
            conn.close()


def _query_error(exc: psycopg.Error, timeout_s: float) -> QueryError:
    diag = exc.diag
    state = diag.sqlstate
    if state == "57014":
        return QueryError(f"query cancelled after the {timeout_s:g} s statement timeout", sqlstate=state)
    if state in ("25006", "42501"):
        return QueryError(f"read-only service: {diag.message_primary}", sqlstate=state)
    position = int(diag.statement_position) if diag.statement_position else None
    where = f" (at character {position})" if position else ""
    return QueryError(f"{diag.message_primary or exc}{where}", position=position, sqlstate=state)


def rows_to_table(columns: list[str], type_codes: list[int], rows: list[tuple]):
    """Rows from psycopg into an astropy Table; NULLs become masked values."""
    from astropy import units as u
    from astropy.table import MaskedColumn, Table
    from psycopg.postgres import types as pg_types

    table = Table()
    for j, name in enumerate(columns):
        values = [r[j] for r in rows]
        info = pg_types.get(type_codes[j])
        kind = info.name if info else "text"
        dtype = {"int2": np.int16, "int4": np.int32, "int8": np.int64, "float4": np.float32, "float8": np.float64,
                 "numeric": np.float64, "bool": bool}.get(kind)
        mask = np.array([v is None for v in values], dtype=bool)
        if dtype is not None:
            fill = 0 if dtype not in (np.float32, np.float64) else np.nan
            data = np.array([fill if v is None else v for v in values], dtype=dtype)
        else:
            data = np.array(["" if v is None else str(v) for v in values], dtype=str)
        unique = name
        k = 1
        while unique in table.colnames:
            k += 1
            unique = f"{name}_{k}"
        col = MaskedColumn(data, name=unique, mask=mask) if mask.any() else data
        table[unique] = col
        m = meta(name)
        if m:
            if m.unit:
                table[unique].unit = u.Unit(m.unit)
            table[unique].description = m.description
            table[unique].meta["ucd"] = m.ucd
    return table
