"""Asynchronous jobs across server restarts: kept in PostgreSQL, orphans re-queued, running jobs given back.

Each test has its own database, so that no other server's executor takes its jobs.
"""

from __future__ import annotations

import io
import time

import psycopg
import pytest
from astropy.io.votable import parse as parse_votable
from pyvo.dal import TAPService

from tests.service.conftest import ServerThread, load_fixture_data, test_settings
from tests.service.test_tap_async import SLOW, create, phase_of, wait_for
from xpdb.db.engine import with_user


@pytest.fixture
def service_db(db_url, tmp_path):
    """A fresh database with the fixture data, for this test only."""
    return {"url": db_url, "reader_url": with_user(db_url, "xpdb_reader"), **load_fixture_data(db_url, tmp_path)}


def test_jobs_survive_a_server_restart(service_db, http):
    from xpdb.service.app import create_app

    def new_server():
        return ServerThread(create_app(test_settings(), database_url=service_db["url"],
                                       reader_url=service_db["reader_url"]))

    query = "SELECT TOP 5 source_id FROM xpdb.gaia_source ORDER BY source_id DESC"
    with new_server() as first:
        done = create(http, first.url, query, PHASE="RUN")
        assert wait_for(http, done, {"COMPLETED"}) == "COMPLETED"
        pending = create(http, first.url, query)
        expected = http.get(done + "/results/result").content
    done_id, pending_id = done.rsplit("/", 1)[1], pending.rsplit("/", 1)[1]
    # a job that a server was executing when it died: EXECUTING, and no session holds its lock
    with psycopg.connect(service_db["url"]) as conn:
        conn.execute("INSERT INTO xpdb.uws_job (job_id, phase, parameters, execution_duration, destruction, "
                     "executor, attempts, start_time) VALUES ('orphan0000000001', 'EXECUTING', %s, 30, "
                     "now() + interval '1 day', 'dead-server', 1, now())",
                     ('{"LANG": "ADQL", "QUERY": "SELECT TOP 5 source_id FROM xpdb.gaia_source '
                      'ORDER BY source_id DESC"}',))
    with new_server() as second:
        base = second.url + "/tap/async/"
        assert phase_of(http, base + done_id) == "COMPLETED"
        assert http.get(base + done_id + "/results/result").content == expected
        assert phase_of(http, base + pending_id) == "PENDING"
        http.post(base + pending_id + "/phase", data={"PHASE": "RUN"})
        assert wait_for(http, base + pending_id, {"COMPLETED"}) == "COMPLETED"
        assert wait_for(http, base + "orphan0000000001", {"COMPLETED"}) == "COMPLETED"
        tap = TAPService(second.url + "/tap", session=http)
        orphan = parse_votable(io.BytesIO(http.get(base + "orphan0000000001/results/result").content))
        assert list(orphan.get_first_table().array["source_id"]) == list(tap.run_sync(query).to_table()["source_id"])
        for job_id in (done_id, pending_id, "orphan0000000001"):
            http.delete(base + job_id)


def test_a_job_running_at_shutdown_is_finished_by_the_next_server(service_db, http):
    from xpdb.service.app import create_app

    def new_server(**overrides):
        return ServerThread(create_app(test_settings(**overrides), database_url=service_db["url"],
                                       reader_url=service_db["reader_url"]))

    with new_server() as first:
        url = create(http, first.url, SLOW, PHASE="RUN", EXECUTIONDURATION="30")
        assert wait_for(http, url, {"EXECUTING", "COMPLETED", "ERROR"}) == "EXECUTING"
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 10
    job_id = url.rsplit("/", 1)[1]
    with psycopg.connect(service_db["url"]) as conn:
        phase, attempts = conn.execute("SELECT phase, attempts FROM xpdb.uws_job WHERE job_id = %s",
                                       (job_id,)).fetchone()
    assert phase == "QUEUED" and attempts == 0  # given back to the queue, not failed
    with new_server() as second:
        second_url = second.url + "/tap/async/" + job_id
        assert wait_for(http, second_url, {"EXECUTING", "COMPLETED", "ERROR"}) == "EXECUTING"  # picked up again
        assert http.delete(second_url, allow_redirects=False).status_code == 303  # and cancelled
    with psycopg.connect(service_db["url"]) as conn:
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'xpdb_reader' "
                            "AND state = 'active' AND query LIKE '%%gaia_source AS d%%'").fetchone()[0] == 0
