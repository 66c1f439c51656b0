"""``xpdb cone``, ``xpdb query`` and ``xpdb export``: read the catalogue."""

from __future__ import annotations

from pathlib import Path

import typer

from xpdb.cli.console import console, fail, progress_bar, session

export_app = typer.Typer(help="Export tables to files.", no_args_is_help=True)

FORMAT = typer.Option("table", "--format", help="table, csv, ecsv, votable, fits or parquet.")
OUT = typer.Option(None, "--out", help="Write to this file (required for fits and parquet).")


def _model_id(ref: str | None) -> tuple[int | None, str | None]:
    import psycopg

    from xpdb.models.registry import ModelNotFound, default, find

    with psycopg.connect(session().url) as conn:
        try:
            record = find(conn, ref) if ref else default(conn)
        except ModelNotFound as exc:
            if ref:
                fail(str(exc))
            return None, None
        except ValueError as exc:
            fail(str(exc))
    return record.model_id, record.ref


def _emit(result, fmt: str, out: Path | None, info: dict) -> None:
    from xpdb.query.output import OutputError, write_table

    info = {**info, "rows": len(result), "overflow": result.overflow}
    try:
        write_table(result.to_table(), fmt, out, info=info)
    except OutputError as exc:
        fail(str(exc))
    if result.overflow:
        hint = "raise --max-mb" if result.overflow_reason == "bytes" else "raise --limit"
        console.print(f"[yellow]overflow:[/] {result.overflow_message}; {hint} or narrow the query", highlight=False)
    if out:
        console.print(f"{len(result):,} rows written to {out}")


def cone(
    ra: str = typer.Argument(..., help="Right ascension: degrees or sexagesimal (15:18:33.2, 15h18m33.2s)."),
    dec: str = typer.Argument(..., help="Declination: degrees or sexagesimal (+02:04:51.7)."),
    radius: str = typer.Argument(..., help="Radius: degrees, or with units (10.5arcmin, 30arcsec)."),
    model: str = typer.Option(None, "--model", help="NAME[:VERSION] for FEH columns (default: the newest model)."),
    columns: str = typer.Option(None, "--columns", help="Comma-separated source columns "
                                "(default source_id,ra,dec,phot_g_mean_mag,bp_rp,bp_rp0,ebv)."),
    limit: int = typer.Option(10000, "--limit", help="Maximum rows (overflow is reported)."),
    fmt: str = FORMAT, out: Path = OUT,
) -> None:
    """Sources within RADIUS of (RA, DEC), nearest first, with their [Fe/H] predictions."""
    from xpdb.query.cone import DEFAULT_COLUMNS, cone as run_cone, parse_position, parse_radius
    from xpdb.query.run import QueryError

    try:
        ra_deg, dec_deg = parse_position(ra, dec)
        radius_deg = parse_radius(radius)
        model_id, model_ref = _model_id(model)
        cols = tuple(c.strip() for c in columns.split(",")) if columns else DEFAULT_COLUMNS
        result = run_cone(ra_deg, dec_deg, radius_deg, columns=cols, model_id=model_id, max_rows=limit)
    except QueryError as exc:
        fail(str(exc))
    _emit(result, fmt, out, {"cone_ra_deg": ra_deg, "cone_dec_deg": dec_deg, "cone_radius_deg": radius_deg,
                             "model": model_ref or "none"})


