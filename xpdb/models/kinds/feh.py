"""What every [Fe/H] model kind shares: inputs from the 60-pixel features (and optional
photometry), prediction flags, and the ``xpdb.prediction`` table (FEH, FEH_err, flags).

Subclasses implement ``fit`` (training on a ``Stars`` set), ``predict_feh`` and the
artifact round trip (``to_artifact`` / ``load``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from xpdb import selection
from xpdb.flags import UNUSABLE_FEATURES, FeatureFlag, PredictionFlag
from xpdb.models.datasets import Stars, photometry_for
from xpdb.models.kinds import ModelKind, OutputSpec
from xpdb.xp.features import Features, Preprocessing

PREDICTION = OutputSpec("xpdb.prediction", (("feh", "float4"), ("feh_err", "float4"), ("flags", "int4")))
BRIGHT_G = 15.0  # FEH_err is recommended for G < 15 (section 4.1)


@dataclass
class FeatureInputs:
    """A batch's model inputs: features, photometry and the prediction flags known before predicting."""

    source_id: np.ndarray
    features: Features
    photometry: np.ndarray
    flags: np.ndarray
    computed_features: int = 0


@dataclass
class Fitted:
    """A trained model: the predictor, its artifact bytes and what the registry records about it."""

    predictor: Any
    artifact: bytes
    hyperparameters: dict
    info: dict  # epochs run, validation loss, ... (stored with the metrics)


def preprocessing_of(conn: psycopg.Connection, record) -> Preprocessing:
    version = conn.execute("SELECT version FROM xpdb.preprocessing WHERE preprocessing_id = %s",
                           (record.preprocessing_id,)).fetchone()[0]
    return Preprocessing.from_version(version)


def prediction_flags(conn: psycopg.Connection, ids: np.ndarray, feature_flags: np.ndarray, *,
                     between: tuple[int, int] | None = None) -> np.ndarray:
    """``PredictionFlag`` bits from the selection cuts (in SQL) and the feature flags."""
    domain = selection.CUTS["colour_domain"].sql
    survey = selection.CUTS["survey_extinction"].sql
    giants = selection.get("giant_sample").where()
    where = "source_id BETWEEN %s AND %s" if between is not None else "source_id = ANY(%s)"
    args = (int(between[0]), int(between[1])) if between is not None else (ids.tolist(),)
    rows = conn.execute(f"""
        SELECT source_id, NOT coalesce({domain}, false), NOT coalesce(phot_g_mean_mag <= {BRIGHT_G}, false),
               NOT coalesce({survey}, true), NOT coalesce({giants}, false)
        FROM xpdb.source_photometry WHERE {where}""", args).fetchall()
    flags = np.full(len(ids), int(PredictionFlag.OUTSIDE_COLOUR | PredictionFlag.FAINT | PredictionFlag.NOT_GIANT),
                    dtype=np.int32)
    index = {int(s): i for i, s in enumerate(ids)}
    for sid, outside, faint, dusty, not_giant in rows:
        i = index.get(int(sid))
        if i is None:
            continue
        flags[i] = ((PredictionFlag.OUTSIDE_COLOUR if outside else 0) | (PredictionFlag.FAINT if faint else 0)
                    | (PredictionFlag.HIGH_EXTINCTION if dusty else 0) | (PredictionFlag.NOT_GIANT if not_giant else 0))
    flags[(feature_flags & FeatureFlag.MISSING_BAND) != 0] |= PredictionFlag.MISSING_BAND
    flags[(feature_flags & UNUSABLE_FEATURES) != 0] |= PredictionFlag.NO_FEATURES
    return flags


class FehKind(ModelKind):
    """Base of the kinds that predict [Fe/H] and its error from the features (see module doc)."""

    output = PREDICTION

    # -- to implement -------------------------------------------------------------------------------
    def fit(self, training: Stars, config: Any, *, on_epoch=None) -> Fitted:
        raise NotImplementedError

    def predict_feh(self, loaded: Any, flux: np.ndarray, flux_error: np.ndarray,
                    photometry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def default_config(self) -> Any:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------
    def inputs(self, conn: psycopg.Connection, record, source_ids: np.ndarray, *,
               between: tuple[int, int] | None = None) -> FeatureInputs:
        from xpdb.xp.store import features_for

        ids = np.asarray(source_ids, dtype=np.int64)
        feats, computed = features_for(conn, ids, record.preprocessing_id, preprocessing_of(conn, record),
                                       between=between)
        phot = photometry_for(conn, ids, record.hyperparameters.get("photometry", []), between=between)
        flags = prediction_flags(conn, ids, feats.flags, between=between)
        conn.commit()
        return FeatureInputs(ids, feats, phot, flags, computed)

    def predict(self, loaded: Any, inputs: FeatureInputs) -> dict[str, np.ndarray]:
        feh, feh_err = self.predict_stars(loaded, inputs.features.flux, inputs.features.flux_error,
                                          inputs.photometry)
        flags = inputs.flags.copy()
        flags[~np.isfinite(feh)] |= PredictionFlag.NO_FEATURES
        return {"feh": feh.astype(np.float32), "feh_err": feh_err.astype(np.float32), "flags": flags}

    def predict_stars(self, loaded: Any, flux: np.ndarray, flux_error: np.ndarray,
                      photometry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(FEH, FEH_err); NaN where an input is missing or not finite."""
        flux = np.asarray(flux, np.float32)
        flux_error = np.asarray(flux_error, np.float32)
        photometry = np.asarray(photometry, np.float32).reshape(len(flux), -1)
        ok = (np.isfinite(flux).all(axis=1) & np.isfinite(flux_error).all(axis=1) & (flux_error > 0).all(axis=1)
              & np.isfinite(photometry).all(axis=1))
        feh = np.full(len(flux), np.nan, np.float32)
        err = np.full(len(flux), np.nan, np.float32)
        if ok.any():
            f, e = self.predict_feh(loaded, flux[ok], flux_error[ok], photometry[ok])
            feh[ok], err[ok] = f, e
        return feh, err
