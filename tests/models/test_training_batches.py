"""The backend-agnostic training batches (``xpdb.models.data.passes``): shuffled passes, input noise, fainter stars."""

from __future__ import annotations

import numpy as np

from xpdb.models.data import passes


def _all_batches(dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


def test_each_pass_shows_every_row_once_and_noise_follows_the_errors():
    n, width = 3000, 4
    x = np.zeros((n, width), np.float32)
    e = np.linspace(0.5, 2.0, n, dtype=np.float32)[:, None] * np.ones((1, width), np.float32)
    ids = np.arange(n, dtype=np.float32)
    ds = passes((x, e), (ids,), batch_size=512, passes_per_epoch=2, seed=3, noise_scale=0.5)
    batches = _all_batches(ds)
    assert len(batches) == 2 * 6
    seen = np.concatenate([b[1] for b in batches[:6]])
    assert sorted(seen.astype(int).tolist()) == list(range(n))  # one pass: every row once
    (xs, es), _ = batches[0]
    np.testing.assert_array_equal(es, e[batches[0][1].astype(int)])  # errors unchanged
    pulls = xs / (0.5 * es)
    assert abs(pulls.std() - 1) < 0.05 and abs(pulls.mean()) < 0.05
    again = passes((x, e), (ids,), batch_size=512, passes_per_epoch=2, seed=3, noise_scale=0.5)
    np.testing.assert_array_equal(again[0][0][0], xs)  # seeded: the same batches whoever asks


def test_fainter_stars_get_larger_errors_and_the_noise_that_goes_with_them():
    n, width = 4000, 8
    x = np.zeros((n, width), np.float32)
    e = np.full((n, width), 0.1, np.float32)
    ds = passes((x, e), (np.zeros(n, np.float32),), batch_size=n, seed=1, noise_scale=0.5, fainter=3.0)
    (xs, es), _ = ds[0]
    m = es[:, 0] / 0.1
    assert np.allclose(es, es[:, :1])  # one factor per star
    assert m.min() >= 1 - 1e-6 and m.max() <= 3 + 1e-5
    assert np.median(m) > 1.5 and m.min() < 1.1 and m.max() > 2.8  # log-uniform over [1, 3]
    # total noise m times the original error: the redrawn flux has sigma sqrt(0.5^2 + m^2 - 1) * e
    pulls = xs / (np.sqrt(0.25 + m ** 2 - 1)[:, None] * 0.1)
    assert abs(pulls.std() - 1) < 0.03
    plain = passes((x, e), (np.zeros(n, np.float32),), batch_size=n, seed=1, noise_scale=0.5)
    (_, es_plain), _ = plain[0]
    np.testing.assert_array_equal(es_plain, e)
