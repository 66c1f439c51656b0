"""TAP /tap/async (UWS 1.1) through pyvo and plain HTTP: jobs in PostgreSQL, WAIT, abort, restarts."""

from __future__ import annotations

import io
import time
import xml.etree.ElementTree as ET

import psycopg
import pytest
from astropy.io.votable import parse as parse_votable
from pyvo.dal import DALQueryError, TAPService

from tests.service.conftest import NEVER_ENDS
from tests.service.test_scs import assert_same_table

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
SLOW = NEVER_ENDS


def job_xml(http, url: str, **params) -> ET.Element:
    response = http.get(url, params=params)
    assert response.status_code == 200, response.text
    return ET.fromstring(response.content)


def phase_of(http, url: str) -> str:
    return http.get(url + "/phase").text


def create(http, server: str, query: str, **extra) -> str:
    response = http.post(server + "/tap/async", data={"LANG": "ADQL", "QUERY": query, **extra}, allow_redirects=False)
    assert response.status_code == 303
    return response.headers["location"]


def wait_for(http, url: str, phases: set[str], timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        phase = job_xml(http, url, WAIT=2).find(f"{UWS}phase").text
        if phase in phases or time.monotonic() > deadline:
            return phase


def test_run_async_equals_run_sync(server, http):
    tap = TAPService(server + "/tap", session=http)
    query = ("SELECT source_id, ra, dec, feh FROM xpdb.catalog "
             "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 100.5, 10.5, 0.3)) ORDER BY source_id")
    asynchronous = tap.run_async(query).to_table()
    assert len(asynchronous) > 10
    assert_same_table(asynchronous, tap.run_sync(query).to_table())


def test_run_async_reports_errors(server, http):
    tap = TAPService(server + "/tap", session=http)
    with pytest.raises(DALQueryError, match="ADQL error: line 1"):
        tap.run_async("SELECT FROM xpdb.gaia_source")
    with pytest.raises(DALQueryError, match="there is no table 'nowhere' here"):
        tap.run_async("SELECT * FROM nowhere")


def test_uws_job_life_cycle(server, http):
    url = create(http, server, "SELECT TOP 4 source_id FROM xpdb.gaia_source ORDER BY source_id",
                 RUNID="life-cycle", MAXREC="3")
    job = job_xml(http, url)
    assert job.tag == f"{UWS}job" and job.get("version") == "1.1"
    assert job.find(f"{UWS}phase").text == "PENDING" and job.find(f"{UWS}runId").text == "life-cycle"
    params = {p.get("id"): p.text for p in job.find(f"{UWS}parameters")}
    assert params["QUERY"].startswith("SELECT TOP 4") and params["MAXREC"] == "3" and params["LANG"] == "ADQL"
    assert int(job.find(f"{UWS}executionDuration").text) == 30
    destruction = job.find(f"{UWS}destruction").text
    assert destruction.endswith("Z") and http.get(url + "/destruction").text == destruction
    assert http.get(url + "/executionduration").text == "30"

    # changes while PENDING
    assert http.post(url + "/executionduration", data={"EXECUTIONDURATION": "20"},
                     allow_redirects=False).status_code == 303
    assert http.get(url + "/executionduration").text == "20"
    assert http.post(url + "/executionduration", data={"EXECUTIONDURATION": "100000"},
                     allow_redirects=False).status_code == 303
    assert http.get(url + "/executionduration").text == "60"  # the server's limit
    listing = ET.fromstring(http.get(server + "/tap/async").content)
    assert listing.findall(f"{UWS}jobref") == []  # anonymous jobs are never listed (tests/security: owners)
    pending = ET.fromstring(http.get(server + "/tap/async", params={"PHASE": "PENDING"}).content)
    assert all(ref.find(f"{UWS}phase").text == "PENDING" for ref in pending.findall(f"{UWS}jobref"))

    response = http.post(url + "/phase", data={"PHASE": "RUN"}, allow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == url
    assert wait_for(http, url, {"COMPLETED", "ERROR"}) == "COMPLETED"
    job = job_xml(http, url)
    assert job.find(f"{UWS}startTime").text and job.find(f"{UWS}endTime").text
    result = job.find(f"{UWS}results/{UWS}result")
    assert result.get("id") == "result" and result.get("{http://www.w3.org/1999/xlink}href") == url + "/results/result"
    body = http.get(url + "/results/result")
    votable = parse_votable(io.BytesIO(body.content))
    assert len(votable.get_first_table().array) == 3
    assert [i.value for i in votable.resources[0].infos if i.name == "QUERY_STATUS"] == ["OK", "OVERFLOW"]
    assert http.post(url + "/phase", data={"PHASE": "RUN"}).status_code == 400  # finished jobs do not run again
    assert http.post(url + "/phase", data={"PHASE": "SUSPEND"}).status_code == 400

    response = http.delete(url, allow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == server + "/tap/async"
    assert http.get(url).status_code == 404
    assert http.get(url + "/results/result").status_code == 404


def test_error_and_wait(server, http):
    url = create(http, server, "SELECT nothing FROM xpdb.gaia_source", PHASE="RUN")
    job = job_xml(http, url, WAIT=10)  # blocks until the phase changes
    assert wait_for(http, url, {"ERROR"}) == "ERROR"
    job = job_xml(http, url)
    assert 'column "nothing" does not exist' in job.find(f"{UWS}errorSummary/{UWS}message").text
    error = parse_votable(io.BytesIO(http.get(url + "/error").content)).resources[0].infos[0]
    assert error.value == "ERROR" and "nothing" in error.content
    # WAIT returns at once for a finished job, and POST ACTION=DELETE deletes
    started = time.monotonic()
    job_xml(http, url, WAIT=60)
    assert time.monotonic() - started < 30  # far below the 60 s it would block for
    assert http.post(url, data={"ACTION": "DELETE"}, allow_redirects=False).status_code == 303
    assert http.get(url + "/phase").status_code == 404


def test_wait_blocks_until_the_phase_changes(server, http):
    url = create(http, server, "SELECT TOP 1 source_id FROM xpdb.gaia_source")
    started = time.monotonic()
    assert job_xml(http, url, WAIT=1, PHASE="QUEUED").find(f"{UWS}phase").text == "PENDING"  # not QUEUED: no wait
    job_xml(http, url, WAIT=1)  # PENDING does not change by itself
    assert 0.9 < time.monotonic() - started < 5
    http.post(url + "/phase", data={"PHASE": "RUN"})
    assert wait_for(http, url, {"COMPLETED"}, timeout_s=10) == "COMPLETED"
    http.delete(url)


def test_abort_cancels_the_running_query(server, http, service_db):
    url = create(http, server, SLOW, PHASE="RUN")
    assert wait_for(http, url, {"EXECUTING", "COMPLETED", "ERROR"}) == "EXECUTING"
    time.sleep(0.3)
    response = http.post(url + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False)
    assert response.status_code == 303
    assert phase_of(http, url) == "ABORTED"
    deadline = time.monotonic() + 10
    with psycopg.connect(service_db["url"], autocommit=True) as conn:
        while time.monotonic() < deadline:
            running = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'xpdb_reader' "
                                   "AND state = 'active' AND query LIKE '%%gaia_source AS d%%'").fetchone()[0]
            if running == 0:
                break
            time.sleep(0.1)
    assert running == 0
    time.sleep(0.5)
    assert phase_of(http, url) == "ABORTED"  # the cancelled query does not turn it into ERROR
    http.delete(url)


def test_execution_duration_is_the_query_timeout(server, http):
    url = create(http, server, SLOW, EXECUTIONDURATION="1", PHASE="RUN")
    assert wait_for(http, url, {"COMPLETED", "ERROR"}) == "ERROR"
    assert "1 s statement timeout" in job_xml(http, url).find(f"{UWS}errorSummary/{UWS}message").text
    http.delete(url)


def test_destruction_removes_the_job(server, http):
    url = create(http, server, "SELECT TOP 1 source_id FROM xpdb.gaia_source", PHASE="RUN")
    assert wait_for(http, url, {"COMPLETED"}) == "COMPLETED"
    assert http.post(url + "/destruction", data={"DESTRUCTION": "2000-01-01T00:00:00Z"},
                     allow_redirects=False).status_code == 303
    deadline = time.monotonic() + 10  # the test server's maintenance runs every second
    while http.get(url + "/phase").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert http.get(url + "/phase").status_code == 404
