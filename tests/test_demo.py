"""The demo end to end on the 20,000-star synthetic sky, twice: the science checks and idempotence.

This is the slow path (a few minutes): it trains UA-CSNet and its unweighted ablation on
the PASTEL-like labels, tests on the SAGA-like labels at G < 15, runs an inference job
with two worker processes and writes the report, then runs again and must do nothing new.
"""

from __future__ import annotations

import psycopg
import pytest

from xpdb.demo import MODEL_NAME, run_demo, summary_from_views


@pytest.mark.slow
def test_demo_end_to_end_and_again(db_url, tmp_path):
    home = tmp_path / "home"
    first = run_demo(home, real=False, say=lambda text: None)  # the real-star part: test_private_home, test_real_stars
    with psycopg.connect(db_url) as conn:
        record = conn.execute("SELECT model_id, name || ':' || version, metrics FROM xpdb.model").fetchall()
    assert len(record) == 1 and record[0][1] == f"{MODEL_NAME}:1"
    model_id, ref, metrics = record[0]

    # UA-CSNet on the synthetic sky, tested on the SAGA-like labels at G < 15
    test = metrics["test"]["g_lt_15"]
    assert test["overall"]["n"] > 500
    assert test["overall"]["sigma"] <= 0.25 and abs(test["overall"]["bias"]) <= 0.05, test["overall"]
    bins = [b for b in test["by_g"] if b["n"] >= 30]
    assert len(bins) >= 4
    for b in bins:
        ratio = b["median_predicted_error"] / b["residual_sigma"]
        assert 1 / 1.5 <= ratio <= 1.5, b
    vmp = metrics["vmp_sigma"]
    assert vmp["n"] > 100 and vmp["cost_sensitive"] < vmp["unweighted"], vmp

    # the printed numbers are the views'
    summary = first.summary
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT n, bias, sigma, method FROM xpdb.validation_summary WHERE model_id = %s "
                           "AND catalog = 'SAGA' AND scope = 'g<15' AND subset = 'all'", (model_id,)).fetchone()
        assert tuple(summary["test"]) == row
        assert summary["n_vmp"] == conn.execute("SELECT count(*) FROM xpdb.catalog WHERE feh <= -2").fetchone()[0]
        # the stored (Python) metrics and the view (SQL) agree
        assert row[2] == pytest.approx(test["overall"]["sigma"], abs=1e-6)
    clusters = {name: (mean, ref_) for name, n, mean, sigma, ref_ in summary["clusters"]}
    assert set(clusters) == {"NGC6397", "NGC6752", "NGC5904", "NGC2682", "NGC6791"}
    for name, (mean, ref_) in clusters.items():
        assert abs(mean - ref_) < 0.3, (name, mean, ref_)
    assert first.report.exists() and first.report.name == "index.html"

    # again: nothing new, the same answer
    second = run_demo(home, real=False, say=lambda text: None)
    notes = dict((name, note) for name, _, note in second.stages)
    assert "already" in notes["synthetic sky"] and "nothing new" in notes["ingest"]
    assert notes["features"] == "all present" and "already done" in notes["inference"]
    assert "up to date" in notes["report"]
    assert second.summary == summary_from_views(db_url, model_id, ref) == first.summary
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM xpdb.model").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM xpdb.job").fetchone()[0] == 1
