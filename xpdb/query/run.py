"""Running user queries safely and turning results into astropy Tables.

Every user query (ADQL, ``--sql``, cone searches, the TAP service) runs:
- as the ``xpdb_reader`` role, which logs in on its own and can only SELECT (so a query
  cannot switch back to a writer role), and may execute no function that writes, signals
  or changes settings (migration ``0009_security``);
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

from xpdb.errors import QueryError
from xpdb.query.columns import meta

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_BYTES = 1_000_000_000
CURSOR = "xpdb_result"
_CHUNK_BYTES = 8 << 20  # a fetch brings about this much
_FIXED = {"int2": 2, "int4": 4, "int8": 8, "float4": 4, "float8": 8, "numeric": 8, "bool": 1}
_NUMPY = {"int2": np.int16, "int4": np.int32, "int8": np.int64, "float4": np.float32, "float8": np.float64,
          "numeric": np.float64, "bool": bool}


@dataclass
class QueryResult:
    """A result: its columns as arrays (numbers as numpy, other values as text), and why it may be cut."""

    columns: list[str]
    type_codes: list[int]
    data: list = field(default_factory=list)  # per column: numpy array (numbers) or list of str
    masks: list = field(default_factory=list)  # per column: bool array of NULLs
    overflow: bool = False
    max_rows: int | None = None
    info: dict = field(default_factory=dict)
    max_bytes: int | None = None
    overflow_reason: str | None = None  # 'rows' (more than max_rows) or 'bytes' (max_bytes reached)
    table_bytes: int = 0  # size of the result table as to_table() holds it
    counted_bytes: int = 0  # what the byte limit counted: the table and its document

    def __len__(self) -> int:
        return len(self.masks[0]) if self.masks else 0

    @property
    def rows(self) -> list[tuple]:
        """The rows as tuples of Python values (None for NULL; non-numeric values as text)."""
        columns = [[None if m else v for v, m in zip(d.tolist() if isinstance(d, np.ndarray) else d, mask.tolist())]
                   for d, mask in zip(self.data, self.masks)]
        return list(zip(*columns)) if columns else []

    def to_table(self):
        """The result as an astropy Table with units and descriptions where known."""
        return columns_to_table(self.columns, self.type_codes, self.data, self.masks)

    @property
    def overflow_message(self) -> str | None:
        """Why the result is incomplete, for users; None when it is complete."""
        if self.overflow_reason == "bytes":
            return (f"the result was cut at {len(self):,} rows: it reached the limit of "
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
                         "create it with migrations/sql/0001_store/roles.sql and set XPDB_READER_URL with its password") from exc


def run_readonly(sql: str, params: tuple | dict | None = None, *, max_rows: int = DEFAULT_MAX_ROWS,
                 timeout_s: float = DEFAULT_TIMEOUT_S, conn: psycopg.Connection | None = None,
                 prepared: bool = False, max_bytes: int | None = DEFAULT_MAX_BYTES,
                 encoding: str = "binary", uploads: list | None = None,
                 before: tuple[tuple[str, tuple | dict | None], ...] = ()) -> QueryResult:
    """Run one query read-only with a timeout; at most ``max_rows`` rows and ``max_bytes`` of table.

    ``uploads`` (:class:`xpdb.query.upload.Upload`): temporary tables created by xpdb in this
    transaction before it turns READ ONLY for the query (see :mod:`xpdb.query.upload`).

    ``overflow`` is set (with ``overflow_reason``) when more rows exist than were returned.
    ``encoding`` ('binary', 'text' or 'xml') is how the result will be written, for the
    byte count (see :class:`_Collector`).
    The query is one statement: a server-side cursor is declared for it over the extended
    protocol and fetched in chunks.

    ``prepared`` (for xpdb's own parameterised queries with their own LIMIT, e.g. cone
    searches, on a reused connection): a server-side prepared statement with one generic
    plan instead of a cursor. q3c's cone predicate expands into dozens of index ranges, so
    planning costs more than running.

    ``before``: xpdb's own one-row queries run first, in the same snapshot (the transaction is
    then REPEATABLE READ); their rows are ``result.info["before"]``.

    Round trips: the transaction's start, ``before`` and the query are sent as one pipeline
    (libpq's pipeline mode, where every statement goes over the extended protocol, so the
    query cannot carry a second statement either); a prepared query and its COMMIT travel in
    that same pipeline (one round trip), a cursor is fetched with its timeout renewed in the
    same message (three round trips for a result of under 1,000 rows).
    """
    own = conn is None
    conn = conn or reader_connect(timeout_s=timeout_s)
    deadline = time.monotonic() + timeout_s
    try:
        conn.rollback()
        conn.autocommit = True  # the transaction below is explicit, so that it can be READ ONLY
        begin = ("BEGIN" + (" ISOLATION LEVEL REPEATABLE READ" if before else "")
                 + (" READ WRITE" if uploads else " READ ONLY"))
        settings = [f"SET LOCAL statement_timeout = {_ms(timeout_s)}", "SET LOCAL search_path = xpdb, public",
                    "SET LOCAL cursor_tuple_fraction = 1"]
        if prepared:
            settings.append("SET LOCAL plan_cache_mode = force_generic_plan")
        try:
            if uploads or not psycopg.Pipeline.is_supported():
                collector, before_rows = _run_stepwise(conn, begin, settings, sql, params, prepared, uploads, before,
                                                       deadline, timeout_s, max_rows, max_bytes, encoding)
            else:
                collector, before_rows = _run_pipelined(conn, begin, settings, sql, params, prepared, before,
                                                        deadline, timeout_s, max_rows, max_bytes, encoding)
        except psycopg.Error as exc:
            raise _query_error(exc, timeout_s) from exc
        result = collector.result()
        if before:
            result.info["before"] = before_rows
        return result
    finally:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
        if own:
            conn.close()


def _run_pipelined(conn, begin, settings, sql, params, prepared, before, deadline, timeout_s, max_rows, max_bytes,
                   encoding):
    """:func:`run_readonly` in libpq's pipeline mode: (collector, rows of ``before``)."""
    with conn.pipeline():
        for statement in [begin, *settings]:
            conn.execute(statement)
        extra = [conn.cursor().execute(query, values, prepare=True) for query, values in before]
        cur = conn.cursor()
        if prepared:
            cur.execute(sql, params, prepare=True)
            # COMMIT of a read-only transaction writes nothing; unlike ROLLBACK it keeps psycopg's
            # prepared statements (and their generic plans) for the next query on this connection.
            conn.execute("COMMIT")
        else:
            cur.execute(f'DECLARE "{CURSOR}" NO SCROLL CURSOR FOR {sql}', params, prepare=False)  # one-off text
    before_rows = [c.fetchone() for c in extra]
    if prepared:
        collector = _start(cur, max_rows, max_bytes, encoding)
        while collector.wanted():
            if not collector.add(cur.fetchmany(collector.chunk())):
                break
        return collector, before_rows
    collector = None
    wanted = min(1000, max_rows + 1)  # the collector's first chunk
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise QueryError(f"query cancelled after the {timeout_s:g} s statement timeout", sqlstate="57014")
        # xpdb's own two statements in one message (the simple protocol): the timeout left, then the rows
        cur.execute(f'SET LOCAL statement_timeout = {_ms(remaining)}; FETCH FORWARD {int(wanted)} FROM "{CURSOR}"')
        cur.nextset()
        if collector is None:
            collector = _start(cur, max_rows, max_bytes, encoding)
        rows = cur.fetchall()
        if not collector.add(rows) or len(rows) < wanted or not collector.wanted():
            break
        wanted = collector.chunk()
    conn.execute("COMMIT")  # also closes the cursor
    return collector, before_rows


