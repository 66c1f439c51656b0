"""One TAP query: check LANG, translate the ADQL, run it read-only, write the result.

Shared by ``/tap/sync`` and the asynchronous job executor, so that both answer the same
query with the same rows, the same limits and the same error messages. Errors are
:class:`ServiceError` with a message meant for the user and an HTTP status; a Python
traceback never reaches the client.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import psycopg
from starlette.exceptions import HTTPException

from xpdb.query.run import QueryError, run_readonly
from xpdb.service.documents import query_document
from xpdb.service.params import Format, ParameterError, Params, RequestTooLarge, parse_format, parse_maxrec
from xpdb.service.pool import PoolTimeout
from xpdb.service.settings import ServiceSettings

log = logging.getLogger("xpdb.service")

LANGUAGES = ("ADQL", "ADQL-2.0", "ADQL-2.1")


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
    uploads: list = field(default_factory=list)  # xpdb.query.upload.Upload, read by read_uploads
    upload_param: str | None = None  # the UPLOAD parameter, read by read_uploads


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
    upload = params.get("UPLOAD")
    return TapRequest(query=query, maxrec=maxrec, fmt=parse_format(params),
                      upload_param=upload if upload is not None and upload.strip() else None)


def read_uploads(request: TapRequest, params: Params, settings: ServiceSettings) -> None:
    """Read the tables that UPLOAD names (request parts, or http(s) URLs when allowed) into ``request.uploads``
    (ServiceError)."""
    from xpdb.query.upload import UploadError, UploadLimits, read_upload

    limits = UploadLimits(max_rows=settings.upload_max_rows, max_bytes=settings.upload_max_bytes)
    try:
        for name, source, data in upload_sources(request, params, settings):
            request.uploads.append(read_upload(name, data, source, limits))
    except UploadError as exc:
        raise ServiceError(f"upload error: {exc}") from None


def stored_uploads(request: TapRequest, rows, settings: ServiceSettings) -> None:
    """``request.uploads`` from (name, source, bytes) rows as :func:`upload_sources` gave them (ServiceError)."""
    from xpdb.query.upload import UploadError, UploadLimits, read_upload

    limits = UploadLimits(max_rows=settings.upload_max_rows, max_bytes=settings.upload_max_bytes)
    try:
        for name, source, data in rows:
            request.uploads.append(read_upload(name, bytes(data), source, limits))
    except UploadError as exc:
        raise ServiceError(f"upload error: {exc}") from None


def upload_sources(request: TapRequest, params: Params, settings: ServiceSettings) -> list[tuple[str, str, bytes]]:
    """(name, source, bytes) of every table UPLOAD names, within the size limit (UploadError otherwise)."""
    from xpdb.query.upload import UploadError, UploadLimits, parse_upload_param

    out: list[tuple[str, str, bytes]] = []
    if request.upload_param is None:
        return out
    pairs = parse_upload_param(request.upload_param)
    total = 0
    limits = UploadLimits(max_rows=settings.upload_max_rows, max_bytes=settings.upload_max_bytes)
    for name, uri in pairs:
        if uri.lower().startswith(("http://", "https://")):
            if not settings.upload_urls:
                raise UploadError(f"UPLOAD {name!r}: this service fetches no URLs; send the table in the "
                                  f"request (UPLOAD={name},param:{name} and a file part {name})")
            filename, data = uri, fetch_upload(uri, limits.max_bytes - total)
        elif uri.lower().startswith("param:"):
            part = uri[len("param:"):]
            if part not in params.files:
                raise UploadError(f"UPLOAD {name!r}: the request has no file part {part!r} "
                                  f"(parts: {', '.join(sorted(params.files)) or 'none'})")
            filename, data = params.files[part]
        else:
            raise UploadError(f"UPLOAD {name!r}: {uri!r} is neither param:PART nor an http(s) URL")
        total += len(data)
        if total > limits.max_bytes:
            raise UploadError(f"the uploads are {total:,} bytes or more together; this service accepts at most "
                              f"{limits.max_bytes:,}")
        out.append((name, f"{uri} ({filename})", data))
    return out


def run_query(request: TapRequest, *, conn: psycopg.Connection, timeout_s: float,
              max_result_bytes: int | None = None, infos: dict | None = None, translate=None,
              published=None, datalink: str | None = None) -> Outcome:
    """Translate and run ``request`` on the read-only connection ``conn``; ServiceError on failure.

    ``translate(adql, max_rows=...)`` turns ADQL into a TranslatedQuery (default: in this
    thread; the service passes its parser pool, which has a time limit). A query naming a
    table that TAP_SCHEMA does not publish is refused (``published``: a
    :class:`PublishedTables` cache; default: read the list now). Rows are fetched from a cursor
    until MAXREC or ``max_result_bytes`` (the table and its document in the requested format)
    is reached: QUERY_STATUS OVERFLOW, with the reason.
    """
    result = query_result(request, conn=conn, timeout_s=timeout_s, max_result_bytes=max_result_bytes,
                          translate=translate, published=published)
    info = {"QUERY": request.query.strip(), "MAXREC": request.maxrec, **(infos or {})}
    body = query_document(result, request.fmt, infos=info, datalink=datalink)
    return Outcome(body=body, media_type=request.fmt.media_type, rows=len(result), overflow=result.overflow)


def query_table(request: TapRequest, *, conn: psycopg.Connection, timeout_s: float,
                max_result_bytes: int | None = None, translate=None, published=None):
    """(astropy Table, overflow, overflow message) of ``request``: the checks and rows of :func:`run_query`
    (the web pages show the same table as HTML); ServiceError on failure."""
    result = query_result(request, conn=conn, timeout_s=timeout_s, max_result_bytes=max_result_bytes,
                          translate=translate, published=published)
    overflow, message = result.overflow, result.overflow_message
    table = result.to_table()
    del result  # the table holds the values now
    return table, overflow, message


def query_result(request: TapRequest, *, conn: psycopg.Connection, timeout_s: float,
                 max_result_bytes: int | None = None, translate=None, published=None):
    """The :class:`xpdb.query.run.QueryResult` of ``request`` (translated, checked, run); ServiceError on
    failure."""
    from xpdb.query.adql import ADQLError, to_postgresql
    from xpdb.query.run import check_published, published_tables

    try:
        translated = (translate or to_postgresql)(request.query, max_rows=request.maxrec)
    except ADQLError as exc:
        raise ServiceError(f"ADQL error: {exc}") from None
    try:
        if published is not None:
            published.check(conn, translated.tables, request.uploads)
        else:
            check_published(translated.tables, published_tables(conn), request.uploads)
    except ADQLError as exc:
        raise ServiceError(f"ADQL error: {exc}") from None
    try:
        return run_readonly(translated.sql, max_rows=request.maxrec, timeout_s=timeout_s, conn=conn,
                            max_bytes=max_result_bytes, encoding=request.fmt.encoding, uploads=request.uploads)
    except QueryError as exc:
        raise ServiceError(f"query failed: {exc}") from None


def fetch_upload(url: str, max_bytes: int, timeout_s: float = 20.0) -> bytes:
    """The table at ``url`` (TAP's upload-http), at most ``max_bytes``; UploadError naming the URL otherwise."""
    import urllib.error
    import urllib.request

    from xpdb.query.upload import UploadError

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "xpdb-tap"}),
                                    timeout=timeout_s) as response:
            data = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UploadError(f"upload {url!r} could not be fetched: {getattr(exc, 'reason', exc)}") from None
    if len(data) > max_bytes:
        raise UploadError(f"upload {url!r} is over {max_bytes:,} bytes, this service's limit")
    return data


