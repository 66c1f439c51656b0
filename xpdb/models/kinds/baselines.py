"""Plain baselines on UA-CSNet's own inputs: ridge regression and gradient-boosted trees.

A method is only worth its complexity if it beats these on the same stars. Both read
the same 60 feature fluxes (and the same photometric inputs, when the comparison asks
for them) and are trained on the same split; the trees are XGBoost, the method of
Andrae et al. (2023) for XP metallicities. Neither predicts a per-star uncertainty:
FEH_err is the robust sigma of the residuals on the internal validation hold-out,
the same for every star (stated in the hyperparameters).

Artifacts hold no pickles: the ridge model is an ``.npz`` of its scaling and
coefficients; the trees are XGBoost's own ``ubj`` model with the error in a header.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from xpdb.models.artifact import pack, unpack
from xpdb.models.config import Hyperparameters
from xpdb.models.datasets import Stars
from xpdb.models.kinds.feh import FehKind, Fitted
from xpdb.models.uacsnet import SPLIT_SEED, _split


def _design(flux: np.ndarray, photometry: np.ndarray) -> np.ndarray:
    """The regressors: the 60 feature fluxes and the photometric inputs."""
    return np.hstack([np.asarray(flux, np.float64), np.asarray(photometry, np.float64).reshape(len(flux), -1)])


def _robust_sigma(residual: np.ndarray) -> float:
    r = residual[np.isfinite(residual)]
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) if len(r) else float("nan")


@dataclass
class RidgeConfig(Hyperparameters):
    alphas: tuple[float, ...] = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0)  # chosen by CV on the training part
    validation_fraction: float = 0.15
    photometry: tuple[str, ...] = ()


@dataclass
class RidgeModel:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    sigma: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept, sigma=self.sigma)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> RidgeModel:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(z["mean"], z["scale"], z["coef"], float(z["intercept"]), float(z["sigma"]))


class RidgeKind(FehKind):
    name = "ridge"
    description = "ridge regression on the 60 feature fluxes (a linear baseline)"

    def default_config(self) -> RidgeConfig:
        return RidgeConfig()

    def config_from(self, hyperparameters: dict) -> RidgeConfig:
        return RidgeConfig.from_dict(hyperparameters)

    def fit(self, training: Stars, config: RidgeConfig, *, on_epoch=None) -> Fitted:
        from sklearn.linear_model import RidgeCV

        x = _design(training.flux, training.photometry)
        y = training.feh
        fit_rows, val_rows = _split(y, config.validation_fraction, SPLIT_SEED)
        mean, scale = x[fit_rows].mean(axis=0), x[fit_rows].std(axis=0)
        scale[scale == 0] = 1.0
        ridge = RidgeCV(alphas=config.alphas).fit((x[fit_rows] - mean) / scale, y[fit_rows])
        model = RidgeModel(mean, scale, ridge.coef_, float(ridge.intercept_), 0.0)
        model.sigma = _robust_sigma(model.predict(x[val_rows]) - y[val_rows])
        info = {"alpha": float(ridge.alpha_), "validation_sigma": model.sigma}
        return Fitted(model, model.to_bytes(), {**config.to_dict(), "feh_err": "validation robust sigma"}, info)

    def load(self, record, artifact: bytes) -> Any:
        return RidgeModel.from_bytes(artifact)

    def predict_feh(self, loaded: RidgeModel, flux, flux_error, photometry):
        feh = loaded.predict(_design(flux, photometry))
        return feh.astype(np.float32), np.full(len(feh), loaded.sigma, np.float32)


@dataclass
class XGBoostConfig(Hyperparameters):
    n_estimators: int = 1500
    max_depth: int = 6
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 100  # on the internal validation hold-out (never the test part)
    validation_fraction: float = 0.15
    seed: int = 42
    photometry: tuple[str, ...] = ()


_XGB_MAGIC = b"XPDBXGB1"


class XGBoostKind(FehKind):
    name = "xgboost"
    description = "gradient-boosted trees (XGBoost) on the 60 feature fluxes (the method of Andrae et al. 2023)"

    def default_config(self) -> XGBoostConfig:
        return XGBoostConfig()

    def config_from(self, hyperparameters: dict) -> XGBoostConfig:
        return XGBoostConfig.from_dict(hyperparameters)

    def fit(self, training: Stars, config: XGBoostConfig, *, on_epoch=None) -> Fitted:
        import xgboost as xgb

        x = _design(training.flux, training.photometry)
        y = training.feh
        fit_rows, val_rows = _split(y, config.validation_fraction, SPLIT_SEED)
        model = xgb.XGBRegressor(n_estimators=config.n_estimators, max_depth=config.max_depth,
                                 learning_rate=config.learning_rate, subsample=config.subsample,
                                 colsample_bytree=config.colsample_bytree, random_state=config.seed,
                                 early_stopping_rounds=config.early_stopping_rounds, tree_method="hist", n_jobs=2)
        model.fit(x[fit_rows], y[fit_rows], eval_set=[(x[val_rows], y[val_rows])], verbose=False)
        sigma = _robust_sigma(model.predict(x[val_rows]) - y[val_rows])
        booster = model.get_booster()
        artifact = pack(_XGB_MAGIC, {"sigma": sigma, "best_iteration": int(model.best_iteration)},
                        bytes(booster.save_raw("ubj")))
        info = {"best_iteration": int(model.best_iteration), "validation_sigma": sigma}
        return Fitted((booster, sigma, int(model.best_iteration)), artifact,
                      {**config.to_dict(), "feh_err": "validation robust sigma"}, info)

    def load(self, record, artifact: bytes) -> Any:
        import xgboost as xgb

        header, payload = unpack(artifact, _XGB_MAGIC, "XGBoost")
        booster = xgb.Booster()
        booster.load_model(bytearray(payload))
        return booster, float(header["sigma"]), int(header["best_iteration"])

    def predict_feh(self, loaded, flux, flux_error, photometry):
        import xgboost as xgb

        booster, sigma, best = loaded
        feh = booster.predict(xgb.DMatrix(_design(flux, photometry)), iteration_range=(0, best + 1))
        return feh.astype(np.float32), np.full(len(feh), sigma, np.float32)


KINDS = {"ridge": RidgeKind(), "xgboost": XGBoostKind()}
