"""The web pages over HTTP: what each shows against the database, errors, escaping and access rules."""

from __future__ import annotations

import html
import io
import math
import re
from collections import Counter

import numpy as np
import pytest
import requests
from astropy.table import Table

from tests.web.conftest import FEH_OFFSET


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def text_of(page: str, element_id: str) -> str:
    """The text inside the element with ``element_id`` (tags removed, entities decoded)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:p|table|dl|ul|section)>', page, re.S)
    assert match, f"no element {element_id!r} in the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def table_rows(page: str, table_class: str = "result") -> list[list[str]]:
    body = re.search(rf'<table class="{table_class}"[^>]*>.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def a_star(sql) -> int:
    """A cluster member with features, a PASTEL-free prediction, sVAE output and neighbours."""
    return sql("SELECT m.source_id FROM xpdb.cluster_member m JOIN xpdb.xp_features f USING (source_id) "
               "JOIN xpdb.svae_output o USING (source_id) WHERE f.flux IS NOT NULL ORDER BY m.source_id LIMIT 1")[0][0]


def test_landing_page_counts_models_ingests_and_headers(web_server, web_db, sql, http):
    response = http.get(web_server + "/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    page = response.text
    n_sources = sql("SELECT count(*) FROM xpdb.gaia_source")[0][0]
    n_members = sql("SELECT count(*) FROM xpdb.cluster_member")[0][0]
    assert re.search(rf'xpdb.gaia_source">gaia_source</a></td><td class="num">{n_sources:,}</td>', page)
    assert re.search(rf'>cluster_member</a></td><td class="num">{n_members:,}</td>', page)
    for ref in ("webtest:1", "webtf:1", "websvae:1"):
        assert ref in page
    assert "PostgreSQL 15" in page and web_server + "/tap" in page
    # the last ingests: kinds and rows, never the file paths
    runs = sql("SELECT kind, rows_loaded, path FROM xpdb.ingest_run ORDER BY started_at DESC LIMIT 5")
    assert runs and all(f"<td>{kind}</td>" in page for kind, _, _ in runs)
    assert all(path not in page for _, _, path in runs)


def test_adql_results_paged_with_units_links_and_downloads(web_server, sql, http):
    query = "SELECT TOP 250 source_id, ra, phot_g_mean_mag FROM xpdb.gaia_source ORDER BY source_id"
    expected = [r[0] for r in sql("SELECT source_id FROM xpdb.gaia_source ORDER BY source_id LIMIT 250")]
    first = http.get(web_server + "/query", params={"QUERY": query})
    assert first.status_code == 200
    page = first.text
    assert "[deg]" in page and "[mag]" in page  # units in the header
    rows = table_rows(page)
    assert [int(r[0]) for r in rows] == expected[:100]
    assert f'href="{web_server}/star/{expected[0]}"' in page
    assert "Rows 1–100 of more than 100" in text_of(page, "result-summary")  # a page reads only the rows it needs
    second = http.get(web_server + "/query", params={"QUERY": query, "PAGE": 2})
    assert [int(r[0]) for r in table_rows(second.text)] == expected[100:200]
    third = http.get(web_server + "/query", params={"QUERY": query, "PAGE": 3}).text
    assert [int(r[0]) for r in table_rows(third)] == expected[200:250] and 'rel="next"' not in third
    assert "Rows 201–250 of 250" in text_of(third, "result-summary")
    # the download links are TAP sync queries of the same ADQL
    links = dict((label, html.unescape(href)) for href, label in
                 re.findall(r'<a href="([^"]+/tap/sync\?[^"]+)">([^<]+)</a>', page))
    assert set(links) == {"VOTable", "VOTable (TABLEDATA)", "CSV", "TSV", "FITS"}
    csv = http.get(links["CSV"])
    assert csv.status_code == 200 and list(Table.read(csv.text, format="ascii.csv")["source_id"]) == expected
    fits = http.get(links["FITS"])
    assert list(Table.read(io.BytesIO(fits.content), format="fits")["source_id"]) == expected


def test_adql_errors_are_shown_in_the_page(web_server, http):
    bad = http.get(web_server + "/query", params={"QUERY": "SELEKT * FROM xpdb.gaia_source"})
    assert bad.status_code == 400
    assert "ADQL error" in text_of(bad.text, "query-error")
    assert "SELEKT * FROM xpdb.gaia_source</textarea>" in bad.text  # the query stays in the form
    internal = http.get(web_server + "/query", params={"QUERY": "SELECT * FROM xpdb.model"})
    assert internal.status_code == 400 and "xpdb.model" in text_of(internal.text, "query-error")
    writing = http.get(web_server + "/query", params={"QUERY": "SELECT lo_create(0) FROM xpdb.gaia_source"})
    assert writing.status_code == 400 and 'id="query-error"' in writing.text


def test_user_input_is_escaped_everywhere(web_server, http):
    attack = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    for path, params in (("/query", {"QUERY": "SELECT " + attack}),
                         ("/cone", {"target": attack, "radius": "1", "unit": "arcmin"}),
                         ("/cone", {"target": "NGC 5904", "radius": attack, "unit": "arcmin"}),
                         ("/cone", {"target": "NGC 5904", "radius": "1", "unit": attack}),
                         ("/schema/" + attack, None), ("/star/" + attack, None)):
        response = http.get(web_server + path, params=params)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert "<script>alert" not in response.text and "<img src=x" not in response.text, path
        assert "&lt;script&gt;alert(1)" in response.text or "%3Cscript%3E" in response.text, path


def test_schema_browser(web_server, http):
    tables = http.get(web_server + "/schema").text
    assert 'href="' + web_server + '/schema/xpdb.catalog"' in tables and "xpdb.svae_output" in tables
    assert ">xpdb.model<" not in tables and "xpdb.job<" not in tables  # internal tables are not published
    columns = http.get(web_server + "/schema/xpdb.gaia_source").text
    ra = re.search(r"<tr><td><code>ra</code></td>(.*?)</tr>", columns, re.S).group(1)
    assert "<td>deg</td>" in ra and "pos.eq.ra" in ra
    assert http.get(web_server + "/schema/xpdb.model").status_code == 404


def _cone_ids(sql, ra: float, dec: float, radius: float) -> list[int]:
    return [r[0] for r in sql("SELECT source_id FROM xpdb.gaia_source WHERE q3c_radial_query(ra, dec, %s, %s, %s) "
                              "ORDER BY q3c_dist(ra, dec, %s, %s)", (ra, dec, radius, ra, dec))]


def test_cone_search_by_cluster_name(web_server, sql, http):
    ra, dec = sql("""SELECT degrees(atan2(avg(cos(radians(dec)) * sin(radians(ra))),
                                        avg(cos(radians(dec)) * cos(radians(ra))))),
                            degrees(asin(avg(sin(radians(dec))) / sqrt(power(avg(cos(radians(dec)) * cos(radians(ra))), 2)
                                + power(avg(cos(radians(dec)) * sin(radians(ra))), 2) + power(avg(sin(radians(dec))), 2))))
                     FROM xpdb.cluster_member WHERE cluster = 'NGC5904'""")[0]
    response = http.get(web_server + "/cone", params={"target": "NGC 5904", "radius": "10", "unit": "arcmin"})
    assert response.status_code == 200
    expected = _cone_ids(sql, ra % 360, dec, 10 / 60)
    assert len(expected) >= 3
    assert [int(r[0]) for r in table_rows(response.text)] == expected
    summary = text_of(response.text, "result-summary")
    assert "NGC5904" in summary and f"RA {ra % 360:.5f}" in summary
    assert "ngc5904" in http.get(web_server + "/cone", params={"target": "ngc5904", "radius": "10",
                                                               "unit": "arcmin"}).text.lower()


def test_cone_search_positions_and_radius_units(web_server, sql, http):
    ra, dec = sql("SELECT ra, dec FROM xpdb.cluster_member WHERE cluster = 'NGC2682' ORDER BY source_id LIMIT 1")[0]
    expected = _cone_ids(sql, ra, dec, 0.1)
    decimal = http.get(web_server + "/cone", params={"target": f"{ra:.7f} {dec:+.7f}", "radius": "6", "unit": "arcmin"})
    assert [int(r[0]) for r in table_rows(decimal.text)] == expected
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra * u.deg, dec * u.deg)
    sexagesimal = f"{c.ra.to_string(u.hour, sep=':', precision=4)} {c.dec.to_string(sep=':', precision=3, alwayssign=True)}"
    for radius, unit in (("360", "arcsec"), ("0.1", "deg")):
        response = http.get(web_server + "/cone", params={"target": sexagesimal, "radius": radius, "unit": unit})
        assert [int(r[0]) for r in table_rows(response.text)] == expected, (radius, unit)
    # the SCS download of the same cone has the same rows
    link = html.unescape(re.search(r'<a href="([^"]+/scs\?[^"]+RESPONSEFORMAT=csv)"', decimal.text).group(1))
    assert list(Table.read(http.get(link).text, format="ascii.csv")["source_id"]) == expected
    for params, words in (({"target": "nowhere at all", "radius": "1", "unit": "arcmin"}, "neither a known cluster"),
                          ({"target": "10 20", "radius": "-1", "unit": "arcmin"}, "radius"),
                          ({"target": "10 20", "radius": "1", "unit": "parsec"}, "radius unit"),
                          ({"target": "10 95", "radius": "1", "unit": "arcmin"}, "")):
        response = http.get(web_server + "/cone", params=params)
        assert response.status_code == 400 and words in text_of(response.text, "cone-error"), params
    star = sql("SELECT source_id FROM xpdb.gaia_source LIMIT 1")[0][0]
    jump = http.get(web_server + "/cone", params={"target": f"Gaia DR3 {star}"}, allow_redirects=False)
    assert jump.status_code == 303 and jump.headers["location"].endswith(f"/star/{star}")


def test_star_page_shows_everything_stored_for_the_star(web_server, web_db, sql, http):
    source_id = a_star(sql)
    response = http.get(web_server + f"/star/{source_id}")
    assert response.status_code == 200
    page = response.text
    assert re.search(r'<figure id="spectrum"><svg role="img" aria-label="XP spectrum', page)
    assert '<figure id="cmd"><svg' in page
    # below the spectrum, the 60 features as markers (one <use> each) on the same wavelength axis
    spectrum = re.search(r'<figure id="spectrum">(.*?)</figure>', page, re.S).group(1)
    markers = Counter(re.findall(r'<use xlink:href="#([^"]+)"', spectrum))  # the features' and the ticks' marks
    assert "and the 60 features the model sees" in spectrum and 60 in markers.values(), markers
    # the 60 features, as stored
    flux = np.frombuffer(sql("SELECT flux FROM xpdb.xp_features WHERE source_id = %s", (source_id,))[0][0], "<f4")
    values = re.findall(r"<tr><td>(\d+)</td><td class=\"num\">[^<]*</td><td class=\"num\">([^<]*)</td>",
                        re.search(r'id="feature-values".*?</table>', page, re.S).group(0))
    assert len(values) == 60
    np.testing.assert_allclose([float(v) for _, v in values], flux, rtol=1e-3)
    # every model's prediction with its error and flags in words
    feh, err, flags = sql("SELECT feh, feh_err, flags FROM xpdb.prediction WHERE source_id = %s AND model_id = %s",
                          (source_id, web_db["feh_model"]))[0]
    predictions = text_of(page, "predictions")
    assert "webtest:1" in predictions and f"{feh:.4g}" in predictions and f"{err:.4g}" in predictions
    if flags & 2:
        assert "G > 15" in predictions
    # its cluster, the reference [Fe/H] of the cluster; the prediction is that value plus the fixture's offset
    cluster, feh_ref = sql("SELECT m.cluster, c.feh_ref FROM xpdb.cluster_member m JOIN xpdb.cluster c "
                           "ON c.name = m.cluster WHERE m.source_id = %s", (source_id,))[0]
    assert cluster in text_of(page, "memberships") and math.isclose(feh, feh_ref + FEH_OFFSET, abs_tol=1e-5)
    # the scatter VAE: its score and the nearest neighbours, in the order of xpdb.svae_similar
    score = sql("SELECT anomaly_score FROM xpdb.svae_output WHERE source_id = %s", (source_id,))[0][0]
    assert f"{score:.3g}" in text_of(page, "svae")
    expected = [r[0] for r in sql("SELECT source_id FROM xpdb.svae_similar(%s, %s, 10)", (web_db["svae"], source_id))]
    shown = [int(x) for x in re.findall(r'<td><a href="[^"]*/star/(\d+)">', re.search(
        r'id="neighbours".*?</table>', page, re.S).group(0))]
    assert shown == expected and len(shown) == 10
    # downloads of the spectrum (DataLink) give the plotted star's calibrated spectrum
    link = html.unescape(re.search(r'<a href="([^"]+/datalink/spectrum\?[^"]+FORMAT=ecsv)"', page).group(1))
    spectrum = Table.read(http.get(link).text, format="ascii.ecsv")
    assert len(spectrum) == 343 and set(spectrum["source_id"]) == {source_id}


def test_star_page_of_a_labelled_star_and_transformer_labels(web_server, sql, http):
    source_id, feh = sql("SELECT l.source_id, l.feh FROM xpdb.reference_label l JOIN xpdb.label_prediction p "
                         "USING (source_id) WHERE l.catalog = 'PASTEL' LIMIT 1")[0]
    page = http.get(web_server + f"/star/{source_id}").text
    assert "PASTEL" in text_of(page, "labels") and f"{feh:.4g}" in text_of(page, "labels")
    assert "webtf:1" in text_of(page, "label-predictions") and "4600" in text_of(page, "label-predictions")


def test_unknown_star_is_a_404_page(web_server, http):
    for path in ("/star/123", "/star/notanumber", "/star/99999999999999999999"):
        response = http.get(web_server + path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html"), path
        assert 'class="error" role="alert"' in response.text
    assert "no star with source_id 123" in http.get(web_server + "/star/123").text


def test_models_page_and_its_figures(web_server, web_db, sql, http):
    page = http.get(web_server + "/models").text
    model = web_db["feh_model"]
    assert f'id="model-{model}"' in page and "&lt;b&gt;x&lt;/b&gt;" in page  # metrics, escaped
    n = sql("SELECT n FROM xpdb.validation_summary WHERE model_id = %s AND catalog = 'PASTEL' AND scope = 'all' "
            "AND subset = 'all' AND g_min IS NULL", (model,))[0][0]
    assert n > 0 and f'<td class="num">{n}</td>' in page
    images = re.findall(r'<img loading="lazy" src="([^"]+)"', page)
    assert f"{web_server}/models/{model}/figures/residuals-PASTEL.png" in images
    for src in images:
        response = http.get(src)
        assert response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n", src
    assert http.get(web_server + f"/models/{model}/figures/nothing.png").status_code == 404
    assert http.get(web_server + f"/models/{model}/figures/residuals-SAGA.png").status_code == 404


def test_jobs_page_and_json_follow_the_batches(web_server, web_db, sql, http):
    job = web_db["job_id"]
    n_sources, n_batches = sql("SELECT n_sources, n_batches FROM xpdb.job WHERE job_id = %s", (job,))[0]
    done = sql("SELECT coalesce(sum(n_sources), 0), count(*) FROM xpdb.job_batch WHERE job_id = %s AND state = 'done'",
               (job,))[0]
    entry = next(j for j in http.get(web_server + "/jobs.json").json()["jobs"] if j["job_id"] == job)
    assert entry["state"] == "running" and entry["n_sources"] == n_sources and entry["n_batches"] == n_batches
    assert entry["sources_done"] == done[0] and entry["batches_done"] == done[1]
    assert entry["percent"] == round(100 * done[0] / n_sources, 1) and entry["rate"] > 0
    page = http.get(web_server + "/jobs").text
    assert f'<tr data-job="{job}">' in page and '<meta http-equiv="refresh" content="5">' in page
    assert f"{done[0]:,} / {n_sources:,}" in page


def test_stored_names_are_escaped_too(web_server, sql, http):
    """Text that came from ingested files (a cluster's name) is escaped like visitor input."""
    evil = "<b onmouseover=alert(3)>NGC 0</b>"
    sql("INSERT INTO xpdb.cluster (name, feh_ref, reference) VALUES (%s, -1, %s)", (evil, evil))
    try:
        page = http.get(web_server + "/cone").text
        assert evil not in page and html.escape(evil, quote=True) in page
        response = http.get(web_server + "/cone", params={"target": evil, "radius": "1", "unit": "arcmin"})
        assert response.status_code == 400 and "has no member with a position" in text_of(response.text, "cone-error")
        assert evil not in response.text
    finally:
        sql("DELETE FROM xpdb.cluster WHERE name = %s", (evil,))


def test_pages_with_required_tokens(web_db, http):
    """With tokens required, the landing page answers anonymous visitors without the database's contents and
    the other pages ask for credentials; with a user's token they answer."""
    import psycopg

    from tests.service.conftest import ServerThread, test_settings
    from xpdb.service.app import create_app
    from xpdb.service.users import add_user, remove_user

    app = create_app(test_settings(require_token=True), database_url=web_db["url"], reader_url=web_db["reader_url"])
    with ServerThread(app) as running:
        landing = http.get(running.url + "/")
        assert landing.status_code == 200 and "needs a token" in landing.text and "gaia_source</a>" not in landing.text
        assert http.get(running.url + "/query", params={"QUERY": "SELECT TOP 1 * FROM xpdb.gaia_source"}
                        ).status_code == 401
        assert http.get(running.url + "/jobs.json").status_code == 401
        with psycopg.connect(web_db["url"], autocommit=True) as conn:
            token = add_user(conn, "webtester")
        try:
            auth = {"Authorization": f"Bearer {token}"}
            assert "gaia_source</a>" in http.get(running.url + "/", headers=auth).text
            assert http.get(running.url + "/query", params={"QUERY": "SELECT TOP 1 * FROM xpdb.gaia_source"},
                            headers=auth).status_code == 200
            assert http.get(running.url + "/jobs.json", auth=("webtester", token)).status_code == 200
        finally:
            with psycopg.connect(web_db["url"], autocommit=True) as conn:
                remove_user(conn, "webtester")


def test_star_page_of_a_bare_source(web_server, sql, http):
    """A source with only a gaia_source row: the page says what is missing instead of failing."""
    source_id = 7_000_000_000_000_000_001
    sql("INSERT INTO xpdb.gaia_source (source_id, ra, dec, phot_g_mean_mag, bp_rp) VALUES (%s, 10, 20, 14.2, 1.1)",
        (source_id,))
    try:
        response = http.get(web_server + f"/star/{source_id}")
        assert response.status_code == 200
        page = response.text
        for words in ("No XP spectrum is stored", "No features computed", "No [Fe/H] prediction",
                      "No reference label", "Not a member of a stored cluster"):
            assert words in page, words
        assert 'id="svae"' not in page and '<figure id="cmd"><svg' in page  # itself, alone in its cone
    finally:
        sql("DELETE FROM xpdb.gaia_source WHERE source_id = %s", (source_id,))


def test_pages_of_an_empty_database(db_url, http):
    """A freshly migrated database: every page answers and says that nothing is there yet."""
    from tests.service.conftest import ServerThread, test_settings
    from xpdb.db.engine import with_user
    from xpdb.service.app import create_app

    app = create_app(test_settings(), database_url=db_url, reader_url=with_user(db_url, "xpdb_reader"))
    with ServerThread(app) as running:
        pages = {"/": "No model has been trained yet", "/models": "No model has been trained yet",
                 "/jobs": "No inference job yet", "/cone": "Known clusters: none", "/schema": "xpdb.catalog",
                 "/query?QUERY=SELECT+COUNT(*)+AS+n+FROM+xpdb.gaia_source": "<td>0</td>"}
        for path, words in pages.items():
            response = http.get(running.url + path)
            assert response.status_code == 200 and words in response.text, path
        assert "Nothing has been ingested yet" in http.get(running.url + "/").text
        assert http.get(running.url + "/jobs.json").json() == {"jobs": []}


def test_hostile_numbers_are_refused_or_clamped_never_a_server_error(web_server, http):
    """Non-finite or out-of-range positions, radii, ids and pages: a 4xx page, or a bounded answer; never a 500."""
    for params in ({"target": "10 20", "radius": "nan", "unit": "arcmin"},
                   {"target": "10 20", "radius": "inf", "unit": "deg"},
                   {"target": "nan 20", "radius": "1", "unit": "arcmin"},
                   {"target": "1e400 20", "radius": "1", "unit": "arcmin"},
                   {"target": "Gaia DR3 99999999999999999999999", "radius": "1", "unit": "arcmin"}):
        response = http.get(web_server + "/cone", params=params)
        assert response.status_code == 400 and 'id="cone-error"' in response.text, params
    query = "SELECT TOP 5 source_id FROM xpdb.gaia_source ORDER BY source_id"
    first = table_rows(http.get(web_server + "/query", params={"QUERY": query}).text)
    for page in ("-3", "0"):  # below the first page: the first page
        response = http.get(web_server + "/query", params={"QUERY": query, "page": page})
        assert response.status_code == 200 and table_rows(response.text) == first, page
    beyond = http.get(web_server + "/query", params={"QUERY": query, "page": "999999999"})
    assert beyond.status_code == 200 and table_rows(beyond.text) == []  # past the rows (and the page cap): none
    assert http.get(web_server + "/query", params={"QUERY": query, "page": "abc"}).status_code == 400
    for path in ("/star/-5", "/star/1e5", "/models/abc"):
        assert http.get(web_server + path).status_code == 404, path
