"""A module-wide database with a small synthetic sky and a quickly trained UA-CSNet."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.conftest import TEMPLATE, _replace_db


@pytest.fixture(scope="module")
def sky_db(pg_server, template_url, tmp_path_factory):
    """(url, model record) of a database holding a 600-star synthetic sky, its features and a model."""
    from xpdb.ingest.labels import ingest_labels
    from xpdb.ingest.runs import ingest_file
    from xpdb.models.training import train_uacsnet
    from xpdb.models.uacsnet import UACSNetConfig
    from xpdb.synth.sky import make_sky
    from xpdb.synth.writers import write_sky
    from xpdb.xp.store import compute_missing_features

    name = f"xpdb_jobs_{uuid.uuid4().hex[:10]}"
    admin = _replace_db(pg_server, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    url = _replace_db(pg_server, name)
    folder = tmp_path_factory.mktemp("sky")
    paths = write_sky(make_sky(1500, seed=3), folder, "parquet")
    ingest_file(url, "sources", paths["gaia_source"])
    ingest_file(url, "xp", paths["xp_continuous"])
    ingest_labels(url, paths["labels_pastel"], catalog="PASTEL")
    compute_missing_features(url)
    outcome = train_uacsnet(url, labels="PASTEL", name="quick", ablation=False,
                            config=UACSNetConfig(epochs=40, patience=40, passes_per_epoch=10))
    yield url, outcome.record
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def jobs_url(sky_db, monkeypatch):
    url, record = sky_db
    monkeypatch.setenv("XPDB_DATABASE_URL", url)
    import xpdb.db.engine as engine_mod

    engine_mod._ready_urls.add(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM xpdb.prediction")
        conn.execute("DELETE FROM xpdb.job")
    return url, record
