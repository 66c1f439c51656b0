"""GPU inference throughput: UA-CSNet alone, calibration + features, and both, on synthetic coefficient arrays.

    KERAS_BACKEND=jax python bench/gpu.py [--stars 1000000] [--cpu-stars 20000] [--dtype float64]

(The sizes default to 1,000,000 and 20,000 stars when the backend sees an accelerator, and
to 20,000 and 5,000 on a CPU, so that ``make bench`` stays short.)

No database and no TensorFlow. Each accelerator figure is printed beside the CPU figure
measured in the same run, as a ratio:

* calibration + features: the array path (``xpdb.xp.accel``, the Keras backend's matrix
  products on its default device, float64 unless ``--dtype float32``) against the NumPy
  path (``xpdb.xp.features.compute_features``, what a CPU worker runs), from host arrays
  of coefficients to host features, transfers included;
* the model alone: ``xpdb.models.uacsnet.predict`` with the default network, on the
  backend's default device against the same network and backend pinned to the CPU;
* both: the features then the model, as a GPU worker does after reading a batch.

Inputs are a few hundred synthetic stars (``xpdb.synth``: realistic coefficients, errors
and correlations) tiled to ``--stars``, each scaled in brightness. They and the
calibration constants come from ``--inputs`` (default ``bench/gpu_inputs.npz``), made
here on first use, so that a GPU node needs neither GaiaXPy nor the extinction toolkit:
there the NumPy path is fed the same constants (said in the output). Where the backend
sees no accelerator the script says so and both columns are this CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._timing import best_of
from xpdb.xp import accel

DEFAULT_INPUTS = ROOT / "bench" / "gpu_inputs.npz"
BANDS = ("bp", "rp")


def ratio_line(label: str, accel_rate: float, cpu_rate: float, unit: str) -> str:
    return f"{label:<44s} {accel_rate:>14,.0f} {unit}  vs CPU {cpu_rate:>12,.0f} {unit}  ratio {accel_rate / cpu_rate:7.2f}x"


def make_inputs(path: Path, n_templates: int = 400) -> None:
    """Write synthetic templates and the calibration constants (needs GaiaXPy and the toolkit)."""
    from xpdb.synth.sky import make_sky
    from xpdb.xp.inputs import to_batch

    sky = make_sky(n_templates, seed=21)
    batch = to_batch(sky.xp_continuous)
    ebv_of = dict(zip(sky.gaia_source.column("source_id").to_pylist(), sky.gaia_source.column("ebv").to_pylist()))
    both = batch.band_present("bp") & batch.band_present("rp")
    arrays = {f"{b}_{x}": batch.arrays[f"{b}_{key}"].values[both]
              for b in BANDS for x, key in (("c", "coefficients"), ("e", "coefficient_errors"),
                                            ("r", "coefficient_correlations"))}
    ebv = np.array([ebv_of[s] for s in batch.source_id.values[both]], float)
    c = accel.constants()
    np.savez_compressed(path, ebv=ebv, **arrays, grid=c.grid, curve=c.curve, r55=c.r55,
                        **{f"const_{b}_design": c.design[b] for b in BANDS},
                        **{f"const_{b}_merge": c.merge[b] for b in BANDS},
                        **{f"const_{b}_span": np.array(c.span[b]) for b in BANDS})


def load_inputs(path: Path) -> tuple[dict, accel.Constants]:
    z = dict(np.load(path, allow_pickle=False))
    consts = accel.Constants(z["grid"], {b: z[f"const_{b}_design"] for b in BANDS},
                             {b: z[f"const_{b}_merge"] for b in BANDS},
                             {b: tuple(int(v) for v in z[f"const_{b}_span"]) for b in BANDS}, z["curve"],
                             float(z["r55"]))
    return {k: v for k, v in z.items() if not k.startswith("const_") and k not in ("grid", "curve", "r55")}, consts


def tile(templates: dict, n: int, seed: int = 1) -> dict:
    """``n`` stars: templates repeated, each scaled by a random brightness (coefficients and errors alike)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(templates["ebv"]), n)
    scale = 10 ** (-0.4 * rng.uniform(-1.5, 1.5, n))
    out = {}
    for b in BANDS:
        out[f"{b}_c"] = templates[f"{b}_c"][pick] * scale[:, None]
        out[f"{b}_e"] = (templates[f"{b}_e"][pick] * scale[:, None]).astype(np.float32)
        out[f"{b}_r"] = templates[f"{b}_r"][pick]
    out["ebv"] = np.clip(templates["ebv"][pick] + rng.normal(0, 0.005, n), 0, None)
    return out


