"""TAP /tap/sync through pyvo and plain HTTP: the rows of `xpdb query`, formats, MAXREC, errors, safety."""

from __future__ import annotations

import io

import numpy as np
import psycopg
import pytest
from astropy.io import fits
from astropy.io.votable import parse as parse_votable
from astropy.table import Table
from pyvo.dal import DALQueryError, TAPService
from typer.testing import CliRunner

from tests.service.conftest import NEVER_ENDS
from tests.service.test_scs import assert_same_table
from xpdb.cli.main import app
from xpdb.db.security import INTERNAL_RELATIONS

QUERIES = [
    "SELECT TOP 20 source_id, ra, dec, phot_g_mean_mag FROM gaiadr3.gaia_source ORDER BY source_id",
    "SELECT source_id, ra, dec, feh, feh_err, flags FROM xpdb.catalog "
    "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 100.5, 10.5, 0.2)) ORDER BY source_id",
    "SELECT s.source_id, DISTANCE(POINT('ICRS', s.ra, s.dec), POINT('ICRS', 100.5, 10.5)) AS d, p.feh "
    "FROM xpdb.gaia_source AS s LEFT JOIN xpdb.prediction AS p ON p.source_id = s.source_id "
    "WHERE s.phot_g_mean_mag < 12 ORDER BY d",
    "SELECT COUNT(*) AS n, AVG(feh) AS mean_feh FROM xpdb.catalog",
]


