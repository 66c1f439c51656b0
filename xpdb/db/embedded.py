"""The embedded default: a private PostgreSQL cluster under ``$XPDB_HOME``.

When ``XPDB_DATABASE_URL`` is unset every command uses a cluster that xpdb creates with
``initdb`` and runs with ``pg_ctl``, listening only on a Unix socket inside the data
directory. PostgreSQL refuses to run as root, so when the effective user is root the
server programs run as an unprivileged system user (Debian's ``postgres``) through
``runuser``, with the cluster directory owned by that user.

That user must be able to reach the cluster's directory. When ``XPDB_HOME`` lies under a
directory it cannot traverse (root's 0700 home, a ``mktemp -d`` folder), xpdb does not
change the permissions of directories it did not create: it keeps the cluster's files
(data directory, socket, log) under ``/var/lib/xpdb/clusters/<random>/`` instead and
records where in ``$XPDB_HOME/cluster.json``; ``xpdb db status`` prints the location.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from xpdb.config import Settings
from xpdb.errors import EmbeddedError

SUPERUSER = "xpdb"
DATABASE = "xpdb"
PORT = 5432
PREFERRED_MAJORS = (15, 16, 17, 14, 13)
REQUIRED_EXTENSIONS = ("q3c",)


def _apt_hint(major: int = 15) -> str:
    return (
        f"install it with: sudo apt-get install postgresql-{major} postgresql-{major}-q3c "
        f"postgresql-{major}-pgsphere (or run `make demo`, whose bootstrap does this), "
        "or set XPDB_DATABASE_URL to an existing server"
    )


def find_bindir() -> Path:
    """Locate the PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``)."""
    explicit = os.environ.get("XPDB_PG_BINDIR")
    candidates: list[Path] = [Path(explicit)] if explicit else []
    candidates += [Path(f"/usr/lib/postgresql/{m}/bin") for m in PREFERRED_MAJORS]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise EmbeddedError("PostgreSQL server binaries (initdb, pg_ctl) not found; " + _apt_hint())


def check_extensions(bindir: Path, names: tuple[str, ...] = REQUIRED_EXTENSIONS) -> None:
    """Fail clearly when an extension xpdb needs is not installed for this PostgreSQL."""
    pg_config = bindir / "pg_config"
    sharedir: Path | None = None
    if pg_config.exists():
        out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True)
        if out.returncode == 0:
            sharedir = Path(out.stdout.strip())
    if sharedir is None:
        sharedir = Path(f"/usr/share/postgresql/{bindir.parent.name}")
    for name in names:
        if not (sharedir / "extension" / f"{name}.control").exists():
            raise EmbeddedError(
                f"the PostgreSQL extension {name!r} is not installed for {bindir.parent}; "
                + _apt_hint(int(bindir.parent.name) if bindir.parent.name.isdigit() else 15)
            )


@dataclass
class _RunAs:
    """Who runs the server programs: ourselves, or a system user when we are root."""

    user: str | None  # None: the current user
    uid: int
    gid: int

    @classmethod
    def detect(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls(None, os.getuid(), os.getgid())
        name = os.environ.get("XPDB_PG_USER", "postgres")
        try:
            entry = pwd.getpwnam(name)
        except KeyError as exc:
            raise EmbeddedError(
                f"running as root, but the system user {name!r} that should own the cluster does "
                "not exist (PostgreSQL refuses to run as root); install postgresql or set XPDB_PG_USER"
            ) from exc
        return cls(name, entry.pw_uid, entry.pw_gid)

    def command(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", self.user, "--", *argv]


def _blocking_parent(path: Path, run_as: _RunAs) -> Path | None:
    """The first parent of ``path`` that the server's user cannot traverse, if any."""
    if run_as.user is None:
        return None
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid == run_as.uid:
            if not st.st_mode & 0o100:
                return parent
        elif st.st_gid == run_as.gid:
            if not st.st_mode & 0o010:
                return parent
        elif not st.st_mode & 0o001:
            return parent
    return None


RELOCATED_ROOT = Path(os.environ.get("XPDB_RELOCATED_ROOT", "/var/lib/xpdb/clusters"))
LOCATION_FILE = "cluster.json"


@dataclass(frozen=True)
class ClusterLocation:
    """Where one cluster's files are: under ``XPDB_HOME`` or relocated (see the module docstring)."""

    base: Path
    relocated: bool

    @property
    def pgdata(self) -> Path:
        return self.base / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.base / "run"

    @property
    def log(self) -> Path:
        return self.base / "postgres.log"


