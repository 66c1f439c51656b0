"""The ``transformer`` kind: the foundation model (``xpdb.models.transformer``) in the registry,
the leased jobs and ``xpdb.label_prediction``; and ``label_xgboost``, its tree baseline.

Inputs for a batch of sources are their tokens (``xpdb.models.tokens``): the XP spectrum -
XP_CONTINUOUS calibrated onto the 343-sample grid where stored, else the stored sampled
spectrum - reduced to 55 values, G, BP-RP, J-H, J-K and E(B-V) from ``gaia_source``. The
catalogue predictions use all of them (every observed token; no labels).

Outputs go to ``xpdb.label_prediction``, keyed (model_id, source_id), in wide columns: teff,
logg, m_h, alpha_m, each with ``_err``, the number of tokens seen and flags. Wide rather
than one row per (model, source, quantity): the quantities are fixed by the vocabulary,
one row per star is what the catalogue view joins and what ADQL users filter on
(``WHERE teff < 5000 AND m_h < -1``), the table is four times smaller, and the leased
worker's write-back works unchanged.

Training (``train_from_database``) reads every star of a reference catalogue (APOGEE) with
an XP spectrum, on one side of the fixed split, and stores the model with its test
metrics: sigma of Teff, logg (stars with Teff < 7000 K), [M/H] and [alpha/M] (giants) from
several contexts (XP alone; XP with E(B-V) and G; every observation; the red half of the
spectrum with E(B-V) and G), predicted errors against residuals, and the chi-square of
spectra generated from the catalogue's labels against the observed ones.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from enum import IntFlag
from typing import Any

import numpy as np
import psycopg

from xpdb.models import tokens as tk
from xpdb.models.artifact import pack, unpack
from xpdb.models.kinds import ModelKind, OutputSpec

LABEL_PREDICTION = OutputSpec("xpdb.label_prediction", (
    ("teff", "float4"), ("teff_err", "float4"), ("logg", "float4"), ("logg_err", "float4"),
    ("m_h", "float4"), ("m_h_err", "float4"), ("alpha_m", "float4"), ("alpha_m_err", "float4"),
    ("n_tokens", "int2"), ("flags", "int4")))
OBSERVED = ("xp",) + tk.PHOTOMETRY_KINDS  # what inference perceives: every observation, no labels
RED_HALF = tuple(k for k, w in zip(tk.XP_KINDS, tk.XP_WAVELENGTHS) if w > 640.0)
CONTEXTS = {  # name -> kinds perceived, for the test metrics
    "xp": ("xp",),
    "xp_ebv_g": ("xp", "ebv", "g"),
    "observed": OBSERVED,
    "red_half_ebv_g": RED_HALF + ("ebv", "g"),
}
HOT_TEFF = 7000.0
GIANT_LOGG = 3.6
BP_RP0_DOMAIN = (0.7, 1.9)


class LabelFlag(IntFlag):
    """Bits of ``label_prediction.flags``."""

    NO_XP = 1  # no usable XP spectrum: predicted from photometry alone
    NO_EBV = 2  # no E(B-V) in gaia_source
    MISSING_PHOTOMETRY = 4  # G, BP-RP, J-H or J-K missing
    HOT = 8  # predicted Teff >= 7000 K: few training stars, not validated


# -- tokens from the database ---------------------------------------------------------------------
def spectra_for(conn: psycopg.Connection, ids: np.ndarray, *, between: tuple[int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(flux, flux_error) on ``tokens.XP_GRID`` for these sources, NaN rows where none is stored.

    XP_CONTINUOUS (calibrated as GaiaXPy does) where stored with both bands, else the sampled
    spectrum (the APOGEE library, XP_SAMPLED files) when it is on the same grid.
    """
    from xpdb.ingest.sampled import fetch_sampled
    from xpdb.ingest.xp import fetch_xp
    from xpdb.xp.calibrate import calibrate

    n = len(ids)
    flux = np.full((n, len(tk.XP_GRID)), np.nan)
    error = np.full((n, len(tk.XP_GRID)), np.nan)
    if n == 0:
        return flux, error
    batch = fetch_xp(conn, ids, between=between)
    both = batch.band_present("bp") & batch.band_present("rp")
    if both.any():
        spectra = calibrate(batch)
        flux[both], error[both] = spectra.flux[both], spectra.flux_error[both]
    lacking = ~np.isfinite(flux).all(axis=1)
    if lacking.any():
        stored = fetch_sampled(conn, ids[lacking], between=between)
        if stored.present.any() and np.array_equal(stored.wavelength, tk.XP_GRID):
            rows = np.flatnonzero(lacking)[stored.present]
            flux[rows], error[rows] = stored.flux[stored.present], stored.flux_error[stored.present]
    return flux, error


