"""``xpdb synth`` and ``xpdb features``: the synthetic sky and the model's input features."""

from __future__ import annotations

from pathlib import Path

import typer

from xpdb.cli.console import console, fail, out, progress_bar, session


def synth(
    n: int = typer.Option(20000, "--n", help="Number of stars (field, PASTEL-like, SAGA-like and cluster members)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder to write the files into."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same sky."),
    fmt: str = typer.Option("fits", "--format", help="fits, parquet, ecsv or csv."),
) -> None:
    """Write a synthetic sky of giants in Gaia archive formats, with a truth table (synthetic data!)."""
    from xpdb.synth.sky import make_sky
    from xpdb.synth.writers import FORMATS, write_sky

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}")
    if n < 100:
        fail("--n must be at least 100")
    with progress_bar("synthesising sky", total=None, unit="stars"):
        sky = make_sky(n, seed=seed)
        paths = write_sky(sky, out_dir, fmt)
    for name, path in paths.items():
        out.print(f"{name:<22s} {path}")
    console.print(f"[yellow]synthetic data[/] (seed {seed}): {sky.gaia_source.num_rows:,} stars in {out_dir}")


def features(
    where: str = typer.Option(None, "--where", help="SQL condition on gaia_source columns, e.g. 'phot_g_mean_mag < 15'."),
    batch: int = typer.Option(5000, "--batch", help="Sources per batch (one transaction each)."),
    xp_correction: str = typer.Option(None, "--xp-correction", help="Systematic correction: huang2024 (needs the "
                                      "authors' package). Off by default."),
    recompute: bool = typer.Option(False, "--recompute", help="Recompute features that are already stored."),
) -> None:
    """Compute the 60-pixel dereddened, normalised features for stored XP spectra (continuous or sampled)."""
    from xpdb.xp.features import Preprocessing

    pre = Preprocessing(correction=xp_correction)
    db = session()
    try:
        with progress_bar("features", unit="stars") as update:
            run = db.features(preprocessing=pre, where=where, batch_size=batch, recompute=recompute, progress=update)
    except ValueError as exc:
        fail(str(exc))
    out.print(f"preprocessing {pre.version}")
    out.print(f"{run.processed:,} sources processed: {run.usable:,} usable, {run.flagged:,} flagged")


def spectrum(
    source_ids: list[int] = typer.Argument(..., help="Gaia DR3 source_ids (as many as wanted)."),
    out_path: Path = typer.Option(..., "--out", help="The file to write."),
    fmt: str = typer.Option(None, "--format", help="votable, fits, ecsv or csv (default: from the file's suffix)."),
) -> None:
    """Calibrated sampled XP spectra with errors (336-1020 nm), computed now from the stored coefficients."""
    import psycopg

    from xpdb.xp.spectrum import SPECTRUM_FORMATS, NoSpectrum, spectra_table, write_spectra

    suffixes = {".vot": "votable", ".xml": "votable", ".fits": "fits", ".fit": "fits", ".ecsv": "ecsv", ".csv": "csv"}
    fmt = fmt or suffixes.get(out_path.suffix.lower(), "votable")
    if fmt not in SPECTRUM_FORMATS:
        fail(f"--format must be one of {', '.join(SPECTRUM_FORMATS)}")
    with psycopg.connect(session().reader_url, autocommit=True) as conn:
        try:
            table = spectra_table(conn, source_ids)
        except NoSpectrum as exc:
            fail(str(exc))
    write_spectra(table, fmt, out_path)
    missing = table.meta.get("missing") or []
    if missing:
        console.print(f"[yellow]no XP spectrum stored for[/] {', '.join(map(str, missing))}", highlight=False)
    console.print(f"{len(set(table['source_id'].tolist())):,} spectra written to {out_path}")
