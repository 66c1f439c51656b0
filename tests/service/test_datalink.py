"""DataLink: links documents for many sources, spectra computed on the fly, the service descriptor in
TAP results (pyvo's iter_datalinks), and ``xpdb spectrum``."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io.votable import parse_single_table
from astropy.table import Table
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def sky_ids(service_db, tmp_path_factory):
    """A small synthetic sky (sources and XP_CONTINUOUS) added to the service's database; its source_ids."""
    from xpdb.ingest.runs import ingest_file
    from xpdb.synth.sky import make_sky
    from xpdb.synth.writers import write_sky

    sky = make_sky(120, seed=3)
    paths = write_sky(sky, tmp_path_factory.mktemp("sky"), "fits")
    ingest_file(service_db["url"], "sources", paths["gaia_source"])
    ingest_file(service_db["url"], "xp", paths["xp_continuous"])
    return [int(s) for s in np.asarray(sky.xp_continuous["source_id"])[:4]]


def _links(response) -> Table:
    assert response.status_code == 200, response.text
    return parse_single_table(io.BytesIO(response.content)).to_table()


def test_links_of_many_sources_and_a_missing_one(server, http, sky_ids):
    missing = 4_000_000_000  # a fixture source without a spectrum
    response = http.get(server + "/datalink", params=[("ID", str(i)) for i in sky_ids] + [("ID", str(missing))])
    links = _links(response)
    assert "content=datalink" in response.headers["content-type"]
    this = links[links["semantics"] == "#this"]
    assert sorted(set(int(i) for i in this["ID"])) == sorted(sky_ids)
    assert set(this["content_type"]) == {"application/x-votable+xml", "application/fits", "text/x-ecsv"}
    assert {"#coefficients", "#auxiliary"} <= set(links["semantics"])
    errors = links[[bool(m) for m in links["error_message"]]]
    assert [int(i) for i in errors["ID"]] == [missing] and "NotFoundFault" in errors["error_message"][0]
    # each #this link serves that source's spectrum with errors, 336-1020 nm in 2 nm steps
    for row in this:
        got = http.get(row["access_url"])
        assert got.status_code == 200 and got.headers["content-type"].startswith(row["content_type"])
    first = this[this["content_type"] == "application/x-votable+xml"][0]
    spectrum = parse_single_table(io.BytesIO(http.get(first["access_url"]).content)).to_table()
    assert set(spectrum["source_id"]) == {int(first["ID"])}
    assert len(spectrum) == 343 and spectrum["wavelength"][0] == pytest.approx(336.0)
    assert np.isfinite(spectrum["flux"]).all() and (spectrum["flux_error"] > 0).all()


def test_bad_ids_are_refused_clearly(server, http):
    response = http.get(server + "/datalink", params={"ID": "not-a-source"})
    assert response.status_code == 400 and "'not-a-source' is not a Gaia DR3 source_id" in response.text
    response = http.get(server + "/datalink")
    assert response.status_code == 400 and "ID is missing" in response.text


def test_tap_results_point_pyvo_at_datalink(server, http, sky_ids):
    import pyvo

    tap = pyvo.dal.TAPService(server + "/tap", session=http)
    ids = ", ".join(str(i) for i in sky_ids[:2])
    result = tap.run_sync(f"SELECT source_id FROM xpdb.gaia_source WHERE source_id IN ({ids}) ORDER BY source_id")
    found = []
    for links in result.iter_datalinks():
        # (not bysemantics: it downloads the IVOA vocabulary)
        this = [row for row in links if row.semantics == "#this" and row.content_type == "application/x-votable+xml"]
        found.append(int(this[0]["ID"]))
    assert found == sorted(sky_ids[:2])


def test_cli_spectrum(service_db, sky_ids, tmp_path, monkeypatch):
    from xpdb.cli.main import app

    monkeypatch.setenv("XPDB_DATABASE_URL", service_db["url"])
    monkeypatch.setenv("XPDB_READER_URL", service_db["reader_url"])
    for fmt, suffix in (("votable", "vot"), ("fits", "fits"), ("ecsv", "ecsv")):
        out = tmp_path / f"spectra.{suffix}"
        done = CliRunner().invoke(app, ["spectrum", *map(str, sky_ids[:3]), "--out", str(out), "--format", fmt])
        assert done.exit_code == 0, done.output
        table = Table.read(out, format={"vot": "votable", "fits": "fits", "ecsv": "ascii.ecsv"}[suffix])
        assert sorted(set(int(s) for s in table["source_id"])) == sorted(sky_ids[:3]) and len(table) == 3 * 343
    none = CliRunner().invoke(app, ["spectrum", "4000000000", "--out", str(tmp_path / "x.vot")])
    assert none.exit_code != 0 and "no XP spectrum" in none.output
