"""``xpdb db``: the embedded cluster's lifecycle and the schema migrations."""

from __future__ import annotations

import typer

from xpdb.cli.console import console, fail, out
from xpdb.config import get_settings
from xpdb.db.embedded import EmbeddedCluster, EmbeddedError

app = typer.Typer(help="Start, stop and migrate the database (embedded unless XPDB_DATABASE_URL is set).",
                  no_args_is_help=True)


def _cluster() -> EmbeddedCluster:
    settings = get_settings()
    if not settings.embedded:
        fail("XPDB_DATABASE_URL is set: xpdb does not manage that server (use `xpdb db migrate` or `status`)")
    return EmbeddedCluster(settings)


@app.command()
def start() -> None:
    """Create (first time) and start the embedded PostgreSQL cluster; idempotent."""
    cluster = _cluster()
    try:
        started = cluster.start()
    except EmbeddedError as exc:
        fail(str(exc))
    console.print(("started" if started else "already running") + f": {cluster.url}")


@app.command()
def stop() -> None:
    """Stop the embedded cluster."""
    cluster = _cluster()
    try:
        stopped = cluster.stop()
    except EmbeddedError as exc:
        fail(str(exc))
    console.print("stopped" if stopped else "not running")


@app.command()
def destroy(yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Stop the embedded cluster and delete its files (every table in it); XPDB_HOME's other files stay."""
    cluster = _cluster()
    if not yes and not typer.confirm(f"delete the embedded cluster at {cluster.location.base} and all its data?"):
        raise typer.Exit(1)
    try:
        cluster.destroy()
    except EmbeddedError as exc:
        fail(str(exc))
    console.print("destroyed")


@app.command()
def status() -> None:
    """Where the database is, whether it runs, and the schema revision."""
    from xpdb.db.migrate import current_revision, head_revision

    settings = get_settings()
    if settings.embedded:
        info = EmbeddedCluster(settings).status()
    else:
        info = {"mode": "external", "url": settings.database_url}
    running = info.get("running", True)
    if running:
        try:
            info["schema_revision"] = current_revision(str(info["url"])) or "(not migrated)"
        except Exception as exc:  # server unreachable
            info["schema_revision"] = f"unreachable: {exc}"
    info["head_revision"] = head_revision()
    for key, value in info.items():
        out.print(f"{key:16s} {value}")


@app.command()
def url() -> None:
    """Print the database URL (starting the embedded cluster if needed), e.g. for psql."""
    from xpdb.db.engine import database_url

    try:
        out.print(database_url(), highlight=False, soft_wrap=True)
    except EmbeddedError as exc:
        fail(str(exc))


@app.command()
def migrate(revision: str = typer.Option("head", help="Target revision (default: newest).")) -> None:
    """Upgrade the schema (runs automatically on first use)."""
    from xpdb.db.engine import database_url
    from xpdb.db.migrate import current_revision, upgrade

    try:
        db = database_url()
    except EmbeddedError as exc:
        fail(str(exc))
    before = current_revision(db)
    upgrade(db, revision)
    console.print(f"schema: {before or '(empty)'} -> {current_revision(db)}")


@app.command()
def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base.")) -> None:
    """Downgrade the schema (drops the tables of the undone migrations)."""
    from xpdb.db.engine import database_url
    from xpdb.db.migrate import current_revision
    from xpdb.db.migrate import downgrade as do_downgrade

    db = database_url()
    before = current_revision(db)
    do_downgrade(db, revision)
    console.print(f"schema: {before} -> {current_revision(db) or '(empty)'}")
