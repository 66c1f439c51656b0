"""The ASGI application of ``xpdb serve`` (Starlette): routes, start-up and shutdown.

    /                      a short HTML page naming the endpoints
    /scs                   Simple Cone Search 1.03 (RA, DEC, SR, VERB, MAXREC, RESPONSEFORMAT)
    /tap                   TAP 1.1 root: sync, async, capabilities, availability, tables
    /capabilities          TAP and cone search capabilities together

Start-up resolves the database (``xpdb.db.engine.ready()`` unless URLs are given),
refreshes ``tap_schema.column_meta`` from ``xpdb.query.columns``, opens the connection
pools and starts the asynchronous job executor (which first re-queues jobs left
EXECUTING by a previous server). Every blocking database call runs in Starlette's thread
pool, so the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from xpdb.service import scs, tap, uws, vosi
from xpdb.service.executor import JobExecutor
from xpdb.service.jobs import JobStore
from xpdb.service.pool import ConnectionPool
from xpdb.service.settings import ServiceSettings

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
    readers = ConnectionPool(lambda: reader_connect(reader_url), settings.pool_size, wait_s=settings.pool_wait_s)
    writers = ConnectionPool(lambda: psycopg.connect(database_url, autocommit=True), max(2, settings.pool_size // 2),
                             wait_s=settings.pool_wait_s)
    jobs = JobStore(writers, default_duration=settings.async_duration_s,
                    duration_limit=settings.async_duration_limit_s, retention_s=settings.retention_s)
    executor = JobExecutor(database_url, reader_url, settings, notify=notifier.notify)
    return Service(settings=settings, database_url=database_url, reader_url=reader_url, readers=readers,
                   writers=writers, jobs=jobs, executor=executor, notifier=notifier)


def create_app(settings: ServiceSettings | None = None, *, database_url: str | None = None,
               reader_url: str | None = None) -> Starlette:
    """The application; the database is resolved when it starts (lifespan), not here."""
    settings = settings or ServiceSettings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        loop = asyncio.get_running_loop()
        url, reader = await loop.run_in_executor(None, resolve_urls, database_url, reader_url)
        await loop.run_in_executor(None, sync_column_meta, url)
        service = build_service(settings, url, reader)
        service.notifier.bind(loop)
        await loop.run_in_executor(None, service.executor.start)
        app.state.service = service
        log.info("xpdb service ready (database %s)", url.split("@")[-1])
        try:
            yield
        finally:
            service.stopping = True
            await loop.run_in_executor(None, service.executor.stop)
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
        *uws.ROUTES,
    ]
    return Starlette(routes=routes, lifespan=lifespan)


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
