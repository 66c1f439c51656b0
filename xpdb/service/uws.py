"""TAP asynchronous queries at ``/tap/async``: the UWS 1.1 job list and job resources.

Creation answers ``303 See Other`` with the job's URL; ``PHASE=RUN`` (at creation or on
``/phase``) queues the job for the executor; ``PHASE=ABORT`` aborts it; ``DELETE`` (or
POST ``ACTION=DELETE``) removes it and its result. ``GET`` of the job with ``WAIT=n``
(``-1``: as long as the server allows, ``wait_limit_s``) blocks while the job stays in
the same active phase (optionally only when it is in ``PHASE``), woken at once by the
executor in this process and polling the database every second for others. Job XML
follows the UWS 1.1 schema; ``error`` is a VOTable error document, and so is every failure
(404 unknown job, 400 bad request, 401/403 someone else's job).

Owners: a job created with a user's token belongs to that user (``ownerId``); only that
user may list, read, change, abort or delete it. Anonymous jobs have no owner and are not
listed: their URL, with its 128-bit random id, is the only way to them (keep it).
"""

from __future__ import annotations

import asyncio
import math
from xml.sax.saxutils import escape, quoteattr

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from xpdb.service.auth import CHALLENGE, AuthenticationError, Forbidden, current_user
from xpdb.service.documents import error_document, xml_safe
from xpdb.service.execute import describe_failure
from xpdb.service.jobs import ACTIVE, PHASES, Job, JobNotFound, JobStateError, parse_time, utc_iso
from xpdb.service.params import ParameterError, read_params, root_url

XML = "text/xml; charset=utf-8"
_NS = ('xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink" '
       'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')


class Notifier:
    """Wakes the WAITing requests of this process when a job changes; ``notify`` is thread-safe."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, job_id: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fire, job_id)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _fire(self, job_id: str) -> None:
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()

    def event(self, job_id: str) -> asyncio.Event:
        """The event the next change of ``job_id`` sets (call on the event loop)."""
        return self._events.setdefault(job_id, asyncio.Event())


# -- XML ---------------------------------------------------------------------------------------
def _element(name: str, value) -> str:
    if value is None:
        return f'  <uws:{name} xsi:nil="true"/>'
    return f"  <uws:{name}>{escape(xml_safe(str(value)))}</uws:{name}>"


def job_xml(job: Job, url: str) -> str:
    """The UWS 1.1 job document."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<uws:job {_NS} version="1.1">',
             _element("jobId", job.job_id)]
    if job.run_id:
        lines.append(_element("runId", job.run_id))
    lines += [_element("ownerId", job.owner_id), _element("phase", job.phase), _element("quote", None),
              _element("creationTime", utc_iso(job.creation_time)),
              _element("startTime", utc_iso(job.start_time)), _element("endTime", utc_iso(job.end_time)),
              _element("executionDuration", job.execution_duration),
              _element("destruction", utc_iso(job.destruction)),
              parameters_xml(job, root=False), results_xml(job, url, root=False)]
    message = job.error_message or ("the job was aborted" if job.phase == "ABORTED" else None)
    if job.phase in ("ERROR", "ABORTED") and message:
        kind = "fatal" if job.phase == "ERROR" else "transient"
        lines += [f'  <uws:errorSummary type="{kind}" hasDetail="{"true" if job.phase == "ERROR" else "false"}">',
                  f"    <uws:message>{escape(xml_safe(message))}</uws:message>", "  </uws:errorSummary>"]
    lines.append("</uws:job>")
    return "\n".join(lines) + "\n"


def parameters_xml(job: Job, *, root: bool = True) -> str:
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:parameters {_NS}>' if root else "  <uws:parameters>"
    body = [f"    <uws:parameter id={quoteattr(xml_safe(k))}>{escape(xml_safe(str(v)))}</uws:parameter>"
            for k, v in sorted(job.parameters.items())]
    return "\n".join([head, *body, "  </uws:parameters>" if not root else "</uws:parameters>"]) + ("\n" if root else "")