def labels_for(conn: psycopg.Connection, ids: np.ndarray, catalog: str) -> dict[str, np.ndarray]:
    """teff, logg, m_h (the catalogue's [Fe/H]), alpha_m and their errors, NaN where missing."""
    rows = conn.execute("""
        SELECT DISTINCT ON (source_id) source_id, teff, teff_err, logg, logg_err, feh, feh_err, alpha_m, alpha_m_err
        FROM xpdb.reference_label WHERE catalog = %s AND source_id = ANY(%s) ORDER BY source_id, label_id""",
                        (catalog, ids.tolist())).fetchall()
    names = ("teff", "teff_err", "logg", "logg_err", "m_h", "m_h_err", "alpha_m", "alpha_m_err")
    out = {name: np.full(len(ids), np.nan) for name in names}
    index = {int(s): i for i, s in enumerate(ids)}
    for r in rows:
        i = index[int(r[0])]
        for j, name in enumerate(names):
            out[name][i] = np.nan if r[j + 1] is None else float(r[j + 1])
    return out


def tokens_for(conn: psycopg.Connection, source_ids, *, labels: str | None = None,
               between: tuple[int, int] | None = None) -> tuple[tk.TokenTable, dict[str, np.ndarray]]:
    """(the sources' tokens, their G, E(B-V) and (BP-RP)0): spectra, photometry and (from the catalogue
    ``labels``, if given) labels."""
    from xpdb.xp.extinction import bp_rp0
    from xpdb.xp.store import source_columns

    ids = np.asarray(source_ids, dtype=np.int64)
    phot = source_columns(conn, ids, ("phot_g_mean_mag", "bp_rp", "j_m", "h_m", "ks_m", "ebv"), between=between)
    flux, error = spectra_for(conn, ids, between=between)
    table = tk.token_table(ids, flux=flux, flux_error=error, g=phot["phot_g_mean_mag"], bp_rp=phot["bp_rp"],
                           j=phot["j_m"], h=phot["h_m"], ks=phot["ks_m"], ebv=phot["ebv"],
                           labels=labels_for(conn, ids, labels) if labels else None)
    extra = {"g": phot["phot_g_mean_mag"], "ebv": phot["ebv"], "bp_rp0": bp_rp0(phot["bp_rp"], phot["ebv"])}
    return table, extra


def robust_sigma(x: np.ndarray) -> float | None:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else None


# -- the kinds ------------------------------------------------------------------------------------
@dataclass
class TokenInputs:
    """A batch's tokens for inference and what the flags need."""

    table: tk.TokenTable
    extra: dict


