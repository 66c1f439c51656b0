"""One TAP query: check LANG, translate the ADQL, run it read-only, write the result.

Shared by ``/tap/sync`` and the asynchronous job executor, so that both answer the same
query with the same rows, the same limits and the same error messages. Errors are
:class:`ServiceError` with a message meant for the user and an HTTP status; a Python
traceback never reaches the client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from starlette.exceptions import HTTPException

from xpdb.query.run import QueryError, run_readonly
from xpdb.service.documents import result_document
from xpdb.service.params import Format, ParameterError, Params, parse_format, parse_maxrec
from xpdb.service.pool import PoolTimeout
from xpdb.service.settings import ServiceSettings

log = logging.getLogger("xpdb.service")

LANGUAGES = ("ADQL", "ADQL-2.0", "ADQL-2.1")
EXPLAIN_ABOVE = 10_000  # rows; smaller results are not worth the extra EXPLAIN


class ServiceError(RuntimeError):
    """An error to report as a VOTable error document with ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class TapRequest:
    """The checked parameters of one TAP query."""

    query: str
    maxrec: int
    fmt: Format


@dataclass
class Outcome:
    """A written result."""

    body: bytes
    media_type: str
    rows: int
    overflow: bool


def check_request(params: Params, settings: ServiceSettings) -> TapRequest:
    """REQUEST, LANG, QUERY, MAXREC and RESPONSEFORMAT of a TAP query, or ParameterError."""
    request = params.get("REQUEST")
    if request is not None and request.strip() and request.strip().lower() != "doquery":
        raise ParameterError(f"REQUEST={request!r} is not supported; TAP queries use REQUEST=doQuery (or none)")
    lang = (params.get("LANG") or "").strip()
    if not lang:
        raise ParameterError("LANG is missing; this service answers LANG=ADQL")
    if lang.upper() not in LANGUAGES:
        raise ParameterError(f"LANG={lang!r} is not supported; this service answers LANG=ADQL")
    query = params.get("QUERY")
    if query is None or not query.strip():
        raise ParameterError("QUERY is missing or empty")
    if "\x00" in query:
        raise ParameterError("QUERY contains a NUL character")
    maxrec = parse_maxrec(params, settings.maxrec, settings.maxrec_limit)
    return TapRequest(query=query, maxrec=maxrec, fmt=parse_format(params))


def run_query(request: TapRequest, *, conn: psycopg.Connection, timeout_s: float,
              max_result_bytes: int | None = None, infos: dict | None = None) -> Outcome:
    """Translate and run ``request`` on the read-only connection ``conn``; ServiceError on failure.

    With ``max_result_bytes``, a query that may return more than EXPLAIN_ABOVE rows is first
    EXPLAINed, and refused when the planner expects more bytes than that: rows are held in
    memory while the result document is written, so one huge result must not sink the server.
    """
    from xpdb.query.adql import ADQLError, to_postgresql

    try:
        translated = to_postgresql(request.query, max_rows=request.maxrec)
    except ADQLError as exc:
        raise ServiceError(f"ADQL error: {exc}") from None
    try:
        if max_result_bytes and request.maxrec > EXPLAIN_ABOVE:
            check_size(translated.sql, conn=conn, max_result_bytes=max_result_bytes, timeout_s=timeout_s)
        result = run_readonly(translated.sql, max_rows=request.maxrec, timeout_s=timeout_s, conn=conn)
    except QueryError as exc:
        raise ServiceError(f"query failed: {exc}") from None
    table = result.to_table()
    info = {"QUERY": request.query.strip(), "MAXREC": request.maxrec, **(infos or {})}
    body = result_document(table, request.fmt, overflow=result.overflow, infos=info)
    return Outcome(body=body, media_type=request.fmt.media_type, rows=len(result), overflow=result.overflow)


def check_size(sql: str, *, conn: psycopg.Connection, max_result_bytes: int, timeout_s: float) -> None:
    """Refuse ``sql`` when the planner's rows x width exceeds ``max_result_bytes``."""
    plan = run_readonly(f"EXPLAIN (FORMAT JSON) {sql}", max_rows=1, timeout_s=timeout_s, conn=conn).rows[0][0]
    top = (plan[0] if isinstance(plan, list) else plan)["Plan"]
    rows, width = float(top.get("Plan Rows", 0)), float(top.get("Plan Width", 0))
    if rows * width > max_result_bytes:
        raise ServiceError(f"the result would be about {rows * width / 1e6:,.0f} MB ({rows:,.0f} rows of "
                           f"{width:,.0f} bytes); this service returns at most {max_result_bytes / 1e6:,.0f} MB "
                           "at once: lower MAXREC, select fewer columns or narrow the query")


def describe_failure(exc: BaseException) -> ServiceError:
    """Any exception as a ServiceError (unexpected ones are logged with their traceback)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ParameterError):
        return ServiceError(str(exc), 400)
    if isinstance(exc, QueryError):
        if isinstance(exc.__cause__, psycopg.OperationalError):  # the read-only role cannot log in
            log.error("read-only connection failed: %s", exc)
            return ServiceError(f"the service cannot query the database: {exc}", 503)
        return ServiceError(f"query failed: {exc}", 400)
    if isinstance(exc, HTTPException):  # e.g. a malformed form body
        return ServiceError(str(exc.detail), exc.status_code)
    if isinstance(exc, PoolTimeout):
        return ServiceError(str(exc), 503)
    if isinstance(exc, psycopg.OperationalError):
        log.warning("database unavailable: %s", exc)
        return ServiceError("the database is not available right now; try again later", 503)
    log.error("internal error", exc_info=exc)
    return ServiceError(f"internal error ({type(exc).__name__}); the server log has the details", 500)
