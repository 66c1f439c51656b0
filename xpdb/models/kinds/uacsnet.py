"""The ``uacsnet`` kind: UA-CSNet (``xpdb.models.uacsnet``) as a registry model kind.

The artifact is the ``.keras`` file (architecture, weights, input scaling); the
hyperparameters are the ``UACSNetConfig``. Besides the model's own test metrics, training
stores the unweighted ablation (cost weights off), the paper's test of cost-sensitivity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpdb.models import uacsnet as net
from xpdb.models.datasets import Stars
from xpdb.models.kinds.feh import FehKind, Fitted


class UACSNetKind(FehKind):
    name = "uacsnet"
    description = "UA-CSNet (Yang et al.): [Fe/H] and its uncertainty from the 60-pixel XP features"

    def default_config(self) -> net.UACSNetConfig:
        return net.UACSNetConfig()

    def config_from(self, hyperparameters: dict) -> net.UACSNetConfig:
        return net.UACSNetConfig.from_dict(hyperparameters)

    def fit(self, training: Stars, config: net.UACSNetConfig, *, on_epoch=None) -> Fitted:
        result = net.train(training.flux, training.flux_error, training.feh, training.bp_rp0, config,
                           photometry=training.photometry, on_epoch=on_epoch)
        info = {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss}
        return Fitted(result.model, net.to_bytes(result.model), config.to_dict(), info)

    def load(self, record, artifact: bytes) -> Any:
        return net.from_bytes(artifact)

    def predict_feh(self, loaded, flux, flux_error, photometry) -> tuple[np.ndarray, np.ndarray]:
        return net.predict(loaded, flux, flux_error, photometry, batch_size=self.predict_batch)

    def ablations(self, config: net.UACSNetConfig) -> dict[str, net.UACSNetConfig]:
        """Variants trained beside the model for the paper's comparison: cost weights off."""
        return {"unweighted": net.UACSNetConfig.from_dict({**config.to_dict(), "cost_sensitive": False})}


KIND = UACSNetKind()
