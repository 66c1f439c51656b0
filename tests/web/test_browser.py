"""The web pages in a real browser: Debian's chromium driven by chromedriver through Selenium.

Skipped with a message when chromium, chromedriver or selenium is absent (``scripts/bootstrap``
installs them as root with apt; ``XPDB_NO_BROWSER=1`` skips that). Every page is loaded, the
ADQL and cone-search forms are submitted, the star page's spectrum plot is found, the jobs
page must follow a batch finishing without a reload, and no page may log a console error.
A screenshot of the star page is kept in ``tests/artifacts/web/`` (ignored by git; the
directory can be moved with ``XPDB_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PROJECT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("XPDB_TEST_ARTIFACTS") or PROJECT / "tests" / "artifacts") / "web"


def _chromium(javascript: bool = True):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver, "
                    "or run scripts/bootstrap as root)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[test])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1800", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    return driver


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (module-wide: starting one costs seconds), with its console log kept."""
    driver = _chromium()
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """The console messages of level SEVERE since the last call (failed loads, script errors, CSP refusals)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(driver, css: str, timeout: float = 60.0):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def a_member_with_everything(sql) -> int:
    return sql("SELECT m.source_id FROM xpdb.cluster_member m JOIN xpdb.xp_features f USING (source_id) "
               "JOIN xpdb.svae_output o USING (source_id) WHERE f.flux IS NOT NULL ORDER BY m.source_id LIMIT 1")[0][0]


def test_every_page_loads_without_console_errors(browser, web_server, web_db, sql):
    from selenium.webdriver.common.by import By

    star = a_member_with_everything(sql)
    pages = {"/": "xpdb", "/query": "ADQL query", "/schema": "Tables", "/schema/xpdb.catalog": "Table xpdb.catalog",
             "/cone": "Cone search", f"/star/{star}": f"Gaia DR3 {star}", "/models": "Models",
             "/jobs": "Inference jobs"}
    console_errors(browser)
    for path, heading in pages.items():
        browser.get(web_server + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == heading, path
        if path == "/models":  # the validation figures are images loaded lazily: scroll them all into view
            for image in browser.find_elements(By.CSS_SELECTOR, ".figures img"):
                browser.execute_script("arguments[0].scrollIntoView();", image)
            browser.execute_script("return Promise.all(Array.from(document.images).map("
                                   "i => i.complete ? 1 : new Promise(r => { i.onload = i.onerror = r; })))")
            images = browser.find_elements(By.CSS_SELECTOR, ".figures img")
            assert images and all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
        assert console_errors(browser) == [], path


def test_adql_form(browser, web_server, sql):
    from selenium.webdriver.common.by import By

    expected = [str(r[0]) for r in sql("SELECT source_id FROM xpdb.gaia_source ORDER BY phot_g_mean_mag, source_id "
                                       "LIMIT 7")]
    browser.get(web_server + "/query")
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("SELECT TOP 7 source_id, phot_g_mean_mag FROM xpdb.gaia_source ORDER BY phot_g_mean_mag, source_id")
    browser.find_element(By.CSS_SELECTOR, "form.adql button[type=submit]").click()
    wait_for(browser, "table.result")
    cells = [row.find_elements(By.TAG_NAME, "td")[0].text
             for row in browser.find_elements(By.CSS_SELECTOR, "table.result tbody tr")]
    assert cells == expected
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "table.result th")]
    assert headers[1].replace("\n", " ") == "phot_g_mean_mag [mag]"
    # a mistake is shown in the page, with the query kept in the form
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("SELECT nothing FROM xpdb.no_such_table")
    browser.find_element(By.CSS_SELECTOR, "form.adql button[type=submit]").click()
    error = wait_for(browser, "#query-error")
    assert "no_such_table" in error.text
    assert browser.find_element(By.ID, "query").get_attribute("value") == "SELECT nothing FROM xpdb.no_such_table"
    # the page answers HTTP 400 (a bad request), which Chromium logs; nothing else may be logged
    errors = console_errors(browser)
    assert len(errors) == 1 and "/query?QUERY=SELECT+nothing" in errors[0] and "status of 400" in errors[0], errors


def test_cone_form_and_its_star_links(browser, web_server, sql):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(web_server + "/cone")
    target = browser.find_element(By.ID, "target")
    target.clear()
    target.send_keys("NGC 6397")
    radius = browser.find_element(By.ID, "radius")
    radius.clear()
    radius.send_keys("0.3")
    Select(browser.find_element(By.ID, "unit")).select_by_value("deg")
    browser.find_element(By.CSS_SELECTOR, "form.cone button[type=submit]").click()
    wait_for(browser, "table.result")
    assert "NGC6397" in browser.find_element(By.ID, "result-summary").text
    rows = browser.find_elements(By.CSS_SELECTOR, "table.result tbody tr")
    members = {r[0] for r in sql("SELECT source_id FROM xpdb.cluster_member WHERE cluster = 'NGC6397'")}
    shown = {int(r.find_elements(By.TAG_NAME, "td")[0].text) for r in rows}
    assert shown and shown & members
    rows[0].find_element(By.CSS_SELECTOR, "td a").click()
    wait_for(browser, "#astrometry")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Gaia DR3 ")
    assert console_errors(browser) == []


def test_star_page_spectrum_plot_and_screenshot(browser, web_server, sql):
    from selenium.webdriver.common.by import By

    star = a_member_with_everything(sql)
    browser.get(web_server + f"/star/{star}")
    plot = wait_for(browser, "figure#spectrum svg")
    assert plot.get_attribute("aria-label").startswith("XP spectrum")
    assert plot.size["width"] > 300 and plot.size["height"] > 100
    # the error band: a polygon along the 343 samples and back; the curve: a path through them (which
    # matplotlib simplifies where it is straight at the plot's resolution)
    segments = sorted(p.get_attribute("d").count("L") for p in plot.find_elements(By.CSS_SELECTOR, "path"))
    assert segments[-1] >= 2 * 342 and segments[-2] >= 100, segments[-3:]
    assert "60 features" in plot.get_attribute("aria-label")
    assert browser.find_element(By.CSS_SELECTOR, "figure#cmd svg").size["width"] > 100
    assert len(browser.find_elements(By.CSS_SELECTOR, "#neighbours tbody tr")) == 10
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "star_page.png"
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 6000))  # the whole page in one screenshot
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert console_errors(browser) == []


def test_jobs_page_updates_without_reloading(browser, web_server, web_db, sql):
    """The page's script polls /jobs.json: a batch finishing shows up while the same document stays loaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    job = web_db["job_id"]
    browser.get(web_server + "/jobs")
    row = f'tr[data-job="{job}"]'
    wait_for(browser, row)

    def progress(driver) -> str | None:  # read in one script: the poller may replace the row between two calls
        return driver.execute_script("const r = document.querySelector(arguments[0]);"
                                     "return r ? r.cells[4].textContent.trim() : null;", row)

    before = progress(browser)
    browser.execute_script("document.body.setAttribute('data-marker', 'same-document')")
    batch = sql("SELECT min(batch_id) FROM xpdb.job_batch WHERE job_id = %s AND state = 'pending'", (job,))[0][0]
    sql("UPDATE xpdb.job_batch SET state = 'done', n_predicted = n_sources, started_at = now() - interval '5 s', "
        "finished_at = now() WHERE batch_id = %s", (batch,))
    done = sql("SELECT sum(n_sources) FROM xpdb.job_batch WHERE job_id = %s AND state = 'done'", (job,))[0][0]
    total = sql("SELECT n_sources FROM xpdb.job WHERE job_id = %s", (job,))[0][0]
    WebDriverWait(browser, 60).until(lambda d: progress(d) not in (None, before))
    assert progress(browser) == f"{done:,} / {total:,}"
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-marker") == "same-document"
    assert console_errors(browser) == []


