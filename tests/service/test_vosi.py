"""VOSI: capabilities, availability and the tables listing as pyvo reads them; the index page."""

from __future__ import annotations

import io

import psycopg
from pyvo.dal import TAPService
from pyvo.io.vosi.endpoint import parse_availability, parse_capabilities


def test_capabilities(server, http):
    tap = TAPService(server + "/tap", session=http)
    capability = tap.get_tap_capability()
    assert capability.interfaces[0].accessurls[0].content == server + "/tap"
    assert [lang.name for lang in capability.languages] == ["ADQL"]
    assert {f.mime for f in capability.outputformats} >= {"application/x-votable+xml", "text/csv;header=present",
                                                           "application/fits"}
    assert tap.maxrec == 1000 and tap.hardlimit == 5000
    assert capability.executionduration.hard == 60
    standards = {c.standardid for c in tap.capabilities}
    assert {"ivo://ivoa.net/std/TAP", "ivo://ivoa.net/std/VOSI#availability",
            "ivo://ivoa.net/std/VOSI#tables-1.1"} <= standards
    everything = parse_capabilities(io.BytesIO(http.get(server + "/capabilities").content))
    assert "ivo://ivoa.net/std/ConeSearch" in {c.standardid for c in everything}


def test_availability(server, http):
    availability = parse_availability(io.BytesIO(http.get(server + "/tap/availability").content))
    assert availability.available is True
    assert availability.upsince


def test_tables_listing(server, http, service_db):
    tap = TAPService(server + "/tap", session=http)
    tables = tap.tables
    names = set(tables.keys())
    with psycopg.connect(service_db["reader_url"]) as conn:
        listed = {r[0] for r in conn.execute("SELECT table_name FROM tap_schema.tables")}
    assert names == listed
    assert {"xpdb.gaia_source", "xpdb.catalog", "xpdb.xp_continuous", "tap_schema.columns"} <= names
    assert "xpdb.uws_job" not in names
    gaia = tables["xpdb.gaia_source"]
    columns = {c.name: c for c in gaia.columns}
    assert columns["ra"].unit == "deg" and columns["ra"].ucd == "pos.eq.ra;meta.main"
    assert columns["source_id"].ucd == "meta.id;meta.main" and columns["source_id"].datatype.content == "long"
    assert "indexed" in columns["ra"].flags
    assert all(c.description for c in gaia.columns)
    features = tables["xpdb.xp_features"]
    assert [fk.targettable for fk in features.foreignkeys] == ["xpdb.preprocessing"]
    assert tables["xpdb.prediction"].foreignkeys == []  # its key refers to xpdb.model, which is internal
    assert tables["xpdb.catalog"].description.startswith("UA-CSNet catalogue")


def test_single_table_and_unknown_table(server, http):
    response = http.get(server + "/tap/tables/xpdb.catalog")
    assert response.status_code == 200 and b"<name>feh</name>" in response.content
    assert http.get(server + "/tap/tables/xpdb.nothing").status_code == 404
    short = http.get(server + "/tap/tables", params={"detail": "min"})
    assert b"<column>" not in short.content and b"<name>xpdb.catalog</name>" in short.content


def test_index_page_and_tap_root(server, http):
    page = http.get(server + "/")
    assert page.status_code == 200 and "/tap" in page.text and "/scs" in page.text
    root = http.get(server + "/tap", allow_redirects=False)
    assert root.status_code == 303 and root.headers["location"].endswith("/tap/capabilities")


def test_astroquery_tapplus(server):
    """astroquery's TapPlus (the client of the Gaia archive) lists tables and runs sync and async queries."""
    import gc
    import warnings

    from astroquery.utils.tap.core import TapPlus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # TapPlus never closes its HTTP connections
        tap = TapPlus(url=server + "/tap", verbose=False)
        names = [t.name for t in tap.load_tables(only_names=True, verbose=False)]
        table = tap.load_table("xpdb.gaia_source", verbose=False)
        units = {c.name: c.unit for c in table.columns}
        query = "SELECT TOP 5 source_id, ra FROM xpdb.gaia_source ORDER BY source_id"
        sync = tap.launch_job(query).get_results()
        asynchronous = tap.launch_job_async(query).get_results()
        del tap, table
        gc.collect()
    assert "xpdb.gaia_source" in names and "xpdb.catalog" in names
    assert units["ra"] == "deg"
    assert len(sync) == 5 and list(sync["source_id"]) == list(asynchronous["source_id"])
