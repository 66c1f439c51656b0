"""Results are fetched in chunks from a server-side cursor and stop at MAXREC or a byte budget counted on the
rows themselves; user SQL is one statement over the extended protocol; its timeout covers the whole query."""

from __future__ import annotations

import io

import psycopg
import pytest
from astropy.io.votable import parse as parse_votable
from typer.testing import CliRunner

from tests.service.conftest import ServerThread, test_settings
from xpdb.cli.main import app
from xpdb.db.engine import with_user
from xpdb.query.run import QueryError, run_readonly

# far more rows than any machine fetches within a test: a query over it can only end early
ENDLESS = "(SELECT generate_series(1, 1000000000000) AS g) AS s"  # in the select list: streamed
CROSS = ("SELECT a.source_id, b.ra, c.dec, d.phot_g_mean_mag FROM xpdb.gaia_source AS a, xpdb.gaia_source AS b, "
         "xpdb.gaia_source AS c, xpdb.gaia_source AS d")  # 300^4 = 8.1e9 rows


def run(*args):
    result = CliRunner().invoke(app, ["query", *args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def reader(db_url):
    with psycopg.connect(with_user(db_url, "xpdb_reader")) as conn:
        yield conn


def test_limit_stops_fetching(db_url):
    result = run("--sql", f"SELECT g FROM {ENDLESS}", "--limit", "10", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert [int(x) for x in result.output.splitlines() if x.strip().isdigit()] == list(range(1, 11))
    assert "overflow" in result.output and "more than 10 rows" in result.output


def test_byte_budget_stops_fetching(db_url):
    # a row counts its table (4 bytes a character of the longest value: 400) and its CSV text (100
    # characters and 3 for the value): 503 bytes; 2,000 bytes hold 3 rows
    result = run("--sql", f"SELECT repeat('x', 100) AS t FROM {ENDLESS}", "--max-mb", "0.002", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.output.count("x" * 100) == 3
    assert "limit of 0.002 MB" in " ".join(result.output.split()) and "raise --max-mb" in result.output


def test_budget_counts_the_longest_value(reader):
    sql = f"SELECT CASE WHEN g = 3 THEN repeat('y', 50) ELSE 'z' END, g::float8 FROM {ENDLESS}"
    result = run_readonly(sql, conn=reader, max_rows=1000, max_bytes=1000)
    # n rows count n * (8 + 4 * longest + 12) + 2 * (characters so far): the table (float8, and 4 bytes
    # a character of the longest text) and a binary document (float8, a 4-byte length and UTF-16 text).
    # From row 3 the longest text has 50 characters: 4 rows count 4 * 220 + 2 * 53 = 986, 5 rows 1,208
    assert len(result) == 4 and result.overflow and result.overflow_reason == "bytes"
    assert result.counted_bytes == 986 and result.table_bytes == 4 * 208
    assert result.to_table().as_array().nbytes == 4 * 208
    numbers = run_readonly(f"SELECT g::int8, g::float8 FROM {ENDLESS}", conn=reader, max_rows=10**6,
                           max_bytes=16_000)
    assert len(numbers) == 500 and numbers.overflow_reason == "bytes"  # 16 bytes of table and 16 of document
    text = run_readonly(f"SELECT g::int8, g::float8 FROM {ENDLESS}", conn=reader, max_rows=10**6,
                        max_bytes=16_000, encoding="text")
    assert len(text) == 16_000 // (16 + 48)  # in CSV a number may take 24 characters


def test_bytea_values_are_written_as_postgresql_writes_them(reader):
    result = run_readonly("SELECT '\\x00ff'::bytea AS b", conn=reader)
    assert result.to_table()["b"][0] == "\\x00ff"


@pytest.mark.parametrize("statement", [
    "SELECT set_config('statement_timeout', '0', false); COMMIT; SELECT pg_sleep(75)",  # the escape
    "SELECT 1; COMMIT; SET statement_timeout = 0; SELECT pg_sleep(75)",
    "SELECT 1; DELETE FROM xpdb.gaia_source",
    "COMMIT",
    "SET statement_timeout = 0",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "RESET ALL",
    "DO $$BEGIN PERFORM pg_sleep(75); END$$",
    "CREATE TEMP TABLE t AS SELECT 1",
    "LISTEN x",
    "NOTIFY x",
    "PREPARE p AS SELECT 1",
    "DISCARD ALL",
    "SHOW statement_timeout",
    "EXPLAIN SELECT 1",
    "VACUUM",
    "COPY (SELECT 1) TO STDOUT",
    "LOCK TABLE xpdb.gaia_source",
    "SELECT pg_sleep(75) FROM pg_stat_activity",
])
def test_sql_is_one_query(db_url, statement):
    result = run("--sql", statement, "--timeout", "60")
    assert result.exit_code == 1, result.output
    assert "error" in result.output


def test_timeout_cannot_be_lifted_and_covers_every_fetch(db_url):
    slow = run("--sql", f"SELECT count(*) FROM {ENDLESS}", "--timeout", "1")
    assert slow.exit_code == 1 and "timeout" in slow.output
    # rows come quickly but every 1,000th sleeps 0.3 s: 100,000 rows take at least 30 s, so a 1 s
    # budget per fetch (and no limit on the whole) would return them; the whole query has 1 s
    drip = run("--sql", f"SELECT g, CASE WHEN g % 1000 = 0 THEN pg_sleep(0.3) END FROM {ENDLESS}",
               "--timeout", "1", "--limit", "100000")
    assert drip.exit_code == 1 and "timeout" in drip.output, drip.output


def test_a_failed_query_leaves_the_connection_usable(reader):
    with pytest.raises(QueryError):
        run_readonly("SELECT 1/0", conn=reader)
    with pytest.raises(QueryError, match="only one statement|syntax"):
        run_readonly("SELECT 1; SELECT 2", conn=reader)
    assert run_readonly("SELECT 42", conn=reader).rows == [(42,)]
    assert reader.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@pytest.fixture(scope="module")
def small_budget_server(service_db):
    from xpdb.service.app import create_app

    settings = test_settings(max_result_mb=0.01, maxrec_limit=1_000_000, maxrec=1_000_000)
    app = create_app(settings, database_url=service_db["url"], reader_url=service_db["reader_url"])
    with ServerThread(app) as running:
        yield running.url


def _status(content: bytes) -> list[tuple[str, str]]:
    votable = parse_votable(io.BytesIO(content))
    return [(i.value, i.content or "") for i in votable.resources[0].infos if i.name == "QUERY_STATUS"]


def test_sync_results_stop_at_the_byte_budget(small_budget_server, http):
    # the query shape: a cross join of a table with itself, with MAXREC a million
    response = http.post(small_budget_server + "/tap/sync", data={"LANG": "ADQL", "MAXREC": 1_000_000,
                                                                  "QUERY": CROSS})
    assert response.status_code == 200
    table = parse_votable(io.BytesIO(response.content)).get_first_table().to_table()
    assert len(table) == 10_000 // (2 * (8 + 8 + 8 + 4))  # long, double, double, float: table and BINARY2
    status = _status(response.content)
    assert status[-1][0] == "OVERFLOW" and "limit of" in status[-1][1]
    small = http.post(small_budget_server + "/tap/sync", data={"LANG": "ADQL", "RESPONSEFORMAT": "csv",
                                                               "QUERY": "SELECT TOP 10 source_id FROM xpdb.gaia_source"})
    assert small.status_code == 200 and len(small.text.splitlines()) == 11


def test_async_results_stop_at_the_byte_budget(small_budget_server, http):
    created = http.post(small_budget_server + "/tap/async", data={"LANG": "ADQL", "MAXREC": 1_000_000,
                                                                  "QUERY": CROSS, "PHASE": "RUN"},
                        allow_redirects=False)
    url = created.headers["location"]
    for _ in range(60):
        if http.get(url + "/phase").text in ("COMPLETED", "ERROR"):
            break
        http.get(url, params={"WAIT": 10})
    assert http.get(url + "/phase").text == "COMPLETED"
    result = http.get(url + "/results/result")
    assert len(parse_votable(io.BytesIO(result.content)).get_first_table().array) == 10_000 // 56
    assert _status(result.content)[-1][0] == "OVERFLOW"
    http.delete(url)


def test_cone_search_keeps_the_budget(small_budget_server, http):
    response = http.get(small_budget_server + "/scs", params={"RA": 100.5, "DEC": 10.5, "SR": 2, "VERB": 3,
                                                              "MAXREC": 100_000})
    table = parse_votable(io.BytesIO(response.content)).get_first_table()
    assert 0 < len(table.array) < 280  # 280 sources are in the field: 10 kB holds fewer
    assert _status(response.content)[-1][0] == "OVERFLOW"
