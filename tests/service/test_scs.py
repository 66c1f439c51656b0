"""Simple Cone Search at /scs through pyvo: the rows of `xpdb cone`, column metadata, errors."""

from __future__ import annotations

import io

import numpy as np
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
