"""TAP_UPLOAD: the user's tables (VOTable, CSV) joined server-side, through TAP, the CLI and the Python API."""

from __future__ import annotations

import io

import numpy as np
import psycopg
import pytest
from astropy.table import Table
from typer.testing import CliRunner

from tests.service.conftest import ServerThread, test_settings


@pytest.fixture(scope="module")
def sources(service_db):
    with psycopg.connect(service_db["url"]) as conn:
        rows = conn.execute("SELECT source_id, ra, dec FROM xpdb.gaia_source ORDER BY source_id LIMIT 5").fetchall()
    return rows


@pytest.fixture(scope="module")
def small_server(service_db):
    """A server whose uploads may have at most 20 rows and 20 kB."""
    from xpdb.service.app import create_app

    settings = test_settings(upload_max_rows=20, upload_max_mb=0.02, upload_urls=False)
    app = create_app(settings, database_url=service_db["url"], reader_url=service_db["reader_url"])
    with ServerThread(app) as running:
        yield running.url


def _votable(table: Table) -> bytes:
    out = io.BytesIO()
    table.write(out, format="votable")
    return out.getvalue()


def test_pyvo_upload_joined_by_source_id(server, sources, http):
    import pyvo

    ids = [s[0] for s in sources[:3]] + [12345]
    mine = Table({"source_id": np.array(ids, dtype=np.int64), "label": ["a", "b", "c", "none"]})
    tap = pyvo.dal.TAPService(server + "/tap", session=http)
    result = tap.run_sync("SELECT u.label, g.source_id, g.ra FROM TAP_UPLOAD.mine AS u "
                          "JOIN xpdb.gaia_source AS g ON g.source_id = u.source_id ORDER BY u.label",
                          uploads={"mine": mine}).to_table()
    assert list(result["label"]) == ["a", "b", "c"]
    assert list(result["source_id"]) == ids[:3]
    assert np.allclose(result["ra"], [s[1] for s in sources[:3]])


def test_positional_crossmatch_with_contains_and_distance(server, sources, http):
    shift = 0.5 / 3600  # half an arcsecond north of each source
    csv = "id,ra,dec\n" + "".join(f"{k},{ra!r},{dec + shift!r}\n" for k, (_, ra, dec) in enumerate(sources))
    files = {"pos": ("pos.csv", csv.encode(), "text/csv")}
    query = ("SELECT u.id, g.source_id, DISTANCE(POINT('ICRS', u.ra, u.dec), POINT('ICRS', g.ra, g.dec)) AS d "
             "FROM TAP_UPLOAD.pos AS u, xpdb.gaia_source AS g "
             "WHERE 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', u.ra, u.dec, 1.0/3600)) ORDER BY u.id")
    response = http.post(server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": "pos,param:pos",
                                                     "RESPONSEFORMAT": "csv"}, files=files)
    assert response.status_code == 200, response.text
    got = Table.read(response.text, format="ascii.csv")
    assert list(got["id"]) == list(range(len(sources)))
    assert list(got["source_id"]) == [s[0] for s in sources]
    assert np.allclose(got["d"], shift, rtol=1e-3)


@pytest.mark.parametrize(("upload", "files", "query", "message"), [
    ("t,http://example.org/t.vot", {}, "SELECT * FROM TAP_UPLOAD.t", "fetches no URLs"),
    ("t,ftp://example.org/t.vot", {}, "SELECT * FROM TAP_UPLOAD.t", "neither param:PART nor an http(s) URL"),
    ("t,param:other", {"t": b"a\n1\n"}, "SELECT * FROM TAP_UPLOAD.t", "no file part 'other'"),
    ("1t,param:t", {"t": b"a\n1\n"}, "SELECT * FROM TAP_UPLOAD.t", "is not allowed"),
    ("t,param:t", {"t": b"a,b\n1,2\n3\n"}, "SELECT * FROM TAP_UPLOAD.t", "line 3 (row 2): 1 values"),
    ("t,param:t", {"t": b"<VOTABLE><RESOURCE>"}, "SELECT * FROM TAP_UPLOAD.t", "not a readable VOTable"),
    ("t,param:t", {"t": b"a\n1\n"}, "SELECT * FROM TAP_UPLOAD.other", "no uploaded table 'other'"),
    ("t,param:t", {"t": b"a\n" + b"1\n" * 21}, "SELECT * FROM TAP_UPLOAD.t", "21 rows; at most 20"),
    ("t,param:t", {"t": b"a\n" + b"12345678\n" * 3000}, "SELECT * FROM TAP_UPLOAD.t", "at most 20,000"),
])
def test_upload_errors_are_clear(small_server, http, upload, files, query, message):
    response = http.post(small_server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": upload},
                         files={k: (k + ".csv", v) for k, v in files.items()} or None)
    assert response.status_code in (400, 413), response.text
    assert message in response.text


