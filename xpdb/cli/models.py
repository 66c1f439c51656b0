"""``xpdb train`` and ``xpdb models``: train model kinds from the database; list, compare, show, export, delete."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from xpdb.cli.console import console, fail, out, print_table, progress_bar, session

train_app = typer.Typer(help="Train models from the database (UA-CSNet and the baselines; the scatter VAE; the transformer).",
                        no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_metrics(metrics: dict) -> None:
    """The paper's validation numbers as tables."""
    training = metrics.get("training", {})
    out.print(f"training: {training.get('catalog')} n={training.get('n')} ({training.get('seconds', '-')} s)"
              + (f", epochs {training.get('epochs_run')} (best {training.get('best_epoch')})"
                 if "epochs_run" in training else "")
              + (f"; selection {metrics.get('selection')}" if metrics.get("selection") else "")
              + (f"; split {metrics.get('split')}" if metrics.get("split") else ""))
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
        for label, key in (("feh<=-1.5", "metal_poor"), ("feh<=-2 (VMP)", "vmp")):
            stats = m.get(key) or {}
            table.add_row(label, str(stats.get("n", 0)), _fmt(stats.get("bias")), _fmt(stats.get("sigma")))
        out.print(table)
        if scope == "g_lt_15":
            g = Table(title="predicted errors vs residual sigma per G bin (Figure 5)")
            for col in ("G", "N", "median FEH_err", "residual sigma", "ratio"):
                g.add_column(col, justify="right")
            for row in m["by_g"]:
                ratio = (row["median_predicted_error"] / row["residual_sigma"]) if row.get("residual_sigma") else None
                g.add_row(f"{row['g_min']:g}-{row['g_max']:g}", str(row["n"]), _fmt(row["median_predicted_error"]),
                          _fmt(row["residual_sigma"]), _fmt(ratio, 2))
            out.print(g)
    vmp = metrics.get("vmp_sigma")
    if vmp:
        out.print(f"VMP ([Fe/H] <= -2, G < 15, N={vmp['n']}): sigma cost-sensitive {_fmt(vmp['cost_sensitive'])}, "
                  f"unweighted (ablation) {_fmt(vmp.get('unweighted'))}")


LABELS = typer.Option(..., "--labels", help="Training catalogue (e.g. APOGEE, PASTEL).")
SPLIT = typer.Option(None, "--split", help="'fixed': train on source_id % 5 != 0, test on the rest and cluster "
                     "members (the project's split for real stars).")
TEST_LABELS = typer.Option(None, "--test-labels", help="A separate test catalogue (e.g. SAGA); no overlap is used.")
SELECTION = typer.Option("giant_sample", "--selection", help="giant_sample (the six cuts), spectroscopic_giants "
                         "(colour domain and the catalogue's logg < 3.6: real stars without parallaxes), "
                         "final_sample, model_domain.")
TRAIN_SELECTION = typer.Option(None, "--train-selection", help="Draw the training stars from another selection "
                               "(e.g. model_domain: dwarfs too); the test stars stay those of --selection.")
PHOTOMETRY = typer.Option(None, "--photometry", help="Extra inputs beside the features, comma-separated: "
                          "g0, bp_rp0, j_h0, j_ks0, g_ks0, ebv.")
NAME = typer.Option(None, "--name", help="Model name (default: the kind); each training adds a version.")
SET = typer.Option(None, "--set", help="Any other hyperparameter, key=value (repeatable).")


