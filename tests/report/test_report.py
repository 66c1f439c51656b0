"""The report: every figure is a real, non-blank PNG read from the views, the HTML links them all, every
figure's points are the stars of its statistics, and the cluster figure shows the published values."""

from __future__ import annotations

import re

import numpy as np
import psycopg

from xpdb.ingest.cluster_values import ingest_cluster_values
from xpdb.jobs.batches import create_job
from xpdb.jobs.worker import Worker
from xpdb.report import build_report, figures


def _orange_pixels(path) -> int:
    """Pixels of the published-value line's colour (matplotlib's darkorange, 255/140/0)."""
    import matplotlib.image as mpimg

    image = mpimg.imread(path)[..., :3]
    return int((np.abs(image - np.array([1.0, 140 / 255, 0.0])).max(axis=-1) < 0.05).sum())


def test_report_figures_and_page(sky_db, tmp_path):
    import matplotlib.image as mpimg

    url, model = sky_db
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM xpdb.prediction")
        conn.execute("DELETE FROM xpdb.cluster_value")
        job_id = create_job(conn, model_id=model.model_id, selection="final_sample", batch_size=2000)
    worker = Worker(url)
    worker.run([job_id])
    worker.close()
    before = build_report(url, model.model_id, model.ref, tmp_path / "before")
    # published values under other names: M5 is NGC 5904 and M67 NGC 2682 (xpdb.cluster_key)
    values = tmp_path / "published.csv"
    values.write_text("Cluster,moh_ap,feh_c,e_feh_c,num_member\nM5,-1.22,-1.19,0.07,24\nM 67,0.01,0.00,0.01,22\n"
                      "NGC 9999,0.1,0.1,0.1,3\n")
    loaded = ingest_cluster_values(url, values)
    assert loaded.rows_loaded == 3 and "2 of them for loaded clusters" in loaded.message
    report = build_report(url, model.model_id, model.ref, tmp_path / "report")
    expected = {"residuals_pastel_all.png", "residuals_pastel_g15.png", "residuals_saga_all.png",
                "residuals_saga_g15.png", "errors_vs_sigma.png", "clusters.png", "distributions.png", "error_map.png"}
    assert {p.name for p in report.figures.values()} == expected
    page = report.index.read_text()
    for path in report.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        colours = np.unique(image.reshape(-1, image.shape[-1]), axis=0)
        assert len(colours) > 10, path  # not blank
        assert f'src="{path.name}"' in page and f'href="{path.name}"' in page
    assert set(re.findall(r'src="([^"]+)"', page)) == expected
    with psycopg.connect(url) as conn:
        # the numbers on the page are the views'
        n, sigma, cuts = conn.execute("SELECT n, sigma, cuts FROM xpdb.validation_summary WHERE model_id = %s "
                                      "AND catalog = 'SAGA' AND scope = 'all' AND subset = 'all'",
                                      (model.model_id,)).fetchone()
        assert f"<td>{n}</td>" in page and f"<td>{sigma:.3f}</td>" in page and cuts == "cuts 1-6 of section 2.3"
        # each residual figure plots exactly the stars of its statistics
        for catalog in ("PASTEL", "SAGA"):
            for scope in ("all", "g<15"):
                stats = conn.execute("SELECT n FROM xpdb.validation_summary WHERE model_id = %s AND catalog = %s "
                                     "AND scope = %s AND subset = 'all'", (model.model_id, catalog, scope)).fetchone()
                points = figures.scope_points(conn, model.model_id, catalog, scope)
                assert len(points["delta_feh"]) == (stats[0] if stats else 0), (catalog, scope)
        # the published values beside the project's, on the page and in the figure
        paper = dict(conn.execute("SELECT cluster, feh_paper FROM xpdb.cluster_summary WHERE model_id = %s",
                                  (model.model_id,)).fetchall())
    assert paper["NGC5904"] == -1.19 and paper["NGC2682"] == 0.0 and paper["NGC6397"] is None
    assert "cluster_paper" not in page and "published.csv: feh_c" in page
    assert _orange_pixels(report.out / "clusters.png") > 50 and _orange_pixels(before.out / "clusters.png") == 0
