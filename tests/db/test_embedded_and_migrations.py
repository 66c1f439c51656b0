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


def test_downgrade_and_upgrade_again(db_url):
    downgrade(db_url, "base")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('xpdb.xp_continuous')").fetchone()[0] is None
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('xpdb.xp_continuous')").fetchone()[0] is not None


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