def _run_stepwise(conn, begin, settings, sql, params, prepared, uploads, before, deadline, timeout_s, max_rows,
                  max_bytes, encoding):
    """:func:`run_readonly` one statement after another (uploads are copied in between): (collector, rows of
    ``before``)."""
    with conn.cursor() as cur:
        # one round trip: xpdb's own statements (the simple protocol allows several)
        cur.execute("; ".join([begin, *settings]))
    if uploads:
        from xpdb.query.upload import load_uploads

        try:
            load_uploads(conn, uploads)
        except psycopg.Error as exc:
            raise QueryError(f"the uploaded tables could not be stored: {exc.diag.message_primary or exc}") \
                from exc
        conn.execute("SET TRANSACTION READ ONLY")  # from here on, only reading (temporary tables included)
    before_rows = [conn.execute(query, values, prepare=True).fetchone() for query, values in before]
    if prepared:
        with conn.cursor() as cur:
            cur.execute(sql, params, prepare=True)
            collector = _start(cur, max_rows, max_bytes, encoding)
            while collector.wanted():
                if not collector.add(cur.fetchmany(collector.chunk())):
                    break
    else:
        with conn.cursor(name=CURSOR, scrollable=False) as cur:
            cur.execute(sql, params)
            collector = _start(cur, max_rows, max_bytes, encoding)
            while collector.wanted():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise QueryError(f"query cancelled after the {timeout_s:g} s statement timeout",
                                     sqlstate="57014")
                conn.execute(f"SET LOCAL statement_timeout = {_ms(remaining)}")
                if not collector.add(cur.fetchmany(collector.chunk())):
                    break
    # COMMIT of a read-only transaction writes nothing; unlike ROLLBACK it keeps psycopg's
    # prepared statements (and their generic plans) for the next query on this connection.
    conn.execute("COMMIT")
    return collector, before_rows