class _LabelKind(ModelKind):
    """What the transformer and its tree baseline share: inputs (tokens), output table, flags."""

    output = LABEL_PREDICTION
    default_selection = None  # every star of the catalogue, not only giants

    def inputs(self, conn: psycopg.Connection, record, source_ids: np.ndarray, *,
               between: tuple[int, int] | None = None) -> TokenInputs:
        table, extra = tokens_for(conn, source_ids, between=between)
        conn.commit()
        return TokenInputs(table, extra)

    def predict_labels(self, loaded: Any, table: tk.TokenTable, context) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def predict(self, loaded: Any, inputs: TokenInputs) -> dict[str, np.ndarray]:
        table = inputs.table.only(OBSERVED)
        out = self.predict_labels(loaded, table, OBSERVED)
        result: dict[str, np.ndarray] = {}
        for name in tk.LABEL_KINDS:
            result[name] = out[name][0].astype(np.float32)
            result[name + "_err"] = out[name][1].astype(np.float32)
        v = table.values
        has_xp = np.isfinite(v[:, : tk.N_XP]).all(axis=1)
        flags = np.where(has_xp, 0, int(LabelFlag.NO_XP))
        flags |= np.where(np.isfinite(table.column("ebv")), 0, int(LabelFlag.NO_EBV))
        phot = np.isfinite(v[:, tk.kind_ids(("g", "bp_rp", "j_h", "j_k"))]).all(axis=1)
        flags |= np.where(phot, 0, int(LabelFlag.MISSING_PHOTOMETRY))
        with np.errstate(invalid="ignore"):
            flags |= np.where(result["teff"] >= HOT_TEFF, int(LabelFlag.HOT), 0)
        result["n_tokens"] = np.isfinite(v).sum(axis=1).astype(np.int16)
        result["flags"] = flags.astype(np.int32)
        return result


class TransformerKind(_LabelKind):
    name = "transformer"
    description = ("transformer foundation model (Leung & Bovy 2024): any tokens in, Teff, logg, [M/H], "
                   "[alpha/M] (and spectra) out, with uncertainties")

    def default_config(self, size: str = "cpu"):
        """The CPU-sized network, or (``size="gpu"``) the authors' one."""
        from xpdb.errors import ConfigurationError
        from xpdb.models.transformer import TransformerConfig

        if size not in ("cpu", "gpu"):
            raise ConfigurationError(f"transformer size must be cpu or gpu, not {size!r}")
        return TransformerConfig.gpu() if size == "gpu" else TransformerConfig()

    def config_from(self, hyperparameters: dict):
        from xpdb.models.transformer import TransformerConfig

        return TransformerConfig.from_dict(hyperparameters)

    def load(self, record, artifact: bytes) -> Any:
        from xpdb.models.transformer import FoundationModel

        return FoundationModel.from_bytes(artifact)

    def fit(self, table: tk.TokenTable, config, *, on_epoch=None):
        from xpdb.models.transformer import train

        result = train(table, config, on_epoch=on_epoch)
        info = {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss, "n_parameters": result.model.n_parameters(),
                "history": result.history}
        return result.model, result.model.to_bytes(), config.to_dict(), info

    def predict_labels(self, loaded, table, context):
        return loaded.predict(table, list(tk.LABEL_KINDS), context=list(context),
                              batch_size=min(self.predict_batch, 65536))  # (rows, 64 tokens, d) activations

    def train_from_database(self, url: str, **options):
        return train_from_database(url, self, **options)


