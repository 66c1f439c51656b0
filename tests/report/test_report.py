"""The report: every figure is a real, non-blank PNG read from the views, and the HTML links them all."""

from __future__ import annotations

import re

import numpy as np
import psycopg

from xpdb.jobs.batches import create_job
from xpdb.jobs.worker import Worker
from xpdb.report import build_report


def test_report_figures_and_page(sky_db, tmp_path):
    import matplotlib.image as mpimg

    url, model = sky_db
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM xpdb.prediction")
        job_id = create_job(conn, model_id=model.model_id, selection="final_sample", batch_size=2000)
    worker = Worker(url)
    worker.run([job_id])
    worker.close()
    report = build_report(url, model.model_id, model.ref, tmp_path / "report")
    expected = {"residuals_pastel.png", "residuals_saga.png", "errors_vs_sigma.png", "clusters.png",
                "distributions.png", "error_map.png"}
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
    # the numbers on the page are the views'
    with psycopg.connect(url) as conn:
        n, sigma = conn.execute("SELECT n, sigma FROM xpdb.validation_summary WHERE model_id = %s AND catalog = 'SAGA' "
                                "AND scope = 'all' AND subset = 'all'", (model.model_id,)).fetchone()
    assert f"<td>{n}</td>" in page and f"<td>{sigma:.3f}</td>" in page