def published_tables(conn: psycopg.Connection) -> frozenset[str]:
    """The ``schema.table`` names TAP_SCHEMA publishes (what the read-only role may read)."""
    conn.rollback()
    conn.autocommit = True
    return frozenset(r[0] for r in conn.execute("SELECT table_name FROM tap_schema.tables"))


def check_published(tables, published: frozenset[str], uploads=()) -> None:
    """ADQLError unless every (schema, name) in ``tables`` is published or uploaded (TAP_UPLOAD.name, which the
    translator makes ``pg_temp.name``); unqualified names are in xpdb."""
    from xpdb.query.adql import ADQLError

    uploaded = {u.name for u in uploads}
    for schema, name in tables:
        full = f"{schema}.{name}" if schema is not None else f"xpdb.{name}"
        if full in published and not (schema is None and name.startswith("pg_")):
            continue
        if schema == "pg_temp" and name in uploaded:
            continue
        shown = f"{schema}.{name}" if schema is not None else name
        if schema == "pg_temp":
            raise ADQLError(f"there is no uploaded table {name!r}: "
                            + (f"this query uploads {', '.join(sorted(uploaded))}" if uploaded
                               else "upload it with UPLOAD=name,param:part (xpdb query --upload name=FILE)"))
        raise ADQLError(f"there is no table {shown!r} here: queries may read the tables that TAP_SCHEMA.tables "
                        "lists (/tap/tables)")


