"""UA-CSNet training time on the CPU for a training set of the paper's size (~1,000 stars).

Prints seconds per pass (epoch) and the total time of xpdb's training (passes grouped per
Keras epoch, early stopping), next to the baseline of the straightforward Keras loop (one
`model.fit` epoch per pass, numpy inputs) on the same network and data, in one run; and
what the paper's 30,000 epochs would take at the measured speed. With --ablation-seeds N
it also trains N seeds with and without the cost weights and prints the VMP sigmas.

    python bench/train.py [--stars 1000] [--passes 300] [--ablation-seeds 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xpdb.models.backend import keras, seed_everything
from xpdb.models.evaluate import evaluate
from xpdb.models.uacsnet import UACSNetConfig, build_model, cost_weights, predict, train
from xpdb.synth.sky import make_sky
from xpdb.xp.extinction import bp_rp0
from xpdb.xp.features import compute_features


def training_set(n_stars: int, seed: int = 42):
    """PASTEL-like and SAGA-like labelled stars of a synthetic sky, as feature arrays."""
    sky = make_sky(max(8000, int(n_stars / 0.13) + 1000), seed=seed)
    gs, truth = sky.gaia_source.to_pandas(), sky.truth.to_pandas()
    feats = compute_features(sky.xp_continuous, gs["ebv"].to_numpy())
    colour = bp_rp0(gs["bp_rp"], gs["ebv"])
    sets = {}
    for group in ("pastel", "saga"):
        labels = sky.labels[group].to_pandas().set_index("source_id")
        m = truth["population"].eq(group).to_numpy() & feats.usable & (colour > 0.7) & (colour < 1.9)
        ids = gs["source_id"].to_numpy()[m]
        sets[group] = dict(flux=feats.flux[m], err=feats.flux_error[m], feh=labels.loc[ids, "feh"].to_numpy(),
                           bp_rp0=colour[m], g=gs["phot_g_mean_mag"].to_numpy()[m])
    train_set = {k: v[:n_stars] for k, v in sets["pastel"].items()}
    return train_set, sets["saga"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=300, help="passes timed for the per-pass figures")
    parser.add_argument("--ablation-seeds", type=int, default=0)
    args = parser.parse_args()
    tr, te = training_set(args.stars)
    n = len(tr["feh"])
    print(f"training set: {n} synthetic PASTEL-like giants; device: CPU (TensorFlow, no GPU)\n")

    # xpdb's loop, fixed number of passes (no early stopping) for the per-pass speed
    cfg = UACSNetConfig(epochs=args.passes, validation_fraction=0)
    t0 = time.perf_counter()
    train(tr["flux"], tr["err"], tr["feh"], tr["bp_rp0"], cfg)
    ours = (time.perf_counter() - t0) / args.passes

    # baseline: one Keras epoch per pass, numpy inputs, same network and weights
    k = keras()
    seed_everything(1)
    model = build_model(UACSNetConfig(), tr["flux"], tr["err"])
    w = cost_weights(tr["bp_rp0"], tr["feh"]).astype(np.float32)
    t0 = time.perf_counter()
    model.fit([tr["flux"], tr["err"]], tr["feh"].astype(np.float32), sample_weight=w, batch_size=512,
              epochs=args.passes, verbose=0)
    baseline = (time.perf_counter() - t0) / args.passes
    del k

    # the default run: early stopping
    t0 = time.perf_counter()
    result = train(tr["flux"], tr["err"], tr["feh"], tr["bp_rp0"], UACSNetConfig())
    total = time.perf_counter() - t0
    feh, err = predict(result.model, te["flux"], te["err"])
    bright = te["g"] < 15
    metrics = evaluate(feh[bright], err[bright], te["feh"][bright], te["g"][bright])

    print(f"{'xpdb training, seconds per pass (epoch)':<52s} {ours * 1000:8.1f} ms")
    print(f"{'baseline: one model.fit epoch per pass':<52s} {baseline * 1000:8.1f} ms   ratio {baseline / ours:.1f}x")
    print(f"{'default training (early stopping), total':<52s} {total:8.1f} s   "
          f"({result.epochs_run} passes, best {result.best_epoch})")
    print(f"{'the paper schedule, 30,000 epochs, at this speed':<52s} {30000 * ours / 60:8.1f} min "
          f"(baseline loop {30000 * baseline / 60:.1f} min)")
    print(f"test on {int(bright.sum())} SAGA-like giants (G < 15): bias {metrics['overall']['bias']:+.3f}, "
          f"sigma {metrics['overall']['sigma']:.3f}")

    for seed in range(args.ablation_seeds):
        out = []
        for cs in (True, False):
            r = train(tr["flux"], tr["err"], tr["feh"], tr["bp_rp0"], UACSNetConfig(seed=seed, cost_sensitive=cs))
            f, e = predict(r.model, te["flux"], te["err"])
            out.append(evaluate(f[bright], e[bright], te["feh"][bright], te["g"][bright])["vmp"]["sigma"])
        print(f"seed {seed}: VMP sigma cost-sensitive {out[0]:.3f}, unweighted {out[1]:.3f}")


if __name__ == "__main__":
    main()