def _parse_set(items: list[str] | None) -> dict:
    values = {}
    for item in items or []:
        if "=" not in item:
            fail(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values


def _train(kind: str, *, labels, split, test_labels, selection, photometry, name, overrides: dict, total: int | None,
           ablation: bool = True, train_selection: str | None = None) -> None:
    if photometry:
        overrides["photometry"] = [p.strip() for p in photometry.split(",") if p.strip()]
    db = session()
    with progress_bar(f"training {kind}", total=total, unit="epochs") as update:
        model = db.train(kind, labels=labels, split=split, test_labels=test_labels, selection=selection,
                         train_selection=train_selection, name=name, ablation=ablation,
                         on_epoch=lambda epoch, logs: update(epoch), **overrides)
    print_metrics(model.metrics)
    console.print(f"stored model [bold]{model.ref}[/] (id {model.model_id})")


@train_app.command("uacsnet")
def train_uacsnet(
    labels: str = LABELS, split: str = SPLIT, test_labels: str = TEST_LABELS, selection: str = SELECTION,
    train_selection: str = TRAIN_SELECTION, photometry: str = PHOTOMETRY, name: str = NAME,
    epochs: int = typer.Option(3000, "--epochs", help="Maximum epochs (early stopping on a validation hold-out)."),
    patience: int = typer.Option(500, "--patience", help="Epochs without improvement before stopping."),
    members: int = typer.Option(1, "--members", help="Train an ensemble of this many networks (averaged)."),
    seed: int = typer.Option(42, "--seed", help="Random seed (same seed and data: same model)."),
    ablation: bool = typer.Option(True, "--ablation/--no-ablation", help="Also train with cost weights off."),
    set_: list[str] = SET,
) -> None:
    """Train UA-CSNet (Yang et al.), evaluate it on the test stars, store a model version."""
    overrides = {"epochs": epochs, "patience": patience, "members": members, "seed": seed, **_parse_set(set_)}
    _train("uacsnet", labels=labels, split=split, test_labels=test_labels, selection=selection, photometry=photometry,
           name=name, overrides=overrides, total=epochs * members, ablation=ablation, train_selection=train_selection)


@train_app.command("ridge")
def train_ridge(labels: str = LABELS, split: str = SPLIT, test_labels: str = TEST_LABELS,
                selection: str = SELECTION, train_selection: str = TRAIN_SELECTION, photometry: str = PHOTOMETRY,
                name: str = NAME, set_: list[str] = SET) -> None:
    """Train the ridge-regression baseline on the same features and split."""
    _train("ridge", labels=labels, split=split, test_labels=test_labels, selection=selection, photometry=photometry,
           name=name, overrides=_parse_set(set_), total=None, train_selection=train_selection)


@train_app.command("xgboost")
def train_xgboost(labels: str = LABELS, split: str = SPLIT, test_labels: str = TEST_LABELS,
                  selection: str = SELECTION, train_selection: str = TRAIN_SELECTION, photometry: str = PHOTOMETRY,
                  name: str = NAME, set_: list[str] = SET) -> None:
    """Train the gradient-boosted-trees baseline (XGBoost, as Andrae et al. 2023) on the same features and split."""
    _train("xgboost", labels=labels, split=split, test_labels=test_labels, selection=selection,
           photometry=photometry, name=name, overrides=_parse_set(set_), total=None, train_selection=train_selection)


def print_svae_metrics(metrics: dict) -> None:
    """A scatter VAE's evaluation beside its PCA baseline's (same inputs, split and components)."""
    training = metrics.get("training", {})
    out.print(f"training: n={training.get('n')} ({training.get('seconds', '-')} s, {training.get('epochs', '-')} "
              f"epochs, {training.get('device', '')}); representation {metrics.get('representation')}; "
              f"split {metrics.get('split')}")
    base = metrics.get("baseline_pca") or {}
    ev, pev = metrics.get("evaluation") or {}, base.get("evaluation") or {}
    table = Table(title=f"held-out stars (n={ev.get('n')}): sVAE vs PCA ({metrics.get('baseline_model', 'not stored')})")
    for col in ("measure", "sVAE", "PCA"):
        table.add_column(col, justify="left" if col == "measure" else "right")

    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.3f}%"

    rows = [("|residual| > 5 sigma, errors + scatter", "frac_beyond_5sigma_scatter", pct),
            ("|residual| > 5 sigma, errors only", "frac_beyond_5sigma_errors", pct),
            ("|residual| > 10 sigma, errors + scatter", "frac_beyond_10sigma_scatter", pct),
            ("median reduced chi2, errors + scatter", "median_chi2_red_scatter", _fmt),
            ("median reduced chi2, errors only", "median_chi2_red", _fmt),
            ("median scatter / error", "median_scatter_over_error", _fmt)]
    for label, key, f in rows:
        table.add_row(label, f(ev.get(key)), f(pev.get(key)))
    knn, pknn = metrics.get("knn") or {}, base.get("knn") or {}
    for label, unit in (("teff", "K"), ("logg", "dex"), ("feh", "dex")):
        if label in knn:
            table.add_row(f"k-NN {label} sigma ({unit}, {knn.get('catalog')}, k={knn.get('k')}, n={knn[label].get('n')})",
                          _fmt(knn[label].get("sigma"), 3), _fmt((pknn.get(label) or {}).get("sigma"), 3))
    out.print(table)


