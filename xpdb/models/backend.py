"""Import Keras quietly and deterministically on the chosen backend; report and choose devices.

The models use only Keras layers and ``keras.ops``, so one artifact runs on the TensorFlow,
JAX and torch backends. Keras fixes its backend per process from ``KERAS_BACKEND``, read
when ``keras`` is first imported; when it is unset xpdb picks TensorFlow if installed,
else JAX, else torch (a GPU machine with JAX and PyTorch but no TensorFlow needs no
setting). Each backend uses an accelerator when it sees one and the CPU otherwise.

On TensorFlow, oneDNN's reordered floating-point sums are switched off so that a seed
gives the same model on every run (set ``TF_ENABLE_ONEDNN_OPTS=1`` yourself to trade that
for speed).
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

BACKENDS = ("tensorflow", "jax", "torch")
DEVICES = ("auto", "cpu", "gpu")


class DeviceError(RuntimeError):
    """The device asked for is not available to this process's Keras backend."""


def backend_name() -> str:
    """The Keras backend this process uses (or will use): ``KERAS_BACKEND`` or the first installed."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    for candidate in BACKENDS:
        if importlib.util.find_spec(candidate) is not None:
            return candidate
    return "tensorflow"


@lru_cache(maxsize=1)
def keras():
    """The ``keras`` module, on ``backend_name()``'s backend."""
    os.environ["KERAS_BACKEND"] = backend_name()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras as _keras

    if _keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    return _keras


def use_cpu_only() -> None:
    """Hide every accelerator from the backend (call before ``keras()`` is first used)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ["JAX_PLATFORMS"] = "cpu"


def accelerators() -> list[str]:
    """The accelerators the Keras backend sees, e.g. ``['cuda:0']``; empty on a CPU-only machine."""
    name = keras().backend.backend()
    if name == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices() if d.platform != "cpu"]
    if name == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if name == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    return []


def device() -> str:
    """'<backend> GPU:<n>' when the backend sees accelerators, else '<backend> CPU' (recorded with trained models)."""
    found = accelerators()
    name = keras().backend.backend()
    return f"{name} GPU:{len(found)}" if found else f"{name} CPU"


def choose_device(requested: str = "auto") -> str:
    """'gpu' or 'cpu' for ``--device auto|cpu|gpu``; ``gpu`` with no accelerator visible is a ``DeviceError``.

    ``cpu`` hides the accelerators before the backend starts, so it must be chosen before
    any model is loaded.
    """
    if requested not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}, not {requested!r}")
    if requested == "cpu":
        use_cpu_only()
        return "cpu"
    if requested == "auto" and not gpu_present():
        return "cpu"  # no GPU device on this machine: do not start a backend just to learn that
    found = accelerators()
    if found:
        return "gpu"
    if requested == "gpu":
        raise DeviceError(f"--device gpu: the Keras backend {keras().backend.backend()!r} sees no GPU "
                          f"(set KERAS_BACKEND=jax or torch on a machine with one, check CUDA_VISIBLE_DEVICES, "
                          f"or use --device cpu)")
    return "cpu"


# Rows per call of the model and per chunk of the array calibration path, by device. The
# GPU sizes keep one chunk's float64 calibration work arrays (the packed covariance terms,
# 65,536 x 1,485 x 8 bytes per band, about 0.8 GB) and the model's activations (2^20 stars x
# 256 floats, 1 GB) well inside an 80 GB card while making each call long enough to hide
# the launch overheads; on the CPU the model's chunk is the one xpdb always used.
BATCH_SIZES = {"cpu": {"model": 32768, "features": 2048}, "gpu": {"model": 1 << 20, "features": 65536}}


def batch_sizes(chosen: str) -> dict[str, int]:
    """{'model': rows per model call, 'features': stars per calibration chunk} for 'cpu' or 'gpu'."""
    return dict(BATCH_SIZES[chosen])


def gpu_present() -> bool:
    """Whether this machine shows an NVIDIA or AMD GPU at all (a cheap test that imports no backend)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1") or os.environ.get("JAX_PLATFORMS") == "cpu":
        return False
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/kfd")


def seed_everything(seed: int) -> None:
    """Python, NumPy and backend seeds, and deterministic TensorFlow kernels on that backend."""
    k = keras()
    k.utils.set_random_seed(seed)
    if k.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except AttributeError:  # pragma: no cover - very old TensorFlow
            pass
