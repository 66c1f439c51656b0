"""Shared fixtures: a real PostgreSQL (with q3c) for the session, a fresh database per test.

The session starts its own embedded cluster in a temporary ``XPDB_HOME`` (the same code
path as the product's embedded default) unless ``XPDB_TEST_DATABASE_URL`` points at a
server whose user may create databases. Each test gets a new database cloned from a
migrated template, so tests never see each other's rows.

Real Gaia files are read from ``../shared/data/real``; tests that need them skip with a
message naming the missing path when it is absent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from xpdb.config import Settings
from xpdb.db.embedded import EmbeddedCluster
from xpdb.db.engine import with_user
from xpdb.db.migrate import upgrade

PROJECT = Path(__file__).resolve().parents[1]
REAL = PROJECT.parent / "shared" / "data" / "real"
TEMPLATE = "xpdb_test_template"


def real_path(*parts: str) -> Path:
    """Path of a real data file, or skip the test (with the reason) when it is not on this machine."""
    path = REAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it ships beside the project, not with it)")
    return path


def _replace_db(url: str, dbname: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@contextmanager
def cloned_database(pg_server: str, prefix: str) -> Iterator[str]:
    """URL of a new database cloned from the migrated template, known to the engine as ready; dropped after."""
    import xpdb.db.engine as engine_mod

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _replace_db(pg_server, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    url = _replace_db(pg_server, name)
    engine_mod._ready_urls.add(url)
    try:
        yield url
    finally:
        engine_mod._ready_urls.discard(url)
        engine_mod.engine.cache_clear()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server():
    """Admin URL of a running PostgreSQL with q3c (embedded cluster unless XPDB_TEST_DATABASE_URL)."""
    external = os.environ.get("XPDB_TEST_DATABASE_URL")
    if external:
        yield external
        return
    home = Path(tempfile.mkdtemp(prefix="xpdb-test-", dir="/tmp"))
    os.chmod(home, 0o755)
    cluster = EmbeddedCluster(Settings(database_url=None, home=home))
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_url(pg_server):
    """A migrated database that every test database is cloned from."""
    with psycopg.connect(_replace_db(pg_server, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    url = _replace_db(pg_server, TEMPLATE)
    upgrade(url)
    yield url


@pytest.fixture
def db_url(pg_server, template_url, monkeypatch):
    """URL of a fresh, migrated database for this test; also exported as XPDB_DATABASE_URL for the CLI."""
    with cloned_database(pg_server, "xpdb_t") as url:
        monkeypatch.setenv("XPDB_DATABASE_URL", url)
        monkeypatch.setenv("XPDB_READER_URL", with_user(url, "xpdb_reader"))
        yield url


@pytest.fixture
def conn(db_url):
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def sky_db(pg_server, template_url, tmp_path_factory):
    """(url, model record): a 1,500-star synthetic sky with labels, clusters, features and a quick model."""
    from xpdb.ingest.labels import ingest_labels, ingest_members
    from xpdb.ingest.runs import ingest_file
    from xpdb.models.training import train_uacsnet
    from xpdb.models.uacsnet import UACSNetConfig
    from xpdb.synth.sky import CLUSTERS, make_sky
    from xpdb.synth.writers import write_sky
    from xpdb.xp.store import compute_missing_features

    with cloned_database(pg_server, "xpdb_jobs") as url:
        folder = tmp_path_factory.mktemp("sky")
        paths = write_sky(make_sky(1500, seed=3), folder, "parquet")
        ingest_file(url, "sources", paths["gaia_source"])
        ingest_file(url, "xp", paths["xp_continuous"])
        ingest_labels(url, paths["labels_pastel"], catalog="PASTEL")
        ingest_labels(url, paths["labels_saga"], catalog="SAGA")
        for cluster, *_, feh in CLUSTERS:
            ingest_members(url, paths[f"members_{cluster}"], cluster=cluster, feh_ref=feh)
        compute_missing_features(url)
        outcome = train_uacsnet(url, labels="PASTEL", name="quick", ablation=False,
                                config=UACSNetConfig(epochs=40, patience=40, passes_per_epoch=10))
        yield url, outcome.record
