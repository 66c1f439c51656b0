"""`xpdb serve` as a process (the typer function, run by uvicorn), and the 0006_tap migration."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psycopg
import pytest
import requests

from xpdb.db.engine import with_user
from xpdb.db.migrate import downgrade, upgrade

COMMAND = "import typer; from xpdb.cli.serve import serve; typer.run(serve)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("processes", [1, 2])
def test_serve_command_answers_and_stops_cleanly(service_db, processes):
    port = free_port()
    env = {**os.environ, "XPDB_DATABASE_URL": service_db["url"], "XPDB_READER_URL": service_db["reader_url"]}
    process = subprocess.Popen([sys.executable, "-c", COMMAND, "--host", "127.0.0.1", "--port", str(port),
                                "--maxrec", "50", "--processes", str(processes), "--log-level", "warning"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with requests.Session() as session:
            while True:
                try:
                    response = session.get(base + "/tap/availability", timeout=5)
                    break
                except requests.ConnectionError:
                    assert process.poll() is None, process.stdout.read()
                    assert time.monotonic() < deadline, "xpdb serve did not start"
                    time.sleep(0.2)
            assert b"<vosi:available>true</vosi:available>" in response.content
            csv = session.get(base + "/tap/sync", params={"LANG": "ADQL", "RESPONSEFORMAT": "csv",
                                                          "QUERY": "SELECT source_id FROM xpdb.gaia_source"})
            assert csv.status_code == 200 and len(csv.text.splitlines()) == 51  # --maxrec 50
            created = session.post(base + "/tap/async", allow_redirects=False, data={
                "LANG": "ADQL", "QUERY": "SELECT TOP 3 source_id FROM xpdb.gaia_source", "PHASE": "RUN"})
            job = created.headers["location"]
            while session.get(job + "/phase").text in ("QUEUED", "EXECUTING") and time.monotonic() < deadline:
                session.get(job, params={"WAIT": 2})
            assert session.get(job + "/phase").text == "COMPLETED"
            assert session.delete(job, allow_redirects=False).status_code == 303
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output
    assert f"http://localhost:{port}/tap" in output


def test_migration_downgrades_and_upgrades(db_url, conn):
    downgrade(db_url, "0005_views")
    assert conn.execute("SELECT to_regclass('xpdb.uws_job'), to_regnamespace('tap_schema')").fetchone() == (None, None)
    upgrade(db_url)
    assert conn.execute("SELECT count(*) FROM tap_schema.column_meta WHERE column_name = 'ra'").fetchone()[0] == 1
    with psycopg.connect(with_user(db_url, "xpdb_reader")) as reader:
        names = {r[0] for r in reader.execute("SELECT table_name FROM tap_schema.tables")}
        assert "xpdb.gaia_source" in names and "xpdb.uws_job" not in names