def results_xml(job: Job, url: str, *, root: bool = True) -> str:
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:results {_NS}>' if root else "  <uws:results>"
    body = []
    if job.phase == "COMPLETED":
        body.append(f'    <uws:result id="result" xlink:type="simple" xlink:href={quoteattr(url + "/results/result")} '
                    f"mime-type={quoteattr(job.result_type or '')}/>")
    return "\n".join([head, *body, "</uws:results>" if root else "  </uws:results>"]) + ("\n" if root else "")


def jobs_xml(jobs: list[Job], base: str) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<uws:jobs {_NS} version="1.1">']
    for job in jobs:
        lines.append(f'  <uws:jobref id={quoteattr(job.job_id)} xlink:type="simple" '
                     f'xlink:href={quoteattr(base + "/" + job.job_id)}>')
        lines.append("  " + _element("phase", job.phase))
        if job.run_id:
            lines.append("  " + _element("runId", job.run_id))
        lines += ["  " + _element("ownerId", job.owner_id),
                  "  " + _element("creationTime", utc_iso(job.creation_time)),
                  "  </uws:jobref>"]
    lines.append("</uws:jobs>")
    return "\n".join(lines) + "\n"


# -- handlers ----------------------------------------------------------------------------------
def _service(request: Request):
    return request.app.state.service


def _job_url(request: Request, job_id: str) -> str:
    return f"{_list_url(request)}/{job_id}"  # url_for('uws_job'): job ids are hex, nothing to quote


def _list_url(request: Request) -> str:
    return root_url(request) + "/tap/async"


def _error(message: str, status: int, headers: dict | None = None) -> Response:
    return Response(error_document(message), status_code=status, media_type="application/x-votable+xml",
                    headers=headers)


def _failure(exc: Exception) -> Response:
    if isinstance(exc, JobNotFound):
        return _error(str(exc), 404)
    if isinstance(exc, AuthenticationError):
        return _error(str(exc), 401, {"WWW-Authenticate": CHALLENGE})
    if isinstance(exc, Forbidden):
        return _error(str(exc), 403)
    if isinstance(exc, JobStateError) or (isinstance(exc, ParameterError) and type(exc) is ParameterError):
        return _error(str(exc), 400)
    failure = describe_failure(exc)
    return _error(failure.message, failure.status)


def _job_uploads(service, params) -> list[tuple[str, str, bytes]]:
    """The tables a new job's UPLOAD names, read and checked now (a bad table is refused at once, 400) and
    stored with the job as sent: (name, source, bytes)."""
    from xpdb.query.upload import UploadError, UploadLimits, read_upload
    from xpdb.service.execute import TapRequest, upload_sources

    upload = params.get("UPLOAD")
    if upload is None or not upload.strip():
        if params.files:
            raise ParameterError(f"file part(s) {', '.join(sorted(params.files))} sent without UPLOAD=name,param:part")
        return []
    limits = UploadLimits(max_rows=service.settings.upload_max_rows, max_bytes=service.settings.upload_max_bytes)
    try:
        sources = upload_sources(TapRequest(query="", maxrec=0, fmt=None, upload_param=upload), params,
                                 service.settings)
        for name, source, data in sources:
            read_upload(name, data, source, limits)
    except UploadError as exc:
        raise ParameterError(f"upload error: {exc}") from None
    return sources


def _job(service, request: Request) -> Job:
    """The job of the request's path, if the request's user may have it."""
    return service.jobs.get(request.path_params["job_id"], current_user(request))


def _guarded(handler):
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:  # every failure is a short text, never a traceback
            return _failure(exc)
    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


