"""The ``xpdb`` application: sub-commands per stage."""

from __future__ import annotations

import typer

from xpdb import __version__
from xpdb.cli import db, ingest, jobs, models, query, report, serve, similar, spectra, users
from xpdb.cli.console import XpdbGroup

app = typer.Typer(
    name="xpdb",
    cls=XpdbGroup,
    help="xpdb: a PostgreSQL catalogue service for Gaia DR3 XP spectra and UA-CSNet metallicities.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(db.app, name="db")
app.add_typer(ingest.app, name="ingest")
app.command("synth")(spectra.synth)
app.command("features")(spectra.features)
app.command("spectrum")(spectra.spectrum)
app.add_typer(models.train_app, name="train")
app.add_typer(models.models_app, name="models")
app.command("generate")(models.generate)
app.command("infer")(jobs.infer)
app.add_typer(jobs.jobs_app, name="jobs")
app.command("cone")(query.cone)
app.command("query")(query.query)
app.command("similar")(similar.similar)
app.add_typer(query.export_app, name="export")
app.command("report")(report.report)
app.command("demo")(report.demo)
app.command("serve")(serve.serve)
app.add_typer(users.app, name="users")


@app.command()
def version() -> None:
    """Print the xpdb version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