class PublishedTables:
    """The published table names, read through a reader connection at most every ``ttl_s`` seconds
    (and again before a table is refused, so that a view made a moment ago is found)."""

    def __init__(self, ttl_s: float = 10.0):
        self.ttl_s = ttl_s
        self._value: frozenset[str] | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def __call__(self, conn: psycopg.Connection, *, refresh: bool = False) -> frozenset[str]:
        from xpdb.query.run import published_tables

        with self._lock:
            if not refresh and self._value is not None and time.monotonic() - self._at < self.ttl_s:
                return self._value
        value = published_tables(conn)
        with self._lock:
            self._value, self._at = value, time.monotonic()
        return value

    def check(self, conn: psycopg.Connection, tables, uploads=()) -> None:
        """ADQLError unless every table of ``tables`` is published (or one of ``uploads``)."""
        from xpdb.query.adql import ADQLError
        from xpdb.query.run import check_published

        try:
            check_published(tables, self(conn), uploads)
        except ADQLError:
            check_published(tables, self(conn, refresh=True), uploads)


def describe_failure(exc: BaseException) -> ServiceError:
    """Any exception as a ServiceError (unexpected ones are logged with their traceback)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, RequestTooLarge):
        return ServiceError(f"the request is too large: {exc}", 413)
    if isinstance(exc, ParameterError):
        return ServiceError(str(exc), 400)
    if isinstance(exc, (psycopg.DataError, UnicodeError)):  # a parameter the database cannot store or compare
        return ServiceError(f"a parameter has characters or a value this service cannot use ({exc})", 400)
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
