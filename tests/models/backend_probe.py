"""Train, save and predict every Keras model kind on one backend (run as a subprocess per backend).

    KERAS_BACKEND=jax python tests/models/backend_probe.py OUT [LOAD]

Writes ``OUT/<kind>.bin`` (the artifact, as the registry stores it), ``OUT/<kind>_own.npz``
(this backend's predictions of its own model and its training losses) and, with ``LOAD``
(the OUT of another backend's run), ``OUT/<kind>_loaded.npz``: this backend's predictions
of the other backend's artifact. ``OUT/backend.txt`` names the backend actually used.
Inputs are synthetic and seeded, the same in every run, so predictions can be compared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

KINDS = ("uacsnet", "svae", "transformer")


def uacsnet_data():
    rng = np.random.default_rng(7)
    n = 240
    feh = rng.uniform(-2.5, 0.4, n)
    base = np.linspace(0.5, 1.5, 60)
    flux = (base[None, :] * (1 + 0.05 * feh[:, None] * np.sin(np.arange(60) / 7.0)[None, :])
            + rng.normal(0, 0.01, (n, 60))).astype(np.float32)
    err = np.abs(rng.normal(0.01, 0.003, (n, 60))).astype(np.float32) + 1e-3
    bp_rp0 = rng.uniform(1.0, 2.0, n)
    return flux, err, feh, bp_rp0


def svae_data():
    rng = np.random.default_rng(8)
    n, d = 256, 20
    z = rng.normal(size=(n, 3))
    x = z @ rng.normal(size=(3, d)) + 0.05 * rng.normal(size=(n, d))
    return x, np.full((n, d), 0.05)


def transformer_table():
    from xpdb.models import tokens as tk

    rng = np.random.default_rng(9)
    n = 160
    flux = np.abs(1e-16 * (1 + 0.1 * rng.normal(size=(n, len(tk.XP_GRID)))))
    labels = {"teff": rng.uniform(4000, 5500, n), "teff_err": np.full(n, 50.0), "logg": rng.uniform(1, 3.5, n),
              "logg_err": np.full(n, 0.1), "m_h": rng.uniform(-2, 0.3, n), "m_h_err": np.full(n, 0.05),
              "alpha_m": rng.uniform(0, 0.3, n), "alpha_m_err": np.full(n, 0.03)}
    return tk.token_table(np.arange(n), flux=flux, flux_error=0.02 * flux, g=rng.uniform(10, 15, n),
                          bp_rp=rng.uniform(1, 2, n), j=rng.uniform(8, 12, n),
                          h=rng.uniform(7, 11, n), ks=rng.uniform(7, 11, n), ebv=rng.uniform(0, 0.1, n), labels=labels)


def train(kind: str) -> tuple[bytes, np.ndarray]:
    """A few training steps of a tiny ``kind`` model: (artifact bytes, training losses)."""
    if kind == "uacsnet":
        from xpdb.models import uacsnet as net

        flux, err, feh, bp_rp0 = uacsnet_data()
        config = net.UACSNetConfig(epochs=2, patience=2, passes_per_epoch=1, batch_size=64, members=2,
                                   calibrate_errors=True)
        result = net.train(flux, err, feh, bp_rp0, config)
        losses = [v for key, values in result.history.items() if key.endswith("_loss") for v in values]
        return net.to_bytes(result.model), np.array(losses)
    if kind == "svae":
        from xpdb.models import svae

        x, err = svae_data()
        result = svae.train(x, err, svae.SVAEConfig(epochs=2, batch_size=64, hidden=(16, 8), latent_dim=3))
        return svae.to_bytes(result.model), np.asarray(result.history["loss"])
    from xpdb.models import transformer as tfm

    config = tfm.TransformerConfig(d_model=16, encoder=((2, 32),), decoder=((2, 32),), head=(32,), batch_size=64,
                                   epochs=1)
    result = tfm.train(transformer_table(), config)
    return result.model.to_bytes(), np.asarray(result.history["loss"])


def predictions(kind: str, artifact: bytes) -> dict[str, np.ndarray]:
    """The loaded artifact's outputs on the kind's fixed inputs."""
    if kind == "uacsnet":
        from xpdb.models import uacsnet as net

        flux, err, _, _ = uacsnet_data()
        feh, feh_err = net.predict(net.from_bytes(artifact), flux, err)
        return {"feh": feh, "err": feh_err}
    if kind == "svae":
        from xpdb.models import svae

        x, err = svae_data()
        model = svae.from_bytes(artifact)
        xs, es = model.standardiser.apply(x, err)
        got = svae.evaluate_stars(model, xs, es)
        return {key: got[key] for key in ("mu", "log_var", "x_hat", "s_hat", "nll")}
    from xpdb.models import transformer as tfm

    got = tfm.FoundationModel.from_bytes(artifact).predict(transformer_table(), ["teff", "logg", "m_h"],
                                                         context=["xp", "g"])
    return {f"{name}_{part}": got[name][i] for name in got for i, part in enumerate(("mean", "sigma"))}


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    load = Path(argv[2]) if len(argv) > 2 else None
    out.mkdir(parents=True, exist_ok=True)
    from xpdb.models.backend import keras

    (out / "backend.txt").write_text(keras().backend.backend())
    for kind in KINDS:
        artifact, losses = train(kind)
        (out / f"{kind}.bin").write_bytes(artifact)
        np.savez(out / f"{kind}_own.npz", losses=losses, **predictions(kind, artifact))
        if load:
            np.savez(out / f"{kind}_loaded.npz", **predictions(kind, (load / f"{kind}.bin").read_bytes()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
