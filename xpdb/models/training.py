"""``xpdb train uacsnet``: training set in SQL, training, the paper's evaluation, the ablation, the registry.

The training set is built in SQL: stars of ``giant_sample`` (the six cuts of section 2.3,
which include the colour domain 0.7 < (BP-RP)_0 < 1.9) with a label in the training
catalogue and usable features. The test set is built the same way from the test
catalogue, minus stars that also have a training label (as the paper removes PASTEL
stars from SAGA); its metrics are computed for G < 15, where the paper says the errors
hold, and for all G. The same network trained with every cost set to 1 is the ablation
whose metrics are stored beside the model's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg

from xpdb.db.copy import decode_bytea
from xpdb.models import registry
from xpdb.models.evaluate import evaluate
from xpdb.models.uacsnet import UACSNetConfig, predict, to_bytes, train
from xpdb.xp.features import N_PIXELS, Preprocessing
from xpdb.xp.store import compute_missing_features, preprocessing_id

TEST_G_MAX = 15.0


@dataclass
class LabelledSet:
    source_id: np.ndarray
    flux: np.ndarray
    flux_error: np.ndarray
    feh: np.ndarray
    bp_rp0: np.ndarray
    g: np.ndarray

    def __len__(self) -> int:
        return len(self.source_id)

    def subset(self, mask: np.ndarray) -> LabelledSet:
        return LabelledSet(*(getattr(self, f)[mask] for f in ("source_id", "flux", "flux_error", "feh", "bp_rp0", "g")))

    def digest(self, version: str) -> str:
        """sha256 of the ids, labels and features: the identity of a training set."""
        h = hashlib.sha256(version.encode())
        for part in (self.source_id, self.feh.astype(np.float32), self.flux, self.flux_error):
            h.update(np.ascontiguousarray(part).tobytes())
        return h.hexdigest()


def labelled_set(conn: psycopg.Connection, catalog: str, pid: int, *, exclude_catalog: str | None = None) -> LabelledSet:
    """giant_sample x reference_label(catalog) x usable features, ordered by source_id."""
    exclude = ("AND NOT EXISTS (SELECT 1 FROM xpdb.reference_label e WHERE e.catalog = %(exclude)s "
               "AND e.source_id = g.source_id)") if exclude_catalog else ""
    cur = conn.cursor(binary=True)
    cur.execute(f"""
        SELECT g.source_id, l.feh, g.bp_rp0, g.phot_g_mean_mag, f.flux, f.flux_error
        FROM xpdb.giant_sample AS g
        JOIN xpdb.reference_label AS l ON l.source_id = g.source_id AND l.catalog = %(catalog)s
        JOIN xpdb.xp_features AS f ON f.source_id = g.source_id AND f.preprocessing_id = %(pid)s
        WHERE l.feh IS NOT NULL AND f.flux IS NOT NULL {exclude}
        ORDER BY g.source_id""", {"catalog": catalog, "pid": pid, "exclude": exclude_catalog})
    rows = cur.fetchall()
    return LabelledSet(
        np.array([r[0] for r in rows], dtype=np.int64),
        decode_bytea([r[4] for r in rows], "<f4", N_PIXELS),
        decode_bytea([r[5] for r in rows], "<f4", N_PIXELS),
        np.array([r[1] for r in rows], dtype=float),
        np.array([r[2] for r in rows], dtype=float),
        np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=float),
    )


def _ensure_features(url: str, catalogs: list[str], preprocessing: Preprocessing) -> None:
    names = ", ".join("'" + c.replace("'", "''") + "'" for c in catalogs)
    compute_missing_features(url, preprocessing=preprocessing,
                             where=f"x.source_id IN (SELECT source_id FROM xpdb.reference_label "
                                   f"WHERE catalog IN ({names}))")


def _metrics(model, test: LabelledSet) -> dict:
    feh, err = predict(model, test.flux, test.flux_error)
    bright = test.g < TEST_G_MAX
    return {"g_lt_15": evaluate(feh[bright], err[bright], test.feh[bright], test.g[bright]),
            "all_g": evaluate(feh, err, test.feh, test.g)}


@dataclass
class TrainingOutcome:
    record: registry.ModelRecord
    metrics: dict


def train_uacsnet(url: str, *, labels: str, test_labels: str | None = None, name: str = "uacsnet",
                  config: UACSNetConfig | None = None, preprocessing: Preprocessing = Preprocessing(),
                  ablation: bool = True, on_epoch: Callable | None = None,
                  on_stage: Callable[[str], None] | None = None, reuse_existing: bool = False) -> TrainingOutcome:
    """Build the sets, train, evaluate (and the unweighted ablation), store the model; see module doc.

    With ``reuse_existing`` a stored version of ``name`` with the same hyperparameters, test
    catalogue and training-set hash is returned instead of training again.
    """
    from xpdb.models.backend import device

    config = config or UACSNetConfig()
    stage = on_stage or (lambda s: None)
    stage("features")
    _ensure_features(url, [labels] + ([test_labels] if test_labels else []), preprocessing)
    with psycopg.connect(url) as conn:
        for catalog in [labels] + ([test_labels] if test_labels else []):
            if not conn.execute("SELECT 1 FROM xpdb.reference_catalog WHERE name = %s", (catalog,)).fetchone():
                raise LookupError(f"no reference catalogue {catalog!r}; load it with `xpdb ingest labels --catalog`")
        pid = preprocessing_id(conn, preprocessing)
        conn.commit()
        training = labelled_set(conn, labels, pid)
        test = labelled_set(conn, test_labels, pid, exclude_catalog=labels) if test_labels else None
    if len(training) < 50:
        raise ValueError(f"only {len(training)} stars of {labels!r} pass giant_sample with usable features; "
                         "UA-CSNet needs at least 50")
    digest = training.digest(preprocessing.version)
    if reuse_existing:
        with psycopg.connect(url) as conn:
            for record in reversed(registry.list_models(conn)):
                if (record.name == name and record.training_set_hash == digest and record.test_catalog == test_labels
                        and record.hyperparameters == config.to_dict()):
                    return TrainingOutcome(record, record.metrics or {})
    stage("training")
    result = train(training.flux, training.flux_error, training.feh, training.bp_rp0, config, on_epoch=on_epoch)
    train_feh, train_err = predict(result.model, training.flux, training.flux_error)
    metrics: dict = {
        "training": {"catalog": labels, "n": len(training), "epochs_run": result.epochs_run,
                     "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                     "fit": evaluate(train_feh, train_err, training.feh, training.g)},
    }
    if test is not None and len(test):
        stage("evaluation")
        metrics["test"] = {"catalog": test_labels, "n": len(test), **_metrics(result.model, test)}
        if ablation:
            stage("ablation (cost weights off)")
            plain_config = UACSNetConfig.from_dict({**config.to_dict(), "cost_sensitive": False})
            plain = train(training.flux, training.flux_error, training.feh, training.bp_rp0, plain_config)
            plain_metrics = _metrics(plain.model, test)
            metrics["ablation_unweighted"] = {"epochs_run": plain.epochs_run, **plain_metrics}
            metrics["vmp_sigma"] = {
                "cost_sensitive": metrics["test"]["g_lt_15"]["vmp"]["sigma"],
                "unweighted": plain_metrics["g_lt_15"]["vmp"]["sigma"],
                "n": metrics["test"]["g_lt_15"]["vmp"]["n"],
            }
    stage("saving")
    with psycopg.connect(url) as conn:
        record = registry.save(
            conn, kind="uacsnet", name=name, hyperparameters=config.to_dict(), artifact=to_bytes(result.model),
            preprocessing_id=pid, metrics=metrics, training_catalog=labels, test_catalog=test_labels,
            training_set_hash=digest, n_train=len(training), device=device())
        conn.commit()
    return TrainingOutcome(record, metrics)