@_guarded
async def jobs(request: Request) -> Response:
    """GET: the job list (PHASE, AFTER, LAST filters); POST: create a job, 303 to it."""
    service = _service(request)
    params = await read_params(request, files=request.method == "POST")  # a new job may upload tables
    if request.method == "GET":
        phases = [p.strip().upper() for p in params.getall("PHASE")] or None
        unknown = [p for p in phases or [] if p not in PHASES]
        if unknown:
            raise ParameterError(f"unknown PHASE {', '.join(unknown)}; phases are {', '.join(PHASES)}")
        after = parse_time(params.get("AFTER")) if params.get("AFTER") else None
        last = params.get("LAST")
        try:
            last_n = int(last) if last else None
        except ValueError:
            raise ParameterError(f"LAST must be a positive integer, not {last!r}") from None
        if last_n is not None and last_n <= 0:
            raise ParameterError(f"LAST must be a positive integer, not {last!r}")
        found = await run_in_threadpool(lambda: service.jobs.list(owner=current_user(request), phases=phases,
                                                                  after=after, last=last_n))
        return Response(jobs_xml(found, _list_url(request)), media_type=XML)
    uploads = await run_in_threadpool(_job_uploads, service, params)
    job = await run_in_threadpool(service.jobs.create, params.as_dict(), current_user(request), uploads)
    if job.phase == "QUEUED":
        service.executor.submit()
    return RedirectResponse(_job_url(request, job.job_id), status_code=303)


@_guarded
async def job(request: Request) -> Response:
    """GET (with WAIT and PHASE), POST (parameters, PHASE, ACTION=DELETE) and DELETE of one job."""
    service = _service(request)
    found = await run_in_threadpool(_job, service, request)
    job_id = found.job_id
    params = await read_params(request)
    if request.method == "DELETE" or (request.method == "POST"
                                      and (params.get("ACTION") or "").strip().upper() == "DELETE"):
        await run_in_threadpool(_delete, service, job_id)
        return RedirectResponse(_list_url(request), status_code=303)
    if request.method == "POST":
        updates = {k: v for k, v in params.as_dict().items() if k not in ("PHASE", "ACTION")}
        if updates:
            await run_in_threadpool(service.jobs.update, job_id, updates)
        if "PHASE" in params:
            await run_in_threadpool(_change_phase, service, job_id, params.get("PHASE"))
        return RedirectResponse(_job_url(request, job_id), status_code=303)
    current = await _wait(service, found, params)
    return Response(job_xml(current, _job_url(request, job_id)), media_type=XML)


async def _wait(service, current: Job, params) -> Job:
    """``current`` (the job as just read) once it has left its phase, WAIT has passed or the server stops."""
    job_id = current.job_id
    raw = params.get("WAIT")
    if raw is None or not raw.strip():
        return current
    try:
        seconds = float(raw)
    except ValueError:
        raise ParameterError(f"WAIT must be a number of seconds, not {raw!r}") from None
    if math.isnan(seconds):
        raise ParameterError(f"WAIT must be a number of seconds, not {raw!r}")
    limit = service.settings.wait_limit_s
    seconds = limit if seconds < 0 else min(seconds, limit)
    phase = (params.get("PHASE") or "").strip().upper() or None
    start = current.phase
    if start not in ACTIVE or (phase is not None and phase != start) or seconds <= 0:
        return current
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not service.stopping:
        event = service.notifier.event(job_id)
        current = await run_in_threadpool(service.jobs.get, job_id)
        remaining = deadline - loop.time()
        if current.phase != start or remaining <= 0:
            break
        try:
            await asyncio.wait_for(event.wait(), timeout=min(remaining, 1.0))
        except TimeoutError:
            pass
    return current


def _delete(service, job_id: str) -> None:
    service.jobs.delete(job_id)
    service.executor.cancel(job_id)
    service.notifier.notify(job_id)


def _change_phase(service, job_id: str, value: str | None) -> None:
    phase = (value or "").strip().upper()
    if phase == "RUN":
        service.jobs.run(job_id)
        service.executor.submit()
    elif phase == "ABORT":
        service.jobs.abort(job_id)
        service.executor.cancel(job_id)
    else:
        raise JobStateError(f"PHASE={value!r}: use PHASE=RUN or PHASE=ABORT")
    service.notifier.notify(job_id)


@_guarded
async def phase(request: Request) -> Response:
    """GET: the phase as text; POST PHASE=RUN or PHASE=ABORT, 303 to the job."""
    service = _service(request)
    current = await run_in_threadpool(_job, service, request)
    if request.method == "POST":
        params = await read_params(request)
        await run_in_threadpool(_change_phase, service, current.job_id, params.get("PHASE"))
        return RedirectResponse(_job_url(request, current.job_id), status_code=303)
    return PlainTextResponse(current.phase)


