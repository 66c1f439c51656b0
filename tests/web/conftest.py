"""One populated database and one running server for all the web-page tests (HTTP and browser).

A 400-star synthetic sky (sources, XP_CONTINUOUS spectra, PASTEL-like labels, five
clusters' members and the 60-pixel features) is ingested with the product's own code. The
model outputs the pages show are written as rows, as ``xpdb infer`` would leave them: one
[Fe/H] model with predictions for every star with features (the PASTEL label plus a known
offset, so the validation views have something to summarise), a transformer's label
predictions for a few stars, a scatter VAE's outputs (latents, scores) for every star, and
an inference job part-way done. Training real networks here would cost minutes and test
nothing the pages do.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.conftest import cloned_database
from tests.service.conftest import ServerThread, test_settings
from xpdb.db.engine import with_user

N_STARS = 400
FEH_OFFSET = 0.05


def _model(conn, kind: str, name: str, preprocessing_id=None) -> int:
    return conn.execute("INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact, preprocessing_id, "
                        "training_catalog, test_catalog, n_train, metrics) "
                        "VALUES (%s, %s, 1, '{}', '\\x00', %s, 'PASTEL', 'SAGA', 123, %s) RETURNING model_id",
                        (kind, name, preprocessing_id, json.dumps({"test": {"sigma": 0.1, "note": "<b>x</b>"}}))
                        ).fetchone()[0]


def populate_sky(url: str, folder, n: int = N_STARS, seed: int = 11) -> dict:
    """Ingest a synthetic sky of ``n`` stars into ``url`` and write the model outputs the pages show (also used by
    bench/web.py)."""
    from xpdb.ingest.labels import ingest_labels, ingest_members
    from xpdb.ingest.runs import ingest_file
    from xpdb.jobs.batches import create_job
    from xpdb.synth.sky import CLUSTERS, make_sky
    from xpdb.synth.writers import write_sky
    from xpdb.xp.store import compute_missing_features

    paths = write_sky(make_sky(n, seed=seed), folder, "parquet")
    ingest_file(url, "sources", paths["gaia_source"])
    ingest_file(url, "xp", paths["xp_continuous"])
    ingest_labels(url, paths["labels_pastel"], catalog="PASTEL")
    for cluster, *_, feh in CLUSTERS:
        ingest_members(url, paths[f"members_{cluster}"], cluster=cluster, feh_ref=feh)
    compute_missing_features(url)
    with psycopg.connect(url, autocommit=True) as conn:
        pre = conn.execute("SELECT max(preprocessing_id) FROM xpdb.xp_features").fetchone()[0]
        feh_model = _model(conn, "uacsnet", "webtest", pre)
        # every star with features: its PASTEL label (or its cluster's [Fe/H], else -0.5) plus FEH_OFFSET
        conn.execute("""
            INSERT INTO xpdb.prediction (model_id, source_id, feh, feh_err, flags)
            SELECT %s, f.source_id,
                   coalesce(l.feh, c.feh_ref, -0.5) + %s, 0.1 + (f.source_id %% 7) / 100.0, (f.source_id %% 3)::int * 2
            FROM xpdb.xp_features f
            LEFT JOIN xpdb.reference_label l ON l.source_id = f.source_id AND l.catalog = 'PASTEL'
            LEFT JOIN xpdb.cluster_member m ON m.source_id = f.source_id
            LEFT JOIN xpdb.cluster c ON c.name = m.cluster
            WHERE f.flux IS NOT NULL""", (feh_model, FEH_OFFSET))
        transformer = _model(conn, "transformer", "webtf")
        conn.execute("INSERT INTO xpdb.label_prediction (model_id, source_id, teff, teff_err, logg, logg_err, m_h, "
                     "m_h_err, alpha_m, alpha_m_err, n_tokens, flags) SELECT %s, source_id, 4600, 80, 2.1, 0.2, -1.1, "
                     "0.1, 0.2, 0.05, 58, 0 FROM xpdb.gaia_source ORDER BY source_id LIMIT 20", (transformer,))
        svae = _model(conn, "svae", "websvae")
        conn.execute("""
            INSERT INTO xpdb.svae_output (model_id, source_id, z1, z2, z3, z4, z5, z6, chi2_red, chi2_red_scatter,
                                          nll, anomaly_score, max_abs_residual, n_pixels, flags)
            SELECT %s, source_id, sin(source_id %% 1000), cos(source_id %% 997), (source_id %% 101) / 50.0, 0, 0, 0,
                   1.2, 0.9, -300, (source_id %% 53) / 10.0, 3.1, 115, 0
            FROM xpdb.xp_features WHERE flux IS NOT NULL""", (svae,))
        job_id = create_job(conn, model_id=feh_model, selection="all", batch_size=100)
        first = conn.execute("SELECT min(batch_id) FROM xpdb.job_batch WHERE job_id = %s", (job_id,)).fetchone()[0]
        conn.execute("UPDATE xpdb.job_batch SET state = 'done', n_predicted = n_sources, attempts = 1, "
                     "started_at = now() - interval '20 s', finished_at = now() - interval '10 s' WHERE batch_id = %s",
                     (first,))
        conn.execute("UPDATE xpdb.job SET state = 'running' WHERE job_id = %s", (job_id,))
        conn.execute("ANALYZE")
    return {"feh_model": feh_model, "transformer": transformer, "svae": svae, "job_id": job_id}


@pytest.fixture(scope="package")
def web_db(pg_server, template_url, tmp_path_factory):
    """The populated database (see the module docstring), for every test of tests/web."""
    with cloned_database(pg_server, "xpdb_web") as url, pytest.MonkeyPatch.context() as mp:
        reader = with_user(url, "xpdb_reader")
        mp.setenv("XPDB_DATABASE_URL", url)
        mp.setenv("XPDB_READER_URL", reader)
        info = populate_sky(url, tmp_path_factory.mktemp("web-sky"))
        yield {"url": url, "reader_url": reader, **info}


@pytest.fixture(scope="package")
def web_server(web_db):
    """``xpdb serve``'s application over ``web_db`` on a loopback port; yields its base URL."""
    from xpdb.service.app import create_app

    app = create_app(test_settings(sync_timeout_s=30.0), database_url=web_db["url"],
                     reader_url=web_db["reader_url"])
    with ServerThread(app) as running:
        yield running.url


@pytest.fixture
def sql(web_db):
    """A function running one SQL statement on the web database and returning its rows."""
    def run(statement: str, params=None) -> list[tuple]:
        with psycopg.connect(web_db["url"], autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []
    return run