def run_user_query(text: str, *, language: str = "adql", max_rows: int = DEFAULT_MAX_ROWS,
                   timeout_s: float = DEFAULT_TIMEOUT_S, max_bytes: int | None = DEFAULT_MAX_BYTES,
                   encoding: str = "binary", url: str | None = None,
                   uploads: list | None = None) -> tuple[QueryResult, str]:
    """A user's ADQL (translated for q3c; published tables only) or one PostgreSQL query, read-only.

    What ``xpdb query`` and ``Database.query``/``.sql`` run; returns (result, the SQL run).
    ``uploads`` (:class:`xpdb.query.upload.Upload`) are readable as ``TAP_UPLOAD.name``.
    """
    from xpdb.query.adql import to_postgresql

    if language not in ("adql", "sql"):
        raise QueryError(f"unknown query language {language!r}; adql or sql")
    with reader_connect(url, timeout_s=timeout_s) as conn:
        if language == "sql":
            statement = text
        else:
            translated = to_postgresql(text, max_rows=max_rows)
            check_published(translated.tables, published_tables(conn), uploads or ())
            statement = translated.sql
        try:
            result = run_readonly(statement, max_rows=max_rows, timeout_s=timeout_s, max_bytes=max_bytes, conn=conn,
                                  encoding=encoding, uploads=uploads)
        except psycopg.Error as exc:
            raise QueryError(f"the database refused or lost the query: {exc}") from exc
    return result, statement


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _start(cur, max_rows: int, max_bytes: int | None, encoding: str) -> _Collector:
    if cur.description is None:
        raise QueryError("the statement returned no rows (only SELECT queries are allowed)")
    return _Collector([d.name for d in cur.description], [d.type_code for d in cur.description], max_rows,
                      max_bytes, encoding)


# bytes of the document per value, by encoding: (per number, per character of text, per text value)
_DOCUMENT = {"binary": (None, 2, 4),  # VOTable BINARY2 (numbers at their width, text UTF-16), FITS, Parquet
             "text": (24, 1, 3),  # CSV, TSV, ECSV, terminal: a double's repr is at most 24 characters
             "xml": (33, 1, 12)}  # VOTable TABLEDATA: <TD></TD> around every value


