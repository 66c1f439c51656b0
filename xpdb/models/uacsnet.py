"""UA-CSNet: the uncertainty-aware cost-sensitive network of Yang et al. (section 3, Table 1).

Two branches (Table 1):

* [Fe/H] branch: the 60 feature fluxes -> FC 256 -> FC 64 -> FC 16 (the latent Z) ->
  FC 8 -> FC 1, the mean mu; ReLU on the hidden layers.
* uncertainty branch: the 60 feature errors -> FC 16 (M_e); concatenated with Z (32) ->
  FC 8 -> FC 1, made positive and floored at eps = 0.02 (eq. 7).

Loss (eq. 12): per-star cost c(x_i) times the Gaussian negative log-likelihood
``(y - mu)^2 / (2 sigma^2) + log sigma``, averaged over the batch (eq. 12 sums; the mean
only rescales the learning rate). Costs (eq. 11): ``c = (f / max f)^-gamma`` with f the
number of training stars in the star's cell of an M x N = 10 x 15 histogram over
((BP-RP)_0, [Fe/H]), gamma = 0.5. L2 = 1e-5 on every kernel, Adam with learning rate
1e-3, batch size 512.

Departures, stated:
* The floor is smooth, ``sigma = eps + softplus(s)``: eq. 7's ``max(eps, s^2)`` has no
  gradient wherever the floor is active (and at s = 0), which can freeze the uncertainty
  branch early in training; the smooth form has the same lower bound and keeps learning.
* Inputs are standardised by Normalization layers fitted on the training set and saved
  inside the model; the errors enter as ln(error), since they span decades.
* The paper trains 30,000 epochs on a GPU. The CPU-sized defaults train at most 3,000
  epochs with early stopping: 15 per cent of the training stars (every seventh in
  [Fe/H] order, so the rare metal-poor ones are represented; the same stars whatever the
  seed) are held out, training stops after 500 epochs without a better validation loss
  and the best weights are restored. All of it is configurable.
* Each pass over the training set sees the fluxes redrawn within half their errors
  (``x + 0.5 e N(0, 1)``): without it the uncertainty branch learns the training residuals
  of an overfitted mean and predicts errors several times too small for new stars.
* Optional, off by default (``linear_skip``): mu is a linear function of the standardised
  inputs plus the [Fe/H] branch, the linear part started at the ridge regression of the fit
  rows and the branch's last layer at zero, so training begins at the linear fit and the
  network learns what that fit leaves. With ~1,000 training stars (the synthetic sky's
  PASTEL-like set) single networks scatter widely around the ridge baseline's sigma; the
  skip narrows that ("trainable": both parts train; "frozen": only the branch).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xpdb.models.backend import keras, seed_everything
from xpdb.models.config import Hyperparameters

N_FEATURES = 60
SPLIT_SEED = 20240601


@dataclass
class UACSNetConfig(Hyperparameters):
    """Every hyperparameter; the defaults are the paper's except epochs/patience (CPU-sized)."""

    hidden: tuple[int, ...] = (256, 64, 16, 8)  # [Fe/H] branch; hidden[2] is Z
    error_hidden: int = 16
    combined_hidden: int = 8
    epsilon: float = 0.02
    gamma: float = 0.5
    bins: tuple[int, int] = (10, 15)  # M in (BP-RP)_0, N in [Fe/H]
    l2: float = 1e-5
    learning_rate: float = 1e-3
    batch_size: int = 512
    epochs: int = 3000
    patience: int = 500
    validation_fraction: float = 0.15
    cost_sensitive: bool = True
    noise_augmentation: bool = True
    noise_scale: float = 0.5
    fainter: float = 1.0  # > 1: each pass shows every star as if up to this many times noisier (see _dataset)
    learning_rate_decay: bool = False
    passes_per_epoch: int = 10
    seed: int = 42
    photometry: tuple[str, ...] = ()  # extra inputs beside the features (xpdb.models.datasets.PHOTOMETRY)
    members: int = 1  # an ensemble of this many networks (seeds seed, seed+1, ...), averaged
    ensemble_error: str = "mixture"  # the ensemble's sigma: "mixture" or "ambiguity" (see _train_ensemble)
    calibrate_errors: bool = False  # rescale sigma to unit-width normalised residuals on the validation hold-out
    error_temper: float = 1.0  # with calibrate_errors: sigma -> m (sigma / m)^p before the rescaling (see calibrated)
    linear_skip: str = "off"  # "trainable" / "frozen": mu = ridge fit of the inputs + the [Fe/H] branch (see build_model)



