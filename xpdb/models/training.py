"""Training a model kind from the database: the sets, the fit, the paper's evaluation, the registry.

Two ways to choose the training and test stars:

* **the fixed split** (``split="fixed"``), which every model trained on real stars uses:
  stars of ``selection`` with labels in ``labels``; training = ``xpdb.split_of(source_id)
  = 'train'``, test = ``'test'`` (source_id % 5 = 0, and every cluster member). Validation
  hold-outs for early stopping come from the training part only; nothing is chosen by
  looking at the test part;
* **the development split** (``split="development"``), for choosing inputs and
  hyperparameters: the training side of the fixed split minus its ``source_id % 5 = 1``
  stars, scored on those; the test side is never read;
* **two catalogues** (``test_labels``), as the paper does with PASTEL and SAGA: training
  = the ``labels`` catalogue, test = the test catalogue minus stars also in the first.

The test metrics are those of the paper (bias and sigma of a Gaussian fit; per [Fe/H]
bin; per G bin with the predicted error beside the residual sigma; VMP and metal-poor),
for G < 15 and all G, with the test set's hash so that models can be compared on the
same stars (``xpdb models compare``). For UA-CSNet the unweighted ablation is trained
and scored beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from xpdb.errors import CatalogNotFound, TrainingError
from xpdb.models import kinds as kinds_mod
from xpdb.models import registry
from xpdb.models.datasets import Stars, labelled_stars
from xpdb.models.evaluate import evaluate
from xpdb.xp.features import Preprocessing
from xpdb.xp.store import compute_missing_features, preprocessing_id

TEST_G_MAX = 15.0
LOW_EXTINCTION = 0.5  # E(B-V) limit of the paper's final sample (section 4.3), a scope of the test metrics
MIN_TRAINING_STARS = 50
SPLITS = ("fixed", "development")


@dataclass
class TrainingOutcome:
    record: registry.ModelRecord
    metrics: dict


@dataclass
class TrainingSets:
    preprocessing_id: int
    training: Stars
    test: Stars | None
    description: dict  # how the sets were chosen (stored with the metrics)


def _ensure_features(url: str, catalogs: list[str], preprocessing: Preprocessing) -> None:
    names = ", ".join("'" + c.replace("'", "''") + "'" for c in catalogs)
    compute_missing_features(url, preprocessing=preprocessing,
                             where=f"x.source_id IN (SELECT source_id FROM xpdb.reference_label "
                                   f"WHERE catalog IN ({names}))")


def training_sets(url: str, *, labels: str, test_labels: str | None = None, split: str | None = None,
                  selection: str = "giant_sample", train_selection: str | None = None, photometry=(),
                  preprocessing: Preprocessing = Preprocessing()) -> TrainingSets:
    """The training and test stars (see the module docstring).

    ``train_selection`` draws the training stars from another (usually wider) selection than
    the test stars, e.g. every labelled star of the colour domain to teach a model about
    giants: the test stars stay those of ``selection``.
    """
    if split is not None and split not in SPLITS:
        raise TrainingError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if split is not None and test_labels is not None:
        raise TrainingError("give either a split of one catalogue or a separate test catalogue, not both")
    catalogs = [labels] + ([test_labels] if test_labels else [])
    _ensure_features(url, catalogs, preprocessing)
    with psycopg.connect(url) as conn:
        for catalog in catalogs:
            if not conn.execute("SELECT 1 FROM xpdb.reference_catalog WHERE name = %s", (catalog,)).fetchone():
                known = [r[0] for r in conn.execute("SELECT name FROM xpdb.reference_catalog ORDER BY 1")]
                raise CatalogNotFound(f"no reference catalogue {catalog!r} (known: {', '.join(known) or 'none'}); "
                                      "load one with xpdb.ingest labels (CLI: xpdb ingest labels --catalog)")
        pid = preprocessing_id(conn, preprocessing)
        conn.commit()
        common = {"pid": pid, "selection": selection, "photometry": photometry}
        trains = {**common, "selection": train_selection or selection}
        if split == "fixed":
            training = labelled_stars(conn, catalog=labels, split="train", **trains)
            test = labelled_stars(conn, catalog=labels, split="test", **common)
            described = {"split": "fixed: test = source_id % 5 = 0 or a cluster member", "test_catalog": labels}
        elif split == "development":
            training = labelled_stars(conn, catalog=labels, split="dev_train", **trains)
            test = labelled_stars(conn, catalog=labels, split="dev", **common)
            described = {"split": "development: the training side, scored on its source_id % 5 = 1 part "
                                  "(for choices; the test side is not used)", "test_catalog": labels}
        else:
            training = labelled_stars(conn, catalog=labels, **trains)
            test = (labelled_stars(conn, catalog=test_labels, exclude_catalog=labels, **common)
                    if test_labels else None)
            described = {"split": None, "test_catalog": test_labels}
    if len(training) < MIN_TRAINING_STARS:
        raise TrainingError(f"only {len(training)} stars of {labels!r} pass {train_selection or selection} with "
                            f"usable features; training needs at least {MIN_TRAINING_STARS}")
    return TrainingSets(pid, training, test, {"selection": selection, "train_selection": train_selection or selection,
                                              **described})


def test_metrics(kind: kinds_mod.ModelKind, predictor: Any, test: Stars) -> dict:
    """The paper's validation numbers of one predictor on the test stars: at G < 15, all G, and
    E(B-V) < 0.5 with G < 15 (the paper's final-sample extinction limit)."""
    feh, err = kind.predict_stars(predictor, test.flux, test.flux_error, test.photometry)
    bright = test.g < TEST_G_MAX
    with np.errstate(invalid="ignore"):
        clear = bright & (test.ebv < LOW_EXTINCTION)
    return {"g_lt_15": evaluate(feh[bright], err[bright], test.feh[bright], test.g[bright]),
            "all_g": evaluate(feh, err, test.feh, test.g),
            "ebv_lt_0.5": evaluate(feh[clear], err[clear], test.feh[clear], test.g[clear])}


def _same_config(stored: dict, wanted: dict) -> bool:
    """True when a stored model's hyperparameters hold ``wanted`` (kinds may store notes beside their config,
    e.g. the ridge baseline's ``feh_err``)."""
    return set(wanted) <= set(stored) and all(stored[k] == v for k, v in wanted.items())


def train_model(url: str, kind: str = "uacsnet", *, labels: str, test_labels: str | None = None,
                split: str | None = None, selection: str | None = "giant_sample", train_selection: str | None = None,
                name: str | None = None,
                config: Any = None, preprocessing: Preprocessing = Preprocessing(), ablation: bool = True,
                on_epoch: Callable | None = None, on_stage: Callable[[str], None] | None = None,
                reuse_existing: bool = False) -> TrainingOutcome:
    """Build the sets, train, evaluate (and the ablation), store a new model version.

    With ``reuse_existing`` a stored version of ``name`` with the same kind, hyperparameters,
    test set and training-set hash is returned instead of training again. ``selection`` None
    is the kind's default (``giant_sample``; every star of the catalogue for the transformer).
    """
    from xpdb.models.backend import device

    model_kind = kinds_mod.get(kind)
    if hasattr(model_kind, "train_from_database"):  # kinds with their own inputs (the transformer)
        if train_selection is not None:
            raise TrainingError(f"{kind} draws its training stars itself; train_selection is not supported")
        return model_kind.train_from_database(url, labels=labels, test_labels=test_labels, split=split,
                                              selection=selection, name=name, config=config, on_epoch=on_epoch,
                                              on_stage=on_stage, reuse_existing=reuse_existing)
    selection = selection or "giant_sample"
    config = config if config is not None else model_kind.default_config()
    name = name or kind
    stage = on_stage or (lambda s: None)
    stage("features")
    sets = training_sets(url, labels=labels, test_labels=test_labels, split=split, selection=selection,
                         train_selection=train_selection, photometry=tuple(getattr(config, "photometry", ())),
                         preprocessing=preprocessing)
    training, test = sets.training, sets.test
    digest = training.digest(preprocessing.version)
    test_catalog = sets.description["test_catalog"]
    if reuse_existing:
        with psycopg.connect(url) as conn:
            for record in reversed(registry.list_models(conn)):
                if (record.name == name and record.kind == kind and record.training_set_hash == digest
                        and record.test_catalog == test_catalog and _same_config(record.hyperparameters, config.to_dict())
                        and (record.metrics or {}).get("split") == sets.description["split"]
                        and (record.metrics or {}).get("train_selection", sets.description["selection"])
                        == sets.description["train_selection"]):
                    return TrainingOutcome(record, record.metrics or {})
    stage("training")
    t0 = time.perf_counter()
    fitted = model_kind.fit(training, config, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    fit_feh, fit_err = model_kind.predict_stars(fitted.predictor, training.flux, training.flux_error,
                                                training.photometry)
    metrics: dict = {
        **sets.description,
        "training": {"catalog": labels, "n": len(training), "seconds": round(seconds, 1), **fitted.info,
                     "fit": evaluate(fit_feh, fit_err, training.feh, training.g)},
    }
    if test is not None and len(test):
        stage("evaluation")
        metrics["test"] = {"catalog": test_catalog, "n": len(test), "set_hash": test.digest(preprocessing.version),
                           **test_metrics(model_kind, fitted.predictor, test)}
        variants = model_kind.ablations(config) if ablation and hasattr(model_kind, "ablations") else {}
        for label, variant in variants.items():
            stage(f"ablation ({label})")
            other = model_kind.fit(training, variant)
            scores = test_metrics(model_kind, other.predictor, test)
            metrics[f"ablation_{label}"] = {**other.info, **scores}
            metrics["vmp_sigma"] = {"cost_sensitive": metrics["test"]["g_lt_15"]["vmp"]["sigma"],
                                    label: scores["g_lt_15"]["vmp"]["sigma"],
                                    "n": metrics["test"]["g_lt_15"]["vmp"]["n"]}
    stage("saving")
    with psycopg.connect(url) as conn:
        record = registry.save(
            conn, kind=kind, name=name, hyperparameters=fitted.hyperparameters, artifact=fitted.artifact,
            preprocessing_id=sets.preprocessing_id, metrics=metrics, training_catalog=labels,
            test_catalog=test_catalog, training_set_hash=digest, n_train=len(training), device=device())
        conn.commit()
    return TrainingOutcome(record, metrics)


def train_uacsnet(url: str, **options) -> TrainingOutcome:
    """``train_model`` for UA-CSNet (kept for the callers that predate model kinds)."""
    return train_model(url, "uacsnet", **options)


def feh_residuals(record_metrics: dict, scope: str = "g_lt_15") -> dict:
    """The headline numbers of stored metrics: overall, metal-poor and VMP sigma, for comparisons."""
    test = (record_metrics or {}).get("test") or {}
    m = test.get(scope) or {}
    pick = (lambda key: (m.get(key) or {}).get("sigma"))
    return {"n": (m.get("overall") or {}).get("n"), "bias": (m.get("overall") or {}).get("bias"),
            "sigma": pick("overall"), "sigma_metal_poor": pick("metal_poor"), "sigma_vmp": pick("vmp"),
            "set_hash": test.get("set_hash")}