class _Collector:
    """Rows as they arrive, kept as columns, counted as the table and the document they make.

    Each fetched chunk becomes column arrays at once (Python's row objects do not pile up).
    The byte count of ``n`` rows is the table (numbers at their size, text 4 bytes a
    character of its column's longest value: a numpy unicode column) plus the document
    written from it (``encoding``: binary formats at the table's width, text formats at
    24 characters a number and the characters of the text). Rows stop before the count
    passes ``max_bytes``.
    """

    def __init__(self, columns: list[str], type_codes: list[int], max_rows: int, max_bytes: int | None,
                 encoding: str = "binary"):
        from psycopg.postgres import types as pg_types

        self.columns, self.type_codes = columns, type_codes
        self.max_rows, self.max_bytes = max_rows, max_bytes
        kinds = [(pg_types.get(t).name if pg_types.get(t) else "text") for t in type_codes]
        self.dtypes = [_NUMPY.get(k) for k in kinds]
        per_number, self.per_char, self.per_text = _DOCUMENT.get(encoding, _DOCUMENT["binary"])
        self.fixed = sum(_FIXED.get(k, 0) for k in kinds)  # table bytes of a row's numbers
        self.fixed_doc = sum((per_number or _FIXED[k]) for k in kinds if k in _FIXED) + self.per_text * sum(
            1 for k in kinds if k not in _FIXED)
        self.text = [j for j, k in enumerate(kinds) if k not in _FIXED]
        self.longest = [0] * len(self.text)  # characters of the longest value per text column
        self.chunks: list[list] = [[] for _ in columns]
        self.chunk_masks: list[list] = [[] for _ in columns]
        self.n = 0
        self.doc_text = 0  # characters of text seen (the document's share)
        self.reason: str | None = None
        self._chunk = 1000
        self._wire = 0  # characters and bytes received, for the chunk size

    def counted(self, n: int | None = None, longest: list[int] | None = None, doc_text: int | None = None) -> int:
        n = self.n if n is None else n
        longest = self.longest if longest is None else longest
        doc_text = self.doc_text if doc_text is None else doc_text
        return n * (self.fixed + 4 * sum(longest) + self.fixed_doc) + self.per_char * doc_text

    def wanted(self) -> bool:
        return self.reason is None and self.n <= self.max_rows

    def chunk(self) -> int:
        return max(1, min(self._chunk, self.max_rows + 1 - self.n))

    def add(self, rows: list[tuple]) -> bool:
        """Keep what fits of ``rows``; False when no further fetch is wanted."""
        if not rows:
            return False
        keep = len(rows)
        if self.max_bytes is not None:
            if self.text:
                longest, doc_text = list(self.longest), self.doc_text
                for i, row in enumerate(rows):
                    for k, j in enumerate(self.text):
                        length = _text_length(row[j])
                        doc_text += length
                        if length > longest[k]:
                            longest[k] = length
                    if self.counted(self.n + i + 1, longest, doc_text) > self.max_bytes:
                        keep = i
                        break
                    self.longest, self.doc_text = list(longest), doc_text
            else:
                per_row = self.fixed + self.fixed_doc
                if per_row:
                    keep = min(keep, max(0, (self.max_bytes - self.counted()) // per_row))
            if keep < len(rows):
                self.reason = "bytes"
        elif self.text:
            for row in rows:
                for k, j in enumerate(self.text):
                    self.longest[k] = max(self.longest[k], _text_length(row[j]))
        kept = rows[:keep] if keep < len(rows) else rows
        for j, dtype in enumerate(self.dtypes):
            values = [row[j] for row in kept]
            mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
            if dtype is not None:
                fill = np.nan if dtype in (np.float32, np.float64) else 0
                self.chunks[j].append(np.array([fill if v is None else v for v in values], dtype=dtype))
            else:
                self.chunks[j].append(["" if v is None else _text(v) for v in values])
            self.chunk_masks[j].append(mask)
        self.n += len(kept)
        self._wire += len(kept) * self.fixed + sum(len(v) for j in self.text for v in self.chunks[j][-1])
        if self.n > self.max_rows:
            self.reason = "rows"
        if self.n:
            per_row = max(1, self._wire // self.n)
            self._chunk = min(20_000, max(50, _CHUNK_BYTES // per_row))
        return self.reason is None

    def result(self) -> QueryResult:
        n = min(self.n, self.max_rows)
        data, masks = [], []
        for j, dtype in enumerate(self.dtypes):
            mask = np.concatenate(self.chunk_masks[j])[:n] if self.chunk_masks[j] else np.zeros(0, dtype=bool)
            if dtype is not None:
                column = np.concatenate(self.chunks[j])[:n] if self.chunks[j] else np.zeros(0, dtype=dtype)
            else:
                column = [v for part in self.chunks[j] for v in part][:n]
            self.chunks[j], self.chunk_masks[j] = [], []
            data.append(column)
            masks.append(mask)
        return QueryResult(self.columns, self.type_codes, data, masks, self.reason is not None, self.max_rows,
                           max_bytes=self.max_bytes, overflow_reason=self.reason,
                           table_bytes=n * (self.fixed + 4 * sum(self.longest)), counted_bytes=self.counted(n))


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
    """Rows from psycopg into an astropy Table; NULLs become masked values."""
    collector = _Collector(columns, type_codes, len(rows), None)
    collector.add(rows)
    result = collector.result()
    return columns_to_table(columns, type_codes, result.data, result.masks)


def columns_to_table(columns: list[str], type_codes: list[int], data: list, masks: list):
    """Column arrays (see :class:`QueryResult`) into an astropy Table with units, UCDs and descriptions."""
    from astropy import units as u
    from astropy.table import Column, MaskedColumn, Table

    built, names = [], []
    for name, values, mask in zip(columns, data, masks):
        if not isinstance(values, np.ndarray):
            values = np.array(values, dtype=str) if len(values) else np.zeros(0, dtype="<U1")
        unique = name
        k = 1
        while unique in names:
            k += 1
            unique = f"{name}_{k}"
        names.append(unique)
        column = (MaskedColumn(values, name=unique, mask=mask, copy=False) if mask.any()
                  else Column(values, name=unique, copy=False))
        m = meta(name)
        if m:
            if m.unit:
                column.unit = u.Unit(m.unit)
            column.description = m.description
            column.meta["ucd"] = m.ucd
        built.append(column)
    return Table(built, names=names, copy=False)