def test_upload_by_url(server, small_server, sources, http):
    """TAP 1.1's upload-http: the service fetches the table (here from its own TAP result); it can be switched off."""
    from urllib.parse import urlencode

    ids = ", ".join(str(s[0]) for s in sources[:2])
    url = server + "/tap/sync?" + urlencode({"LANG": "ADQL", "RESPONSEFORMAT": "votable",
                                             "QUERY": f"SELECT source_id FROM xpdb.gaia_source WHERE source_id IN ({ids})"})
    query = "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t"
    response = http.post(server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": f"t,{url}",
                                                     "RESPONSEFORMAT": "csv"})
    assert response.status_code == 200 and response.text.split() == ["n", "2"], response.text
    refused = http.post(small_server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": f"t,{url}"})
    assert refused.status_code == 400 and "fetches no URLs" in refused.text
    assert "upload-http" not in http.get(small_server + "/tap/capabilities").text


def _run_async(http, server, data, files=None):
    created = http.post(server + "/tap/async", data={**data, "PHASE": "RUN"}, files=files, allow_redirects=False)
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    phase = ""
    for _ in range(60):
        phase = http.get(url, params={"WAIT": 5}).text.split("<uws:phase>", 1)[1].split("<", 1)[0]
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            break
    return url, phase


def test_async_job_joins_its_uploaded_table(server, sources, http, service_db):
    """UPLOAD at job creation: the table is kept with the job, joined when it runs, removed with it."""
    ids = [s[0] for s in sources[:2]] + [12345]
    csv = "source_id,tag\n" + "".join(f"{i},t{k}\n" for k, i in enumerate(ids))
    query = ("SELECT u.tag, g.source_id FROM TAP_UPLOAD.mine AS u JOIN xpdb.gaia_source AS g "
             "ON g.source_id = u.source_id ORDER BY u.tag")
    url, phase = _run_async(http, server, {"LANG": "ADQL", "QUERY": query, "UPLOAD": "mine,param:t",
                                           "RESPONSEFORMAT": "csv"}, files={"t": ("mine.csv", csv.encode())})
    assert phase == "COMPLETED", http.get(url + "/error").text
    result = http.get(url + "/results/result").text.split()
    assert result == ["tag,source_id", f"t0,{ids[0]}", f"t1,{ids[1]}"]
    job_id = url.rstrip("/").rsplit("/", 1)[1]
    with psycopg.connect(service_db["url"]) as conn:
        assert conn.execute("SELECT name, source FROM xpdb.uws_upload WHERE job_id = %s", (job_id,)).fetchall() == \
            [("mine", "param:t (mine.csv)")]
        assert http.delete(url, allow_redirects=False).status_code == 303
        assert conn.execute("SELECT count(*) FROM xpdb.uws_upload WHERE job_id = %s", (job_id,)).fetchone()[0] == 0


def test_async_upload_errors_at_creation(server, small_server, http):
    query = "SELECT * FROM TAP_UPLOAD.t"
    bad = http.post(server + "/tap/async", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": "t,param:t"},
                    files={"t": ("t.csv", b"a,b\n1\n2,3,4\n")}, allow_redirects=False)
    assert bad.status_code == 400 and "upload error" in bad.text and "t.csv" in bad.text, bad.text
    missing = http.post(server + "/tap/async", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": "t,param:other"},
                        files={"t": ("t.csv", b"a\n1\n")}, allow_redirects=False)
    assert missing.status_code == 400 and "no file part 'other'" in missing.text
    big = "a\n" + "".join(f"{i}\n" for i in range(50))  # the small server accepts 20 rows
    refused = http.post(small_server + "/tap/async", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": "t,param:t"},
                        files={"t": ("t.csv", big.encode())}, allow_redirects=False)
    assert refused.status_code == 400 and "20" in refused.text, refused.text


def test_capabilities_declare_inline_upload(server, http):
    text = http.get(server + "/tap/capabilities").text
    assert "upload-inline" in text and "<uploadLimit>" in text


def test_upload_tables_live_only_in_the_read_only_query(service_db, sources):
    """xpdb writes the temporary table; the user's statement runs READ ONLY; the table is gone afterwards."""
    from xpdb.query.run import reader_connect, run_readonly
    from xpdb.query.upload import read_upload

    upload = read_upload("mine", b"source_id\n" + f"{sources[0][0]}\n".encode(), "test")
    with reader_connect(service_db["reader_url"]) as conn:
        result = run_readonly("SELECT current_setting('transaction_read_only') AS ro, current_user AS who, "
                              "count(*) AS n FROM pg_temp.mine", conn=conn, uploads=[upload])
        assert result.rows == [("on", "xpdb_reader", 1)]
        conn.rollback()
        assert conn.execute("SELECT to_regclass('pg_temp.mine')").fetchone() == (None,)


def test_cli_and_api_uploads(service_db, sources, tmp_path, monkeypatch):
    from xpdb.api import Database
    from xpdb.cli.main import app

    path = tmp_path / "ids.vot"
    path.write_bytes(_votable(Table({"source_id": np.array([s[0] for s in sources[:2]], dtype=np.int64)})))
    query = ("SELECT g.source_id FROM TAP_UPLOAD.ids AS u JOIN xpdb.gaia_source AS g "
             "ON g.source_id = u.source_id ORDER BY g.source_id")
    monkeypatch.setenv("XPDB_DATABASE_URL", service_db["url"])
    monkeypatch.setenv("XPDB_READER_URL", service_db["reader_url"])
    out = tmp_path / "out.csv"
    done = CliRunner().invoke(app, ["query", "--upload", f"ids={path}", "--format", "csv", "--out", str(out), query])
    assert done.exit_code == 0, done.output
    assert list(Table.read(out, format="ascii.csv")["source_id"]) == [s[0] for s in sources[:2]]
    missing = CliRunner().invoke(app, ["query", "--upload", f"ids={tmp_path / 'nope.vot'}", query])
    assert missing.exit_code != 0 and "nope.vot" in missing.output

    db = Database(service_db["url"], reader_url=service_db["reader_url"])
    table = db.query(query, uploads={"ids": path})
    assert list(table["source_id"]) == [s[0] for s in sources[:2]]
    table = db.query(query, uploads={"ids": Table({"source_id": np.array([sources[3][0]], dtype=np.int64)})})
    assert list(table["source_id"]) == [sources[3][0]]
