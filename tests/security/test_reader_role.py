"""The read-only role: no function that writes, signals or changes settings; no other session's activity;
only the tables TAP_SCHEMA publishes (migration 0009_security)."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from xpdb.cli.main import app
from xpdb.db.engine import with_user
from xpdb.db.migrate import downgrade, upgrade
from xpdb.db.security import FORBIDDEN_FUNCTIONS, INTERNAL_RELATIONS, check

# (statement, what PostgreSQL must answer): each was possible before, as xpdb_reader
FORBIDDEN = [
    ("SELECT lo_from_bytea(0, '\\x00'::bytea)", "permission denied for function lo_from_bytea"),
    ("SELECT lo_create(0)", "permission denied for function lo_create"),
    ("SELECT lo_creat(-1)", "permission denied for function lo_creat"),
    ("SELECT lo_put(1, 0, '\\x00'::bytea)", "permission denied for function lo_put"),
    ("SELECT lowrite(0, '\\x00'::bytea)", "permission denied for function lowrite"),
    ("SELECT lo_unlink(1)", "permission denied for function lo_unlink"),
    ("SELECT lo_import('/etc/passwd')", "permission denied for function lo_import"),
    ("SELECT lo_get(1)", "permission denied for function lo_get"),
    ("SELECT pg_terminate_backend(pg_backend_pid())", "permission denied for function pg_terminate_backend"),
    ("SELECT pg_cancel_backend(pg_backend_pid())", "permission denied for function pg_cancel_backend"),
    ("SELECT set_config('statement_timeout', '0', false)", "permission denied for function set_config"),
    ("SELECT pg_advisory_lock(1)", "permission denied for function pg_advisory_lock"),
    ("SELECT pg_try_advisory_xact_lock(1)", "permission denied for function pg_try_advisory_xact_lock"),
    ("SELECT pg_notify('x', 'y')", "permission denied for function pg_notify"),
    ("SELECT setval('xpdb.ingest_run_run_id_seq', 1)", "permission denied for function setval"),
    ("SELECT query_to_xml('SELECT 1', true, false, '')", "permission denied for function query_to_xml"),
    ("SELECT table_to_xml('xpdb.gaia_source', true, false, '')", "permission denied for function table_to_xml"),
    ("SELECT pg_stat_get_backend_activity(1)", "permission denied for function pg_stat_get_backend_activity"),
    ("SELECT * FROM pg_stat_get_activity(NULL)", "permission denied for function pg_stat_get_activity"),
    ("SELECT query FROM pg_stat_activity", "permission denied for view pg_stat_activity"),
    ("SELECT * FROM pg_locks", "permission denied for view pg_locks"),
    ("SELECT * FROM pg_stat_progress_copy", "permission denied for view pg_stat_progress_copy"),
    ("SELECT xpdb.refresh_xm_views()", "permission denied for function refresh_xm_views"),
    ("SELECT txid_current()", "permission denied for function txid_current"),
    ("SELECT pg_current_xact_id()", "permission denied for function pg_current_xact_id"),
    ("SELECT artifact FROM xpdb.model", "permission denied for table model"),
    ("SELECT path FROM xpdb.ingest_run", "permission denied for table ingest_run"),
    ("SELECT * FROM xpdb.ingest_reject", "permission denied for table ingest_reject"),
    ("SELECT * FROM xpdb.job", "permission denied for table job"),
    ("SELECT * FROM xpdb.job_batch", "permission denied for table job_batch"),
    ("SELECT * FROM xpdb.uws_job", "permission denied for table uws_job"),
    ("SELECT * FROM xpdb.uws_result", "permission denied for table uws_result"),
    ("SELECT * FROM xpdb.service_user", "permission denied for table service_user"),
    ("SELECT * FROM xpdb.alembic_version", "permission denied for table alembic_version"),
    ("SELECT * FROM tap_schema.column_meta", "permission denied for table column_meta"),
]


@pytest.fixture
def reader(db_url):
    with psycopg.connect(with_user(db_url, "xpdb_reader"), autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("statement, refusal", FORBIDDEN)
def test_the_reader_may_not(reader, statement, refusal):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=refusal):
        reader.execute(statement)


def test_the_reader_keeps_what_queries_need(reader):
    row = reader.execute("SELECT random() < 2, clock_timestamp() IS NOT NULL, q3c_dist(1, 2, 3, 4) > 0, "
                         "pg_typeof(1)::text, current_setting('statement_timeout'), "
                         "(SELECT count(*) FROM xpdb.model_info), (SELECT count(*) FROM xpdb.catalog), "
                         "(SELECT count(*) FROM xpdb.validation_summary), (SELECT count(*) FROM xpdb.label_prediction), "
                         "(SELECT count(teff) FROM xpdb.catalog), (SELECT count(*) FROM xpdb.transformer_catalog), "
                         "(SELECT count(*) FROM tap_schema.columns) > 0").fetchone()
    assert row[:4] == (True, True, True, "integer") and row[-1] is True
    reader.execute("SELECT pg_sleep(0)")
    # the validation relations of migration 0015_validation are public, and so in TAP_SCHEMA
    validation = ("xpdb.xm_validation", "xpdb.validation_summary", "xpdb.xm_cluster_sample", "xpdb.cluster_summary",
                  "xpdb.cluster_value")
    for name in validation:
        reader.execute(f"SELECT count(*) FROM {name}")
    published = {r[0] for r in reader.execute("SELECT table_name FROM tap_schema.tables")}
    assert set(validation) <= published


def test_role_defaults_and_check(db_url, conn, reader):
    assert check(db_url) == []
    settings = dict(s.split("=", 1) for (s,) in conn.execute(
        "SELECT unnest(setconfig) FROM pg_db_role_setting WHERE setrole = 'xpdb_reader'::regrole AND setdatabase = 0"))
    assert settings["statement_timeout"] == "60s" and settings["lo_compat_privileges"] == "off"
    assert settings["default_transaction_read_only"] == "on" and "temp_file_limit" in settings
    for statement in ("SET lo_compat_privileges = on", "SET temp_file_limit = -1"):  # superuser settings
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(statement)


def test_the_reader_reads_exactly_what_tap_schema_publishes(reader):
    readable = {r[0] for r in reader.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'v', 'm', 'p', 'f') "
        "AND has_table_privilege(c.oid, 'SELECT')")}
    published = {r[0] for r in reader.execute("SELECT table_name FROM tap_schema.tables")}
    assert readable == published
    assert not set(INTERNAL_RELATIONS) & published
    assert {"xpdb.gaia_source", "xpdb.catalog", "xpdb.model_info", "tap_schema.tables"} <= published
    assert {"xpdb.svae_output", "xpdb.svae_neighbours", "xpdb.xp_outliers"} <= published  # migration 0011_svae
    sequences = reader.execute("SELECT count(*) FROM pg_class WHERE CASE WHEN relkind = 'S' "
                               "THEN has_sequence_privilege(oid, 'USAGE, SELECT, UPDATE') END").fetchone()[0]
    assert sequences == 0


def test_large_objects_of_the_reader_are_removed_by_the_migration(db_url):
    downgrade(db_url, "0008_catalog")
    with psycopg.connect(with_user(db_url, "xpdb_reader"), autocommit=True) as reader:
        oid = reader.execute("SELECT lo_from_bytea(0, '\\xdeadbeef'::bytea)").fetchone()[0]  # as before 0007
    assert check(db_url)  # reports the open doors
    upgrade(db_url)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata WHERE oid = %s", (oid,)).fetchone()[0] == 0
    assert check(db_url) == []


def test_downgrade_restores_exactly_the_previous_rights(db_url):
    def rights(conn):
        return conn.execute(
            "SELECT p.oid::regprocedure::text, p.proacl::text FROM pg_proc AS p "
            "WHERE p.pronamespace IN ('pg_catalog'::regnamespace, 'xpdb'::regnamespace) "
            "UNION ALL SELECT c.oid::regclass::text, c.relacl::text FROM pg_class AS c "
            "WHERE c.relnamespace IN ('pg_catalog'::regnamespace, 'xpdb'::regnamespace, 'tap_schema'::regnamespace) "
            "AND c.relname NOT IN ('security_revoked', 'service_user', 'model_info') ORDER BY 1").fetchall()

    with psycopg.connect(db_url, autocommit=True) as conn:
        downgrade(db_url, "0008_catalog")
        before = rights(conn)
        assert conn.execute("SELECT has_function_privilege('xpdb_reader', 'lo_create(oid)', 'EXECUTE')").fetchone()[0]
        upgrade(db_url)
        assert rights(conn) != before
        downgrade(db_url, "0008_catalog")
        assert rights(conn) == before
        upgrade(db_url)
        assert check(db_url) == []


@pytest.mark.parametrize("statement", [s for s, _ in FORBIDDEN[:12]])
def test_sql_from_the_command_line_cannot_either(db_url, statement):
    result = CliRunner().invoke(app, ["query", "--sql", statement])
    assert result.exit_code == 1 and "permission denied" in result.output, result.output
    assert "Traceback" not in result.output


def test_every_forbidden_function_sample_exists(conn):
    """The check's samples are real signatures (a typo would make check() pass vacuously)."""
    missing = [s for s in FORBIDDEN_FUNCTIONS if conn.execute("SELECT to_regprocedure(%s)", (s,)).fetchone()[0] is None]
    assert missing == []