def query(
    text: str = typer.Argument(..., help="An ADQL query (or PostgreSQL with --sql); '-' reads it from stdin."),
    sql: bool = typer.Option(False, "--sql", help="The query is PostgreSQL, not ADQL (same read-only rules)."),
    limit: int = typer.Option(100000, "--limit", min=0, help="Maximum rows returned (overflow is reported)."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.001, help="Statement timeout in seconds (the whole query)."),
    max_mb: float = typer.Option(1000.0, "--max-mb", min=0.001,
                                 help="Largest result held, in MB: the table (text 4 bytes a character) and "
                                      "its output; rows beyond it are not fetched (overflow is reported)."),
    show_sql: bool = typer.Option(False, "--show-sql", help="Print the PostgreSQL the ADQL became."),
    upload: list[str] = typer.Option(None, "--upload", help="NAME=FILE: a VOTable or CSV table that the query "
                                     "reads as TAP_UPLOAD.NAME (repeatable)."),
    fmt: str = FORMAT, out: Path = OUT,
) -> None:
    """Run ADQL (translated to PostgreSQL with q3c) read-only, as the Gaia archive's users write it.

    ADQL may read the tables TAP_SCHEMA publishes and the uploaded ones (``--upload ids=my.vot``:
    ``TAP_UPLOAD.ids``); ``--sql`` runs one PostgreSQL query (SELECT, VALUES or WITH) as the
    read-only role. Rows are fetched in chunks until --limit or --max-mb.
    """
    import sys

    from xpdb.query.run import run_user_query
    from xpdb.query.upload import UploadError, read_upload_file

    if text == "-":
        text = sys.stdin.read()
    try:
        uploads = [read_upload_file(item) for item in upload or []]
    except UploadError as exc:
        fail(str(exc))
    result, statement = run_user_query(text, language="sql" if sql else "adql", max_rows=limit, timeout_s=timeout,
                                       max_bytes=int(max_mb * 1e6), url=session().reader_url,
                                       encoding="text" if fmt in ("table", "csv", "ecsv") else "binary",
                                       uploads=uploads)
    if show_sql:
        console.print(statement, highlight=False)
    _emit(result, fmt, out, {"query": text.strip()[:500]})


@export_app.command("catalog")
def export_catalog(
    model: str = typer.Option(None, "--model", help="NAME[:VERSION] (default: the newest model)."),
    fmt: str = typer.Option("fits", "--format", help="fits, parquet, csv or votable."),
    out: Path = typer.Option(..., "--out", help="The file to write."),
) -> None:
    """The paper's Table 2 catalogue of a model, streamed to a file of any size."""
    from xpdb import __version__
    from xpdb.query.export import EXPORT_FORMATS, export_catalog as run

    if fmt not in EXPORT_FORMATS:
        fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}")
    model_id, model_ref = _model_id(model)
    if model_id is None:
        fail("no model trained yet; nothing to export")
    with progress_bar(f"export {model_ref}", unit="rows") as update:
        n = run(session().url, model_id, fmt, out, progress=update,
                info={"model": model_ref, "producer": f"xpdb {__version__}",
                      "description": "UA-CSNet [Fe/H] catalogue (Yang et al.), columns as their Table 2"})
    console.print(f"{n:,} rows of {model_ref} written to {out}")


@export_app.command("hats")
def export_hats(
    out: Path = typer.Option(..., "--out", help="The HATS collection folder to create (must not exist)."),
    model: str = typer.Option(None, "--model", help="NAME[:VERSION] for FEH/FEH_err (default: the catalogue's model)."),
    features: bool = typer.Option(False, "--features", help="Add the 60 stored features (xp_flux, xp_flux_error)."),
    margin: float = typer.Option(10.0, "--margin", min=0, help="Margin catalogue width in arcsec (0: none); "
                                 "LSDB uses it for complete cross-matches at partition edges."),
    pixel_threshold: int = typer.Option(1_000_000, "--pixel-threshold", min=1,
                                        help="Most rows in one HEALPix partition file."),
    highest_order: int = typer.Option(10, "--highest-order", min=0, max=19,
                                      help="Deepest HEALPix order of a partition (hats-import's highest_healpix_order)."),
    name: str = typer.Option("xpdb", "--name", help="Name of the catalogue inside the collection."),
    threads: int = typer.Option(1, "--threads", min=1, help="Threads for hats-import (in this process)."),
) -> None:
    """Every source with a model's [Fe/H] as a HATS catalogue (HEALPix-partitioned Parquet) for LSDB."""
    from xpdb import __version__
    from xpdb.query.hats import HatsExportError, export_hats as run

    model_id, model_ref = _model_id(model)
    try:
        with progress_bar("stage rows", unit="rows") as update:
            result = run(session().url, out, model_id=model_id, model_ref=model_ref, features=features, name=name,
                         margin_arcsec=margin, pixel_threshold=pixel_threshold, highest_order=highest_order,
                         threads=threads, progress=update,
                         info={"producer": f"xpdb {__version__}"})
    except HatsExportError as exc:
        fail(str(exc))
    what = f"with {model_ref}" if model_ref else "without predictions (no model trained)"
    console.print(f"{result.rows:,} sources {what} written as HATS to {result.path} "
                  f"(catalogue {result.catalog_path.name}"
                  + (f", margin {result.margin_path.name}" if result.margin_path else "") + ")", highlight=False)
    console.print(f"open it with: import lsdb; lsdb.read_hats({str(result.path)!r})", highlight=False)
