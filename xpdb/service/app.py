"""The ASGI application of ``xpdb serve`` (Starlette): routes, start-up and shutdown.

    /                      a short HTML page naming the endpoints
    /scs                   Simple Cone Search 1.03 (RA, DEC, SR, VERB, MAXREC, RESPONSEFORMAT)
    /tap                   TAP 1.1 root: sync, async, capabilities, availability, tables
    /capabilities          TAP and cone search capabilities together

Start-up resolves the database (``xpdb.db.engine.ready()`` unless URLs are given),
refreshes ``tap_schema.column_meta`` from ``xpdb.query.columns``, opens the connection
pools and starts the asynchronous job executor (which first re-queues jobs left
EXECUTING by a previous server). Every blocking database call runs in Starlette's thread
pool, so the event loop only moves bytes; ADQL is translated in worker processes
(``parsing.py``) with a time limit.

Middleware: request bodies are limited (413), and ``auth.Authentication`` resolves the
user of a request from its token. Every error, unknown paths and methods included, is a
VOTable error document; a NUL or undecodable character in a path or parameter is a 4xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from xpdb.service import auth, datalink, scs, tap, uws, vosi
from xpdb.service.execute import PublishedTables
from xpdb.service.executor import JobExecutor
from xpdb.service.jobs import JobStore
from xpdb.service.params import RequestTooLarge
from xpdb.service.parsing import ParserPool
from xpdb.service.pool import ConnectionPool
from xpdb.service.settings import ServiceSettings
from xpdb.service.users import UserDirectory

log = logging.getLogger("xpdb.service")


@dataclass
class Service:
    """What the handlers share (``request.app.state.service``)."""

    settings: ServiceSettings
    database_url: str
    reader_url: str
    readers: ConnectionPool
    writers: ConnectionPool
    jobs: JobStore
    executor: JobExecutor
    notifier: uws.Notifier
    parser: ParserPool
    published: PublishedTables
    users: UserDirectory
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    stopping: bool = False


def resolve_urls(database_url: str | None = None, reader_url: str | None = None) -> tuple[str, str]:
    """The main URL (migrated, embedded cluster started if needed) and the read-only role's URL."""
    from xpdb.config import READER_ROLE, get_settings
    from xpdb.db.engine import ready, with_user

    url = database_url or ready()
    reader = reader_url or get_settings().reader_url or with_user(url, READER_ROLE)
    return url, reader


def sync_column_meta(database_url: str) -> None:
    """Copy ``xpdb.query.columns.COLUMNS`` into ``tap_schema.column_meta`` (units/UCDs of TAP_SCHEMA)."""
    from xpdb.query.columns import COLUMNS

    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO tap_schema.column_meta (column_name, unit, ucd, description) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (column_name) DO UPDATE SET unit = excluded.unit, ucd = excluded.ucd, "
            "description = excluded.description "
            "WHERE (column_meta.unit, column_meta.ucd, column_meta.description) "
            "IS DISTINCT FROM (excluded.unit, excluded.ucd, excluded.description)",
            [(name, m.unit, m.ucd, m.description) for name, m in COLUMNS.items()])


def build_service(settings: ServiceSettings, database_url: str, reader_url: str) -> Service:
    from xpdb.query.run import reader_connect

    notifier = uws.Notifier()
    parser = ParserPool(small_workers=settings.parse_workers, large_workers=1, timeout_s=settings.parse_timeout_s,
                        max_length=settings.adql_max_length)
    published = PublishedTables()
    readers = ConnectionPool(lambda: reader_connect(reader_url, timeout_s=settings.sync_timeout_s),
                             settings.pool_size, wait_s=settings.pool_wait_s)
    writers = ConnectionPool(lambda: psycopg.connect(database_url, autocommit=True), max(2, settings.pool_size // 2),
                             wait_s=settings.pool_wait_s)
    jobs = JobStore(writers, default_duration=settings.async_duration_s,
                    duration_limit=settings.async_duration_limit_s, retention_s=settings.retention_s)
    executor = JobExecutor(database_url, reader_url, settings, notify=notifier.notify, translate=parser.translate,
                           published=published)
    return Service(settings=settings, database_url=database_url, reader_url=reader_url, readers=readers,
                   writers=writers, jobs=jobs, executor=executor, notifier=notifier, parser=parser,
                   published=published, users=UserDirectory(writers))


def create_app(settings: ServiceSettings | None = None, *, database_url: str | None = None,
               reader_url: str | None = None) -> Starlette:
    """The application; the database is resolved when it starts (lifespan), not here."""
    settings = settings or ServiceSettings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        loop = asyncio.get_running_loop()
        url, reader = await loop.run_in_executor(None, resolve_urls, database_url, reader_url)
        await loop.run_in_executor(None, sync_column_meta, url)
        from xpdb.db.security import check

        for problem in await loop.run_in_executor(None, check, url):
            log.warning("security: %s; run `xpdb db migrate` once as a database superuser", problem)
        service = build_service(settings, url, reader)
        service.notifier.bind(loop)
        await loop.run_in_executor(None, service.executor.start)
        loop.run_in_executor(None, service.parser.start)  # in the background: the first queries may wait
        app.state.service = service
        log.info("xpdb service ready (database %s)", url.split("@")[-1])
        try:
            yield
        finally:
            service.stopping = True
            await loop.run_in_executor(None, service.executor.stop)
            service.parser.close()
            service.readers.close()
            service.writers.close()

    routes = [
        Route("/", index, methods=["GET"], name="index"),
        Route("/scs", scs.cone_search, methods=["GET", "POST"], name="scs"),
        Route("/capabilities", vosi.all_capabilities, methods=["GET"]),
        Route("/tap", tap_root, methods=["GET"], name="tap_root"),
        Route("/tap/sync", tap.sync_query, methods=["GET", "POST"], name="tap_sync"),
        Route("/tap/capabilities", vosi.capabilities, methods=["GET"]),
        Route("/tap/availability", vosi.availability, methods=["GET"]),
        Route("/tap/tables", vosi.tables, methods=["GET"]),
        Route("/tap/tables/{name}", vosi.table, methods=["GET"]),
        Route("/datalink", datalink.links, methods=["GET", "POST"], name="datalink"),
        Route("/datalink/spectrum", datalink.spectrum, methods=["GET", "POST"], name="datalink_spectrum"),
        *uws.ROUTES,
    ]
    middleware = [Middleware(BodyLimit, limit=settings.max_body_bytes, multipart_limit=settings.max_multipart_bytes),
                  Middleware(auth.Authentication)]
    handlers = {HTTPException: _http_error, Exception: _server_error}
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware, exception_handlers=handlers)


