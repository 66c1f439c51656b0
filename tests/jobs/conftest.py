"""Each jobs test starts from the shared synthetic-sky database (tests/conftest.py) without predictions."""

from __future__ import annotations

import psycopg
import pytest


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
