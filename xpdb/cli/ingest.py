"""``xpdb ingest``: load Gaia archive files and reference catalogues."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from xpdb.cli.console import console, fail, out, parse_mapping, progress_bar
from xpdb.db.embedded import EmbeddedError
from xpdb.ingest.readers import FORMATS, IngestFileError
from xpdb.ingest.runs import IngestReport

app = typer.Typer(help="Load Gaia archive files (XP_CONTINUOUS, gaia_source) and reference catalogues.",
                  no_args_is_help=True)

FILES = typer.Argument(..., exists=False, help="Files (csv, ecsv, fits, votable, parquet; optionally .gz).")
REPLACE = typer.Option(False, "--replace", help="Load again even if loaded before; upsert rows by source_id.")
ALLOW = typer.Option(False, "--allow-rejects",
                     help="Exit 0 even when rows were rejected. It changes nothing else: with or without it the "
                          "valid rows are loaded and committed, and rejected rows are recorded (xpdb ingest "
                          "rejects RUN); without it the command exits 2 when any row was rejected.")
FORMAT = typer.Option(None, "--format", help=f"Force the format ({', '.join(FORMATS)}).")


def _ready() -> str:
    from xpdb.db.engine import ready

    try:
        return ready()
    except EmbeddedError as exc:
        fail(str(exc))
    raise AssertionError


def _summarise(reports: list[IngestReport], allow_rejects: bool) -> None:
    table = Table(title="ingest summary", show_lines=False)
    for col in ("file", "status", "read", "loaded", "rejected", "rows/s", "run"):
        table.add_column(col, justify="right" if col not in ("file", "status") else "left")
    for r in reports:
        table.add_row(Path(r.path).name, r.status + (f" (resumed at row {r.resumed_from})" if r.resumed_from else ""),
                      f"{r.rows_read:,}", f"{r.rows_loaded:,}", f"{r.rows_rejected:,}",
                      f"{r.rows_per_second:,.0f}" if r.rows_read else "-", str(r.run_id or "-"))
    out.print(table)
    for r in reports:
        if r.message:
            console.print(f"{Path(r.path).name}: {r.message}")
        for row, column, reason in r.rejects:
            console.print(f"  rejected {Path(r.path).name} row {row}" + (f" column {column}" if column else "")
                          + f": {reason}", highlight=False)
        if r.rows_rejected > len(r.rejects):
            console.print(f"  ... {r.rows_rejected - len(r.rejects)} more; see "
                          f"`xpdb ingest rejects {r.run_id}`")
    rejected = sum(r.rows_rejected for r in reports)
    if rejected:
        loaded = sum(r.rows_loaded for r in reports)
        runs = ", ".join(str(r.run_id) for r in reports if r.rows_rejected)
        console.print(f"[{'yellow' if allow_rejects else 'red'}]{rejected:,} row(s) rejected[/] and recorded "
                      f"(`xpdb ingest rejects RUN`, run {runs}); the {loaded:,} valid row(s) were loaded and "
                      "committed all the same", highlight=False)
        if not allow_rejects:
            console.print("exit status 2 because rows were rejected (--allow-rejects: exit 0 for such a load; "
                          "to load the rejected rows, fix them and load the file again with --replace)",
                          highlight=False)
            raise typer.Exit(2)


def _run_keyed(kind: str, files: list[Path], replace: bool, allow_rejects: bool, fmt: str | None,
               options: dict) -> None:
    from xpdb.ingest.runs import ingest_file

    url = _ready()
    reports = []
    for path in files:
        try:
            with progress_bar(f"{kind} {path.name}", unit="rows") as update:
                reports.append(ingest_file(url, kind, path, replace=replace, fmt=fmt, options=options,
                                           progress=update))
        except Exception as exc:
            _summarise(reports, allow_rejects=True)
            _fail_file(path, exc)
    _summarise(reports, allow_rejects)


def _fail_file(path: Path, exc: Exception) -> None:
    """One line for a file that could not be loaded (XPDB_DEBUG=1 also prints the traceback)."""
    import os

    import psycopg

    if os.environ.get("XPDB_DEBUG"):
        console.print_exception()
    if isinstance(exc, IngestFileError):
        fail(f"{exc} - " + (exc.kept or "nothing from this file was stored"))
    if isinstance(exc, KeyError):  # --map naming a column the file lacks
        fail(f"{path}: {exc.args[0] if exc.args else exc} - nothing from this file was stored")
    if isinstance(exc, psycopg.Error):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"{path}: the database failed during the load ({reason}) - nothing from this file was committed")
    if isinstance(exc, (OSError, ValueError, UnicodeError)):
        fail(f"{path}: {type(exc).__name__}: {exc} - nothing from this file was stored")
    fail(f"{path}: unexpected {type(exc).__name__}: {exc} (XPDB_DEBUG=1 shows where) - the load was rolled back")


@app.command("xp")
def ingest_xp(files: list[Path] = FILES, replace: bool = REPLACE, allow_rejects: bool = ALLOW,
              fmt: str = FORMAT) -> None:
    """Load XP_CONTINUOUS spectra (archive layout or flat bp_coeff_0.. layout)."""
    from xpdb.ingest import xp as xp_mod

    xp_mod.warm_up_text_parser_for(files, fmt)  # while the database starts and checks its schema
    _run_keyed("xp", files, replace, allow_rejects, fmt, {})


@app.command("sources")
def ingest_sources(
    files: list[Path] = FILES, replace: bool = REPLACE, allow_rejects: bool = ALLOW, fmt: str = FORMAT,
    map_: list[str] = typer.Option(None, "--map", help="schema_column=file_column, e.g. rgeo=r_med_geo."),
) -> None:
    """Load gaia_source columns (any subset; source_id, ra, dec required; ebv and rgeo too)."""
    _run_keyed("sources", files, replace, allow_rejects, fmt, {"map": parse_mapping(map_)})


@app.command("labels")
def ingest_labels(
    file: Path = typer.Argument(..., help="The catalogue file."),
    catalog: str = typer.Option(..., "--catalog", help="Catalogue name, e.g. PASTEL, SAGA, LAMOST, SDSS."),
    map_: list[str] = typer.Option(None, "--map", help="schema_column=file_column, e.g. feh=FE_H."),
    radius: float = typer.Option(1.0, "--radius", help="Position match radius [arcsec] when there is no source_id."),
    description: str = typer.Option(None, "--description", help="Free text stored in the catalogue registry."),
    replace: bool = REPLACE, allow_rejects: bool = ALLOW, fmt: str = FORMAT,
) -> None:
    """Load reference labels ([Fe/H], Teff, logg) matched by source_id or by q3c position."""
    from xpdb.ingest.labels import ingest_labels as run

    url = _ready()
    try:
        with progress_bar(f"labels {catalog}", unit="rows") as update:
            report = run(url, file, catalog=catalog, mapping=parse_mapping(map_), radius_arcsec=radius,
                         description=description, replace=replace, fmt=fmt, progress=update)
    except Exception as exc:
        _fail_file(file, exc)
    _summarise([report], allow_rejects)


@app.command("members")
def ingest_members(
    file: Path = typer.Argument(..., help="The member list."),
    cluster: str = typer.Option(..., "--cluster", help="Cluster name; rows of other clusters in the file are skipped."),
    map_: list[str] = typer.Option(None, "--map", help="schema_column=file_column, e.g. membership_probability=PM_PROB."),
    radius: float = typer.Option(1.0, "--radius", help="Position match radius [arcsec] when there is no source_id."),
    feh_ref: float = typer.Option(None, "--feh-ref", help="Reference [Fe/H] of the cluster (for cluster_summary)."),
    feh_ref_err: float = typer.Option(None, "--feh-ref-err", help="Its uncertainty [dex]."),
    min_probability: float = typer.Option(None, "--min-probability", help="Keep members at least this probable."),
    replace: bool = REPLACE, allow_rejects: bool = ALLOW, fmt: str = FORMAT,
) -> None:
    """Load star-cluster members matched by source_id or by q3c position."""
    from xpdb.ingest.labels import ingest_members as run

    url = _ready()
    try:
        with progress_bar(f"members {cluster}", unit="rows") as update:
            report = run(url, file, cluster=cluster, mapping=parse_mapping(map_), radius_arcsec=radius,
                         feh_ref=feh_ref, feh_ref_err=feh_ref_err, min_probability=min_probability,
                         replace=replace, fmt=fmt, progress=update)
    except Exception as exc:
        _fail_file(file, exc)
    _summarise([report], allow_rejects)


@app.command("runs")
def runs(limit: int = typer.Option(20, help="How many recent runs.")) -> None:
    """List recent ingest runs."""
    import psycopg

    with psycopg.connect(_ready()) as conn:
        rows = conn.execute(
            "SELECT run_id, kind, target, status, rows_read, rows_loaded, rows_rejected, path, error "
            "FROM xpdb.ingest_run ORDER BY run_id DESC LIMIT %s", (limit,)).fetchall()
    table = Table(title="ingest runs")
    for col in ("run", "kind", "target", "status", "read", "loaded", "rejected", "file", "error"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[("" if v is None else str(v)) for v in r[:7]], Path(r[7]).name, (r[8] or "")[:60])
    out.print(table)


@app.command("rejects")
def rejects(run_id: int = typer.Argument(..., help="The run, from `xpdb ingest runs`."),
            limit: int = typer.Option(100, help="How many rows.")) -> None:
    """Show the rejected rows of one run: file, row, column and reason."""
    import psycopg

    with psycopg.connect(_ready()) as conn:
        path = conn.execute("SELECT path FROM xpdb.ingest_run WHERE run_id = %s", (run_id,)).fetchone()
        if not path:
            fail(f"no ingest run {run_id}")
        rows = conn.execute(
            "SELECT row_number, source_id, column_name, reason, value FROM xpdb.ingest_reject "
            "WHERE run_id = %s ORDER BY row_number LIMIT %s", (run_id, limit)).fetchall()
    table = Table(title=f"rejected rows of {path[0]}")
    for col in ("row", "source_id", "column", "reason", "value"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[("" if v is None else str(v)) for v in r])
    out.print(table)