def _attribute(name: str, param: str, render):
    @_guarded
    async def handler(request: Request) -> Response:
        service = _service(request)
        current = await run_in_threadpool(_job, service, request)
        if request.method == "POST":
            params = await read_params(request)
            if param not in params:
                raise ParameterError(f"POST {param}=... to change the {name}")
            await run_in_threadpool(service.jobs.update, current.job_id, {param: params.get(param)})
            return RedirectResponse(_job_url(request, current.job_id), status_code=303)
        return PlainTextResponse(render(current))
    handler.__name__ = name
    return handler


execution_duration = _attribute("executionduration", "EXECUTIONDURATION", lambda j: str(j.execution_duration))
destruction = _attribute("destruction", "DESTRUCTION", lambda j: utc_iso(j.destruction))


@_guarded
async def quote(request: Request) -> Response:
    """This service makes no estimate of the completion time: empty."""
    await run_in_threadpool(_job, _service(request), request)
    return PlainTextResponse("")


@_guarded
async def owner(request: Request) -> Response:
    """The user who owns the job; empty for an anonymous job."""
    current = await run_in_threadpool(_job, _service(request), request)
    return PlainTextResponse(current.owner_id or "")


@_guarded
async def error(request: Request) -> Response:
    """The error of a job in phase ERROR (or ABORTED), as a VOTable error document."""
    current = await run_in_threadpool(_job, _service(request), request)
    if current.phase == "ERROR" or current.phase == "ABORTED":
        message = current.error_message or "the job was aborted"
        return Response(error_document(message), media_type="application/x-votable+xml")
    return _error(f"job {current.job_id} is {current.phase}; it has no error", 404)


@_guarded
async def parameters(request: Request) -> Response:
    """GET: the job parameters; POST: change them while the job is PENDING."""
    service = _service(request)
    current = await run_in_threadpool(_job, service, request)
    if request.method == "POST":
        params = await read_params(request)
        await run_in_threadpool(service.jobs.update, current.job_id, params.as_dict())
        return RedirectResponse(_job_url(request, current.job_id), status_code=303)
    return Response(parameters_xml(current), media_type=XML)


@_guarded
async def results(request: Request) -> Response:
    """The list of results (one, ``result``, once COMPLETED)."""
    current = await run_in_threadpool(_job, _service(request), request)
    return Response(results_xml(current, _job_url(request, current.job_id)), media_type=XML)


@_guarded
async def result(request: Request) -> Response:
    """The result document of a COMPLETED job."""
    service = _service(request)
    current = await run_in_threadpool(_job, service, request)
    job_id = current.job_id
    if current.phase in ("ERROR", "ABORTED"):  # clients that fetch the result blindly see why there is none
        message = current.error_message or "the job was aborted"
        return Response(error_document(message), status_code=400, media_type="application/x-votable+xml")
    if current.phase != "COMPLETED":
        return _error(f"job {job_id} is {current.phase}; it has no result yet", 404)
    media_type, body = await run_in_threadpool(service.jobs.result, job_id)
    return Response(body, media_type=media_type)


ROUTES = [
    Route("/tap/async", jobs, methods=["GET", "POST"], name="uws_jobs"),
    Route("/tap/async/{job_id}", job, methods=["GET", "POST", "DELETE"], name="uws_job"),
    Route("/tap/async/{job_id}/phase", phase, methods=["GET", "POST"]),
    Route("/tap/async/{job_id}/executionduration", execution_duration, methods=["GET", "POST"]),
    Route("/tap/async/{job_id}/destruction", destruction, methods=["GET", "POST"]),
    Route("/tap/async/{job_id}/quote", quote, methods=["GET"]),
    Route("/tap/async/{job_id}/owner", owner, methods=["GET"]),
    Route("/tap/async/{job_id}/error", error, methods=["GET"]),
    Route("/tap/async/{job_id}/parameters", parameters, methods=["GET", "POST"]),
    Route("/tap/async/{job_id}/results", results, methods=["GET"]),
    Route("/tap/async/{job_id}/results/result", result, methods=["GET"]),
]
