"""The transformer foundation model for stars of Leung & Bovy (2024, MNRAS 527, 1494), in Keras 3.

One network takes any subset of a star's observations as tokens and answers any requested
quantity with an uncertainty: XP spectrum -> Teff, logg, [M/H], [alpha/M]; labels -> XP
spectrum; part of a spectrum -> the rest. The vocabulary is ``xpdb.models.tokens``.
Following the authors' code (``stellarperceptron``):

* **embedding** (their ``NonLinearEmbedding``): a context token of kind x and standardised
  value v becomes ``gelu(w_x v + b_x)`` (exact GELU, applied after the bias as in their
  code); the request for kind x is the bare ``w_x``. Row 0 (padding) is zero and masked.
* **encoder**: post-LayerNorm blocks of multi-head self-attention and a GELU feed-forward
  layer over the context tokens, padding masked out of every attention; no positional
  encoding (a star is a set). A learned null token joins every context (the role of their
  ``add_bias_kv``), so an empty context is defined and padding never receives weight.
* **decoder**: blocks of cross-attention only, the request as query and the encoder output
  as keys and values (same mask), then an MLP head giving the mean and ln(variance), both
  in standardised units.
* **loss**: the Gaussian negative log-likelihood with total variance ``exp(s) + e^2``,
  ``e`` the requested value's measurement error (their ``robust_mean_squared_error``);
  ln(variance) is clipped to [-10, 10] for float32 on CPU. The predicted sigma is
  ``sqrt(exp(s))``, the model's own scatter.
* **training**: each star's context is a random subset of its tokens, redrawn every epoch,
  and a random request.

Departures, each for a CPU budget of tens of minutes on 40k stars instead of the authors'
4096 GPU epochs on 400k:

* **several requests per star and step**: every non-XP kind the star has plus
  ``xp_requests`` random XP values. The decoder has no self-attention, so each request is
  decoded exactly as it would be alone; the encoder's work is shared. The loss is the mean
  over a star's requests.
* **a mixture of random subsets** (``mix``): the authors' uniform one (a shuffled star cut
  to a random length between 5 and 64 tokens), "observations" (XP values and photometry,
  each photometric token kept with probability ``keep``, with probability ``gap`` a
  contiguous run of 20-60 per cent of the XP values left out) and "labels" (the labels and
  photometry, each kept with probability ``keep``). All three are random subsets of a
  star's tokens; the mixture makes the tasks the service asks for (spectrum to labels,
  labels to spectrum, partial spectra) frequent enough to be learnt in a few dozen epochs.
* **decorrelated XP tokens** (``tokens.Standardiser``): the 55 XP values are the sampled
  spectrum reduced, not the authors' basis-function coefficients, and neighbouring values
  are almost collinear; after per-kind standardisation each half of the spectrum (<= and
  > 640 nm) is rotated onto its principal components (fitted on the training stars), each
  standardised, and those are the XP tokens the network sees. On the validation tenth,
  after 2 epochs, this took [M/H] on the giants from 0.47 dex (their spread: nothing
  learnt) to 0.33 dex and [alpha/M] from 0.10 to 0.07 dex, where a different loss
  weighting, no copy requests, no dropout, a higher learning rate or squashed outliers
  changed nothing. ``decorrelate_xp=False`` restores the raw values.
* AdamW with a cosine schedule after a linear warm-up and global-norm clipping at 1, and
  the epoch with the lowest validation loss kept (the validation stars are part of the
  training side; nothing is chosen on test stars).

Two documented sizes: ``TransformerConfig()`` (CPU: d = 64, 2 encoder and 2 decoder blocks
of 4 heads, about 0.3M parameters) and ``TransformerConfig.gpu()`` (the authors' network:
d = 128, 2 + 3 blocks, a 3096-1548-774-387 head, about 8.8M parameters).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from xpdb.models import tokens as tk
from xpdb.models.artifact import pack, unpack
from xpdb.models.backend import keras, seed_everything

SPLIT_SEED = 20240601
_MAGIC = b"XPDBTFM1"
NON_XP = np.arange(tk.N_XP, tk.N_KINDS)  # columns of photometry and labels
IS_PHOT = np.zeros(tk.N_KINDS, bool)
IS_PHOT[tk.kind_ids(tk.PHOTOMETRY_KINDS)] = True
IS_LABEL = np.zeros(tk.N_KINDS, bool)
IS_LABEL[tk.kind_ids(tk.LABEL_KINDS)] = True
IS_XP = np.zeros(tk.N_KINDS, bool)
IS_XP[: tk.N_XP] = True


@dataclass
class TransformerConfig:
    """Every hyperparameter. The defaults are the CPU size; ``TransformerConfig.gpu()`` the authors'."""

    d_model: int = 64
    encoder: tuple[tuple[int, int], ...] = ((4, 128), (4, 128))  # (heads, feed-forward width) per block
    decoder: tuple[tuple[int, int], ...] = ((4, 128), (4, 128))
    head: tuple[int, ...] = (256, 128, 64)
    dropout: float = 0.1
    logvar_clip: float = 10.0
    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-6
    warmup_epochs: float = 1.0
    weight_decay: float = 0.01
    clipnorm: float = 1.0
    xp_requests: int = 8
    mix: tuple[float, float, float] = (0.35, 0.45, 0.2)  # random subsets, observations, labels
    keep: float = 0.5  # probability of keeping each photometric (and, in "labels", label) token
    gap: float = 0.3  # probability of a contiguous run of XP values left out of an "observations" context
    decorrelate_xp: bool = True  # XP tokens as each half's standardised principal components (tokens.Standardiser)
    validation_fraction: float = 0.1
    seed: int = 42
    size: str = "cpu"

    @classmethod
    def gpu(cls, **overrides) -> TransformerConfig:
        """The authors' network (d = 128; encoder 16/1024 and 8/512; decoder 16/3096, 8/1548, 4/774;
        head 3096-1548-774-387), for a GPU: batch 1024, lr 1e-4 as theirs, 400 epochs."""
        base = dict(d_model=128, encoder=((16, 1024), (8, 512)), decoder=((16, 3096), (8, 1548), (4, 774)),
                    head=(3096, 1548, 774, 387), batch_size=1024, learning_rate=1e-4, min_learning_rate=1e-10,
                    epochs=400, warmup_epochs=2.0, size="gpu")
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["encoder"] = [list(b) for b in self.encoder]
        d["decoder"] = [list(b) for b in self.decoder]
        d["head"], d["mix"] = list(self.head), list(self.mix)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if d.get("size") == "gpu":
            base = cls.gpu()
            d = {**{k: getattr(base, k) for k in ("d_model", "encoder", "decoder", "head")}, **d}
        for key in ("encoder", "decoder"):
            if key in d:
                d[key] = tuple(tuple(int(x) for x in b) for b in d[key])
        for key in ("head", "mix"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


# -- the network ----------------------------------------------------------------------------------
def _gelu(x):
    return keras().activations.gelu(x, approximate=False)


def _build_classes():
    k = keras()
    ops = k.ops

    class NonLinearEmbedding(k.layers.Layer):
        """Context tokens: gelu(w_x v + b_x); requests: w_x. Row 0 is padding (zeroed, masked)."""

        def __init__(self, n_kinds: int, d_model: int, **kwargs):
            super().__init__(**kwargs)
            self.n_kinds, self.d_model = n_kinds, d_model
            self.embeddings = self.add_weight(shape=(n_kinds + 1, d_model), initializer="glorot_uniform",
                                              name="embeddings")
            self.bias = self.add_weight(shape=(n_kinds + 1, d_model), initializer="glorot_uniform", name="bias")

        def build(self, input_shape=None):
            self.built = True

        def context(self, tokens, values):
            keep = ops.expand_dims(ops.cast(ops.not_equal(tokens, 0), self.compute_dtype), -1)
            w = ops.take(self.embeddings, tokens, axis=0)
            b = ops.take(self.bias, tokens, axis=0)
            return _gelu(w * ops.expand_dims(values, -1) + b) * keep

        def request(self, tokens):
            keep = ops.expand_dims(ops.cast(ops.not_equal(tokens, 0), self.compute_dtype), -1)
            return ops.take(self.embeddings, tokens, axis=0) * keep

    class Block(k.layers.Layer):
        """Post-LN attention block: x = LN(q + drop(attn(q, kv))); LN(x + drop(ffn(x)))."""

        def __init__(self, d_model: int, heads: int, width: int, dropout: float, **kwargs):
            super().__init__(**kwargs)
            self.attention = k.layers.MultiHeadAttention(heads, key_dim=max(1, d_model // heads), dropout=dropout)
            self.norm_1 = k.layers.LayerNormalization(epsilon=1e-5)
            self.norm_2 = k.layers.LayerNormalization(epsilon=1e-5)
            self.dense_1 = k.layers.Dense(width, activation=_gelu)
            self.dense_2 = k.layers.Dense(d_model)
            self.drop_1 = k.layers.Dropout(dropout)
            self.drop_2 = k.layers.Dropout(dropout)

        def build(self, *shapes):
            self.built = True  # the sub-layers build on first call

        def call(self, q, kv, mask, training=False):
            a = self.attention(q, kv, kv, attention_mask=mask, training=training)
            x = self.norm_1(q + self.drop_1(a, training=training))
            y = self.dense_2(self.dense_1(x))
            return self.norm_2(x + self.drop_2(y, training=training))

    class StellarTransformer(k.Model):
        """Inputs {values (B, L) float, tokens (B, L) int, requests (B, Q) int} -> (B, Q, 2): mean, ln var."""

        def __init__(self, config: TransformerConfig, **kwargs):
            super().__init__(**kwargs)
            self.config = config
            d = config.d_model
            self.embedding = NonLinearEmbedding(tk.N_KINDS, d, name="embedding")
            self.null = self.add_weight(shape=(1, 1, d), initializer=k.initializers.RandomNormal(stddev=0.02),
                                        name="null_token")
            self.encoder_blocks = [Block(d, h, w, config.dropout, name=f"encoder_{i}")
                                   for i, (h, w) in enumerate(config.encoder)]
            self.decoder_blocks = [Block(d, h, w, config.dropout, name=f"decoder_{i}")
                                   for i, (h, w) in enumerate(config.decoder)]
            self.head_layers = [k.layers.Dense(u, activation=_gelu, name=f"head_{i}") for i, u in enumerate(config.head)]
            self.head_drops = [k.layers.Dropout(config.dropout) for _ in config.head]
            self.mean_out = k.layers.Dense(1, name="mean")
            self.logvar_out = k.layers.Dense(1, name="logvar")

        def build(self, input_shape=None):
            self.built = True  # the sub-layers build on first call (``build_network`` makes one)

        def perceive(self, values, tokens, training=False):
            """(perception (B, L+1, d), key mask (B, L+1)): the encoded context with the null token first."""
            x = self.embedding.context(tokens, values)
            batch = ops.shape(x)[0]
            x = ops.concatenate([ops.broadcast_to(self.null, (batch, 1, self.config.d_model)), x], axis=1)
            keys = ops.concatenate([ops.ones((batch, 1), dtype="bool"), ops.not_equal(tokens, 0)], axis=1)
            mask = ops.broadcast_to(ops.expand_dims(keys, 1), (batch, ops.shape(keys)[1], ops.shape(keys)[1]))
            for block in self.encoder_blocks:
                x = block(x, x, mask, training=training)
            return x, keys

        def request(self, requests, perception, keys, training=False):
            """(B, Q, 2): mean and clipped ln(variance) of each requested kind, decoded independently."""
            q = self.embedding.request(requests)
            mask = ops.broadcast_to(ops.expand_dims(keys, 1), (ops.shape(q)[0], ops.shape(q)[1], ops.shape(keys)[1]))
            for block in self.decoder_blocks:
                q = block(q, perception, mask, training=training)
            h = q
            for dense, drop in zip(self.head_layers, self.head_drops):
                h = drop(dense(h), training=training)
            clip = self.config.logvar_clip
            return ops.concatenate([self.mean_out(h), ops.clip(self.logvar_out(h), -clip, clip)], axis=-1)

        def call(self, inputs, training=False):
            perception, keys = self.perceive(inputs["values"], inputs["tokens"], training=training)
            return self.request(inputs["requests"], perception, keys, training=training)

    return StellarTransformer


_NETWORK = None


def build_network(config: TransformerConfig):
    """The Keras network for ``config``, built (weights created) on a dummy batch."""
    global _NETWORK
    if _NETWORK is None:
        _NETWORK = _build_classes()
    net = _NETWORK(config, name="stellar_transformer")
    net(_dummy(2, 3), training=False)
    return net


def _dummy(batch: int, q: int) -> dict:
    return {"values": np.zeros((batch, tk.N_KINDS), np.float32), "tokens": np.zeros((batch, tk.N_KINDS), np.int32),
            "requests": np.ones((batch, q), np.int32)}


def gaussian_nll(y_true, y_pred):
    """Per star: the mean over its requests of 0.5 [(y - mu)^2 / (exp(s) + e^2) + ln(exp(s) + e^2)].

    ``y_true`` (B, Q, 3) holds target, its standardised error and the request's weight (0:
    no request); ``y_pred`` (B, Q, 2) mean and ln variance.
    """
    ops = keras().ops
    y, err, w = y_true[..., 0], y_true[..., 1], y_true[..., 2]
    mu, s = y_pred[..., 0], y_pred[..., 1]
    var = ops.exp(s) + ops.square(err)
    nll = 0.5 * (ops.square(y - mu) / var + ops.log(var))
    return ops.sum(w * nll, axis=-1) / ops.maximum(ops.sum(w, axis=-1), 1.0)


def gaussian_nll_numpy(y, err, mu, s, w=None) -> float:
    """``gaussian_nll`` in NumPy, averaged over stars (for tests and diagnostics)."""
    var = np.exp(s) + err ** 2
    nll = 0.5 * ((y - mu) ** 2 / var + np.log(var))
    w = np.ones_like(y) if w is None else w
    return float(np.mean((w * nll).sum(axis=-1) / np.maximum(w.sum(axis=-1), 1.0)))


# -- what the network sees: contexts and requests ---------------------------------------------------
@dataclass
class Batch:
    """Network inputs and loss targets for a set of stars (one task each)."""

    values: np.ndarray  # (n, 64) float32, 0 where padded
    tokens: np.ndarray  # (n, 64) int32, kind id or 0
    requests: np.ndarray  # (n, Q) int32, kind id or 0
    targets: np.ndarray  # (n, Q, 3) float32: value, error, weight

    def inputs(self, rows=slice(None), length: int | None = None) -> dict:
        """The network's inputs for ``rows``, contexts cut to ``length`` tokens (after ``compact``)."""
        cut = slice(None) if length is None else slice(0, length)
        return {"values": self.values[rows, cut], "tokens": self.tokens[rows, cut], "requests": self.requests[rows]}


BUCKETS = (16, 32, 48, 64)  # context lengths the training batches are cut to


def compact(batch: Batch) -> Batch:
    """The same tasks with each star's context tokens moved to the front (order is meaningless:
    there is no positional encoding), so that a batch can be cut to its longest context."""
    order = np.argsort(batch.tokens == 0, axis=1, kind="stable")
    rows = np.arange(len(order))[:, None]
    return Batch(batch.values[rows, order], batch.tokens[rows, order], batch.requests, batch.targets)


def bucketed_steps(batch: Batch, batch_size: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Shuffled (rows, context length) steps: stars grouped by the shortest of ``BUCKETS`` that holds
    their context. Padding is masked, so cutting it changes no result, only the cost."""
    n_ctx = (batch.tokens != 0).sum(axis=1)
    which = np.searchsorted(np.asarray(BUCKETS), n_ctx)
    steps = []
    for b, length in enumerate(BUCKETS):
        rows = rng.permutation(np.flatnonzero(which == b))
        steps += [(rows[i:i + batch_size], length) for i in range(0, len(rows), batch_size)]
    order = rng.permutation(len(steps))
    return [steps[i] for i in order]


def sample_tasks(values: np.ndarray, errors: np.ndarray, config: TransformerConfig,
                 rng: np.random.Generator) -> Batch:
    """One random context and set of requests per star (see the module docstring).

    ``values`` and ``errors`` are standardised (n, 64) arrays, NaN where missing.
    """
    n, width = values.shape
    valid = np.isfinite(values)
    mode = rng.choice(3, size=n, p=np.asarray(config.mix, float) / np.sum(config.mix))
    context = np.zeros_like(valid)
    # 1. the authors' random subset: shuffle the star's tokens, keep the first 64 - pad (pad in 0..59)
    keys = np.where(valid, rng.random((n, width)), 2.0)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    keep_n = np.minimum(valid.sum(axis=1), width - rng.integers(0, width - 4, size=n))
    random_ctx = rank < keep_n[:, None]
    # 2. observations: XP values and photometry (each kept with `keep`), sometimes a contiguous XP gap
    observed = valid & (IS_XP | (IS_PHOT & (rng.random((n, width)) < config.keep)))
    gap = rng.random(n) < config.gap
    length = rng.integers(int(0.2 * tk.N_XP), int(0.6 * tk.N_XP) + 1, size=n)
    start = rng.integers(0, tk.N_XP - length + 1)
    col = np.arange(width)
    in_gap = gap[:, None] & (col >= start[:, None]) & (col < (start + length)[:, None]) & IS_XP
    observed &= ~in_gap
    # 3. labels: labels and photometry, each kept with `keep`
    labelled = valid & (IS_LABEL | IS_PHOT) & (rng.random((n, width)) < config.keep)
    for m, ctx in enumerate((random_ctx, observed, labelled)):
        context[mode == m] = ctx[mode == m]
    # requests: every non-XP kind the star has, and xp_requests random XP values it has
    xp_keys = np.where(valid[:, : tk.N_XP], rng.random((n, tk.N_XP)), 2.0)
    r = min(config.xp_requests, tk.N_XP)
    xp_cols = np.argsort(xp_keys, axis=1)[:, :r] if r else np.zeros((n, 0), np.int64)
    req_cols = np.concatenate([np.broadcast_to(NON_XP, (n, len(NON_XP))), xp_cols], axis=1)
    return _batch(values, errors, context, req_cols)


def _batch(values: np.ndarray, errors: np.ndarray, context: np.ndarray, req_cols: np.ndarray) -> Batch:
    n, width = values.shape
    rows = np.arange(n)[:, None]
    req_valid = np.isfinite(values[rows, req_cols])
    tok = np.where(context, np.arange(1, width + 1)[None, :], 0).astype(np.int32)
    val = np.where(context, np.nan_to_num(values), 0.0).astype(np.float32)
    target = np.stack([np.nan_to_num(values[rows, req_cols]), np.nan_to_num(errors[rows, req_cols]),
                       req_valid.astype(float)], axis=-1).astype(np.float32)
    requests = np.where(req_valid, req_cols + 1, 0).astype(np.int32)
    return Batch(val, tok, requests, target)


def context_batch(values: np.ndarray, context_cols: np.ndarray, request_cols: np.ndarray) -> Batch:
    """Inputs for inference: every present value among ``context_cols``, requests ``request_cols``."""
    n, width = values.shape
    allowed = np.zeros(width, bool)
    allowed[context_cols] = True
    context = np.isfinite(values) & allowed
    req = np.broadcast_to(np.asarray(request_cols, np.int64), (n, len(request_cols)))
    batch = _batch(values, np.zeros_like(values), context, req)
    batch.requests = np.broadcast_to((np.asarray(request_cols) + 1).astype(np.int32), req.shape).copy()
    return batch


# -- training -------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    model: FoundationModel
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    history: dict = field(default_factory=dict)


def split_validation(n: int, fraction: float) -> np.ndarray:
    """Validation rows of the training stars (a fixed random ``fraction``, the same for every seed)."""
    return np.random.default_rng(SPLIT_SEED).random(n) < fraction


def train(table: tk.TokenTable, config: TransformerConfig, *, on_epoch: Callable | None = None,
          verbose: int = 0) -> TrainResult:
    """Fit the network on the training stars' tokens (physical values, NaN where missing).

    ``config.validation_fraction`` of the stars are held out to choose the epoch (lowest
    validation loss on a fixed draw of tasks); their tokens are never trained on.
    """
    k = keras()
    seed_everything(config.seed)
    t0 = time.perf_counter()
    val_rows = split_validation(len(table), config.validation_fraction)
    fit_rows = ~val_rows
    standardiser = tk.Standardiser.fit(table.values[fit_rows], decorrelate=config.decorrelate_xp)
    values, errors = standardiser.forward(table.values, np.nan_to_num(table.errors, nan=0.0))
    net = build_network(config)
    steps = max(1, -(-int(fit_rows.sum()) // config.batch_size) + len(BUCKETS) - 1)
    warmup = int(round(config.warmup_epochs * steps))
    total = max(warmup + 1, config.epochs * steps)
    schedule = k.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 1e-2 if warmup else config.learning_rate,
        decay_steps=total - warmup, alpha=config.min_learning_rate / config.learning_rate,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)
    net.compile(optimizer=k.optimizers.AdamW(schedule, weight_decay=config.weight_decay,
                                             global_clipnorm=config.clipnorm),
                loss=gaussian_nll, jit_compile=k.backend.backend() == "jax")  # XLA per bucket only pays on JAX
    rng = np.random.default_rng(config.seed)
    validation = (sample_tasks(values[val_rows], errors[val_rows], config, np.random.default_rng(SPLIT_SEED))
                  if val_rows.any() else None)
    history: dict[str, list[float]] = {"loss": [], "val_loss": []}
    best, best_epoch, best_weights = np.inf, 0, None
    for epoch in range(config.epochs):
        batch = compact(sample_tasks(values[fit_rows], errors[fit_rows], config, rng))
        total_loss, seen = 0.0, 0
        for rows, length in bucketed_steps(batch, config.batch_size, rng):
            inputs, targets, weight = _padded_step(batch, rows, length, config.batch_size)
            loss = net.train_on_batch(inputs, targets, sample_weight=weight)
            total_loss += float(np.asarray(loss).reshape(-1)[0]) * len(rows)
            seen += len(rows)
        history["loss"].append(total_loss / max(seen, 1))
        logs = {"loss": history["loss"][-1]}
        if validation is not None:
            val = float(net.evaluate(validation.inputs(), validation.targets, batch_size=4096, verbose=0))
            history["val_loss"].append(val)
            logs["val_loss"] = val
            if val < best:
                best, best_epoch, best_weights = val, epoch + 1, [w.copy() for w in net.get_weights()]
        if on_epoch is not None:
            on_epoch(epoch + 1, logs)
    if best_weights is not None:
        net.set_weights(best_weights)
    else:
        best, best_epoch = history["loss"][-1], config.epochs
    model = FoundationModel(net, standardiser, config)
    return TrainResult(model, config.epochs, best_epoch, float(best), time.perf_counter() - t0, history)


def _padded_step(batch: Batch, rows: np.ndarray, length: int, size: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """One step's inputs padded to ``size`` rows (empty contexts, no requests) and its sample weights.

    Every step then has one of ``len(BUCKETS)`` shapes, so a compiling backend (XLA on JAX)
    compiles four train steps, not one per batch length. The weights (``size / n`` on the
    ``n`` real rows, 0 on the padding) make Keras's mean over ``size`` rows the mean over the
    real ones: the loss and its gradient are those of the unpadded batch.
    """
    inputs, targets = batch.inputs(rows, length), batch.targets[rows]
    n = len(rows)
    weight = np.zeros(size, np.float32)
    weight[:n] = size / n
    if n < size:
        inputs = {key: np.concatenate([v, np.zeros((size - n,) + v.shape[1:], v.dtype)]) for key, v in inputs.items()}
        targets = np.concatenate([targets, np.zeros((size - n,) + targets.shape[1:], targets.dtype)])
    return inputs, targets, weight


# -- the trained model ----------------------------------------------------------------------------
LABELS_OUT = tk.LABEL_KINDS


class FoundationModel:
    """A trained network with its standardisation: perceive any tokens, request any kinds.

    Examples
    --------
    >>> model = FoundationModel.from_bytes(artifact)                          # doctest: +SKIP
    >>> out = model.predict(table, ["teff", "logg"], context=["xp", "ebv", "g"])  # doctest: +SKIP
    >>> out["teff"][0][:3], out["teff"][1][:3]                                # doctest: +SKIP
    (array([4712., 5103., 4388.]), array([61., 75., 48.]))
    """

    def __init__(self, network, standardiser: tk.Standardiser, config: TransformerConfig, info: dict | None = None):
        self.network = network
        self.standardiser = standardiser
        self.config = config
        self.info = info or {}

    def predict(self, table: tk.TokenTable, requests: Sequence[str], *, context: Sequence[str] | None = None,
                batch_size: int = 4096) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{kind: (mean, sigma)} in physical units for each requested kind.

        ``context`` names the kinds the model may see ('xp' for all XP values; default:
        every kind except the requested ones); missing values are padding. Stars with an
        empty context get the model's prior (the null token alone).
        """
        asked = tk.kind_ids(requests)
        if context is None:
            ctx_cols = np.setdiff1d(np.arange(tk.N_KINDS), asked)
        else:
            ctx_cols = tk.kind_ids(context)
        req_cols = asked
        if self.standardiser.rotations is not None:  # XP tokens are components: request whole halves
            halves = [h for h in tk.XP_HALVES if np.isin(asked, h).any()]
            req_cols = np.concatenate([asked[~np.isin(asked, tk.XP_HALVES[0]) & ~np.isin(asked, tk.XP_HALVES[1])],
                                       *halves]) if halves else asked
        seen = np.zeros(tk.N_KINDS, bool)
        seen[ctx_cols] = True  # with decorrelated XP tokens, a half partly outside the context is left out whole
        values = self.standardiser.forward(np.where(seen, table.values, np.nan))
        n = len(table)
        mean = np.zeros((n, len(req_cols)))
        logvar = np.zeros((n, len(req_cols)))
        for i in range(0, n, batch_size):
            batch = context_batch(values[i:i + batch_size], ctx_cols, req_cols)
            out = keras().ops.convert_to_numpy(self.network(batch.inputs(), training=False))
            mean[i:i + batch_size], logvar[i:i + batch_size] = out[..., 0], out[..., 1]
        mean, sigma = self.standardiser.inverse(mean, np.sqrt(np.exp(logvar)), req_cols)
        result = {}
        position = {int(c): j for j, c in enumerate(req_cols)}
        for c in asked:
            name, j = tk.KINDS[c], position[int(c)]
            result[name] = tk.to_physical(name, mean[:, j], sigma[:, j])
        return result

    def generate(self, *, teff, logg, m_h, alpha_m=None, ebv=None, bp_rp=None, j_h=None, j_k=None,
                 g: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """XP spectra from labels: (wavelength [nm], flux, flux_error) on ``XP_GRID`` in W m^-2 nm^-1.

        Inputs are scalars or arrays of one length; ``alpha_m``, ``ebv`` (E(B-V), mag) and the
        colours may be None (left out of the context). ``g`` scales the spectrum to that G
        magnitude (0: the G-normalised spectrum). Each of the 55 XP values is requested
        separately (the marginal mean and sigma, as the authors' ``nn_xp_coeffs``).

        Examples
        --------
        >>> wl, flux, err = model.generate(teff=4500, logg=2.0, m_h=-1.5, alpha_m=0.2)  # doctest: +SKIP
        >>> wl.shape, flux.shape                                                       # doctest: +SKIP
        ((343,), (1, 343))
        """
        arrays = {"teff": teff, "logg": logg, "m_h": m_h, "alpha_m": alpha_m, "ebv": ebv, "bp_rp": bp_rp,
                  "j_h": j_h, "j_k": j_k}
        n = max(np.size(v) for v in arrays.values() if v is not None)
        values = np.full((n, tk.N_KINDS), np.nan)
        for name, v in arrays.items():
            if v is None:
                continue
            v = np.broadcast_to(np.asarray(v, float), (n,)).copy()
            if name == "ebv":
                v = np.log(np.maximum(v, tk.EBV_FLOOR))
            values[:, tk.TOKEN_ID[name] - 1] = v
        table = tk.TokenTable(np.arange(n), values, np.zeros_like(values))
        context = [name for name, v in arrays.items() if v is not None]
        out = self.predict(table, list(tk.XP_KINDS), context=context)
        mean = np.stack([out[name][0] for name in tk.XP_KINDS], axis=1)
        sigma = np.stack([out[name][1] for name in tk.XP_KINDS], axis=1)
        return tk.xp_spectrum(mean, sigma, g=g)

    def n_parameters(self) -> int:
        return int(sum(np.prod(w.shape) for w in self.network.weights))

    # -- artifact: a JSON header (config, standardisation, vocabulary) and the weights as .npz -------
    def to_bytes(self) -> bytes:
        weights = self.network.get_weights()
        header = {"config": self.config.to_dict(), "standardiser": self.standardiser.to_dict(),
                  "kinds": list(tk.KINDS), "xp_wavelengths": tk.XP_WAVELENGTHS.tolist(),
                  "shapes": [list(w.shape) for w in weights], "info": self.info}
        buf = io.BytesIO()
        np.savez(buf, *weights)
        return pack(_MAGIC, header, buf.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes) -> FoundationModel:
        header, payload = unpack(data, _MAGIC, "transformer")
        if header["kinds"] != list(tk.KINDS):
            raise ValueError("the artifact's token vocabulary differs from this version of xpdb")
        config = TransformerConfig.from_dict(header["config"])
        net = build_network(config)
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            weights = [z[f"arr_{i}"] for i in range(len(z.files))]
        if [list(w.shape) for w in weights] != [list(w.shape) for w in net.get_weights()]:
            raise ValueError("the artifact's weights do not fit the network its configuration describes")
        net.set_weights(weights)
        return cls(net, tk.Standardiser.from_dict(header["standardiser"]), config, header.get("info") or {})
