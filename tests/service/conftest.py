"""Fixtures for the service tests: a database with sources, a model and its predictions, and
the real server (uvicorn in a thread) on a free loopback port.

The database and the server are shared by the tests of a module (starting them per
test would cost seconds); tests that restart the server make their own with
:class:`ServerThread`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
import requests

from tests.conftest import cloned_database
from xpdb.db.engine import with_user

N_SOURCES = 300
CENTRE = (100.5, 10.5)


class ServerThread:
    """``xpdb serve``'s application under uvicorn in a thread, on a loopback port chosen by the OS."""

    def __init__(self, app, *, log_level: str = "warning"):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name=f"uvicorn-{self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start within {timeout_s} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def load_fixture_data(url: str, tmp: Path) -> dict:
    """N_SOURCES sources around CENTRE (and a few far away), one model, predictions for most sources."""
    from xpdb.ingest.runs import ingest_file

    rng = np.random.default_rng(7)
    lines = ["source_id,ra,dec,l,b,parallax,phot_g_mean_mag,bp_rp,ebv,phot_bp_rp_excess_factor,r_med_geo"]
    for i in range(N_SOURCES):
        far = i >= N_SOURCES - 20
        ra = rng.uniform(200, 201) if far else CENTRE[0] + rng.uniform(-0.5, 0.5)
        dec = rng.uniform(-31, -30) if far else CENTRE[1] + rng.uniform(-0.5, 0.5)
        lines.append(f"{4_000_000_000 + i * 7},{ra:.9f},{dec:.9f},{rng.uniform(0, 360):.6f},{rng.uniform(-90, 90):.6f},"
                     f"{rng.uniform(0.1, 2):.4f},{rng.uniform(8, 17):.3f},{rng.uniform(0.8, 1.8):.3f},"
                     f"{rng.uniform(0.01, 0.1):.3f},{rng.uniform(1.1, 1.4):.3f},{rng.uniform(500, 5000):.1f}")
    path = tmp / "sources.csv"
    path.write_text("\n".join(lines) + "\n")
    ingest_file(url, "sources", path)
    with psycopg.connect(url) as conn:
        model_id = conn.execute(
            "INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact) "
            "VALUES ('uacsnet', 'uacsnet', 1, %s, '\\x00') RETURNING model_id", (json.dumps({}),)).fetchone()[0]
        ids = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.gaia_source ORDER BY source_id")]
        with conn.cursor().copy("COPY xpdb.prediction (model_id, source_id, feh, feh_err, flags) FROM STDIN") as copy:
            for k, source_id in enumerate(ids):
                if k % 4 != 3:  # a quarter without prediction
                    copy.write_row((model_id, source_id, float(rng.uniform(-2.5, 0.3)), float(rng.uniform(0.05, 0.3)),
                                    int(k % 3 == 0) * 2))
    return {"model_id": model_id, "model_ref": "uacsnet:1", "n_sources": N_SOURCES}


@pytest.fixture(scope="module")
def service_db(pg_server, template_url, tmp_path_factory):
    """A migrated database with the fixture data, for all the tests of a module."""
    with cloned_database(pg_server, "xpdb_svc") as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("XPDB_DATABASE_URL", url)
        mp.setenv("XPDB_READER_URL", with_user(url, "xpdb_reader"))
        info = load_fixture_data(url, tmp_path_factory.mktemp("service-data"))
        yield {"url": url, "reader_url": with_user(url, "xpdb_reader"), **info}


# A query no machine can finish within any test's timeout: a six-way cross join of the
# fixture's 300 sources is 7e14 rows (hours even at a billion rows a second), yet a
# cancel or statement timeout stops it at once. Tests of timeouts and aborts use it so
# that their outcome never depends on the machine's speed.
NEVER_ENDS = ("SELECT COUNT(*) FROM xpdb.gaia_source AS a, xpdb.gaia_source AS b, xpdb.gaia_source AS c, "
              "xpdb.gaia_source AS d, xpdb.gaia_source AS e, xpdb.gaia_source AS f "
              "WHERE a.ra + b.ra + c.ra + d.ra + e.ra + f.ra > SQRT(ABS(a.dec * b.dec * c.dec * f.dec))")


def test_settings(**overrides):
    from xpdb.service.settings import ServiceSettings

    values = dict(maxrec=1000, maxrec_limit=5000, sync_timeout_s=2.0, async_duration_s=30,
                  async_duration_limit_s=60, pool_size=6, async_workers=2, poll_s=0.2, maintenance_s=1.0,
                  wait_limit_s=10.0)
    values.update(overrides)
    return ServiceSettings(**values)


test_settings.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def server(service_db):
    """The running server over ``service_db``; yields its base URL."""
    from xpdb.service.app import create_app

    app = create_app(test_settings(), database_url=service_db["url"], reader_url=service_db["reader_url"])
    with ServerThread(app) as running:
        yield running.url


class ClosingSession(requests.Session):
    """A session that closes every response it produced when it is closed.

    pyvo's ``AsyncTAPJob.create`` streams the response to the job creation (followed to
    the job document) and never reads or closes it; the socket would be garbage-collected
    open, a ResourceWarning that this test suite turns into an error.
    """

    def __init__(self) -> None:
        super().__init__()
        self._responses: list[requests.Response] = []

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        self._responses.append(response)
        return response

    def close(self) -> None:
        for response in self._responses:
            response.close()
        self._responses.clear()
        super().close()


@pytest.fixture
def http():
    """A requests session for the test, pyvo's included (``session=http``); closed afterwards."""
    with ClosingSession() as session:
        yield session