# -- the tree baseline: XGBoost per label on the same tokens --------------------------------------
@dataclass
class LabelXGBoostConfig:
    """Gradient-boosted trees per label (Andrae et al. 2023's method) on the transformer's tokens."""

    inputs: tuple[str, ...] = ("xp", "ebv", "g")  # token kinds used as features ('xp' = the 55 XP values)
    n_estimators: int = 1500
    max_depth: int = 6
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 100  # on the same validation stars as the transformer (training side)
    validation_fraction: float = 0.1
    seed: int = 42

    def to_dict(self) -> dict:
        d = asdict(self)
        d["inputs"] = list(self.inputs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LabelXGBoostConfig:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "inputs" in d:
            d["inputs"] = tuple(d["inputs"])
        return cls(**d)


_XGB_MAGIC = b"XPDBLXG1"


class LabelTrees:
    """One booster per label; the error of every prediction is the label's validation robust sigma."""

    def __init__(self, inputs: tuple[str, ...], boosters: dict, sigma: dict[str, float], best: dict[str, int]):
        self.inputs, self.boosters, self.sigma, self.best = inputs, boosters, sigma, best

    def design(self, table: tk.TokenTable) -> np.ndarray:
        return table.values[:, tk.kind_ids(self.inputs)]

    def predict(self, table: tk.TokenTable, requests, *, context=None) -> dict:
        import xgboost as xgb

        x = self.design(table if context is None else table.only(context))
        out = {}
        for name in requests:
            mean = self.boosters[name].predict(xgb.DMatrix(x, missing=np.nan), iteration_range=(0, self.best[name] + 1))
            out[name] = (mean.astype(float), np.full(len(x), self.sigma[name]))
        return out

    def to_bytes(self) -> bytes:
        header = {"inputs": list(self.inputs), "sigma": self.sigma, "best": self.best, "sizes": {}}
        parts = []
        for name in tk.LABEL_KINDS:
            raw = bytes(self.boosters[name].save_raw("ubj"))
            header["sizes"][name] = len(raw)
            parts.append(raw)
        return pack(_XGB_MAGIC, header, b"".join(parts))

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelTrees:
        import xgboost as xgb

        header, payload = unpack(data, _XGB_MAGIC, "label-trees")
        pos, boosters = 0, {}
        for name in tk.LABEL_KINDS:
            n = header["sizes"][name]
            booster = xgb.Booster()
            booster.load_model(bytearray(payload[pos:pos + n]))
            boosters[name] = booster
            pos += n
        return cls(tuple(header["inputs"]), boosters, header["sigma"], header["best"])


class LabelXGBoostKind(_LabelKind):
    name = "label_xgboost"
    description = "gradient-boosted trees per label (Teff, logg, [M/H], [alpha/M]) on the transformer's tokens"

    def default_config(self) -> LabelXGBoostConfig:
        return LabelXGBoostConfig()

    def config_from(self, hyperparameters: dict) -> LabelXGBoostConfig:
        return LabelXGBoostConfig.from_dict(hyperparameters)

    def load(self, record, artifact: bytes) -> Any:
        return LabelTrees.from_bytes(artifact)

    def fit(self, table: tk.TokenTable, config: LabelXGBoostConfig, *, on_epoch=None):
        import xgboost as xgb

        from xpdb.models.transformer import split_validation

        val = split_validation(len(table), config.validation_fraction)
        x = table.values[:, tk.kind_ids(config.inputs)]
        boosters, sigma, best = {}, {}, {}
        for i, name in enumerate(tk.LABEL_KINDS):
            y = table.column(name)
            fit_rows, val_rows = ~val & np.isfinite(y), val & np.isfinite(y)
            model = xgb.XGBRegressor(n_estimators=config.n_estimators, max_depth=config.max_depth,
                                     learning_rate=config.learning_rate, subsample=config.subsample,
                                     colsample_bytree=config.colsample_bytree, random_state=config.seed,
                                     early_stopping_rounds=config.early_stopping_rounds, tree_method="hist",
                                     n_jobs=2, missing=np.nan)
            model.fit(x[fit_rows], y[fit_rows], eval_set=[(x[val_rows], y[val_rows])], verbose=False)
            boosters[name] = model.get_booster()
            best[name] = int(model.best_iteration)
            sigma[name] = robust_sigma(model.predict(x[val_rows]) - y[val_rows])
            if on_epoch is not None:
                on_epoch(i + 1, {"label": name, "best_iteration": best[name]})
        trees = LabelTrees(tuple(config.inputs), boosters, sigma, best)
        info = {"best_iteration": best, "validation_sigma": sigma}
        return trees, trees.to_bytes(), {**config.to_dict(), "errors": "validation robust sigma per label"}, info

    def predict_labels(self, loaded: LabelTrees, table, context):
        return loaded.predict(table, tk.LABEL_KINDS)

    def train_from_database(self, url: str, **options):
        return train_from_database(url, self, **options)


# -- training from the database and the test metrics ----------------------------------------------
SPLITS = {
    "fixed": ("xpdb.split_of(l.source_id) = 'train'", "xpdb.split_of(l.source_id) = 'test'",
              "fixed: test = source_id % 5 = 0 or a cluster member"),
    "development": ("xpdb.split_of(l.source_id) = 'train' AND l.source_id % 5 <> 1",
                    "xpdb.split_of(l.source_id) = 'train' AND l.source_id % 5 = 1",
                    "development: the training side, scored on its source_id % 5 = 1 part "
                    "(for choices; the test side is not used)"),
}


@dataclass
class LabelledSet:
    table: tk.TokenTable
    extra: dict

    def __len__(self) -> int:
        return len(self.table)

    def digest(self) -> str:
        h = hashlib.sha256(b"tokens-v1")
        h.update(np.ascontiguousarray(self.table.source_id).tobytes())
        h.update(np.ascontiguousarray(np.nan_to_num(self.table.values, nan=-9e9)).astype(np.float32).tobytes())
        return h.hexdigest()


def labelled_set(url: str, *, labels: str, condition: str, selection: str | None = None,
                 chunk: int = 5000) -> LabelledSet:
    """Stars of catalogue ``labels`` with an XP spectrum meeting ``condition`` (on alias l), with tokens."""
    from xpdb.errors import CatalogNotFound
    from xpdb.selection import get as get_selection

    where = [condition]
    if selection:
        where.append(f"l.source_id IN (SELECT source_id FROM xpdb.{get_selection(selection).name})")
    with psycopg.connect(url) as conn:
        if not conn.execute("SELECT 1 FROM xpdb.reference_catalog WHERE name = %s", (labels,)).fetchone():
            known = [r[0] for r in conn.execute("SELECT name FROM xpdb.reference_catalog ORDER BY 1")]
            raise CatalogNotFound(f"no reference catalogue {labels!r} (known: {', '.join(known) or 'none'}); "
                                  "load the APOGEE library with xpdb.connect().ingest('apogee_library') "
                                  "(CLI: xpdb ingest apogee-library)")
        ids = np.array([r[0] for r in conn.execute(f"""
            SELECT DISTINCT l.source_id FROM xpdb.reference_label AS l
            JOIN xpdb.xp_sources AS x ON x.source_id = l.source_id
            WHERE l.catalog = %s AND {" AND ".join(where)} ORDER BY 1""", (labels,))], dtype=np.int64)
        tables, extras = [], []
        for i in range(0, len(ids), chunk):
            table, extra = tokens_for(conn, ids[i:i + chunk], labels=labels)
            tables.append(table)
            extras.append(extra)
    if not tables:
        empty = tk.TokenTable(ids, np.zeros((0, tk.N_KINDS)), np.zeros((0, tk.N_KINDS)))
        return LabelledSet(empty, {"g": np.zeros(0), "ebv": np.zeros(0), "bp_rp0": np.zeros(0)})
    table = tk.TokenTable(ids, np.concatenate([t.values for t in tables]), np.concatenate([t.errors for t in tables]))
    extra = {k: np.concatenate([e[k] for e in extras]) for k in extras[0]}
    return LabelledSet(table, extra)


def _scores(pred: np.ndarray, err: np.ndarray, ref: np.ndarray, ref_err: np.ndarray, mask: np.ndarray) -> dict:
    ok = mask & np.isfinite(pred) & np.isfinite(ref)
    d = pred[ok] - ref[ok]
    if not ok.any():
        return {"n": 0}
    sigma = robust_sigma(d)
    e = err[ok]
    total = np.sqrt(e ** 2 + np.nan_to_num(ref_err[ok]) ** 2)
    return {"n": int(ok.sum()), "bias": float(np.median(d)), "sigma": sigma, "std": float(np.std(d)),
            "median_error": float(np.median(e)),
            "error_ratio": float(np.median(e) / sigma) if sigma else None,
            "z_sigma": robust_sigma(d / total)}  # width of residual / sqrt(err^2 + reference err^2): 1 if calibrated


def scopes(test: LabelledSet) -> dict[str, np.ndarray]:
    """The star sets the metrics are quoted on (by the reference labels)."""
    teff, logg = test.table.column("teff"), test.table.column("logg")
    b = test.extra["bp_rp0"]
    with np.errstate(invalid="ignore"):
        cool = teff < HOT_TEFF
        giants = cool & (logg < GIANT_LOGG) & (b > BP_RP0_DOMAIN[0]) & (b < BP_RP0_DOMAIN[1])
    return {"teff_lt_7000": cool, "giants": giants}


def label_metrics(kind: _LabelKind, predictor, test: LabelledSet, contexts=CONTEXTS) -> dict:
    """Per context: sigma (1.4826 MAD) of each label's residual, bias, predicted errors against residuals.

    Teff and logg are scored over all stars with Teff < 7000 K, [M/H] and [alpha/M] over the
    giants (logg < 3.6 and 0.7 < (BP-RP)0 < 1.9, the ``spectroscopic_giants`` of UA-CSNet) and
    over all cool stars.
    """
    sets = scopes(test)
    out: dict = {}
    for name, context in contexts.items():
        table = test.table.only(context)
        pred = kind.predict_labels(predictor, table, context)
        block: dict = {}
        for label in tk.LABEL_KINDS:
            ref, ref_err = test.table.column(label), test.table.error(label)
            block[label] = {scope: _scores(pred[label][0], pred[label][1], ref, ref_err, mask)
                            for scope, mask in sets.items()}
        out[name] = block
    return out


def spectrum_chi2(model, test: LabelledSet, *, max_stars: int = 5000) -> dict:
    """Spectra generated from the catalogue labels (Teff, logg, [M/H], [alpha/M], E(B-V)) against the
    observed ones on the 343-sample grid: chi-square per degree of freedom with the observed
    and predicted variances, and the same with the observed errors alone, over cool stars."""
    from xpdb.models.transformer import FoundationModel

    if not isinstance(model, FoundationModel):
        return {}
    t = test.table
    teff = t.column("teff")
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero((teff < HOT_TEFF) & np.isfinite(t.values[:, : tk.N_XP]).all(axis=1)
                              & np.isfinite(t.column("m_h")) & np.isfinite(t.column("logg")))[:max_stars]
    if not len(rows):
        return {"n": 0}
    sub = t.subset(rows)
    g = test.extra["g"][rows]
    ebv = test.extra["ebv"][rows]
    alpha = sub.column("alpha_m")
    wl, gen, gen_err = model.generate(teff=sub.column("teff"), logg=sub.column("logg"), m_h=sub.column("m_h"),
                                      alpha_m=np.where(np.isfinite(alpha), alpha, np.nan), ebv=ebv, g=g)
    obs, obs_err = test.extra["flux"][rows], test.extra["flux_error"][rows]
    ok = np.isfinite(obs).all(axis=1) & np.isfinite(gen).all(axis=1)
    r = obs[ok] - gen[ok]
    chi2 = np.mean(r ** 2 / (obs_err[ok] ** 2 + gen_err[ok] ** 2), axis=1)
    chi2_obs = np.mean(r ** 2 / obs_err[ok] ** 2, axis=1)
    frac = np.median(np.abs(r) / np.abs(obs[ok]), axis=1)
    return {"n": int(ok.sum()), "median_chi2_dof": float(np.median(chi2)),
            "median_chi2_dof_observed_errors_only": float(np.median(chi2_obs)),
            "median_abs_fractional_residual": float(np.median(frac)),
            "p90_chi2_dof": float(np.percentile(chi2, 90))}


def attach_spectra(url: str, test: LabelledSet) -> None:
    """Put the observed spectra of the set (on XP_GRID) into ``test.extra`` for ``spectrum_chi2``."""
    fluxes, errors = [], []
    with psycopg.connect(url) as conn:
        for i in range(0, len(test), 5000):
            f, e = spectra_for(conn, test.table.source_id[i:i + 5000])
            fluxes.append(f)
            errors.append(e)
    test.extra["flux"] = np.concatenate(fluxes) if fluxes else np.zeros((0, len(tk.XP_GRID)))
    test.extra["flux_error"] = np.concatenate(errors) if errors else np.zeros((0, len(tk.XP_GRID)))


def giant_feh_metrics(kind: _LabelKind, predictor, test: LabelledSet) -> dict:
    """[M/H] on the giants in the shape of the [Fe/H] models' test metrics (``xpdb.models.evaluate``), so
    that ``xpdb models list`` and ``compare`` show it beside UA-CSNet's."""
    from xpdb.models.evaluate import evaluate

    giants = scopes(test)["giants"]
    sub = test.table.subset(giants)
    pred = kind.predict_labels(predictor, sub.only(OBSERVED), OBSERVED)["m_h"]
    g = test.extra["g"][giants]
    scores = evaluate(pred[0], pred[1], sub.column("m_h"), g)
    with np.errstate(invalid="ignore"):
        bright = g < 15.0
    return {"g_lt_15": evaluate(pred[0][bright], pred[1][bright], sub.column("m_h")[bright], g[bright]),
            "all_g": scores}


def train_from_database(url: str, kind: _LabelKind, *, labels: str = "APOGEE", split: str | None = "fixed",
                        selection: str | None = None, name: str | None = None, config: Any = None,
                        on_epoch=None, on_stage=None, reuse_existing: bool = False, test_labels: str | None = None,
                        **_ignored):
    """Train ``kind`` on one side of a split of catalogue ``labels``, score it on the other, store it."""
    from xpdb.errors import TrainingError
    from xpdb.models import registry
    from xpdb.models.backend import device
    from xpdb.models.training import MIN_TRAINING_STARS, TrainingOutcome

    if test_labels is not None:
        raise TrainingError(f"{kind.name} trains on a split of one catalogue (split='fixed'), not on a test catalogue")
    split = split or "fixed"
    if split not in SPLITS:
        raise TrainingError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    config = config if config is not None else kind.default_config()
    name = name or kind.name
    stage = on_stage or (lambda s: None)
    train_sql, test_sql, described = SPLITS[split]
    stage("tokens")
    training = labelled_set(url, labels=labels, condition=train_sql, selection=selection)
    if len(training) < MIN_TRAINING_STARS:
        raise TrainingError(f"only {len(training)} stars of {labels!r} have XP spectra on the training side; "
                            f"training needs at least {MIN_TRAINING_STARS}")
    digest = training.digest()
    if reuse_existing:
        with psycopg.connect(url) as conn:
            for record in reversed(registry.list_models(conn)):
                if (record.name == name and record.kind == kind.name and record.training_set_hash == digest
                        and (record.metrics or {}).get("split") == described
                        and {k: v for k, v in record.hyperparameters.items() if k != "errors"}
                        == config.to_dict()):
                    return TrainingOutcome(record, record.metrics or {})
    stage("training")
    t0, c0 = time.perf_counter(), time.process_time()
    predictor, artifact, hyperparameters, info = kind.fit(training.table, config, on_epoch=on_epoch)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    history = info.pop("history", None)
    metrics: dict = {"split": described, "selection": selection or "all stars of the catalogue with XP spectra",
                     "labels_note": "[M/H] is the catalogue's [Fe/H] (the APOGEE library has no separate [M/H])",
                     "training": {"catalog": labels, "n": len(training), "seconds": round(seconds, 1),
                                  "cpu_seconds": round(cpu, 1), **info}}
    if history:
        metrics["training"]["loss"] = [round(v, 5) for v in history.get("loss", [])]
        metrics["training"]["val_loss"] = [round(v, 5) for v in history.get("val_loss", [])]
    test = labelled_set(url, labels=labels, condition=test_sql, selection=selection)
    if len(test):
        stage("evaluation")
        attach_spectra(url, test)
        metrics["test"] = {"catalog": labels, "n": len(test), "set_hash": test.digest(),
                           "contexts": {k: list(v) if k != "red_half_ebv_g" else ["xp > 640 nm", "ebv", "g"]
                                        for k, v in CONTEXTS.items()},
                           "labels": label_metrics(kind, predictor, test),
                           **giant_feh_metrics(kind, predictor, test)}
        chi2 = spectrum_chi2(predictor, test)
        if chi2:
            metrics["test"]["generated_spectra"] = chi2
    stage("saving")
    with psycopg.connect(url) as conn:
        record = registry.save(conn, kind=kind.name, name=name, hyperparameters=hyperparameters, artifact=artifact,
                               preprocessing_id=None, metrics=metrics, training_catalog=labels, test_catalog=labels,
                               training_set_hash=digest, n_train=len(training), device=device())
        conn.commit()
    return TrainingOutcome(record, metrics)


KIND = TransformerKind()
KINDS = {"transformer": KIND, "label_xgboost": LabelXGBoostKind()}