def numpy_path(consts: accel.Constants):
    """The NumPy path (``compute_features``); fed ``consts`` where GaiaXPy or the toolkit is missing."""
    def installed(name: str) -> bool:
        try:
            __import__(name)
            return True
        except ImportError:
            return False

    from xpdb.xp import calibrate as cal
    from xpdb.xp import extinction as ext
    from xpdb.xp.batch import XpBatch
    from xpdb.xp.features import compute_features

    note = "xpdb.xp.features.compute_features (NumPy), one process"
    if not (installed("gaiaxpy") and installed("xp_extinction_toolkit")):
        bases = cal.SampledBases.from_design(consts.grid, consts.design)
        cal.calibration_bases = lambda bp_model="v375wi": (bases, consts.merge)
        cal.band_spans = lambda wl: {b: slice(*consts.span[b]) for b in BANDS}
        ext.dereddening_factor = lambda wl, ebv: 10 ** (0.4 * consts.r55 * ext.e4455_from_sfd(ebv)[:, None]
                                                        * consts.curve[None, :])
        note += " fed the constants file (no GaiaXPy / extinction toolkit here)"

    def run(stars: dict):
        batch = XpBatch.from_arrays(np.arange(len(stars["ebv"])), **{
            f"{b}_{name}": stars[f"{b}_{x}"] for b in BANDS
            for x, name in (("c", "coefficients"), ("e", "coefficient_errors"), ("r", "coefficient_correlations"))})
        return compute_features(batch, stars["ebv"], array_path=False)

    return run, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=None,
                        help="stars through the accelerator paths (default 1,000,000; 20,000 with no accelerator)")
    parser.add_argument("--cpu-stars", type=int, default=None,
                        help="stars through the CPU paths (default 20,000; 5,000 with no accelerator)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"), help="array path precision")
    parser.add_argument("--chunk", type=int, default=None, help="stars per calibration chunk (default: by device)")
    parser.add_argument("--model-batch", type=int, default=None, help="rows per model call (default: by device)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats (best kept), after one warm-up")
    parser.add_argument("--inputs", type=Path, default=DEFAULT_INPUTS, help="templates + constants (.npz)")
    args = parser.parse_args()

    if not args.inputs.exists():
        print(f"making {args.inputs} (synthetic templates and calibration constants; needs GaiaXPy)")
        make_inputs(args.inputs)
    templates, consts = load_inputs(args.inputs)

    from xpdb.models import uacsnet as net
    from xpdb.models.backend import accelerators, batch_sizes, keras

    k = keras()
    backend = k.backend.backend()
    found = accelerators()
    device = "gpu" if found else "cpu"
    args.stars = args.stars or (1_000_000 if found else 20_000)
    args.cpu_stars = min(args.stars, args.cpu_stars or (20_000 if found else 5_000))
    sizes = batch_sizes(device)
    chunk = args.chunk or sizes["features"]
    model_batch = args.model_batch or sizes["model"]
    print(f"backend {backend} (keras {k.__version__}), accelerator: {', '.join(found) if found else 'none found'}")
    if not found:
        print("NO ACCELERATOR FOUND: the 'accelerator' column below is the same backend on this CPU, "
              "so the ratios say nothing about a GPU.")
    print(f"array path {args.dtype}, {chunk:,} stars per chunk; model {model_batch:,} rows per call; "
          f"{args.stars:,} stars (accelerator), {args.cpu_stars:,} (CPU); best of {args.repeat}")

    stars = tile(templates, args.stars)
    cpu_stars = {key: v[:args.cpu_stars] for key, v in stars.items()}
    cpu_features, note = numpy_path(consts)
    print(f"CPU calibration + features: {note}")
    path = accel.ArrayPath(args.dtype, chunk=chunk, consts=consts)
    arrays = [stars[f"{b}_{x}"] for b in BANDS for x in "cer"]

    def gpu_features(rows: slice = slice(None)):
        return path.features_arrays(*(a[rows] for a in arrays), stars["ebv"][rows])

    # -- calibration + features --------------------------------------------------------------------
    gpu_features(slice(0, chunk))  # warm-up: compilation
    t_gpu = best_of(gpu_features, args.repeat)
    ref = cpu_features(cpu_stars)
    t_cpu = best_of(lambda: cpu_features(cpu_stars), args.repeat)
    f60, _, _ = gpu_features(slice(0, args.cpu_stars))
    ok = ref.usable
    rel = np.abs(f60[ok] - ref.flux[ok]) / ref.flux_error[ok]
    print(ratio_line("calibration + features", args.stars / t_gpu, args.cpu_stars / t_cpu, "spectra/s"))
    print(f"  array path vs NumPy path on the CPU stars: max |diff| = {rel.max():.2e} of each pixel's own error "
          f"(usable {ok.sum():,} of {len(ok):,})")

    # -- the model alone -------------------------------------------------------------------------
    feats = np.tile(np.where(ok[:, None], ref.flux, 1.0), (-(-args.stars // max(1, len(ok))), 1))[:args.stars]
    errs = np.tile(np.where(ok[:, None], ref.flux_error, 0.01), (-(-args.stars // max(1, len(ok))), 1))[:args.stars]
    config = net.UACSNetConfig()
    model = net.build_model(config, feats[:10000], errs[:10000])
    n_cpu_model = min(args.stars, max(args.cpu_stars, 200_000))

    def gpu_model():
        return net.predict(model, feats, errs, batch_size=model_batch)

    gpu_model()
    t_gpu_model = best_of(gpu_model, args.repeat)
    with k.device("cpu:0"):
        cpu_model = net.from_bytes(net.to_bytes(model))  # the same artifact, loaded onto the CPU
        cpu_run = lambda: net.predict(cpu_model, feats[:n_cpu_model], errs[:n_cpu_model],
                                      batch_size=batch_sizes("cpu")["model"])
        check = cpu_run()
        t_cpu_model = best_of(cpu_run, args.repeat)
    got = gpu_model()
    print(ratio_line("UA-CSNet alone", args.stars / t_gpu_model, n_cpu_model / t_cpu_model, "stars/s"))
    print(f"  accelerator vs CPU predictions: max |d FEH| = {np.nanmax(np.abs(got[0][:n_cpu_model] - check[0])):.1e} dex")

    # -- both ------------------------------------------------------------------------------------
    def gpu_both():
        f, e, _ = gpu_features()
        return net.predict(model, f.astype(np.float32), e.astype(np.float32), batch_size=model_batch)

    def cpu_both():
        with k.device("cpu:0"):
            feats_cpu = cpu_features(cpu_stars)
            return net.predict(cpu_model, feats_cpu.flux, feats_cpu.flux_error, batch_size=batch_sizes("cpu")["model"])

    t_gpu_both = best_of(gpu_both, args.repeat)
    t_cpu_both = best_of(cpu_both, args.repeat)
    print(ratio_line("calibration + features + UA-CSNet", args.stars / t_gpu_both, args.cpu_stars / t_cpu_both,
                     "stars/s"))
    print("(no database: a worker also reads ~46,000 rows/s per connection and writes its predictions back)")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
