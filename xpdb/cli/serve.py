"""``xpdb serve``: the IVOA cone search and TAP service over the xpdb database (uvicorn)."""

from __future__ import annotations

import os

import typer

from xpdb.cli.console import console, fail


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    maxrec: int = typer.Option(None, "--maxrec", help="Default MAXREC in rows (default 10000; env XPDB_SERVE_MAXREC)."),
    maxrec_limit: int = typer.Option(None, "--maxrec-limit",
                                     help="Largest MAXREC a client may ask for "
                                          "(default 1000000; env XPDB_SERVE_MAXREC_LIMIT)."),
    timeout: float = typer.Option(None, "--timeout",
                                  help="Statement timeout of sync queries and cone searches, seconds "
                                       "(default 60; env XPDB_SERVE_TIMEOUT)."),
    async_limit: int = typer.Option(None, "--async-limit",
                                    help="Longest execution duration of an async job, seconds "
                                         "(default 3600; env XPDB_SERVE_ASYNC_LIMIT)."),
    pool: int = typer.Option(None, "--pool",
                             help="Read-only connections for sync requests (default 8; env XPDB_SERVE_POOL)."),
    workers: int = typer.Option(None, "--async-workers",
                                help="Threads running async jobs (default 2; env XPDB_SERVE_ASYNC_WORKERS)."),
    require_token: bool = typer.Option(None, "--require-token/--allow-anonymous",
                                       help="Whether every request needs a user token (xpdb users add); default: "
                                            "anonymous reading allowed (env XPDB_SERVE_REQUIRE_TOKEN)."),
    max_result_mb: float = typer.Option(None, "--max-result-mb",
                                        help="Largest result of one query in MB; rows beyond it are not read "
                                             "(OVERFLOW; default 100; env XPDB_SERVE_MAX_RESULT_MB)."),
    processes: int = typer.Option(1, "--processes", min=1,
                                  help="Server processes sharing the port (each with its pools and job threads)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level (debug, info, warning, error)."),
) -> None:
    """Serve Simple Cone Search (/scs) and TAP 1.1 (/tap) for TOPCAT, pyvo and astroquery."""
    import uvicorn

    from xpdb.db.embedded import EmbeddedError
    from xpdb.service.app import create_app, resolve_urls
    from xpdb.service.settings import ServiceSettings

    try:
        settings = ServiceSettings.from_env(maxrec=maxrec, maxrec_limit=maxrec_limit, sync_timeout_s=timeout,
                                            async_duration_limit_s=async_limit, pool_size=pool, async_workers=workers,
                                            require_token=require_token, max_result_mb=max_result_mb)
        if settings.async_duration_s > settings.async_duration_limit_s:
            from dataclasses import replace

            settings = replace(settings, async_duration_s=settings.async_duration_limit_s)
        database_url, reader_url = resolve_urls()
    except (ValueError, EmbeddedError) as exc:
        fail(str(exc))
    from xpdb.db.security import check

    for problem in check(database_url):
        console.print(f"[yellow]warning:[/] {problem}: run `xpdb db migrate` once as a database superuser",
                      highlight=False)
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    console.print(f"TAP          http://{shown}:{port}/tap\n"
                  f"cone search  http://{shown}:{port}/scs?RA=...&DEC=...&SR=...")
    if processes > 1:  # every process builds the app from the environment (jobs are shared through PostgreSQL)
        os.environ.update(settings.to_env())
        os.environ.update({"XPDB_DATABASE_URL": database_url, "XPDB_READER_URL": reader_url})
        uvicorn.run("xpdb.service.app:app_from_env", factory=True, workers=processes, host=host, port=port,
                    log_level=log_level, timeout_graceful_shutdown=5)
        return
    app = create_app(settings, database_url=database_url, reader_url=reader_url)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