def cli_query(tmp_path, adql: str, *extra: str) -> Table:
    out = tmp_path / "query.xml"
    result = CliRunner().invoke(app, ["query", adql, *extra, "--format", "votable", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return parse_votable(str(out)).get_first_table().to_table()


@pytest.mark.parametrize("adql", QUERIES)
def test_run_sync_returns_the_rows_of_xpdb_query(server, http, tmp_path, adql):
    tap = TAPService(server + "/tap", session=http)
    got = tap.run_sync(adql).to_table()
    assert len(got) > 0
    assert_same_table(got, cli_query(tmp_path, adql))


def test_result_votable_is_binary2_with_status_and_column_metadata(server, http):
    response = http.get(server + "/tap/sync", params={
        "REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT TOP 3 source_id, ra, dec, feh FROM xpdb.catalog"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-votable+xml")
    assert b"<BINARY2>" in response.content
    votable = parse_votable(io.BytesIO(response.content))
    resource = votable.resources[0]
    assert resource.type == "results"
    assert [(i.name, i.value) for i in resource.infos][0] == ("QUERY_STATUS", "OK")
    fields = {f.name: f for f in resource.tables[0].fields}
    assert fields["source_id"].ucd == "meta.id;meta.main"
    assert fields["ra"].ucd == "pos.eq.ra;meta.main" and str(fields["ra"].unit) == "deg"
    assert fields["dec"].ucd == "pos.eq.dec;meta.main"
    assert "UA-CSNet" in fields["feh"].description


@pytest.mark.parametrize("fmt, reader", [
    ("csv", lambda b: Table.read(b.decode(), format="ascii.csv")),
    ("text/csv", lambda b: Table.read(b.decode(), format="ascii.csv")),
    ("tsv", lambda b: Table.read(b.decode(), format="ascii.tab")),
    ("fits", lambda b: Table.read(io.BytesIO(b), format="fits")),
    ("application/fits", lambda b: Table.read(io.BytesIO(b), format="fits")),
    ("votable/td", lambda b: parse_votable(io.BytesIO(b)).get_first_table().to_table()),
    ("application/x-votable+xml;serialization=TABLEDATA",
     lambda b: parse_votable(io.BytesIO(b)).get_first_table().to_table()),
])
def test_response_formats(server, http, fmt, reader):
    query = "SELECT TOP 10 source_id, ra, phot_g_mean_mag FROM xpdb.gaia_source ORDER BY source_id"
    response = http.post(server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": fmt})
    assert response.status_code == 200, response.text
    table = reader(response.content)
    assert len(table) == 10 and list(table["source_id"]) == sorted(table["source_id"])
    if fmt.endswith("fits"):
        header = fits.getheader(io.BytesIO(response.content), 1)
        assert header["TUNIT2"] == "deg" and header["QUERY_STATUS"] == "OK"
    if "TABLEDATA" in fmt.upper() or fmt == "votable/td":
        assert b"<TABLEDATA>" in response.content


def test_maxrec_overflow_and_ceiling(server, http):
    tap = TAPService(server + "/tap", session=http)
    result = tap.run_sync("SELECT source_id FROM xpdb.gaia_source ORDER BY source_id", maxrec=7)
    assert len(result) == 7
    response = http.get(server + "/tap/sync", params={"LANG": "ADQL", "MAXREC": 7,
                                                      "QUERY": "SELECT source_id FROM xpdb.gaia_source"})
    body = response.content
    assert body.index(b'value="OVERFLOW"') > body.index(b"</TABLE>")
    # TOP below MAXREC: no overflow
    exact = http.get(server + "/tap/sync", params={"LANG": "ADQL", "MAXREC": 7,
                                                   "QUERY": "SELECT TOP 7 source_id FROM xpdb.gaia_source"})
    assert b"OVERFLOW" not in exact.content
    # MAXREC above the ceiling (5000 here) is lowered to it
    capped = http.get(server + "/tap/sync", params={"LANG": "ADQL", "MAXREC": 10**9,
                                                    "QUERY": "SELECT source_id FROM xpdb.gaia_source"})
    infos = {i.name: i.value for i in parse_votable(io.BytesIO(capped.content)).resources[0].infos}
    assert infos["MAXREC"] == "5000" and infos["QUERY_STATUS"] == "OK"
    # MAXREC=0: the columns only
    empty = http.get(server + "/tap/sync", params={"LANG": "ADQL", "MAXREC": 0,
                                                   "QUERY": "SELECT source_id, ra FROM xpdb.gaia_source"})
    table = parse_votable(io.BytesIO(empty.content)).get_first_table()
    assert len(table.array) == 0 and [f.name for f in table.fields] == ["source_id", "ra"]


@pytest.mark.parametrize("params, message", [
    ({"LANG": "ADQL", "QUERY": "SELECT FROM xpdb.gaia_source"}, "ADQL error: line 1, column 8"),
    ({"LANG": "ADQL", "QUERY": "SELECT nope FROM xpdb.gaia_source"}, 'column "nope" does not exist'),
    ({"LANG": "ADQL", "QUERY": "SELECT * FROM nowhere"}, "there is no table 'nowhere' here"),
    ({"QUERY": "SELECT TOP 1 * FROM xpdb.gaia_source"}, "LANG is missing"),
    ({"LANG": "SQL", "QUERY": "SELECT 1"}, "LANG='SQL' is not supported"),
    ({"LANG": "ADQL"}, "QUERY is missing"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM xpdb.gaia_source", "REQUEST": "getCapabilities"}, "REQUEST"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM xpdb.gaia_source", "MAXREC": "ten"}, "MAXREC"),
    ({"LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM xpdb.gaia_source", "RESPONSEFORMAT": "xlsx"}, "RESPONSEFORMAT"),
])
def test_errors_are_dali_error_documents(server, http, params, message):
    response = http.post(server + "/tap/sync", data=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/x-votable+xml")
    info = parse_votable(io.BytesIO(response.content)).resources[0].infos[0]
    assert info.name == "QUERY_STATUS" and info.value == "ERROR"
    assert message in info.content
    assert "Traceback" not in response.text


def test_pyvo_raises_the_error_message(server, http):
    tap = TAPService(server + "/tap", session=http)
    with pytest.raises(DALQueryError, match="unknown function PG_SLEEP"):
        tap.run_sync("SELECT pg_sleep(5) FROM xpdb.gaia_source")


def test_tap_schema_is_queryable(server, http, service_db):
    tap = TAPService(server + "/tap", session=http)
    tables = tap.run_sync("SELECT table_name, table_type, description FROM TAP_SCHEMA.tables").to_table()
    names = set(tables["table_name"])
    assert {"xpdb.gaia_source", "xpdb.catalog", "xpdb.prediction", "xpdb.giant_sample",
            "tap_schema.tables", "tap_schema.columns"} <= names
    assert not set(INTERNAL_RELATIONS) & names
    with psycopg.connect(service_db["url"]) as conn:  # every public table and view of schema xpdb
        public = {f"xpdb.{r[0]}" for r in conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE nspname = 'xpdb' AND relkind IN ('r', 'v', 'm')")} - set(INTERNAL_RELATIONS)
    assert public <= names
    columns = tap.run_sync("SELECT column_name, datatype, unit, ucd, description, indexed FROM tap_schema.columns "
                           "WHERE table_name = 'xpdb.gaia_source'").to_table()
    by_name = {r["column_name"]: r for r in columns}
    assert by_name["ra"]["unit"] == "deg" and by_name["ra"]["ucd"] == "pos.eq.ra;meta.main"
    assert by_name["source_id"]["ucd"] == "meta.id;meta.main" and by_name["source_id"]["datatype"] == "long"
    assert by_name["ra"]["indexed"] == 1 and by_name["pmra"]["unit"] == "mas.yr**-1"
    catalog = tap.run_sync("SELECT column_name, ucd, description FROM TAP_SCHEMA.columns "
                           "WHERE table_name = 'xpdb.catalog' AND column_name = 'feh'").to_table()
    assert catalog["ucd"][0] == "phys.abund.Fe" and "dex" in catalog["description"][0]
    schemas = tap.run_sync("SELECT schema_name FROM TAP_SCHEMA.schemas").to_table()
    assert set(schemas["schema_name"]) == {"xpdb", "tap_schema"}
    keys = tap.run_sync("SELECT k.from_table, k.target_table, c.from_column FROM TAP_SCHEMA.keys AS k "
                        "JOIN TAP_SCHEMA.key_columns AS c ON c.key_id = k.key_id").to_table()
    keys = {tuple(r) for r in keys}
    assert ("xpdb.xp_features", "xpdb.preprocessing", "preprocessing_id") in keys
    assert not any("xpdb.model" in key for key in keys)  # the registry is internal (xpdb.model_info is public)


def test_a_view_created_after_start_is_listed(server, http, service_db):
    with psycopg.connect(service_db["url"]) as conn:
        conn.execute("INSERT INTO xpdb.reference_catalog (name) VALUES ('Late Survey') ON CONFLICT DO NOTHING")
        conn.execute("SELECT xpdb.refresh_xm_views()")
    tap = TAPService(server + "/tap", session=http)
    tables = tap.run_sync("SELECT table_name FROM tap_schema.tables WHERE table_name = 'xpdb.xm_late_survey'")
    assert len(tables) == 1
    columns = tap.run_sync("SELECT column_name, unit FROM tap_schema.columns "
                           "WHERE table_name = 'xpdb.xm_late_survey' AND column_name = 'ra'").to_table()
    assert columns["unit"][0] == "deg"
    assert len(tap.run_sync("SELECT * FROM xpdb.xm_late_survey")) == 0


WRITES = [
    "INSERT INTO xpdb.gaia_source (source_id, ra, dec) VALUES (1, 1, 1)",
    "DROP TABLE xpdb.gaia_source",
    "UPDATE xpdb.gaia_source SET phot_g_mean_mag = 0",
    "DELETE FROM xpdb.gaia_source",
    "SELECT TOP 1 source_id FROM xpdb.gaia_source; DELETE FROM xpdb.gaia_source",
    "SELECT pg_sleep(30) FROM xpdb.gaia_source",
    "SELECT nextval('xpdb.ingest_run_run_id_seq') FROM xpdb.gaia_source",
    "SELECT TOP 1 * FROM xpdb.uws_job",
]


def test_write_attempts_fail_cleanly_and_change_nothing(server, http, service_db):
    def state():
        with psycopg.connect(service_db["url"]) as conn:
            return conn.execute("SELECT count(*), sum(phot_g_mean_mag), (SELECT count(*) FROM xpdb.uws_job) "
                                "FROM xpdb.gaia_source").fetchone()

    before = state()
    tap = TAPService(server + "/tap", session=http)
    for query in WRITES:
        with pytest.raises(DALQueryError) as raised:
            tap.run_sync(query)
        assert "Traceback" not in str(raised.value), query
    assert state() == before
    assert len(tap.run_sync("SELECT TOP 3 source_id FROM xpdb.gaia_source")) == 3


def test_a_query_past_the_timeout_is_cancelled(server, http):
    # a query that no machine finishes within the test server's 2 s timeout
    response = http.post(server + "/tap/sync", data={"LANG": "ADQL", "QUERY": NEVER_ENDS})
    assert response.status_code == 400
    assert "statement timeout" in response.text
    tap = TAPService(server + "/tap", session=http)
    assert len(tap.run_sync("SELECT TOP 2 source_id FROM xpdb.gaia_source")) == 2


def test_get_and_post_give_the_same_rows(server, http):
    query = "SELECT TOP 5 source_id, ra FROM xpdb.gaia_source ORDER BY ra DESC"
    got = http.get(server + "/tap/sync", params={"lang": "ADQL", "query": query, "format": "csv"}).text
    posted = http.post(server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "csv"}).text
    assert got == posted and len(got.splitlines()) == 6
    assert np.all(np.diff(Table.read(got, format="ascii.csv")["ra"]) <= 0)


def test_odd_input_is_an_error_not_a_crash(server, http):
    for query in ["SELECT \x00 FROM xpdb.gaia_source", "SÉLECT ☃ FROM nowhere",
                  "SELECT TOP 1 '\x01é' AS c FROM xpdb.gaia_source",
                  "SELECT TOP 1 source_id FROM xpdb.gaia_source WHERE 1 = CONTAINS(POINT('GALACTIC', ra, dec), "
                  "CIRCLE('ICRS', 1, 2, 3))"]:
        response = http.post(server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query})
        assert response.status_code in (200, 400), (query, response.text)
        assert "Traceback" not in response.text
        votable = parse_votable(io.BytesIO(response.content))
        status = [i.value for i in votable.resources[0].infos if i.name == "QUERY_STATUS"]
        assert status[0] == ("OK" if response.status_code == 200 else "ERROR")
    created = http.post(server + "/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT \x00"}, allow_redirects=False)
    assert created.status_code == 400 and "NUL" in created.text


@pytest.mark.parametrize("top,maxrec,rows,overflow", [(2500, 5000, 2500, False), (1000, 1000, 1000, False),
                                                      (1001, 1000, 1000, True), (999, 1000, 999, False)])
def test_results_across_fetches_are_whole(server, http, top, maxrec, rows, overflow):
    """Rows come from the cursor 1,000 first, then in larger fetches: every row arrives once, and OVERFLOW is
    said exactly when more rows than MAXREC exist (the fetch that would bring none is skipped)."""
    adql = (f"SELECT TOP {top} a.source_id AS a, b.source_id AS b FROM xpdb.gaia_source AS a, "
            "xpdb.gaia_source AS b ORDER BY a.source_id, b.source_id")
    response = http.post(server + "/tap/sync", data={"LANG": "ADQL", "MAXREC": maxrec, "QUERY": adql})
    table = parse_votable(io.BytesIO(response.content)).get_first_table().to_table()
    assert len(table) == rows
    pairs = list(zip(table["a"].tolist(), table["b"].tolist()))
    assert pairs == sorted(set(pairs))  # no row twice, none skipped in the order asked
    assert (b'value="OVERFLOW"' in response.content) == overflow
