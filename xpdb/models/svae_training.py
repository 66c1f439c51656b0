"""Training the scatter VAE and its PCA baseline from the database, with the fixed split.

Every star with a spectrum in the model's representation takes part (the sVAE needs no
labels): training = ``xpdb.split_of(source_id) = 'train'``, evaluation = ``'test'``
(``split="fixed"``); ``split="development"`` trains on the training side without its
``source_id % 5 = 1`` stars and evaluates on those, for choices (the test side is never
read). The sVAE and a PCA baseline with as many components as the latent has are fitted
on the same standardised inputs, evaluated on the same held-out stars and stored as two
models (``NAME`` of kind ``svae`` and ``NAME-pca`` of kind ``xp_pca``) whose metrics hold
both side by side:

* the fraction of normalised residuals beyond 5 (and 10) sigma, with the learned scatter
  added to the errors and with the errors alone (the seed's measure);
* median reduced chi-squares with and without the scatter;
* with a reference catalogue (``labels``, e.g. APOGEE), the k-nearest-neighbour prediction
  of Teff, log g and [Fe/H] from the latent: training-side latents with labels predict the
  held-out stars; bias and sigma of a Gaussian fit (as every model here), robust sigma, RMS.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg

from xpdb.errors import TrainingError
from xpdb.models import pca as pca_mod
from xpdb.models import registry
from xpdb.models import svae as svae_mod
from xpdb.models.spectra import Spectra, labels_of, read_spectra, sources_with

SPLITS = {"fixed": ("train", "test"), "development": ("dev_train", "dev")}
MIN_TRAINING_STARS = 50
KNN_LABELS = ("teff", "logg", "feh")
KNN_NEIGHBOURS = 10


@dataclass
class SVAEOutcome:
    record: registry.ModelRecord
    baseline: registry.ModelRecord | None
    metrics: dict


def residual_metrics(xs: np.ndarray, es: np.ndarray, outputs: dict) -> dict:
    """Fractions of |normalised residuals| beyond 5 and 10 sigma (with and without scatter), chi-square medians."""
    ok = np.isfinite(outputs["chi2_red"])
    r = (np.asarray(xs, float)[ok] - outputs["x_hat"][ok]).ravel()
    e = np.asarray(es, float)[ok].ravel()
    s = np.asarray(outputs["s_hat"], float)[ok].ravel()
    with_scatter = np.abs(r) / np.sqrt(e ** 2 + s ** 2 + svae_mod.VARIANCE_FLOOR)
    errors_only = np.abs(r) / e
    return {
        "n": int(ok.sum()),
        "frac_beyond_5sigma_scatter": float(np.mean(with_scatter > 5)) if len(r) else None,
        "frac_beyond_5sigma_errors": float(np.mean(errors_only > 5)) if len(r) else None,
        "frac_beyond_10sigma_scatter": float(np.mean(with_scatter > 10)) if len(r) else None,
        "frac_beyond_10sigma_errors": float(np.mean(errors_only > 10)) if len(r) else None,
        "median_chi2_red": float(np.median(outputs["chi2_red"][ok])) if ok.any() else None,
        "median_chi2_red_scatter": float(np.median(outputs["chi2_red_scatter"][ok])) if ok.any() else None,
        "median_scatter_over_error": float(np.median(s / e)) if len(r) else None,
    }


def knn_metrics(train_latent: np.ndarray, train_labels: dict[str, np.ndarray], test_latent: np.ndarray,
                test_labels: dict[str, np.ndarray], k: int = KNN_NEIGHBOURS) -> dict:
    """k-NN (Euclidean on the latent means, distance-weighted) prediction of each label; residual statistics."""
    from sklearn.neighbors import KNeighborsRegressor

    from xpdb.models.evaluate import gaussian_fit

    out = {"k": k}
    ok_test = np.isfinite(test_latent).all(axis=1)
    for name, y in train_labels.items():
        fit = np.isfinite(y) & np.isfinite(train_latent).all(axis=1)
        truth = test_labels[name]
        use = ok_test & np.isfinite(truth)
        if fit.sum() < k or not use.any():
            out[name] = {"n": int(use.sum())}
            continue
        knn = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(train_latent[fit], y[fit])
        delta = knn.predict(test_latent[use]) - truth[use]
        g = gaussian_fit(delta)
        out[name] = {"n": int(use.sum()), "bias": g["bias"], "sigma": g["sigma"], "method": g["method"],
                     "robust_sigma": g.get("robust_sigma"), "rms": float(np.sqrt(np.mean(delta ** 2)))}
    return out


def _digest(spectra: Spectra, config: dict) -> str:
    h = hashlib.sha256(repr(sorted(config.items())).encode())
    for part in (spectra.source_id, spectra.x.astype(np.float32), spectra.err.astype(np.float32)):
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def load_sets(url: str, representation: str, split: str, step: int) -> tuple[Spectra, Spectra]:
    """(training, evaluation) spectra of one split; only stars with usable inputs."""
    if split not in SPLITS:
        raise TrainingError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    fit_side, eval_side = SPLITS[split]
    with psycopg.connect(url) as conn:
        sets = []
        for side in (fit_side, eval_side):
            ids = sources_with(conn, representation, side)
            spectra = read_spectra(conn, representation, ids, step=step)
            sets.append(spectra.subset(spectra.usable))
    if len(sets[0]) < MIN_TRAINING_STARS:
        where = "xp_sampled" if representation == "sampled" else "xp_band (both bands)"
        raise TrainingError(f"only {len(sets[0])} training stars with a usable spectrum in {where} and a G flux; "
                            f"the sVAE needs at least {MIN_TRAINING_STARS} (ingest spectra first: xpdb ingest ...)")
    return sets[0], sets[1]


def train_svae(url: str, *, config: svae_mod.SVAEConfig | None = None, split: str = "fixed",
               labels: str | None = "APOGEE", name: str = "svae", baseline: bool = True,
               on_epoch: Callable | None = None, on_stage: Callable[[str], None] | None = None) -> SVAEOutcome:
    """Train, evaluate and store an sVAE (and its PCA baseline) from the spectra in the database.

    Examples
    --------
    >>> outcome = train_svae(url, config=SVAEConfig(epochs=200))            # doctest: +SKIP
    >>> outcome.metrics["evaluation"]["frac_beyond_5sigma_scatter"]          # doctest: +SKIP
    0.0004
    """
    from xpdb.models.backend import device

    config = config or svae_mod.SVAEConfig()
    stage = on_stage or (lambda s: None)
    stage("reading spectra")
    training, evaluation = load_sets(url, config.representation, split, config.sample_step)
    inputs = {"representation": config.representation, "n_pixels": int(training.x.shape[1]),
              "normalisation": "flux / G flux (catalogue phot_g_mean_mag; G synthesised from the coefficients "
                               "where the catalogue has none), standardised per pixel on the training stars"}
    if training.wavelength is not None:
        inputs["wavelength_nm"] = [float(w) for w in training.wavelength]
    with psycopg.connect(url) as conn:
        known = labels and conn.execute("SELECT 1 FROM xpdb.reference_catalog WHERE name = %s",
                                        (labels,)).fetchone()
        train_labels = labels_of(conn, labels, training.source_id, KNN_LABELS) if known else None
        eval_labels = labels_of(conn, labels, evaluation.source_id, KNN_LABELS) if known else None

    stage("training")
    result = svae_mod.train(training.x, training.err, config, inputs=inputs, on_epoch=on_epoch)
    model = result.model
    stage("evaluation")
    xs_train, es_train = model.standardiser.apply(training.x, training.err)
    xs_eval, es_eval = model.standardiser.apply(evaluation.x, evaluation.err)
    t0 = time.perf_counter()
    out_eval = svae_mod.evaluate_stars(model, xs_eval, es_eval)
    rate = len(evaluation) / max(time.perf_counter() - t0, 1e-9)
    out_train = svae_mod.evaluate_stars(model, xs_train, es_train)
    last = {key: values[-1] for key, values in result.history.items()}
    split_text = ("fixed: train = xpdb.split_of(source_id) = 'train', evaluation = 'test'" if split == "fixed" else
                  "development: the training side without source_id % 5 = 1, evaluated on those")
    metrics: dict = {
        "kind": "svae", "split": split_text, "representation": config.representation,
        "training": {"n": len(training), "seconds": round(result.seconds, 1), "epochs": result.epochs,
                     "loss": last.get("loss"), "nll": last.get("nll"), "kl": last.get("kl"),
                     "validation_loss": last.get("val_loss"), "device": device(),
                     "synthetic_g": int(training.synthetic_g.sum())},
        "evaluation": {**residual_metrics(xs_eval, es_eval, out_eval), "side": SPLITS[split][1],
                       "model_stars_per_s": round(rate)},
    }
    if train_labels is not None:
        metrics["knn"] = {"catalog": labels, **knn_metrics(out_train["mu"], train_labels, out_eval["mu"],
                                                             eval_labels)}
    pca_model = pca_metrics = None
    if baseline:
        stage("PCA baseline")
        pca_model = pca_mod.fit_pca(training.x, training.err, components=config.latent_dim,
                                    config={"representation": config.representation,
                                            "sample_step": config.sample_step}, inputs=inputs)
        p_eval = pca_mod.evaluate_stars(pca_model, *pca_model.standardiser.apply(evaluation.x, evaluation.err))
        pca_metrics = {"evaluation": residual_metrics(*pca_model.standardiser.apply(evaluation.x, evaluation.err),
                                                      p_eval)}
        if train_labels is not None:
            p_train = pca_mod.evaluate_stars(pca_model, *pca_model.standardiser.apply(training.x, training.err))
            pca_metrics["knn"] = {"catalog": labels, **knn_metrics(p_train["mu"], train_labels, p_eval["mu"],
                                                                     eval_labels)}
        metrics["baseline_pca"] = pca_metrics
    stage("saving")
    digest = _digest(training, config.to_dict())
    with psycopg.connect(url) as conn:
        common = dict(preprocessing_id=None, training_catalog=None, test_catalog=labels if train_labels else None,
                      training_set_hash=digest, n_train=len(training), device=device())
        base_record = None
        if pca_model is not None:
            base_record = registry.save(conn, kind="xp_pca", name=f"{name}-pca",
                                        hyperparameters={**pca_model.config, "baseline_of": name},
                                        artifact=pca_model.to_bytes(),
                                        metrics={"kind": "xp_pca", "split": split_text,
                                                 "representation": config.representation,
                                                 "training": {"n": len(training)}, **pca_metrics}, **common)
            metrics["baseline_model"] = base_record.ref
        record = registry.save(conn, kind="svae", name=name, hyperparameters=config.to_dict(),
                               artifact=svae_mod.to_bytes(model), metrics=metrics, **common)
        conn.commit()
    return SVAEOutcome(record, base_record, metrics)