@train_app.command("svae")
def train_svae(
    representation: str = typer.Option("sampled", "--representation", help="sampled (XP_SAMPLED-like spectra: the "
                                       "APOGEE library) or coefficients (XP_CONTINUOUS)."),
    split: str = typer.Option("fixed", "--split", help="fixed (train on xpdb.split_of = 'train', evaluate on 'test') "
                              "or development (the training side only, for choices)."),
    labels: str = typer.Option("APOGEE", "--labels", help="Catalogue whose Teff, logg, [Fe/H] score the latent by "
                               "k-nearest neighbours (not used for training)."),
    name: str = NAME,
    epochs: int = typer.Option(None, "--epochs", help="Epochs (default: SVAEConfig's)."),
    seed: int = typer.Option(42, "--seed", help="Random seed."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also fit and store the PCA baseline."),
    set_: list[str] = SET,
) -> None:
    """Train the scatter VAE (Laroche & Speagle) on the stored spectra; store it and its PCA baseline."""
    from xpdb.models.svae import SVAEConfig

    overrides = {"representation": representation, "seed": seed, **({"epochs": epochs} if epochs else {}),
                 **_parse_set(set_)}
    total = overrides.get("epochs", SVAEConfig.epochs)
    db = session()
    with progress_bar("training svae", total=total, unit="epochs") as update:
        model = db.train("svae", labels=labels, split=split, name=name, ablation=baseline,
                         on_epoch=lambda epoch, logs: update(epoch), **overrides)
    print_svae_metrics(model.metrics)
    console.print(f"stored model [bold]{model.ref}[/] (id {model.model_id})"
                  + (f" and its PCA baseline [bold]{model.metrics['baseline_model']}[/]"
                     if model.metrics.get("baseline_model") else ""))


def print_label_metrics(metrics: dict) -> None:
    """The transformer's (and its tree baseline's) test metrics: sigma per label and context."""
    test = metrics.get("test") or {}
    labels = test.get("labels")
    if not labels:
        return
    table = Table(title=f"test {test.get('catalog')} (n={test.get('n')}): robust sigma of model - reference; "
                        "Teff, logg over Teff < 7000 K, [M/H], [alpha/M] over giants")
    for col in ("context", "Teff [K]", "logg", "[M/H]", "[alpha/M]", "err/sigma Teff", "logg", "[M/H]"):
        table.add_column(col, justify="left" if col == "context" else "right")
    for context, block in labels.items():
        t, g = block["teff"]["teff_lt_7000"], block["logg"]["teff_lt_7000"]
        m, a = block["m_h"]["giants"], block["alpha_m"]["giants"]
        table.add_row(context, _fmt(t.get("sigma"), 1), _fmt(g.get("sigma")), _fmt(m.get("sigma")), _fmt(a.get("sigma")),
                      _fmt(t.get("error_ratio"), 2), _fmt(g.get("error_ratio"), 2), _fmt(m.get("error_ratio"), 2))
    out.print(table)
    spectra = test.get("generated_spectra")
    if spectra:
        out.print(f"spectra generated from the reference labels: median chi2/dof {_fmt(spectra['median_chi2_dof'], 2)} "
                  f"(observed errors alone {_fmt(spectra['median_chi2_dof_observed_errors_only'], 1)}), "
                  f"median |residual| {100 * spectra['median_abs_fractional_residual']:.1f}% (n={spectra['n']})")


@train_app.command("transformer")
def train_transformer(
    labels: str = typer.Option("APOGEE", "--labels", help="Catalogue of the labels (the APOGEE library: "
                               "xpdb ingest apogee-library)."),
    split: str = typer.Option("fixed", "--split", help="fixed (test = source_id % 5 = 0 and cluster members) or "
                              "development (scored on the training side's source_id % 5 = 1 part)."),
    size: str = typer.Option("cpu", "--size", help="cpu (d=64, 2+2 blocks, ~0.2M parameters) or gpu (the authors' "
                             "network, ~8.8M parameters)."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs (default: 60 for cpu, 400 for gpu)."),
    seed: int = typer.Option(42, "--seed", help="Random seed."),
    selection: str = typer.Option(None, "--selection", help="Restrict to a selection view (default: every star "
                                  "of the catalogue with an XP spectrum)."),
    name: str = NAME, set_: list[str] = SET,
) -> None:
    """Train the transformer foundation model (Leung & Bovy 2024) and store it with its test metrics."""
    overrides = {"size": size, "seed": seed, **({"epochs": epochs} if epochs else {}), **_parse_set(set_)}
    db = session()
    total = epochs or (400 if size == "gpu" else 60)
    with progress_bar("training transformer", total=total, unit="epochs") as update:
        model = db.train("transformer", labels=labels, split=split, selection=selection, name=name,
                         on_epoch=lambda epoch, logs: update(epoch), **overrides)
    print_label_metrics(model.metrics)
    training = model.metrics.get("training", {})
    out.print(f"training: n={training.get('n')}, {training.get('seconds')} s ({training.get('cpu_seconds')} CPU s), "
              f"best epoch {training.get('best_epoch')} of {training.get('epochs_run')}, "
              f"{training.get('n_parameters'):,} parameters")
    console.print(f"stored model [bold]{model.ref}[/] (id {model.model_id})")


@train_app.command("label-xgboost")
def train_label_xgboost(
    labels: str = typer.Option("APOGEE", "--labels", help="Catalogue of the labels."),
    split: str = typer.Option("fixed", "--split", help="fixed or development."),
    inputs: str = typer.Option("xp,ebv,g", "--inputs", help="Token kinds used as features, comma-separated: xp "
                               "(the 55 XP values), g, bp_rp, j_h, j_k, ebv."),
    name: str = NAME, set_: list[str] = SET,
) -> None:
    """Train the tree baseline (XGBoost per label) on the transformer's tokens and the same split."""
    overrides = {"inputs": [i.strip() for i in inputs.split(",") if i.strip()], **_parse_set(set_)}
    model = session().train("label_xgboost", labels=labels, split=split, name=name, **overrides)
    print_label_metrics(model.metrics)
    console.print(f"stored model [bold]{model.ref}[/] (id {model.model_id})")


def generate(
    teff: float = typer.Option(..., "--teff", help="Effective temperature [K]."),
    logg: float = typer.Option(..., "--logg", help="Surface gravity log g [dex]."),
    feh: float = typer.Option(..., "--feh", "--m-h", help="Metallicity [M/H] (the model learnt APOGEE [Fe/H])."),
    alpha: float = typer.Option(None, "--alpha", help="[alpha/M] (left out when not given)."),
    ebv: float = typer.Option(None, "--ebv", help="E(B-V) [mag] (left out when not given; 0 for no extinction)."),
    g: float = typer.Option(0.0, "--g", help="Scale the spectrum to this G magnitude (0: G-normalised)."),
    model: str = typer.Option(None, "--model", help="Transformer model NAME[:VERSION] (default: the newest)."),
    out_path: Path = typer.Option(None, "--out", help="Write the spectrum here (.ecsv, .csv, .fits, .vot); "
                                  "default: print a summary."),
) -> None:
    """Predict an XP spectrum (with errors) from stellar labels with a transformer model."""
    table = session().generate(teff=teff, logg=logg, m_h=feh, alpha_m=alpha, ebv=ebv, g=g, model=model)
    if out_path is None:
        step = len(table) // 12
        for row in table[::step]:
            out.print(f"{row['wavelength']:7.1f} nm  {row['flux']:.4e} +- {row['flux_error']:.2e} W m-2 nm-1")
    else:
        fmt = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".vot": "votable",
               ".xml": "votable"}.get(out_path.suffix.lower())
        if fmt is None:
            fail("--out must end in .ecsv, .csv, .fits or .vot")
        table.write(out_path, format=fmt, overwrite=True)
        console.print(f"wrote {out_path} ({len(table)} samples, model {table.meta['model']})")


@models_app.command("list")
def list_models() -> None:
    """All stored models with their headline test metrics."""
    print_table(session().models(), "models")


@models_app.command("compare")
def compare(refs: list[str] = typer.Argument(None, help="Models to compare (default: every model with test metrics)."),
            all_g: bool = typer.Option(False, "--all-g", help="Scores over all G instead of G < 15."),
            truth: Path = typer.Option(None, "--truth", help="A synthetic sky's truth file (xpdb synth): also score "
                                       "the models' test stars against the true [Fe/H].")) -> None:
    """Models side by side on their test stars: bias and sigma overall, for [Fe/H] <= -1.5 and VMP."""
    db = session()
    table = db.compare(refs or None, scope="all_g" if all_g else "g_lt_15")
    print_table(table, "test-set comparison (Delta[Fe/H] = model - reference, Gaussian fit)")
    if len(table) and not all(table["same_stars"]):
        console.print("[yellow]not every model was tested on the same stars (same_stars = False)[/]")
    if truth is not None:
        _truth_scores(db, list(table["model"]) if len(table) else [], truth, "all" if all_g else "g<15")


def _truth_scores(db, refs: list[str], truth: Path, scope: str) -> None:
    """The same test stars scored against the noisy labels and against the synthetic sky's truth."""
    from xpdb.models import registry
    from xpdb.synth.score import ERROR_RATIO_LIMIT, MIN_BIN, headline, score_models

    if not truth.exists():
        fail(f"no truth file {truth}")
    groups: dict[tuple, list[str]] = {}
    with db._connect() as conn:
        for ref in refs:
            r = registry.find(conn, ref)
            sel = (r.metrics or {}).get("selection") or "giant_sample"
            if r.training_catalog and r.test_catalog and r.test_catalog != r.training_catalog:
                groups.setdefault((r.training_catalog, r.test_catalog, sel), []).append(ref)
    rows = []
    for (train, test, sel), names in groups.items():
        scores = score_models(db.url, truth, names, labels=train, test_labels=test, selection=sel)
        for ref, sc in scores.items():
            for against in ("labels", "truth"):
                h = headline(sc, against, scope)
                ratios = [r for *_, r in h["error_ratios"]]
                rows.append((ref, test, against, h["n"], _fmt(h["bias"]), _fmt(h["sigma"]), h["n_vmp"],
                             _fmt(h["vmp_error"]), _fmt(h["sigma_vmp"]), _fmt(min(ratios), 2) if ratios else "-",
                             _fmt(max(ratios), 2) if ratios else "-"))
    if not rows:
        console.print("[yellow]no model was trained on one catalogue and tested on another; nothing to score[/]")
        return
    t = Table(title=f"against labels and truth ({'all G' if scope == 'all' else 'G < 15'}; VMP error = mean over the "
                    "[Fe/H] bins -3..-2 and < -3 of sqrt(bias^2 + sigma^2); sigma VMP = one Gaussian over all VMP "
                    f"stars; error ratio = median FEH_err / residual sigma in G bins of {MIN_BIN}+ stars, within "
                    f"x{ERROR_RATIO_LIMIT:g} expected)")
    for col in ("model", "test", "against", "N", "bias", "sigma", "N VMP", "VMP error", "sigma VMP", "ratio min",
                "ratio max"):
        t.add_column(col, justify="left" if col in ("model", "test", "against") else "right")
    for r in rows:
        t.add_row(*[str(v) for v in r])
    out.print(t)


@models_app.command("show")
def show(ref: str = typer.Argument(..., help="NAME or NAME:VERSION")) -> None:
    """Hyperparameters, provenance and metrics of one model."""
    from xpdb.models import registry

    db = session()
    model = db.model(ref)
    with db._connect() as conn:
        record = registry.find(conn, ref)
        version = conn.execute("SELECT version FROM xpdb.preprocessing WHERE preprocessing_id = %s",
                               (record.preprocessing_id,)).fetchone()
    out.print(f"model {record.ref} ({record.kind}), id {record.model_id}, created {record.created_at}")
    out.print(f"package xpdb {record.package_version}, trained on {record.device}")
    out.print(f"training set {record.training_catalog} (n={record.n_train}, sha256 {record.training_set_hash})")
    out.print(f"preprocessing {version[0] if version else record.preprocessing_id}")
    out.print("hyperparameters " + json.dumps(model.hyperparameters))
    if record.kind in ("svae", "xp_pca"):
        print_svae_metrics(model.metrics)
    else:
        print_label_metrics(model.metrics)
        print_metrics(model.metrics)


@models_app.command("export")
def export(ref: str = typer.Argument(..., help="NAME or NAME:VERSION"),
           out_path: Path = typer.Option(..., "--out", help="Where to write the artifact (.keras, .npz, .ubj).")) -> None:
    """Write a model's artifact and a JSON file of its hyperparameters and metrics."""
    from xpdb.models.registry import artifact, find

    db = session()
    with db._connect() as conn:
        record = find(conn, ref)
        out_path.write_bytes(artifact(conn, record.model_id))
    (out_path.with_suffix(".json")).write_text(json.dumps({
        "model": record.ref, "kind": record.kind, "hyperparameters": record.hyperparameters,
        "metrics": record.metrics, "training_set_hash": record.training_set_hash,
        "package_version": record.package_version}, indent=2, default=str))
    console.print(f"wrote {out_path} and {out_path.with_suffix('.json')}")


@models_app.command("delete")
def delete(ref: str = typer.Argument(..., help="NAME:VERSION (or NAME for its newest version)"),
           yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a model version (and its predictions)."""
    if not yes and not typer.confirm(f"delete model {ref} and its predictions?"):
        raise typer.Exit(1)
    console.print(f"deleted {session().delete_model(ref).ref}")