def _votable_error(message: str, status: int, headers: dict | None = None) -> Response:
    from xpdb.service.documents import error_document

    return Response(error_document(message), status_code=status, media_type="application/x-votable+xml",
                    headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Unknown paths (404), wrong methods (405) and the like, as VOTable error documents."""
    message = {404: f"no resource at {request.url.path!r}; the service is at /tap and /scs",
               405: f"{request.method} is not allowed here"}.get(exc.status_code, str(exc.detail))
    return _votable_error(message, exc.status_code, getattr(exc, "headers", None))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return _votable_error(f"internal error ({type(exc).__name__}); the server log has the details", 500)


class BodyLimit:
    """Refuses request bodies longer than ``limit`` bytes (413), by Content-Length or while they arrive;
    multipart bodies (TAP_UPLOAD tables) may be ``multipart_limit`` bytes long."""

    def __init__(self, app, *, limit: int, multipart_limit: int | None = None):
        self.app = app
        self.base_limit = limit
        self.multipart_limit = multipart_limit or limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.multipart_limit if multipart else self.base_limit
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope, receive, send, limit: int):
        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            too_long = length is not None and int(length) > limit
        except ValueError:
            too_long = False
        if too_long:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLarge(f"the body is longer than {limit:,} bytes")
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except RequestTooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope, receive, send, limit: int):
        response = _votable_error(f"the request is too large: this service accepts bodies of at most "
                                  f"{limit:,} bytes (ADQL queries of {limit // 3:,} characters)", 413)
        await response(scope, receive, send)


def app_from_env() -> Starlette:
    """The application for ``uvicorn --factory`` (``xpdb serve --processes N``): settings and URLs from
    ``XPDB_SERVE_*``, ``XPDB_DATABASE_URL`` and ``XPDB_READER_URL``."""
    import os

    return create_app(ServiceSettings.from_env(), database_url=os.environ.get("XPDB_DATABASE_URL") or None,
                      reader_url=os.environ.get("XPDB_READER_URL") or None)


_INDEX = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>xpdb</title></head><body>
<h1>xpdb: Gaia DR3 XP spectra and UA-CSNet [Fe/H]</h1>
<ul>
<li>TAP 1.1 (ADQL): <a href="{tap}">{tap}</a> &mdash; <a href="{tap}/tables">tables</a>,
<a href="{tap}/capabilities">capabilities</a>, <a href="{tap}/availability">availability</a></li>
<li>Simple Cone Search 1.03: <a href="{scs}?RA=0&amp;DEC=0&amp;SR=0">{scs}</a>?RA=&amp;DEC=&amp;SR= (degrees)</li>
</ul>
<p>From Python: <code>pyvo.dal.TAPService("{tap}").run_sync("SELECT TOP 10 * FROM xpdb.catalog")</code></p>
</body></html>
"""


async def index(request: Request) -> Response:
    tap_url = str(request.url_for("tap_root")).rstrip("/")
    scs_url = str(request.url_for("scs"))
    return HTMLResponse(_INDEX.format(tap=tap_url, scs=scs_url))


async def tap_root(request: Request) -> Response:
    """The TAP base URL: its capabilities say what it offers."""
    return RedirectResponse(str(request.url_for("tap_root")).rstrip("/") + "/capabilities", status_code=303)