def cost_weights(bp_rp0: np.ndarray, feh: np.ndarray, bins: tuple[int, int] = (10, 15),
                 gamma: float = 0.5) -> np.ndarray:
    """Eq. 11: c(x_i) = (f_n(x_i) / max f_n)^-gamma on an M x N histogram over ((BP-RP)_0, [Fe/H])."""
    bp_rp0 = np.asarray(bp_rp0, float)
    feh = np.asarray(feh, float)
    counts, xe, ye = np.histogram2d(bp_rp0, feh, bins=bins)
    ix = np.clip(np.searchsorted(xe, bp_rp0, side="right") - 1, 0, bins[0] - 1)
    iy = np.clip(np.searchsorted(ye, feh, side="right") - 1, 0, bins[1] - 1)
    f = counts[ix, iy]
    return (f / counts.max()) ** (-gamma)


def _register():
    k = keras()

    @k.saving.register_keras_serializable(package="xpdb")
    class FlooredSigma(k.layers.Layer):
        """sigma = eps + softplus(s): positive, floored at eps (eq. 7, smooth form)."""

        def __init__(self, epsilon: float = 0.02, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = float(epsilon)

        def call(self, s):
            return self.epsilon + k.ops.softplus(s)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    @k.saving.register_keras_serializable(package="xpdb")
    class Log(k.layers.Layer):
        """Natural logarithm of the feature errors (they span decades)."""

        def call(self, x):
            return k.ops.log(x)

    @k.saving.register_keras_serializable(package="xpdb")
    class EnsembleMixture(k.layers.Layer):
        """[mean mu_i, sqrt(mean sigma_i^2 + var mu_i)] of the members' [mu, sigma] outputs."""

        def call(self, outputs):
            stacked = k.ops.stack(outputs, axis=0)  # (members, batch, 2)
            mu, sigma = stacked[..., 0], stacked[..., 1]
            mean = k.ops.mean(mu, axis=0)
            var = k.ops.mean(k.ops.square(sigma), axis=0) + k.ops.var(mu, axis=0)
            return k.ops.stack([mean, k.ops.sqrt(var)], axis=-1)

    @k.saving.register_keras_serializable(package="xpdb")
    class EnsembleAmbiguity(k.layers.Layer):
        """[mean mu_i, sqrt(max(mean sigma_i^2 - var mu_i, eps^2))]: the error of the members' mean.

        Krogh & Vedelsby's (1995) ambiguity decomposition: the squared error of an averaged
        ensemble is the members' mean squared error less their spread about the mean, so
        with members whose sigma_i describe their own errors, the mean's error is smaller
        than theirs by the spread (never below the floor eps).
        """

        def __init__(self, epsilon: float = 0.02, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = float(epsilon)

        def call(self, outputs):
            stacked = k.ops.stack(outputs, axis=0)
            mu, sigma = stacked[..., 0], stacked[..., 1]
            mean = k.ops.mean(mu, axis=0)
            var = k.ops.maximum(k.ops.mean(k.ops.square(sigma), axis=0) - k.ops.var(mu, axis=0), self.epsilon ** 2)
            return k.ops.stack([mean, k.ops.sqrt(var)], axis=-1)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    @k.saving.register_keras_serializable(package="xpdb")
    class SigmaScale(k.layers.Layer):
        """[mu, sigma] -> [mu, scale * m (sigma / m)^power]: the error calibration measured on the validation
        hold-out (``power`` 1: a plain rescaling; m the hold-out's median sigma)."""

        def __init__(self, scale: float = 1.0, power: float = 1.0, reference: float = 1.0, **kwargs):
            super().__init__(**kwargs)
            self.scale, self.power, self.reference = float(scale), float(power), float(reference)

        def call(self, out):
            sigma = out[:, 1]
            if self.power != 1.0:
                sigma = self.reference * k.ops.power(sigma / self.reference, self.power)
            return k.ops.stack([out[:, 0], sigma * self.scale], axis=-1)

        def get_config(self):
            return {**super().get_config(), "scale": self.scale, "power": self.power, "reference": self.reference}

    @k.saving.register_keras_serializable(package="xpdb")
    def gaussian_nll(y_true, y_pred):
        """Eq. 10 per star: (y - mu)^2 / (2 sigma^2) + log sigma; y_pred = [mu, sigma]."""
        mu, sigma = y_pred[:, 0], y_pred[:, 1]
        y = k.ops.reshape(y_true, (-1,))
        return k.ops.square(y - mu) / (2.0 * k.ops.square(sigma)) + k.ops.log(sigma)

    return FlooredSigma, Log, EnsembleMixture, EnsembleAmbiguity, SigmaScale, gaussian_nll


_CUSTOM = None


def custom_objects() -> dict:
    global _CUSTOM
    if _CUSTOM is None:
        floored, log, ensemble, ambiguity, scale, nll = _register()
        _CUSTOM = {"FlooredSigma": floored, "Log": log, "EnsembleMixture": ensemble, "EnsembleAmbiguity": ambiguity,
                   "SigmaScale": scale,
                   "gaussian_nll": nll}
    return _CUSTOM


def build_model(config: UACSNetConfig, flux: np.ndarray | None = None, flux_error: np.ndarray | None = None,
                photometry: np.ndarray | None = None):
    """The two-branch network of Table 1 (Normalization layers adapted when data are given).

    With ``config.photometry`` the standardised photometric inputs join the features at
    the input of the [Fe/H] branch (a departure from the paper; see ``xpdb.models.datasets``).
    """
    k = keras()
    objects = custom_objects()
    reg = k.regularizers.L2(config.l2)
    x_in = k.Input(shape=(N_FEATURES,), name="flux")
    e_in = k.Input(shape=(N_FEATURES,), name="flux_error")
    inputs = [x_in, e_in]
    x_norm = k.layers.Normalization(name="flux_scaling")
    e_norm = k.layers.Normalization(name="error_scaling")
    if flux is not None:
        x_norm.adapt(np.asarray(flux, np.float32))
        e_norm.adapt(np.log(np.asarray(flux_error, np.float32)))
    h = x_norm(x_in)
    if config.linear_skip not in ("off", "trainable", "frozen"):
        raise ValueError(f"linear_skip must be 'off', 'trainable' or 'frozen', not {config.linear_skip!r}")
    if config.photometry:
        p_in = k.Input(shape=(len(config.photometry),), name="photometry")
        inputs.append(p_in)
        p_norm = k.layers.Normalization(name="photometry_scaling")
        if photometry is not None:
            p_norm.adapt(np.asarray(photometry, np.float32))
        h = k.layers.Concatenate(name="flux_and_photometry")([h, p_norm(p_in)])
    scaled_inputs = h
    z = None
    for i, units in enumerate(config.hidden):
        h = k.layers.Dense(units, activation="relu", kernel_regularizer=reg, name=f"fc{i + 1}")(h)
        if i == 2:
            z = h  # the latent Z (16)
    skip = config.linear_skip != "off"
    mu = k.layers.Dense(1, kernel_regularizer=reg, name=f"fc{len(config.hidden) + 1}_mu",
                        kernel_initializer="zeros" if skip else "glorot_uniform")(h)
    if skip:
        linear = k.layers.Dense(1, name="linear_mu", trainable=config.linear_skip == "trainable")(scaled_inputs)
        mu = k.layers.Add(name="mu")([linear, mu])
    log_err = objects["Log"](name="log_error")(e_in)
    m_e = k.layers.Dense(config.error_hidden, activation="relu", kernel_regularizer=reg, name="fc1_err")(
        e_norm(log_err))
    merged = k.layers.Concatenate(name="concat")([z, m_e])
    s = k.layers.Dense(config.combined_hidden, activation="relu", kernel_regularizer=reg, name="fc2_err")(merged)
    s = k.layers.Dense(1, kernel_regularizer=reg, name="fc3_err")(s)
    sigma = objects["FlooredSigma"](config.epsilon, name="sigma")(s)
    out = k.layers.Concatenate(name="mu_sigma")([mu, sigma])
    model = k.Model(inputs=inputs, outputs=out, name="uacsnet")
    model.compile(optimizer=k.optimizers.Adam(config.learning_rate), loss=objects["gaussian_nll"])
    return model


@dataclass
class TrainResult:
    model: object
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    history: dict


def _split(feh: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation split stratified in [Fe/H]: every round(1/fraction)-th star in [Fe/H] order (every seventh for 15 per cent)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(feh + rng.uniform(0, 1e-6, len(feh)))
    step = max(2, int(round(1 / fraction))) if fraction > 0 else 0
    val = np.zeros(len(feh), dtype=bool)
    if step:
        offset = rng.integers(0, step)
        val[order[offset::step]] = True
    return ~val, val


def _dataset(inputs: tuple[np.ndarray, ...], y, w, config: UACSNetConfig):
    """Shuffled batches, ``passes_per_epoch`` passes per Keras epoch; with ``noise_augmentation``
    every pass sees the fluxes redrawn within their errors (x + noise_scale * N(0, 1) * error).

    With ``fainter`` = m_max > 1 every pass also shows each star as a fainter one would look:
    its errors multiplied by m, log-uniform in [1, m_max], and the flux given the extra noise
    that makes its total noise m times the original (x + sqrt(noise_scale^2 + m^2 - 1) e N(0, 1),
    with the error input m e). The training stars of the paper are brighter than the stars
    the model is applied to; this teaches the uncertainty branch how larger input errors
    turn into larger residuals, and the [Fe/H] branch to be robust to them.
    Backend-agnostic (``xpdb.models.data``): the same batches on TensorFlow, JAX and torch."""
    from xpdb.models.data import passes

    return passes(inputs, (y, w), batch_size=config.batch_size, passes_per_epoch=max(1, config.passes_per_epoch),
                  seed=config.seed, noise_scale=float(config.noise_scale) if config.noise_augmentation else None,
                  fainter=float(config.fainter))


def train(flux: np.ndarray, flux_error: np.ndarray, feh: np.ndarray, bp_rp0: np.ndarray,
          config: UACSNetConfig, *, photometry: np.ndarray | None = None, verbose: int = 0,
          on_epoch=None) -> TrainResult:
    """Fit UA-CSNet on the training stars; early stopping on a held-out split.

    ``config.epochs`` and ``config.patience`` count passes over the training set (the
    paper's epochs); Keras runs them ``passes_per_epoch`` at a time, because with ~1,000
    stars (two batches) per pass the per-epoch bookkeeping would otherwise dominate. With
    ``config.members`` > 1 the members are trained one after the other and combined.
    """
    if config.members > 1:
        return _train_ensemble(flux, flux_error, feh, bp_rp0, config, photometry=photometry, verbose=verbose,
                               on_epoch=on_epoch)
    k = keras()
    seed_everything(config.seed)
    flux = np.asarray(flux, np.float32)
    flux_error = np.asarray(flux_error, np.float32)
    phot = np.asarray(photometry, np.float32).reshape(len(flux), -1) if config.photometry else None
    y = np.asarray(feh, np.float32)
    weights = (cost_weights(bp_rp0, feh, config.bins, config.gamma) if config.cost_sensitive
               else np.ones(len(y))).astype(np.float32)
    # The split depends on the data only, not on the seed: seeds change the network, not its training set.
    fit_rows, val_rows = _split(np.asarray(feh, float), config.validation_fraction, SPLIT_SEED)

    def pick(rows):
        return (flux[rows], flux_error[rows]) + ((phot[rows],) if phot is not None else ())

    model = build_model(config, flux[fit_rows], flux_error[fit_rows], None if phot is None else phot[fit_rows])
    if config.linear_skip != "off":
        _start_from_ridge(model, pick(fit_rows), y[fit_rows])
    group = max(1, config.passes_per_epoch)
    if config.learning_rate_decay:
        steps = max(1, config.epochs * -(-int(fit_rows.sum()) // config.batch_size))
        schedule = k.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.01)
        model.compile(optimizer=k.optimizers.Adam(schedule), loss=custom_objects()["gaussian_nll"])
    callbacks = []
    validation = None
    if val_rows.any():
        validation = (list(pick(val_rows)), y[val_rows], weights[val_rows])
        callbacks.append(k.callbacks.EarlyStopping(monitor="val_loss", patience=max(1, config.patience // group),
                                                   restore_best_weights=True))
    if on_epoch is not None:
        callbacks.append(k.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(min(config.epochs, (epoch + 1) * group), logs)))
    data = _dataset(pick(fit_rows), y[fit_rows], weights[fit_rows], config)
    history = model.fit(data, validation_data=validation, epochs=max(1, -(-config.epochs // group)),
                        verbose=verbose, callbacks=callbacks, shuffle=False)  # the dataset shuffles itself
    hist = {key: [float(v) for v in values] for key, values in history.history.items()}
    val = hist.get("val_loss", hist["loss"])
    best = int(np.argmin(val))
    if config.calibrate_errors and val_rows.any():
        model = calibrated(model, list(pick(val_rows)), y[val_rows], config)
    return TrainResult(model, len(hist["loss"]) * group, (best + 1) * group, float(val[best]), hist)


def _start_from_ridge(model, inputs: tuple[np.ndarray, ...], y: np.ndarray) -> None:
    """Set the linear skip to a ridge regression of [Fe/H] on the standardised inputs of the fit rows
    (alpha by leave-one-out CV, as the ridge baseline), so the [Fe/H] branch learns what a linear
    fit leaves over; the validation hold-out is not used."""
    from sklearn.linear_model import RidgeCV

    from xpdb.models.kinds.baselines import RidgeConfig

    k = keras()
    scaled = [model.get_layer("flux_scaling")(inputs[0])]
    if len(inputs) > 2:
        scaled.append(model.get_layer("photometry_scaling")(inputs[2]))
    x = np.concatenate([k.ops.convert_to_numpy(part) for part in scaled], axis=1).astype(np.float64)
    ridge = RidgeCV(alphas=RidgeConfig().alphas).fit(x, np.asarray(y, np.float64))
    model.get_layer("linear_mu").set_weights([ridge.coef_.reshape(-1, 1).astype(np.float32),
                                              np.array([ridge.intercept_], np.float32)])


def calibrated(model, val_inputs: list[np.ndarray], y_val: np.ndarray, config: UACSNetConfig):
    """``model`` with sigma rescaled so that (y - mu) / sigma on the validation hold-out has unit robust width.

    With ``config.error_temper`` = p < 1 the network's sigma is first drawn towards the hold-out's
    median m, sigma -> m (sigma / m)^p (half-way in log for p = 0.5), then rescaled: trained on
    about a thousand stars, the network's star-to-star differences in sigma are wider than the
    residuals' (the maximum-likelihood p on the development skies' hold-outs is 0.64-0.93).
    The hold-out is part of the training stars (never the test part). A departure from the
    paper, where sigma comes straight from the network.
    """
    k = keras()
    out = _forward(model, val_inputs, 32768)
    power = float(config.error_temper)
    sigma = out[:, 1]
    reference = float(np.nanmedian(sigma)) if power != 1.0 and np.isfinite(sigma).any() else 1.0
    if power != 1.0:
        sigma = reference * (sigma / reference) ** power
    z = (y_val - out[:, 0]) / sigma
    z = z[np.isfinite(z)]
    scale = float(1.4826 * np.median(np.abs(z - np.median(z)))) if len(z) else 1.0
    inputs = [k.Input(shape=tuple(t.shape[1:]), name=t.name) for t in model.inputs]
    model.name = "uncalibrated"
    layer = custom_objects()["SigmaScale"](scale, power, reference, name="error_calibration")
    wrapped = k.Model(inputs=inputs, outputs=layer(model(inputs)), name="uacsnet_calibrated")
    wrapped.compile(optimizer=k.optimizers.Adam(config.learning_rate), loss=custom_objects()["gaussian_nll"])
    return wrapped


def _train_ensemble(flux, flux_error, feh, bp_rp0, config: UACSNetConfig, *, photometry, verbose,
                    on_epoch) -> TrainResult:
    """Train ``config.members`` networks (seeds seed, seed+1, ...) and combine them into one model.

    The ensemble's mean is the members' mean. Its sigma, with ``ensemble_error = "mixture"``,
    adds their spread to their mean variance: sigma^2 = mean(sigma_i^2) + var(mu_i) (a mixture of
    the members' Gaussians, the predictive spread of any one member); with ``"ambiguity"`` it is
    the error of the averaged prediction, sigma^2 = mean(sigma_i^2) - var(mu_i) (the ambiguity
    decomposition of Krogh & Vedelsby 1995), which is what the mean's residuals show.
    """
    from dataclasses import replace

    k = keras()
    members = []
    for i in range(config.members):
        member = replace(config, members=1, seed=config.seed + i, calibrate_errors=False)
        progress = None if on_epoch is None else (lambda epoch, logs, i=i: on_epoch(i * config.epochs + epoch, logs))
        members.append(train(flux, flux_error, feh, bp_rp0, member, photometry=photometry, verbose=verbose,
                             on_epoch=progress))
    inputs = [k.Input(shape=tuple(t.shape[1:]), name=t.name) for t in members[0].model.inputs]
    outputs = []
    for i, result in enumerate(members):
        result.model.name = f"member_{i}"
        outputs.append(result.model(inputs))
    if config.ensemble_error == "ambiguity":
        combined = custom_objects()["EnsembleAmbiguity"](config.epsilon, name="ensemble")(outputs)
    elif config.ensemble_error == "mixture":
        combined = custom_objects()["EnsembleMixture"](name="ensemble")(outputs)
    else:
        raise ValueError(f"ensemble_error must be 'mixture' or 'ambiguity', not {config.ensemble_error!r}")
    model = k.Model(inputs=inputs, outputs=combined, name="uacsnet_ensemble")
    model.compile(optimizer=k.optimizers.Adam(config.learning_rate), loss=custom_objects()["gaussian_nll"])
    if config.calibrate_errors:
        fit_rows, val_rows = _split(np.asarray(feh, float), config.validation_fraction, SPLIT_SEED)
        phot = [np.asarray(photometry, np.float32)[val_rows]] if config.photometry else []
        model = calibrated(model, [np.asarray(flux, np.float32)[val_rows], np.asarray(flux_error, np.float32)[val_rows],
                                   *phot], np.asarray(feh, np.float32)[val_rows], config)
    history = {f"member_{i}_{key}": values for i, r in enumerate(members) for key, values in r.history.items()}
    return TrainResult(model, sum(r.epochs_run for r in members), members[0].best_epoch,
                       float(np.mean([r.best_val_loss for r in members])), history)


def predict(model, flux: np.ndarray, flux_error: np.ndarray, photometry: np.ndarray | None = None,
            batch_size: int = 32768) -> tuple[np.ndarray, np.ndarray]:
    """(FEH, FEH_err) for feature arrays; rows with non-finite inputs give NaN."""
    flux = np.asarray(flux, np.float32)
    flux_error = np.asarray(flux_error, np.float32)
    uses_photometry = len(model.inputs) > 2
    phot = np.asarray(photometry, np.float32).reshape(len(flux), -1) if uses_photometry else None
    ok = np.isfinite(flux).all(axis=1) & np.isfinite(flux_error).all(axis=1) & (flux_error > 0).all(axis=1)
    if phot is not None:
        ok &= np.isfinite(phot).all(axis=1)
    feh = np.full(len(flux), np.nan, np.float32)
    err = np.full(len(flux), np.nan, np.float32)
    if ok.any():
        parts = [flux[ok], flux_error[ok]] + ([phot[ok]] if phot is not None else [])
        out = _forward(model, parts, batch_size)
        feh[ok], err[ok] = out[:, 0], out[:, 1]
    return feh, err


def _forward(model, parts: list[np.ndarray], batch_size: int) -> np.ndarray:
    """The model's (n, 2) output in chunks of ``batch_size``, as NumPy whatever the backend and device.

    Eager calls in fixed chunks: no retracing for every new batch length.
    """
    ops = keras().ops
    return np.concatenate([ops.convert_to_numpy(model([p[i:i + batch_size] for p in parts], training=False))
                           for i in range(0, len(parts[0]), batch_size)])


def to_bytes(model) -> bytes:
    """The model as ``.keras`` bytes (architecture, weights, normalisation state)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def from_bytes(data: bytes):
    """A model back from ``.keras`` bytes."""
    k = keras()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(data)
        with warnings.catch_warnings():  # the optimizer is not restored (compile=False): its state is moot
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            # an ensemble's members keep the compile settings of the backend that trained them (XLA on
            # JAX); the model is compiled again below for this backend, so the note is moot too
            warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")
            model = k.models.load_model(path, custom_objects=custom_objects(), compile=False)
    model.compile(optimizer=k.optimizers.Adam(), loss=custom_objects()["gaussian_nll"])
    return model


def describe(model) -> str:
    """Layer names and output sizes, one per line (for `xpdb models show`)."""
    lines = []
    for layer in model.layers:
        shape = layer.output.shape if hasattr(layer, "output") else "?"
        lines.append(f"{layer.name:<16s} {shape}")
    return "\n".join(lines)


def config_json(config: UACSNetConfig) -> str:
    return json.dumps(config.to_dict())
