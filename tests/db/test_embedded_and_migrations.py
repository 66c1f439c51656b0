"""The embedded cluster's lifecycle, the migrations, and the binary COPY encoder."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from xpdb.cli.main import app
from xpdb.config import Settings
from xpdb.db.copy import Column, copy_binary, decode_bytea
from xpdb.db.embedded import EmbeddedCluster, EmbeddedError, check_extensions, find_bindir
from xpdb.db.migrate import current_revision, downgrade, head_revision, upgrade


@pytest.mark.slow
def test_embedded_lifecycle_idempotent_and_stale_pid(monkeypatch):
    home = Path(tempfile.mkdtemp(prefix="xpdb-life-", dir="/tmp"))
    os.chmod(home, 0o755)
    monkeypatch.setenv("XPDB_HOME", str(home))
    monkeypatch.delenv("XPDB_DATABASE_URL", raising=False)
    cluster = EmbeddedCluster(Settings(None, home))
    runner = CliRunner()
    try:
        result = runner.invoke(app, ["db", "start"])
        assert result.exit_code == 0, result.output
        assert cluster.running()
        assert runner.invoke(app, ["db", "start"]).exit_code == 0  # idempotent
        # a crash: kill the postmaster hard, leaving its pid file behind
        pid = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        assert (home / "pgdata" / "postmaster.pid").exists()
        assert cluster.start() is True  # survives the stale pid file
        with psycopg.connect(cluster.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # commands migrate on first use
        status = runner.invoke(app, ["db", "migrate"])
        assert status.exit_code == 0, status.output
        assert current_revision(cluster.url) == head_revision()
        status = runner.invoke(app, ["db", "status"])
        assert "running          True" in status.output and head_revision() in status.output
        assert runner.invoke(app, ["db", "stop"]).exit_code == 0
        assert not cluster.running()
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_missing_binaries_and_extensions_fail_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("XPDB_PG_BINDIR", str(tmp_path))
    bindir = find_bindir()  # falls back to the installed PostgreSQL
    with pytest.raises(EmbeddedError, match="extension 'no_such_ext' is not installed.*apt-get install"):
        check_extensions(bindir, ("no_such_ext",))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("xpdb.db.embedded.PREFERRED_MAJORS", ())
    with pytest.raises(EmbeddedError, match="initdb, pg_ctl.*not found"):
        find_bindir()


SCHEMA_SNAPSHOT = {
    "columns": """SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default
                  FROM information_schema.columns WHERE table_schema IN ('xpdb', 'tap_schema')""",
    "views": """SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname IN ('xpdb', 'tap_schema')""",
    "functions": """SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prosrc
                    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'xpdb'""",
    "indexes": """SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'xpdb'""",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                      WHERE connamespace = 'xpdb'::regnamespace""",
    "grants": """SELECT table_schema, table_name, grantee, privilege_type FROM information_schema.table_privileges
                 WHERE table_schema IN ('xpdb', 'tap_schema')""",
    "comments": """SELECT c.relname, a.attname, col_description(c.oid, a.attnum), obj_description(c.oid)
                   FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                   WHERE c.relnamespace = 'xpdb'::regnamespace""",
}


def schema_snapshot(url: str) -> dict[str, list]:
    """Everything the migrations define, as sorted rows (so two databases can be compared)."""
    with psycopg.connect(url) as conn:
        return {name: sorted(conn.execute(sql).fetchall(), key=repr) for name, sql in SCHEMA_SNAPSHOT.items()}


def test_downgrade_to_base_and_back_gives_the_fresh_schema(db_url):
    fresh = schema_snapshot(db_url)  # the template: a fresh upgrade to head
    assert fresh["views"] and fresh["functions"] and fresh["columns"]
    downgrade(db_url, "base")
    with psycopg.connect(db_url) as conn:
        left = conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'xpdb'::regnamespace "
                            "AND relname NOT LIKE 'alembic_version%%'").fetchone()[0]
    assert left == 0, "downgrade to base left objects behind"
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    again = schema_snapshot(db_url)
    for name in SCHEMA_SNAPSHOT:
        assert again[name] == fresh[name], name


def test_migrations_apply_only_their_own_frozen_sql():
    """No migration reads today's code or a shared SQL folder: a later edit cannot rewrite history."""
    from xpdb.db.migrate import resource_dir

    versions = resource_dir("migrations") / "versions"
    for script in sorted(versions.glob("*.py")):
        text = script.read_text()
        for forbidden in ("resource_dir(", "from xpdb.query", "from xpdb.xp", "from xpdb.models", "import xpdb.xp"):
            assert forbidden not in text, f"{script.name} uses {forbidden!r}: migrations must carry their SQL"


