"""Running user queries safely and turning results into astropy Tables.

Every user query (ADQL, ``--sql``, cone searches, the TAP service) runs:
- as the ``xpdb_reader`` role, which logs in on its own and can only SELECT (so a query
  cannot switch back to a writer role), and may execute no function that writes, signals
  or changes settings (migration ``0007_security``);
- as exactly one statement sent over the extended protocol: the user's SQL becomes a
  server-side cursor (``DECLARE ... CURSOR FOR``), which PostgreSQL parses as a single
  query, so ``SELECT ...; COMMIT; ...`` or ``SET`` cannot run;
- in a READ ONLY transaction, rolled back at the end;
- with a statement timeout set for the connection and for the transaction, renewed with
  the remaining time before every fetch, so that the whole query gets ``timeout_s``;
- fetching rows in chunks from the cursor, at most ``max_rows + 1`` rows (overflow is
  reported, not silently cut) and at most ``max_bytes`` of result table: the rows are
  counted as they arrive (numbers at their size, text at 4 bytes a character of its
  column's longest value, as the table holds them), not estimated; reading stops when
  either limit is reached, so neither the server nor the client holds more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import psycopg

from xpdb.query.columns import meta

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_BYTES = 1_000_000_000
CURSOR = "xpdb_result"
_CHUNK_BYTES = 8 << 20  # a fetch brings about this much
_FIXED = {"int2": 2, "int4": 4, "int8": 8, "float4": 4, "float8": 8, "numeric": 8, "bool": 1}
_NUMPY = {"int2": np.int16, "int4": np.int32, "int8": np.int64, "float4": np.float32, "float8": np.float64,
          "numeric": np.float64, "bool": bool}


class QueryError(RuntimeError):
    """A query that PostgreSQL refused or that failed; the message is meant for users."""

    def __init__(self, message: str, *, position: int | None = None, sqlstate: str | None = None):
        super().__init__(message)
        self.position = position
        self.sqlstate = sqlstate


@dataclass
class QueryResult:
    columns: list[str]
    type_codes: list[int]
    rows: list[tuple]
    overflow: bool = False
    max_rows: int | None = None
    info: dict = field(default_factory=dict)
    max_bytes: int | None = None
    overflow_reason: str | None = None  # 'rows' (more than max_rows) or 'bytes' (max_bytes reached)
    table_bytes: int = 0  # size of the result table as to_table() holds it

    def __len__(self) -> int:
        return len(self.rows)

    def to_table(self):
        """The result as an astropy Table with units and descriptions where known."""
        return rows_to_table(self.columns, self.type_codes, self.rows)

    @property
    def overflow_message(self) -> str | None:
        """Why the result is incomplete, for users; None when it is complete."""
        if self.overflow_reason == "bytes":
            return (f"the result was cut at {len(self.rows):,} rows: it reached the limit of "
                    f"{(self.max_bytes or 0) / 1e6:.3g} MB per result; select fewer columns or rows")
        if self.overflow_reason == "rows":
            return f"more than {self.max_rows:,} rows match"
        return None


def reader_connect(url: str | None = None, *, timeout_s: float | None = None) -> psycopg.Connection:
    """A connection as the read-only role (``XPDB_READER_URL``, or the main URL's server as xpdb_reader).

    The connection starts read-only and, with ``timeout_s``, with that statement timeout
    (settings of the connection itself, on top of the role's defaults).
    """
    from xpdb.db.engine import reader_url

    target = url or reader_url()
    options = "-c default_transaction_read_only=on"
    if timeout_s is not None:
        options += f" -c statement_timeout={max(1, int(timeout_s * 1000))}"
    try:
        return psycopg.connect(target, options=options)
    except psycopg.OperationalError as exc:
        raise QueryError(f"cannot connect as the read-only query role ({exc.args[0].splitlines()[0] if exc.args else exc}); "
                         "create it with sql/roles.sql and set XPDB_READER_URL with its password") from exc


def run_readonly(sql: str, params: tuple | dict | None = None, *, max_rows: int = DEFAULT_MAX_ROWS,
                 timeout_s: float = DEFAULT_TIMEOUT_S, conn: psycopg.Connection | None = None,
                 prepared: bool = False, max_bytes: int | None = DEFAULT_MAX_BYTES) -> QueryResult:
    """Run one query read-only with a timeout; at most ``max_rows`` rows and ``max_bytes`` of table.

    ``overflow`` is set (with ``overflow_reason``) when more rows exist than were returned.
    The query is one statement: a server-side cursor is declared for it over the extended
    protocol and fetched in chunks.

    ``prepared`` (for xpdb's own parameterised queries with their own LIMIT, e.g. cone
    searches, on a reused connection): a server-side prepared statement with one generic
    plan instead of a cursor. q3c's cone predicate expands into dozens of index ranges, so
    planning costs more than running.
    """
    own = conn is None
    conn = conn or reader_connect(timeout_s=timeout_s)
    deadline = time.monotonic() + timeout_s
    try:
        conn.rollback()
        conn.autocommit = True  # the transaction below is explicit, so that it can be READ ONLY
        with conn.cursor() as cur:
            # one round trip: xpdb's own statements (the simple protocol allows several)
            cur.execute(f"BEGIN READ ONLY; SET LOCAL statement_timeout = {_ms(timeout_s)}; "
                        "SET LOCAL search_path = xpdb, public; SET LOCAL cursor_tuple_fraction = 1"
                        + ("; SET LOCAL plan_cache_mode = force_generic_plan" if prepared else ""))
        collector: _Collector
        try:
            if prepared:
                with conn.cursor() as cur:
                    cur.execute(sql, params, prepare=True)
                    collector = _start(cur, max_rows, max_bytes)
                    while collector.wanted():
                        if not collector.add(cur.fetchmany(collector.chunk())):
                            break
            else:
                with conn.cursor(name=CURSOR, scrollable=False) as cur:
                    cur.execute(sql, params)
                    collector = _start(cur, max_rows, max_bytes)
                    while collector.wanted():
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise QueryError(f"query cancelled after the {timeout_s:g} s statement timeout",
                                             sqlstate="57014")
                        conn.execute(f"SET LOCAL statement_timeout = {_ms(remaining)}")
                        if not collector.add(cur.fetchmany(collector.chunk())):
                            break
        except psycopg.Error as exc:
            raise _query_error(exc, timeout_s) from exc
        # COMMIT of a read-only transaction writes nothing; unlike ROLLBACK it keeps psycopg's
        # prepared statements (and their generic plans) for the next query on this connection.
        conn.execute("COMMIT")
        return collector.result()
    finally:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
        if own:
            conn.close()


def published_tables(conn: psycopg.Connection) -> frozenset[str]:
    """The ``schema.table`` names TAP_SCHEMA publishes (what the read-only role may read)."""
    conn.rollback()
    conn.autocommit = True
    return frozenset(r[0] for r in conn.execute("SELECT table_name FROM tap_schema.tables"))


def check_published(tables, published: frozenset[str]) -> None:
    """ADQLError unless every (schema, name) in ``tables`` is published; unqualified names are in xpdb."""
    from xpdb.query.adql import ADQLError

    for schema, name in tables:
        full = f"{schema}.{name}" if schema is not None else f"xpdb.{name}"
        if full in published and not (schema is None and name.startswith("pg_")):
            continue
        shown = f"{schema}.{name}" if schema is not None else name
        raise ADQLError(f"there is no table {shown!r} here: queries may read the tables that TAP_SCHEMA.tables "
                        "lists (/tap/tables)")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _start(cur, max_rows: int, max_bytes: int | None) -> _Collector:
    if cur.description is None:
        raise QueryError("the statement returned no rows (only SELECT queries are allowed)")
    return _Collector([d.name for d in cur.description], [d.type_code for d in cur.description], max_rows,
                      max_bytes)


class _Collector:
    """Rows as they arrive, with the size of the table they make; stops at either limit."""

    def __init__(self, columns: list[str], type_codes: list[int], max_rows: int, max_bytes: int | None):
        from psycopg.postgres import types as pg_types

        self.columns, self.type_codes = columns, type_codes
        self.max_rows, self.max_bytes = max_rows, max_bytes
        kinds = [(pg_types.get(t).name if pg_types.get(t) else "text") for t in type_codes]
        self.fixed = sum(_FIXED.get(k, 0) for k in kinds)
        self.text = [j for j, k in enumerate(kinds) if k not in _FIXED]
        self.longest = [0] * len(self.text)  # characters of the longest value per text column
        self.rows: list[tuple] = []
        self.reason: str | None = None
        self._chunk = 1000
        self._wire = 0  # characters and bytes received, for the chunk size

    def row_bytes(self, longest: list[int] | None = None) -> int:
        return self.fixed + 4 * sum(self.longest if longest is None else longest)

    def wanted(self) -> bool:
        return self.reason is None and len(self.rows) <= self.max_rows

    def chunk(self) -> int:
        return max(1, min(self._chunk, self.max_rows + 1 - len(self.rows)))

    def add(self, rows: list[tuple]) -> bool:
        """Keep what fits of ``rows``; False when no further fetch is wanted."""
        if not rows:
            return False
        if self.text:
            longest = list(self.longest)
            for i, row in enumerate(rows):
                wire = 0
                for k, j in enumerate(self.text):
                    n = _text_length(row[j])
                    wire += n
                    if n > longest[k]:
                        longest[k] = n
                if self.max_bytes is not None and (len(self.rows) + 1) * self.row_bytes(longest) > self.max_bytes:
                    self.reason = "bytes"
                    break
                self.longest = list(longest)
                self._wire += wire + self.fixed
                self.rows.append(row)
        else:
            room = len(rows)
            if self.max_bytes is not None and self.fixed:
                room = min(room, self.max_bytes // self.fixed - len(self.rows))
            if room < len(rows):
                self.reason = "bytes"
                rows = rows[:max(room, 0)]
            self.rows.extend(rows)
            self._wire += len(rows) * self.fixed
        if len(self.rows) > self.max_rows:
            self.reason = "rows"
        if self.rows:
            per_row = max(1, self._wire // len(self.rows))
            self._chunk = min(20_000, max(50, _CHUNK_BYTES // per_row))
        return self.reason is None

    def result(self) -> QueryResult:
        rows = self.rows[:self.max_rows]
        return QueryResult(self.columns, self.type_codes, rows, self.reason is not None, self.max_rows,
                           max_bytes=self.max_bytes, overflow_reason=self.reason,
                           table_bytes=len(rows) * self.row_bytes())


def _text_length(value) -> int:
    """Characters of ``value`` as the result table writes it (see :func:`_text`)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 2 + 2 * len(value)
    return len(str(value))


def _text(value) -> str:
    """A value of a non-numeric column as text; binary values as PostgreSQL writes them (``\\x...``)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    return str(value)


def _query_error(exc: psycopg.Error, timeout_s: float) -> QueryError:
    diag = exc.diag
    state = diag.sqlstate
    if state == "57014":
        return QueryError(f"query cancelled after the {timeout_s:g} s statement timeout", sqlstate=state)
    if state in ("25006", "42501"):
        return QueryError(f"read-only service: {diag.message_primary}", sqlstate=state)
    if state == "42601" and "multiple commands" in (diag.message_primary or ""):
        return QueryError("only one statement is allowed", sqlstate=state)
    position = int(diag.statement_position) if diag.statement_position else None
    where = f" (at character {position})" if position else ""
    return QueryError(f"{diag.message_primary or exc}{where}", position=position, sqlstate=state)


def rows_to_table(columns: list[str], type_codes: list[int], rows: list[tuple]):
    """Rows from psycopg into an astropy Table; NULLs become masked values (the columns are not copied again)."""
    from astropy import units as u
    from astropy.table import Column, MaskedColumn, Table

    from psycopg.postgres import types as pg_types

    built, names = [], []
    for j, name in enumerate(columns):
        values = [r[j] for r in rows]
        info = pg_types.get(type_codes[j])
        kind = info.name if info else "text"
        dtype = _NUMPY.get(kind)
        mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        if dtype is not None:
            fill = 0 if dtype not in (np.float32, np.float64) else np.nan
            data = np.array([fill if v is None else v for v in values], dtype=dtype)
        else:
            data = np.array(["" if v is None else _text(v) for v in values], dtype=str)
        del values
        unique = name
        k = 1
        while unique in names:
            k += 1
            unique = f"{name}_{k}"
        names.append(unique)
        column = (MaskedColumn(data, name=unique, mask=mask, copy=False) if mask.any()
                  else Column(data, name=unique, copy=False))
        m = meta(name)
        if m:
            if m.unit:
                column.unit = u.Unit(m.unit)
            column.description = m.description
            column.meta["ucd"] = m.ucd
        built.append(column)
    return Table(built, names=names, copy=False)
