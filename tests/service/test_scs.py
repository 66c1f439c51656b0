"""Simple Cone Search at /scs through pyvo: the rows of `xpdb cone`, column metadata, errors."""

from __future__ import annotations

import io

import numpy as np
import psycopg
import pytest
from astropy.io.votable import parse as parse_votable
from astropy.table import Table
from pyvo.dal import DALQueryError, SCSService
from typer.testing import CliRunner

from xpdb.cli.main import app


def assert_same_table(got: Table, expected: Table) -> None:
    assert got.colnames == expected.colnames
    assert len(got) == len(expected)
    for name in expected.colnames:
        a, b = got[name], expected[name]
        mask_a = np.ma.getmaskarray(a)
        mask_b = np.ma.getmaskarray(b)
        np.testing.assert_array_equal(mask_a, mask_b, err_msg=name)
        np.testing.assert_array_equal(np.asarray(a)[~mask_a], np.asarray(b)[~mask_b], err_msg=name)
        assert a.unit == b.unit, name


def cli_cone(tmp_path, *args: str) -> Table:
    out = tmp_path / "cone.xml"
    result = CliRunner().invoke(app, ["cone", *args, "--format", "votable", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return parse_votable(str(out)).get_first_table().to_table()


def test_cone_search_returns_the_rows_of_xpdb_cone(server, http, service_db, tmp_path):
    scs = SCSService(server + "/scs", session=http)
    results = scs.search((100.5, 10.5), 0.2)
    got = results.to_table()
    expected = cli_cone(tmp_path, "100.5", "10.5", "0.2")
    assert 10 < len(got) < 300
    assert_same_table(got, expected)
    assert list(got["dist_arcsec"]) == sorted(got["dist_arcsec"])  # nearest first
    assert got.colnames[:3] == ["source_id", "ra", "dec"] and "feh" in got.colnames
    fields = {f.name: f for f in results.votable.get_first_table().fields}
    assert fields["source_id"].ucd == "meta.id;meta.main"
    assert fields["ra"].ucd == "pos.eq.ra;meta.main" and str(fields["ra"].unit) == "deg"
    assert fields["dec"].ucd == "pos.eq.dec;meta.main" and str(fields["dec"].unit) == "deg"
    assert fields["feh"].description and "[dex]" in fields["feh"].description
    assert all(f.description for f in fields.values())


def test_verbosity_maxrec_and_formats(server, http):
    scs = SCSService(server + "/scs", session=http)
    minimal = scs.search((100.5, 10.5), 0.2, verbosity=1).to_table()
    assert minimal.colnames == ["source_id", "ra", "dec", "dist_arcsec"]
    full = scs.search((100.5, 10.5), 0.2, verbosity=3).to_table()
    assert {"parallax", "m_g", "z_kpc", "feh", "flags"} <= set(full.colnames)
    assert list(full["source_id"]) == list(minimal["source_id"])

    response = http.get(server + "/scs", params={"RA": 100.5, "DEC": 10.5, "SR": 0.2, "MAXREC": 5})
    body = response.content
    assert response.status_code == 200 and b'value="OVERFLOW"' in body
    assert body.index(b'value="OVERFLOW"') > body.index(b"</TABLE>")  # DALI: after the table
    assert len(parse_votable(io.BytesIO(body)).get_first_table().array) == 5
    assert list(minimal["source_id"][:5]) == list(parse_votable(io.BytesIO(body)).get_first_table().array["source_id"])

    csv = http.get(server + "/scs", params={"RA": 100.5, "DEC": 10.5, "SR": 0.2, "RESPONSEFORMAT": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert list(Table.read(csv.text, format="ascii.csv")["source_id"]) == list(minimal["source_id"])


def test_sr_zero_gives_the_columns_without_rows(server, http):
    scs = SCSService(server + "/scs", session=http)
    assert len(scs.search((100.5, 10.5), 0)) == 0
    assert [c.name for c in scs.columns][:3] == ["source_id", "ra", "dec"]


@pytest.mark.parametrize("params, message", [
    ({"RA": 100.5, "DEC": 10.5}, "SR"),
    ({"RA": 100.5, "DEC": 95, "SR": 0.1}, "DEC must be within"),
    ({"RA": "abc", "DEC": 10, "SR": 0.1}, "RA must be a number"),
    ({"RA": 100.5, "DEC": 10, "SR": 0.1, "VERB": 7}, "VERB"),
    ({"RA": 100.5, "DEC": 10, "SR": 0.1, "MAXREC": -1}, "MAXREC"),
    ({"RA": 100.5, "DEC": 10, "SR": 0.1, "RESPONSEFORMAT": "xls"}, "RESPONSEFORMAT"),
])
def test_errors_are_votable_error_documents(server, http, params, message):
    response = http.get(server + "/scs", params=params)
    assert response.status_code == 200  # SCS 1.03
    votable = parse_votable(io.BytesIO(response.content))
    error = [i for i in votable.infos if i.name == "Error"]
    assert error and message in error[0].value
    status = [i for i in votable.resources[0].infos if i.name == "QUERY_STATUS"]
    assert status[0].value == "ERROR" and message in status[0].content
    assert "Traceback" not in response.text


def test_pyvo_raises_the_service_message(server, http):
    scs = SCSService(server + "/scs", session=http)
    with pytest.raises(DALQueryError, match="VERB must be 1, 2 or 3"):
        scs.search((100.5, 10.5), 0.1, verbosity=5)


def test_a_cone_reads_the_newest_model_and_its_rows_in_one_snapshot(server, http, service_db):
    """The model named in the INFO is the one whose predictions the rows carry, also right after a new model."""
    rng = np.random.default_rng(3)
    with psycopg.connect(service_db["url"], autocommit=True) as conn:
        model_id = conn.execute("INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact) "
                                "VALUES ('uacsnet', 'newer', 7, '{}', '\\x00') RETURNING model_id").fetchone()[0]
        ids = [r[0] for r in conn.execute("SELECT source_id FROM xpdb.gaia_source")]
        feh = {sid: float(v) for sid, v in zip(ids, rng.uniform(-3, 0.5, len(ids)))}
        conn.cursor().executemany("INSERT INTO xpdb.prediction (model_id, source_id, feh, feh_err, flags) "
                                  "VALUES (%s, %s, %s, 0.1, 0)", [(model_id, sid, v) for sid, v in feh.items()])
    try:
        response = http.get(server + "/scs", params={"RA": 100.5, "DEC": 10.5, "SR": 0.2})
        votable = parse_votable(io.BytesIO(response.content))
        infos = {i.name: i.value for i in votable.resources[0].infos}
        table = votable.get_first_table().to_table()
        assert infos["model"] == "newer:7" and len(table) > 10
        assert np.allclose(np.asarray(table["feh"]), [feh[int(s)] for s in table["source_id"]], rtol=1e-6)
    finally:
        with psycopg.connect(service_db["url"], autocommit=True) as conn:
            conn.execute("DELETE FROM xpdb.prediction WHERE model_id = %s", (model_id,))
            conn.execute("DELETE FROM xpdb.model WHERE model_id = %s", (model_id,))


def test_bounded_cones_are_prepared_and_others_use_a_cursor_with_the_same_rows(service_db, monkeypatch):
    """A cone whose rows cannot pass the byte limit runs as a prepared statement (one generic plan), a larger
    MAXREC through a cursor; the rows are the same."""
    import requests

    from tests.service.conftest import ServerThread, test_settings
    from xpdb.service import scs
    from xpdb.service.app import create_app

    paths = []
    real = scs.run_readonly

    def recording(*args, **kwargs):
        paths.append(kwargs["prepared"])
        return real(*args, **kwargs)

    monkeypatch.setattr(scs, "run_readonly", recording)
    # 0.2 MB: MAXREC 100 (101 rows of 11 numbers) fits whatever the values; MAXREC 1000 might not
    app = create_app(test_settings(max_result_mb=0.2), database_url=service_db["url"],
                     reader_url=service_db["reader_url"])
    with ServerThread(app) as running, requests.Session() as session:
        tables = []
        for maxrec in (100, 1000):
            response = session.get(running.url + "/scs", params={"RA": 100.5, "DEC": 10.5, "SR": 0.2,
                                                                 "MAXREC": maxrec})
            tables.append(parse_votable(io.BytesIO(response.content)).get_first_table().to_table())
    assert paths == [True, False]
    assert 10 < len(tables[0]) < 100
    assert_same_table(tables[0], tables[1])


def test_the_generic_cone_plan_looks_predictions_up_by_index(pg_server, template_url, tmp_path):
    """One plan serves every cone (a prepared statement's generic plan, which cannot know the cone's size): on a
    sky large enough for q3c's default estimate to matter, it must find each source's prediction by its key,
    never read and hash all of the model's predictions (a plain join did, at 200,000 sources)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.conftest import cloned_database
    from xpdb.db.engine import with_user
    from xpdb.ingest.runs import ingest_file
    from xpdb.query.cone import DEFAULT_COLUMNS, cone_query

    n = 100_000
    rng = np.random.default_rng(5)
    with cloned_database(pg_server, "xpdb_plan") as url:
        pq.write_table(pa.table({"source_id": np.arange(1, n + 1, dtype=np.int64) * 1024,
                                 "ra": rng.uniform(140, 160, n), "dec": rng.uniform(10, 30, n),
                                 "phot_g_mean_mag": rng.uniform(8, 18, n).astype(np.float32),
                                 "bp_rp": rng.uniform(0.5, 2, n).astype(np.float32),
                                 "ebv": np.full(n, 0.05, np.float32)}), tmp_path / "sky.parquet")
        ingest_file(url, "sources", tmp_path / "sky.parquet")
        with psycopg.connect(url, autocommit=True) as conn:
            model_id = conn.execute("INSERT INTO xpdb.model (kind, name, version, hyperparameters, artifact) "
                                    "VALUES ('uacsnet', 'm', 1, '{}', '\\x00') RETURNING model_id").fetchone()[0]
            conn.execute("INSERT INTO xpdb.prediction (model_id, source_id, feh, feh_err, flags) "
                         "SELECT %s, source_id, -1, 0.1, 0 FROM xpdb.gaia_source", (model_id,))
            conn.execute("ANALYZE xpdb.gaia_source")
            conn.execute("ANALYZE xpdb.prediction")
        sql, params = cone_query(150.0, 20.0, 0.1, columns=DEFAULT_COLUMNS, model_id=model_id, limit=1001)
        names = ["ra", "dec", "radius", "model_id"]
        for k, name in enumerate(names, 1):
            sql = sql.replace(f"%({name})s", f"${k}")
        with psycopg.connect(with_user(url, "xpdb_reader"), autocommit=True) as conn:
            conn.execute("SET plan_cache_mode = force_generic_plan")
            conn.execute(f"PREPARE cone (float8, float8, float8, int4) AS {sql}")
            values = ", ".join(repr(params[n]) for n in names)  # numbers of this test (EXECUTE takes no parameters)
            plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN EXECUTE cone({values})").fetchall())
    assert "$1" in plan  # the generic plan: the values are parameters in it
    assert "prediction_pkey" in plan and "Hash" not in plan and "Seq Scan on prediction" not in plan, plan