def _pid_alive_postgres(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"postgres" in cmdline or b"postmaster" in cmdline


class EmbeddedCluster:
    """A PostgreSQL cluster private to one ``XPDB_HOME``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.home
        self.location = self._recorded_location() or ClusterLocation(self.home, relocated=False)

    @property
    def pgdata(self) -> Path:
        return self.location.pgdata

    @property
    def socket_dir(self) -> Path:
        return self.location.socket_dir

    @property
    def log(self) -> Path:
        return self.location.log

    # -- where the files are -----------------------------------------------------------------
    def _recorded_location(self) -> ClusterLocation | None:
        """The relocated directory recorded in ``XPDB_HOME/cluster.json``, if there is one."""
        try:
            record = json.loads((self.home / LOCATION_FILE).read_text())
            return ClusterLocation(Path(record["base"]), relocated=True)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddedError(f"{self.home / LOCATION_FILE} is unreadable ({exc}); remove it to start afresh") from exc

    def _choose_location(self, run_as: _RunAs) -> None:
        """Relocate a new cluster when the server's user cannot reach ``XPDB_HOME`` (see module doc)."""
        if self.location.relocated or self.initialised():
            return
        blocked = _blocking_parent(self.home / "pgdata", run_as)
        if blocked is None:
            return
        root = RELOCATED_ROOT
        self._sweep_orphans(root, run_as)
        base = root / secrets.token_hex(8)
        root.mkdir(parents=True, exist_ok=True)
        if _blocking_parent(base, run_as) is not None:
            raise EmbeddedError(
                f"the server user {run_as.user!r} can reach neither {self.home} ({blocked} is not "
                f"traversable by others) nor {root}; set XPDB_HOME to a directory it can reach")
        base.mkdir(mode=0o755)
        (base / "owner").write_text(str(self.home) + "\n")
        tmp = self.home / (LOCATION_FILE + ".tmp")
        tmp.write_text(json.dumps({"base": str(base), "reason": f"{blocked} is not traversable by "
                                   f"the server user {run_as.user!r}"}, indent=1) + "\n")
        tmp.replace(self.home / LOCATION_FILE)
        self.location = ClusterLocation(base, relocated=True)

    def _sweep_orphans(self, root: Path, run_as: _RunAs) -> None:
        """Stop and remove relocated clusters of this same home whose record was deleted."""
        if not root.is_dir():
            return
        for base in root.iterdir():
            try:
                owner = (base / "owner").read_text().strip()
            except OSError:
                continue
            if owner != str(self.home):
                continue
            pgdata = base / "pgdata"
            if (pgdata / "postmaster.pid").exists():
                self._run([str(find_bindir() / "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", str(pgdata)],
                          run_as, check=False)
            shutil.rmtree(base, ignore_errors=True)

    def destroy(self) -> None:
        """Stop the cluster and delete its files (the relocated directory too); ``XPDB_HOME`` stays."""
        self.stop()
        with self._lock():
            if self.location.relocated:
                shutil.rmtree(self.location.base, ignore_errors=True)
                (self.home / LOCATION_FILE).unlink(missing_ok=True)
            else:
                shutil.rmtree(self.pgdata, ignore_errors=True)
                shutil.rmtree(self.socket_dir, ignore_errors=True)
                self.log.unlink(missing_ok=True)
            self.location = ClusterLocation(self.home, relocated=False)

    # -- paths and state ---------------------------------------------------------------
    @property
    def url(self) -> str:
        """libpq URL of the cluster's xpdb database (Unix socket in ``XPDB_HOME/run``)."""
        return f"postgresql://{SUPERUSER}@/{DATABASE}?host={self.socket_dir}&port={PORT}"

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def _run(self, argv: list[str], run_as: _RunAs, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(run_as.command(argv), capture_output=True, text=True, cwd="/")
        if check and proc.returncode != 0:
            tail = self._log_tail()
            raise EmbeddedError(
                f"{Path(argv[0]).name} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
                + (f"\n--- {self.log} ---\n{tail}" if tail else "")
            )
        return proc

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise init/start/stop across processes (workers may start together)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".cluster.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- lifecycle --------------------------------------------------------------------------
    def init(self) -> bool:
        """Create the cluster if it does not exist yet. Returns True when it was created."""
        bindir = find_bindir()
        check_extensions(bindir)
        run_as = _RunAs.detect()
        if self.initialised():
            return False
        self.home.mkdir(parents=True, exist_ok=True)
        self._choose_location(run_as)
        for d, mode in ((self.pgdata, 0o700), (self.socket_dir, 0o755)):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, mode)
        if run_as.user is not None:
            for p in (self.location.base, self.pgdata, self.socket_dir):
                os.chown(p, run_as.uid, run_as.gid)
            if self.log.exists():
                os.chown(self.log, run_as.uid, run_as.gid)
        self._run(
            [str(bindir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
             "-E", "UTF8", "--no-locale", "--no-sync"],
            run_as,
        )
        conf = self.pgdata / "postgresql.conf"
        with open(conf, "a") as fh:
            fh.write("\ninclude_if_exists = 'xpdb.conf'\n")
        (self.pgdata / "xpdb.conf").write_text(self._server_settings())
        if run_as.user is not None:
            os.chown(self.pgdata / "xpdb.conf", run_as.uid, run_as.gid)
        return True

    def _server_settings(self) -> str:
        """Settings for a private, socket-only cluster tuned for bulk loads on a small machine."""
        return "\n".join([
            "# written by xpdb; edit freely, `xpdb db stop && xpdb db start` applies",
            "listen_addresses = ''",
            f"unix_socket_directories = '{self.socket_dir}'",
            f"port = {PORT}",
            "max_connections = 100",
            "shared_buffers = 512MB",
            "work_mem = 64MB",
            "maintenance_work_mem = 512MB",
            "max_wal_size = 4GB",
            "checkpoint_timeout = 15min",
            "wal_buffers = 64MB",
            "# a private single-node cluster: no replication, so the minimal WAL level, which lets",
            "# COPY into a table emptied in the same transaction skip WAL (PostgreSQL docs, 14.4.7)",
            "wal_level = minimal",
            "max_wal_senders = 0",
            "jit = off",
            "timezone = 'UTC'",
            "",
        ])

    def running(self) -> bool:
        if not self.initialised():
            return False
        proc = self._run([str(find_bindir() / "pg_ctl"), "status", "-D", str(self.pgdata)],
                         _RunAs.detect(), check=False)
        return proc.returncode == 0

    def _clear_stale_pid(self) -> None:
        """Remove a pid file (and socket lock) left by a server that is no longer running."""
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists():
            try:
                pid = int(pidfile.read_text().splitlines()[0])
            except (ValueError, IndexError, OSError):
                pid = -1
            if pid <= 0 or not _pid_alive_postgres(pid):
                pidfile.unlink(missing_ok=True)
        lock = self.socket_dir / f".s.PGSQL.{PORT}.lock"
        if lock.exists() and not pidfile.exists():
            lock.unlink(missing_ok=True)
            (self.socket_dir / f".s.PGSQL.{PORT}").unlink(missing_ok=True)

    def start(self) -> bool:
        """Initialise if needed and start the server. Idempotent; returns True if it started it."""
        with self._lock():
            self.init()
            if self.running():
                self._ensure_database()
                return False
            self._clear_stale_pid()
            run_as = _RunAs.detect()
            if run_as.user is not None:
                self.log.touch(exist_ok=True)
                os.chown(self.log, run_as.uid, run_as.gid)
            self._run(
                [str(find_bindir() / "pg_ctl"), "start", "-w", "-t", "120", "-D", str(self.pgdata),
                 "-l", str(self.log)],
                run_as,
            )
            self._ensure_database()
            return True

    def stop(self) -> bool:
        """Stop the server if it runs (fast shutdown). Returns True if it stopped it."""
        with self._lock():
            if not self.running():
                return False
            self._run([str(find_bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pgdata)],
                      _RunAs.detect())
            return True

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    f"postgresql://{SUPERUSER}@/postgres?host={self.socket_dir}&port={PORT}",
                    autocommit=True,
                ) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def status(self) -> dict[str, object]:
        """A small description for ``xpdb db status``."""
        return {
            "mode": "embedded",
            "home": str(self.home),
            "cluster": str(self.location.base) + (" (relocated: the server user cannot reach home; "
                                                  f"recorded in {self.home / LOCATION_FILE})"
                                                  if self.location.relocated else ""),
            "initialised": self.initialised(),
            "running": self.running(),
            "url": self.url,
            "log": str(self.log),
        }
