"""Users and tokens: a job made with a token belongs to its user; no one else may list, read, change, abort or
delete it. Anonymous jobs are reachable only through their unguessable URL and are never listed."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET

import psycopg
import pytest
import requests
from astropy.io.votable import parse as parse_votable
from pyvo.dal import TAPService
from typer.testing import CliRunner

from tests.service.conftest import NEVER_ENDS, ClosingSession, ServerThread, test_settings
from xpdb.cli.main import app
from xpdb.service.pool import ConnectionPool
from xpdb.service.users import UserDirectory, add_user, remove_user, reset_token, token_hash

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"


@pytest.fixture(scope="module")
def tokens(service_db):
    with psycopg.connect(service_db["url"], autocommit=True) as conn:
        made = {name: add_user(conn, name) for name in ("alice", "bob")}
    yield made
    with psycopg.connect(service_db["url"], autocommit=True) as conn:
        for name in made:
            remove_user(conn, name)


def session_of(token: str | None) -> ClosingSession:
    session = ClosingSession()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def status_and_message(response) -> tuple[int, str]:
    infos = parse_votable(io.BytesIO(response.content)).resources[0].infos
    return response.status_code, " ".join(i.content or "" for i in infos if i.name == "QUERY_STATUS")


def create(session, server, query: str, **extra) -> str:
    response = session.post(server + "/tap/async", data={"LANG": "ADQL", "QUERY": query, **extra},
                            allow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def listed(session, server) -> set[str]:
    root = ET.fromstring(session.get(server + "/tap/async").content)
    return {ref.get("id") for ref in root.findall(f"{UWS}jobref")}


def test_jobs_belong_to_their_users(server, tokens):
    with session_of(tokens["alice"]) as alice, session_of(tokens["bob"]) as bob, session_of(None) as anyone:
        url = create(alice, server, "SELECT TOP 3 source_id FROM xpdb.gaia_source", RUNID="alice's")
        job_id = url.rsplit("/", 1)[1]
        assert len(job_id) >= 22  # 128 random bits
        job = ET.fromstring(alice.get(url).content)
        assert job.find(f"{UWS}ownerId").text == "alice"
        assert alice.get(url + "/owner").text == "alice"
        assert job_id in listed(alice, server)
        assert job_id not in listed(bob, server) and listed(anyone, server) == set()

        for method, path, data in [("GET", "", None), ("GET", "/phase", None), ("GET", "/parameters", None),
                                   ("GET", "/results", None), ("GET", "/results/result", None),
                                   ("GET", "/error", None), ("GET", "/owner", None), ("GET", "/quote", None),
                                   ("GET", "/executionduration", None), ("GET", "/destruction", None),
                                   ("POST", "/phase", {"PHASE": "RUN"}), ("POST", "/phase", {"PHASE": "ABORT"}),
                                   ("POST", "", {"PHASE": "ABORT"}), ("POST", "", {"ACTION": "DELETE"}),
                                   ("POST", "/parameters", {"QUERY": "SELECT 1"}),
                                   ("POST", "/executionduration", {"EXECUTIONDURATION": "5"}),
                                   ("POST", "/destruction", {"DESTRUCTION": "2000-01-01T00:00:00Z"}),
                                   ("DELETE", "", None)]:
            for session, expected in ((bob, 403), (anyone, 401)):
                response = session.request(method, url + path, data=data, allow_redirects=False)
                code, message = status_and_message(response)
                assert code == expected, (method, path, code, response.text)
                assert "belongs to" in message and "SELECT" not in response.text
                if expected == 401:
                    assert "Bearer" in response.headers["WWW-Authenticate"]
        # nothing changed: the job is still PENDING with its parameters, and alice may run and delete it
        assert alice.get(url + "/phase").text == "PENDING"
        assert "TOP 3" in alice.get(url + "/parameters").text
        assert alice.post(url + "/phase", data={"PHASE": "RUN"}, allow_redirects=False).status_code == 303
        assert alice.get(url, params={"WAIT": 30, "PHASE": "QUEUED"}).status_code == 200
        assert alice.delete(url, allow_redirects=False).status_code == 303
        assert alice.get(url).status_code == 404


def test_a_running_job_cannot_be_aborted_by_another_user(server, tokens):
    with session_of(tokens["alice"]) as alice, session_of(tokens["bob"]) as bob:
        url = create(alice, server, NEVER_ENDS, PHASE="RUN")
        for _ in range(100):
            if alice.get(url + "/phase").text == "EXECUTING":
                break
            alice.get(url, params={"WAIT": 2})
        assert bob.post(url + "/phase", data={"PHASE": "ABORT"}).status_code == 403
        assert bob.delete(url).status_code == 403
        assert alice.get(url + "/phase").text == "EXECUTING"
        assert alice.post(url + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False).status_code == 303
        assert alice.get(url + "/phase").text == "ABORTED"
        alice.delete(url)


def test_anonymous_jobs_are_reached_by_their_url_only(server, tokens):
    with session_of(None) as anyone, session_of(tokens["bob"]) as bob:
        url = create(anyone, server, "SELECT TOP 1 source_id FROM xpdb.gaia_source")
        job_id = url.rsplit("/", 1)[1]
        assert ET.fromstring(anyone.get(url).content).find(f"{UWS}ownerId").get(
            "{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"
        assert job_id not in listed(anyone, server) | listed(bob, server)
        guessed = job_id[:-1] + ("A" if job_id[-1] != "A" else "B")
        assert anyone.get(server + "/tap/async/" + guessed).status_code == 404
        assert bob.get(url).status_code == 200  # whoever holds the URL
        assert anyone.delete(url, allow_redirects=False).status_code == 303


def test_wrong_credentials_are_refused_not_anonymous(server, tokens):
    query = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 source_id FROM xpdb.gaia_source"}
    alice_basic = base64.b64encode(f"alice:{tokens['alice']}".encode()).decode()
    wrong_name = base64.b64encode(f"bob:{tokens['alice']}".encode()).decode()
    for header, expected in [(f"Bearer {tokens['alice']}", 200), (f"Basic {alice_basic}", 200),
                             ("Bearer xpdb_not-a-token", 401), (f"Basic {wrong_name}", 401), ("Basic !!!", 401),
                             ("Bearer", 401), ("Digest abc", 401), (f"Bearer {tokens['alice']}\x7f", 401)]:
        response = requests.post(server + "/tap/sync", data=query, headers={"Authorization": header})
        assert response.status_code == expected, (header, response.text)
        if expected == 401:
            assert status_and_message(response)[1].startswith("authentication failed")


def test_pyvo_with_a_token(server, tokens):
    with session_of(tokens["bob"]) as session:
        tap = TAPService(server + "/tap", session=session)
        job = tap.submit_job("SELECT TOP 2 source_id FROM xpdb.gaia_source ORDER BY source_id")
        job.run().wait(timeout=60)
        assert job.owner == "bob" and len(job.fetch_result().to_table()) == 2
        assert job.job_id in {j.jobid for j in tap.get_job_list()}
        job.delete()


def test_tokens_can_be_required(service_db, tokens):
    from xpdb.service.app import create_app

    app_ = create_app(test_settings(require_token=True), database_url=service_db["url"],
                      reader_url=service_db["reader_url"])
    with ServerThread(app_) as running, session_of(tokens["alice"]) as alice, session_of(None) as anyone:
        for path in ("/tap/capabilities", "/tap/availability", "/capabilities"):
            assert anyone.get(running.url + path).status_code == 200
        for path in ("/tap/tables", "/scs?RA=100.5&DEC=10.5&SR=0.1", "/tap/async",
                     "/tap/sync?LANG=ADQL&QUERY=SELECT%20TOP%201%20ra%20FROM%20xpdb.gaia_source"):
            assert anyone.get(running.url + path).status_code == 401, path
            assert alice.get(running.url + path).status_code == 200, path


def test_token_directory_forgets_removed_tokens(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        token = add_user(conn, "carol")
        stored = conn.execute("SELECT token_sha256 FROM xpdb.service_user WHERE name = 'carol'").fetchone()[0]
        assert stored == token_hash(token) and token not in stored
        pool = ConnectionPool(lambda: psycopg.connect(db_url, autocommit=True), 1)
        directory = UserDirectory(pool, ttl_s=0)
        assert directory.lookup(token) == "carol"
        new = reset_token(conn, "carol")
        assert directory.lookup(token) is None and directory.lookup(new) == "carol"
        remove_user(conn, "carol")
        assert directory.lookup(new) is None
        pool.close()


def test_users_command(db_url):
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "dave"])
    assert added.exit_code == 0, added.output
    token = next(line for line in added.output.split() if line.startswith("xpdb_"))
    assert runner.invoke(app, ["users", "add", "dave"]).exit_code == 1
    assert runner.invoke(app, ["users", "add", "bad name!"]).exit_code == 1
    listing = runner.invoke(app, ["users", "list"])
    assert "dave" in listing.output and token not in listing.output
    reset = runner.invoke(app, ["users", "reset", "dave"])
    assert reset.exit_code == 0 and token not in reset.output
    assert runner.invoke(app, ["users", "remove", "dave"]).exit_code == 0
    assert runner.invoke(app, ["users", "remove", "dave"]).exit_code == 1
