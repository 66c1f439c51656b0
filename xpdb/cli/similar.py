"""``xpdb similar``: the stars nearest to one star in a scatter VAE's latent space."""

from __future__ import annotations

from pathlib import Path

import typer

from xpdb.cli.console import fail, session
from xpdb.cli.query import FORMAT, OUT, _emit


def similar(
    source_id: int = typer.Argument(..., help="The star (Gaia DR3 source_id)."),
    k: int = typer.Option(20, "-k", "--k", help="Number of neighbours."),
    model: str = typer.Option(None, "--model", help="An svae (or xp_pca) model NAME[:VERSION] (default: the newest "
                              "scatter VAE with outputs)."),
    include_self: bool = typer.Option(False, "--include-self", help="List the star itself first (distance 0)."),
    fmt: str = FORMAT, out: Path = OUT,
) -> None:
    """The K nearest stars to SOURCE_ID in latent space (PostgreSQL cube + GiST k-NN), nearest first."""
    from xpdb.errors import ModelNotFound, QueryError
    from xpdb.query.similar import similar as run

    try:
        db = session()
        result, record = run(db.url, source_id, k, model=model, include_self=include_self, reader_url=db.reader_url)
    except (ModelNotFound, QueryError) as exc:
        fail(str(exc))
    _emit(result, fmt, out, {"model": record.ref, "query_source_id": source_id})