def test_binary_copy_nulls_and_ragged_arrays(conn):
    conn.execute("CREATE TEMP TABLE t (a bigint, b real, c bytea, d double precision, e text)")
    values = np.array([[1.5, 2.5, 3.5], [4.0, np.nan, np.nan], [7.0, 8.0, 9.0]])
    cols = [Column("a", "int8", np.array([1, 2, 3])),
            Column("b", "float4", np.array([0.5, 1.5, 2.5], dtype=np.float32), np.array([False, True, False])),
            Column("c", "bytea_f8", values, np.array([False, False, True]), np.array([3, 1, 3])),
            Column("d", "float8", np.array([1e300, -0.0, np.pi])),
            Column("e", "text_fixed", np.array([b"bp", b"rp", b"bp"], dtype="S2"))]
    assert copy_binary(conn, "t", cols) == 3
    rows = conn.execute("SELECT a, b, c, d, e FROM t ORDER BY a").fetchall()
    assert [r[4] for r in rows] == ["bp", "rp", "bp"]
    assert [r[1] for r in rows] == [0.5, None, 2.5]
    assert rows[2][2] is None
    got = decode_bytea([rows[0][2], rows[1][2]], "<f8")
    np.testing.assert_array_equal(got[0], [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(got[1][:1], [4.0])
    assert np.isnan(got[1][1:]).all()
    assert rows[0][3] == 1e300 and rows[2][3] == np.pi


@pytest.mark.parametrize("name", ["giant_sample", "final_sample", "model_domain"])
def test_selection_views_equal_the_python_definitions(conn, name):
    """The cuts are defined once (xpdb.selection): the frozen views must still say the same."""
    from xpdb import selection

    conn.execute(selection.view_sql(name).replace(f"VIEW xpdb.{name}", f"VIEW pg_temp.check_{name}"))
    stored, fresh = conn.execute("SELECT pg_get_viewdef(%s::regclass), pg_get_viewdef(%s::regclass)",
                                 (f"xpdb.{name}", f"pg_temp.check_{name}")).fetchone()
    assert stored == fresh


@pytest.mark.parametrize("name", ["xm_validation", "xm_cluster_sample"])
def test_validation_views_equal_the_python_definitions(conn, name):
    """The validation scopes and cluster samples are rendered from xpdb.validation: the frozen views must agree."""
    from xpdb import validation

    sql = validation.rendered()[name]
    conn.execute(sql.replace(f"VIEW xpdb.{name}", f"VIEW pg_temp.check_{name}"))
    stored, fresh = conn.execute("SELECT pg_get_viewdef(%s::regclass), pg_get_viewdef(%s::regclass)",
                                 (f"xpdb.{name}", f"pg_temp.check_{name}")).fetchone()
    assert stored == fresh


@pytest.mark.parametrize("name", ["default_validation_selection", "cluster_key", "default_bp_rp0_min"])
def test_validation_functions_equal_the_python_definitions(conn, name):
    """Catalogue defaults, cluster names and colour cuts: the frozen SQL functions say what xpdb.validation says."""
    from xpdb import validation

    body = validation.rendered()[name].split("$$")[1]
    stored = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s AND pronamespace = 'xpdb'::regnamespace",
                          (name,)).fetchone()[0]
    assert stored == body


def test_validation_defaults_by_name_match_python(conn):
    from xpdb import validation

    for catalog in ("SAGA", "PASTEL", "saga-dr4", "APOGEE", "LAMOST", "SDSS", "Huang 2025", "Viswanathan"):
        sql = conn.execute("SELECT xpdb.default_validation_selection(%s)", (catalog,)).fetchone()[0]
        assert sql == validation.default_validation_selection(catalog), catalog
    for name in ("M5", "M 67", "Messier 13", "NGC 5904", "ngc6791", "Melotte 22", "M45", "M1", "Berkeley 17"):
        assert conn.execute("SELECT xpdb.cluster_key(%s)", (name,)).fetchone()[0] == validation.cluster_key(name), name
    assert validation.cluster_key("M5") == validation.cluster_key("NGC 5904") == "ngc5904"
    assert validation.cluster_key("M67") == "ngc2682"
    assert conn.execute("SELECT xpdb.default_bp_rp0_min('NGC 6791'), xpdb.default_bp_rp0_min('NGC2682')"
                        ).fetchone() == (pytest.approx(1.05), None)
