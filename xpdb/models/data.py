"""Training batches for any Keras backend: shuffled passes over NumPy arrays, with optional input noise.

Replaces ``tf.data`` so that training runs on the TensorFlow, JAX and torch backends alike.
Every shuffle and noise draw is seeded by (seed, Keras epoch, pass or batch index), so the
batches are the same whatever the backend and whatever order Keras asks for them in.
"""

from __future__ import annotations

import numpy as np

from xpdb.models.backend import keras


def passes(inputs: tuple[np.ndarray, ...], targets: tuple[np.ndarray, ...] = (), *, batch_size: int,
           passes_per_epoch: int = 1, seed: int = 0, noise_scale: float | None = None, fainter: float = 1.0):
    """A ``keras.utils.PyDataset`` of ``passes_per_epoch`` shuffled passes per Keras epoch.

    Each batch is ``(inputs, *targets)`` (``(inputs,)`` without targets). With ``noise_scale``
    the first input is redrawn within the second (its errors): ``x + noise_scale * e * N(0, 1)``.
    With ``fainter`` = m_max > 1 each row is also shown as a fainter star would look: its errors
    multiplied by m, log-uniform in [1, m_max], and its flux given the extra noise that makes the
    total m times the original: ``x + sqrt(noise_scale^2 + m^2 - 1) * e * N(0, 1)``, errors ``m e``.
    """
    log_max = float(np.log(max(1.0, fainter)))
    k = keras()

    class Passes(k.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.n = len(inputs[0])
            if self.n == 0:
                raise ValueError("no training rows")
            self.per_pass = -(-self.n // batch_size)
            self.epoch = 0

        def __len__(self) -> int:
            return self.per_pass * max(1, passes_per_epoch)

        def __getitem__(self, i: int):
            pass_no, b = divmod(int(i), self.per_pass)
            order = np.random.default_rng([seed, self.epoch, pass_no]).permutation(self.n)
            rows = np.sort(order[b * batch_size:(b + 1) * batch_size])
            xs = [a[rows] for a in inputs]
            if noise_scale is not None:
                rng = np.random.default_rng([seed, self.epoch, int(i), 1])
                error = xs[1]
                scale = np.float32(noise_scale)
                if log_max > 0:  # shown as a fainter star: errors m e, total noise m times the original
                    m = np.exp(rng.uniform(0.0, log_max, (len(rows), 1))).astype(np.float32)
                    scale = np.sqrt(scale ** 2 + m ** 2 - 1)
                    xs[1] = (error * m).astype(error.dtype)
                noise = rng.standard_normal(xs[0].shape, dtype=np.float32) * (scale * error)
                xs[0] = (xs[0] + noise).astype(xs[0].dtype)
            batch = tuple(xs) if len(xs) > 1 else xs[0]
            return (batch, *(t[rows] for t in targets)) if targets else (batch,)

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return Passes()
