"""TAP 1.1 synchronous queries at ``/tap/sync`` (GET and POST).

``LANG=ADQL`` (``REQUEST=doQuery`` tolerated), ``QUERY``, ``MAXREC`` and
``RESPONSEFORMAT``/``FORMAT``: VOTable with BINARY2 by default, TABLEDATA, CSV, TSV or
FITS; ``UPLOAD=name,param:part`` with the tables (VOTable or CSV) as multipart parts, read as
``TAP_UPLOAD.name`` (see :mod:`xpdb.query.upload`). Queries run on a pooled read-only connection with the synchronous timeout.
Parameter and query errors answer HTTP 400, overload 503, with a VOTable error document
whose ``QUERY_STATUS`` is ERROR.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from xpdb.service.documents import error_document
from xpdb.service.execute import check_request, describe_failure, read_uploads, run_query
from xpdb.service.params import read_params, root_url


def error_response(message: str, status: int) -> Response:
    return Response(error_document(message), status_code=status, media_type="application/x-votable+xml")


async def sync_query(request: Request) -> Response:
    """GET or POST ``/tap/sync``."""
    service = request.app.state.service
    try:
        params = await read_params(request, files=True)
        tap_request = check_request(params, service.settings)
        root = root_url(request)
        outcome = await run_in_threadpool(_run, service, tap_request, params, root)
    except Exception as exc:  # every failure is a DALI error document
        failure = describe_failure(exc)
        return error_response(failure.message, failure.status)
    return Response(outcome.body, media_type=outcome.media_type)


def _run(service, tap_request, params, root: str | None = None):
    read_uploads(tap_request, params, service.settings)  # here, in a thread: parsing tables takes time
    with service.readers.connection() as conn:
        return run_query(tap_request, conn=conn, timeout_s=service.settings.sync_timeout_s,
                         max_result_bytes=service.settings.max_result_bytes, translate=service.parser.translate,
                         published=service.published, datalink=root)
