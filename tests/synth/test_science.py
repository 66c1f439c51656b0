"""The science on the synthetic sky, judged comparatively: UA-CSNet against the ridge baseline on three skies.

Each sky (``SEEDS``; the demo's configuration, ``xpdb.demo.SYNTHETIC_CONFIG``) goes the product's
path: parquet files -> ingest -> features -> UA-CSNet and ridge trained on the PASTEL-like labels ->
scored on the SAGA-like test stars (G < 15) against the labels and the truth
(``xpdb.synth.score``). UA-CSNet must beat the baseline overall (against labels and truth) and
for VMP stars (against the truth) in the mean over the three skies, and its predicted errors must
be within x1.5 of the residual sigma in every G bin with 50 or more test stars, on every sky.

"For VMP" is the paper's per-bin statistics combined (``xpdb.synth.score.vmp_error``): bias and
sigma of the Gaussian fits in the bins -3..-2 and below -3, against the labels and against the
truth. One Gaussian fitted to all VMP residuals (``sigma_vmp``) is printed but not judged: it
follows the core of the distribution and so rewards a fit that is strongly biased for EMP stars.

Slow: three skies and a UA-CSNet ensemble per sky.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

SEEDS = (7, 8, 9)  # not the demo's 42, and not the seed used to check the claims
N_STARS = 20000


def _one_sky(pg_server, tmp_path_factory, seed: int) -> dict:
    from tests.conftest import cloned_database
    from xpdb.demo import SYNTHETIC_CONFIG
    from xpdb.ingest.labels import ingest_labels
    from xpdb.ingest.runs import ingest_file
    from xpdb.models.training import train_model
    from xpdb.models.uacsnet import UACSNetConfig
    from xpdb.synth.score import score_models
    from xpdb.synth.sky import make_sky
    from xpdb.synth.writers import write_sky
    from xpdb.xp.store import compute_missing_features

    folder = tmp_path_factory.mktemp(f"sky{seed}")
    paths = write_sky(make_sky(N_STARS, seed=seed), folder, "parquet")
    with cloned_database(pg_server, f"xpdb_science{seed}") as url:
        ingest_file(url, "sources", paths["gaia_source"])
        ingest_file(url, "xp", paths["xp_continuous"])
        ingest_labels(url, paths["labels_pastel"], catalog="PASTEL")
        ingest_labels(url, paths["labels_saga"], catalog="SAGA")
        compute_missing_features(url, where="x.source_id IN (SELECT source_id FROM xpdb.reference_label)")
        net = train_model(url, "uacsnet", labels="PASTEL", test_labels="SAGA", name="uacsnet", ablation=False,
                          config=UACSNetConfig(**SYNTHETIC_CONFIG)).record
        ridge = train_model(url, "ridge", labels="PASTEL", test_labels="SAGA", name="ridge").record
        return score_models(url, paths["truth"], [net.ref, ridge.ref])


@pytest.fixture(scope="module")
def skies(pg_server, template_url, tmp_path_factory):
    return {seed: _one_sky(pg_server, tmp_path_factory, seed) for seed in SEEDS}


@pytest.mark.slow
@pytest.mark.timeout(5400)  # three skies and ensembles: about 10 minutes of CPU on two free cores
def test_uacsnet_beats_the_ridge_baseline_in_the_mean_over_three_skies(skies):
    from xpdb.synth.score import headline

    table = {}
    for against in ("labels", "truth"):
        for key in ("sigma", "vmp_error", "sigma_vmp"):
            method = [headline(s["uacsnet:1"], against)[key] for s in skies.values()]
            baseline = [headline(s["ridge:1"], against)[key] for s in skies.values()]
            table[f"{against} {key}"] = (np.round(method, 3).tolist(), np.round(baseline, 3).tolist())
    print(json.dumps(table, indent=1))  # the per-sky numbers, for the record (pytest -s)
    for name in ("labels sigma", "truth sigma", "labels vmp_error", "truth vmp_error"):
        method, baseline = table[name]
        assert np.mean(method) < np.mean(baseline), (name, table)


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_predicted_errors_follow_the_residuals_in_every_g_bin(skies):
    from xpdb.synth.score import ERROR_RATIO_LIMIT, MIN_BIN, headline

    judged = 0
    for seed, scores in skies.items():
        for g_min, g_max, n, ratio in headline(scores["uacsnet:1"], "labels")["error_ratios"]:
            judged += 1
            assert n >= MIN_BIN
            assert 1 / ERROR_RATIO_LIMIT <= ratio <= ERROR_RATIO_LIMIT, (seed, g_min, g_max, n, ratio)
    assert judged >= 3 * len(skies)  # most G bins of every sky have enough stars to be judged