def test_forms_work_without_javascript(web_server, sql):
    """With JavaScript switched off, the ADQL and cone forms still answer and the jobs page still shows progress."""
    from selenium.webdriver.common.by import By

    driver = _chromium(javascript=False)
    try:
        driver.get(web_server + "/query")
        box = driver.find_element(By.ID, "query")
        box.clear()
        box.send_keys("SELECT TOP 3 source_id FROM xpdb.gaia_source ORDER BY source_id")
        driver.find_element(By.CSS_SELECTOR, "form.adql button[type=submit]").click()
        wait_for(driver, "table.result")
        expected = [str(r[0]) for r in sql("SELECT source_id FROM xpdb.gaia_source ORDER BY source_id LIMIT 3")]
        assert [r.text for r in driver.find_elements(By.CSS_SELECTOR, "table.result tbody td:first-child")] == expected
        driver.get(web_server + "/cone")
        driver.find_element(By.ID, "target").send_keys("NGC 6752")
        driver.find_element(By.CSS_SELECTOR, "form.cone button[type=submit]").click()
        wait_for(driver, "#result-summary")
        assert "NGC6752" in driver.find_element(By.ID, "result-summary").text
        driver.get(web_server + "/jobs")
        assert wait_for(driver, "#jobs tbody tr[data-job]").find_elements(By.TAG_NAME, "progress")
        # scripting is off: <noscript> is parsed as markup, so its refresh is what keeps the page current
        assert driver.find_elements(By.CSS_SELECTOR, 'noscript meta[http-equiv="refresh"]')
        assert console_errors(driver) == []
    finally:
        driver.quit()
