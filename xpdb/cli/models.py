"""``xpdb train`` and ``xpdb models``: train UA-CSNet from the database; list, show, export, delete models."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from xpdb.cli.console import console, fail, out, progress_bar

train_app = typer.Typer(help="Train models from the database.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_metrics(metrics: dict) -> None:
    """The paper's validation numbers as tables."""
    training = metrics.get("training", {})
    out.print(f"training: {training.get('catalog')} n={training.get('n')} epochs={training.get('epochs_run')} "
              f"(best {training.get('best_epoch')})")
    test = metrics.get("test")
    if not test:
        return
    for scope in ("g_lt_15", "all_g"):
        m = test[scope]
        table = Table(title=f"test {test['catalog']} ({'G < 15' if scope == 'g_lt_15' else 'all G'}): "
                            "Delta[Fe/H] = model - reference, Gaussian fit")
        for col in ("subset", "N", "bias", "sigma"):
            table.add_column(col, justify="right" if col != "subset" else "left")
        table.add_row("all", str(m["overall"]["n"]), _fmt(m["overall"]["bias"]), _fmt(m["overall"]["sigma"]))
        for label, stats in m["by_feh"].items():
            table.add_row(label, str(stats["n"]), _fmt(stats.get("bias")), _fmt(stats.get("sigma")))
        out.print(table)
        if scope == "g_lt_15":
            g = Table(title="predicted errors vs residual sigma per G bin (Figure 5)")
            for col in ("G", "N", "median FEH_err", "residual sigma"):
                g.add_column(col, justify="right")
            for row in m["by_g"]:
                g.add_row(f"{row['g_min']:g}-{row['g_max']:g}", str(row["n"]), _fmt(row["median_predicted_error"]),
                          _fmt(row["residual_sigma"]))
            out.print(g)
    vmp = metrics.get("vmp_sigma")
    if vmp:
        out.print(f"VMP ([Fe/H] <= -2, G < 15, N={vmp['n']}): sigma cost-sensitive {_fmt(vmp['cost_sensitive'])}, "
                  f"unweighted (ablation) {_fmt(vmp['unweighted'])}")


@train_app.command("uacsnet")
def train_uacsnet(
    labels: str = typer.Option(..., "--labels", help="Training catalogue (e.g. PASTEL)."),
    test_labels: str = typer.Option(None, "--test-labels", help="Test catalogue (e.g. SAGA); no overlap is used."),
    epochs: int = typer.Option(3000, "--epochs", help="Maximum epochs (early stopping on a validation split)."),
    patience: int = typer.Option(300, "--patience", help="Epochs without improvement before stopping."),
    seed: int = typer.Option(42, "--seed", help="Random seed (same seed and data: same model)."),
    name: str = typer.Option("uacsnet", "--name", help="Model name; each training adds a version."),
    ablation: bool = typer.Option(True, "--ablation/--no-ablation", help="Also train with cost weights off."),
) -> None:
    """Train UA-CSNet (Yang et al.) on giant_sample stars with labels, evaluate, store a model version."""
    from xpdb.cli.ingest import _ready
    from xpdb.models.training import train_uacsnet as run
    from xpdb.models.uacsnet import UACSNetConfig

    url = _ready()
    config = UACSNetConfig(epochs=epochs, patience=patience, seed=seed)
    try:
        with progress_bar("training UA-CSNet", total=epochs, unit="epochs") as update:
            outcome = run(url, labels=labels, test_labels=test_labels, name=name, config=config, ablation=ablation,
                          on_epoch=lambda epoch, logs: update(epoch))
    except (LookupError, ValueError) as exc:
        fail(str(exc))
    print_metrics(outcome.metrics)
    console.print(f"stored model [bold]{outcome.record.ref}[/] (id {outcome.record.model_id})")


def _conn():
    import psycopg

    from xpdb.cli.ingest import _ready

    return psycopg.connect(_ready())


@models_app.command("list")
def list_models() -> None:
    """All stored models with their headline test metrics."""
    from xpdb.models.registry import list_models as all_models

    with _conn() as conn:
        records = all_models(conn)
    table = Table(title="models")
    for col in ("model", "kind", "trained on", "n", "test", "sigma (G<15)", "bias", "created"):
        table.add_column(col)
    for r in records:
        test = (r.metrics or {}).get("test", {}).get("g_lt_15", {}).get("overall", {})
        table.add_row(r.ref, r.kind, r.training_catalog or "", str(r.n_train or ""), r.test_catalog or "",
                      _fmt(test.get("sigma")), _fmt(test.get("bias")), str(r.created_at)[:19])
    out.print(table)


@models_app.command("show")
def show(ref: str = typer.Argument(..., help="NAME or NAME:VERSION")) -> None:
    """Hyperparameters, provenance, layers and metrics of one model."""
    from xpdb.models.registry import ModelNotFound, load
    from xpdb.models.uacsnet import describe

    with _conn() as conn:
        try:
            record, model = load(conn, ref)
        except (ModelNotFound, ValueError) as exc:
            fail(str(exc))
        version = conn.execute("SELECT version FROM xpdb.preprocessing WHERE preprocessing_id = %s",
                               (record.preprocessing_id,)).fetchone()
    out.print(f"model {record.ref} ({record.kind}), id {record.model_id}, created {record.created_at}")
    out.print(f"package xpdb {record.package_version}, trained on {record.device}")
    out.print(f"training set {record.training_catalog} (n={record.n_train}, sha256 {record.training_set_hash})")
    out.print(f"preprocessing {version[0] if version else record.preprocessing_id}")
    out.print("hyperparameters " + json.dumps(record.hyperparameters))
    out.print(describe(model))
    print_metrics(record.metrics or {})


@models_app.command("export")
def export(ref: str = typer.Argument(..., help="NAME or NAME:VERSION"),
           out_path: Path = typer.Option(..., "--out", help="Where to write the .keras file.")) -> None:
    """Write a model's .keras file (load it with keras.models.load_model and xpdb installed)."""
    from xpdb.models.registry import ModelNotFound, artifact, find

    with _conn() as conn:
        try:
            record = find(conn, ref)
        except (ModelNotFound, ValueError) as exc:
            fail(str(exc))
        out_path.write_bytes(artifact(conn, record.model_id))
    (out_path.with_suffix(".json")).write_text(json.dumps({
        "model": record.ref, "hyperparameters": record.hyperparameters, "metrics": record.metrics,
        "training_set_hash": record.training_set_hash, "package_version": record.package_version}, indent=2,
        default=str))
    console.print(f"wrote {out_path} and {out_path.with_suffix('.json')}")


@models_app.command("delete")
def delete(ref: str = typer.Argument(..., help="NAME:VERSION (or NAME for its newest version)"),
           yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a model version (and its predictions)."""
    from xpdb.models.registry import ModelNotFound
    from xpdb.models.registry import delete as remove

    if not yes and not typer.confirm(f"delete model {ref} and its predictions?"):
        raise typer.Exit(1)
    with _conn() as conn:
        try:
            record = remove(conn, ref)
        except (ModelNotFound, ValueError) as exc:
            fail(str(exc))
        conn.commit()
    console.print(f"deleted {record.ref}")
