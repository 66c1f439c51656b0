"""Simple Cone Search 1.03 at ``/scs``: RA, DEC, SR in degrees, VERB, and DALI's MAXREC and RESPONSEFORMAT.

The rows are those of ``xpdb cone`` (q3c_radial_query on ``source_photometry``, nearest
first, ``dist_arcsec``, the newest model's FEH, FEH_err and flags): VERB=2 (the default)
gives exactly its default columns, VERB=1 only source_id, ra, dec and the distance,
VERB=3 every column of ``source_photometry``. ``SR=0`` answers the metadata (no rows).
Errors are VOTables with the SCS ``Error`` INFO and the DALI ``QUERY_STATUS`` INFO,
sent with HTTP 200 as SCS 1.03 clients expect.
"""

from __future__ import annotations

import math

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from xpdb.query.cone import DEFAULT_COLUMNS, NEWEST_MODEL, PREDICTION_COLUMNS, SOURCE_COLUMNS, cone_query
from xpdb.query.run import run_readonly
from xpdb.service.documents import error_document, query_document
from xpdb.service.execute import describe_failure
from xpdb.service.params import VOTABLE_TD, ParameterError, Params, parse_format, parse_maxrec, read_params

VERBOSITY = {1: ("source_id", "ra", "dec"), 2: DEFAULT_COLUMNS, 3: SOURCE_COLUMNS}


def _degrees(params: Params, name: str, low: float, high: float) -> float:
    raw = params.get(name)
    if raw is None or not raw.strip():
        raise ParameterError("RA, DEC and SR are required (decimal degrees, ICRS); missing " + name)
    try:
        value = float(raw)
    except ValueError:
        raise ParameterError(f"{name} must be a number of degrees, not {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ParameterError(f"{name} must be within [{low:g}, {high:g}] degrees, not {raw}")
    return value


def _verbosity(params: Params) -> int:
    raw = params.get("VERB")
    if raw is None or not raw.strip():
        return 2
    try:
        verb = int(raw)
    except ValueError:
        raise ParameterError(f"VERB must be 1, 2 or 3, not {raw!r}") from None
    if verb not in VERBOSITY:
        raise ParameterError(f"VERB must be 1, 2 or 3, not {raw!r}")
    return verb


def newest_model(conn: psycopg.Connection) -> tuple[int | None, str | None]:
    """(model_id, NAME:VERSION) of the newest model, or (None, None) before any training."""
    row = conn.execute("SELECT model_id, name || ':' || version FROM xpdb.model_info "
                       "ORDER BY created_at DESC, model_id DESC LIMIT 1").fetchone()
    conn.rollback()
    return (row[0], row[1]) if row else (None, None)


async def cone_search(request: Request) -> Response:
    """GET (or POST) ``/scs``."""
    service = request.app.state.service
    try:
        params = await read_params(request)
        ra = _degrees(params, "RA", 0.0, 360.0)
        dec = _degrees(params, "DEC", -90.0, 90.0)
        radius = _degrees(params, "SR", 0.0, 180.0)
        verb = _verbosity(params)
        maxrec = parse_maxrec(params, service.settings.maxrec, service.settings.maxrec_limit)
        fmt = parse_format(params, default=VOTABLE_TD)
        body = await run_in_threadpool(_search, service, ra, dec, radius, verb, maxrec, fmt)
    except Exception as exc:  # every failure is an SCS error document
        failure = describe_failure(exc)
        return Response(error_document(failure.message, scs=True), status_code=200,
                        media_type="application/x-votable+xml")
    return Response(body, media_type=fmt.media_type)


def _search(service, ra: float, dec: float, radius: float, verb: int, maxrec: int, fmt) -> bytes:
    """The cone's document: the newest model and the rows from one snapshot, in one round trip.

    The query is a prepared statement with a generic plan (every cone has the same plan: planning it
    cost more than running it) when its rows cannot pass the byte limit - numbers only, at most
    MAXREC + 1 of them - and a cursor otherwise.
    """
    settings = service.settings
    columns = VERBOSITY[verb]
    sql, sql_params = cone_query(ra, dec, radius, columns=columns, model_id="newest" if verb >= 2 else None,
                                 limit=maxrec + 1)
    values = len(columns) + (len(PREDICTION_COLUMNS) if verb >= 2 else 0) + 1
    bounded = settings.max_result_bytes is None or (maxrec + 1) * values * 32 <= settings.max_result_bytes
    with service.readers.connection() as conn:
        result = run_readonly(sql, sql_params, max_rows=maxrec, timeout_s=settings.sync_timeout_s, conn=conn,
                              max_bytes=settings.max_result_bytes, encoding=fmt.encoding, prepared=bounded,
                              before=((NEWEST_MODEL, None),) if verb >= 2 else ())
    model = result.info.get("before", [None])[0]
    infos = {"RA": ra, "DEC": dec, "SR": radius, "VERB": verb, "MAXREC": maxrec, "model": model[1] if model else "none"}
    return query_document(result, fmt, infos=infos)
