"""Import Keras on TensorFlow quietly and deterministically; report the device in use.

TensorFlow uses a GPU when it sees one and the CPU otherwise; nothing here requires a GPU.
oneDNN's reordered floating-point sums are switched off so that a seed gives the same
model on every run (set ``TF_ENABLE_ONEDNN_OPTS=1`` yourself to trade that for speed).
"""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def keras():
    """The ``keras`` module, with TensorFlow as its backend."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras as _keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return _keras


def device() -> str:
    """'GPU:<n>' when TensorFlow sees a GPU, else 'CPU'."""
    keras()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU:{len(gpus)}" if gpus else "CPU"


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic TensorFlow kernels."""
    k = keras()
    import tensorflow as tf

    k.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except AttributeError:  # pragma: no cover - very old TensorFlow
        pass
