"""Alembic migrations run from Python: upgrade on first use, downgrade on request.

The migration scripts live in the top-level ``migrations/`` folder of a source checkout
and are shipped inside the wheel as ``xpdb/_data/migrations``. Migrations are frozen: each
revision applies only the SQL in its own ``migrations/sql/<revision>/`` folder (read with
``frozen_sql``), never today's code, so a view or function change is a new revision and
upgrading an old database replays history exactly.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from xpdb.config import SCHEMA

_PACKAGE = Path(__file__).resolve().parents[1]


def resource_dir(name: str) -> Path:
    """Locate ``migrations``: inside an installed wheel, else in the source tree."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"xpdb resource folder {name!r} not found next to {_PACKAGE}")


def frozen_sql(revision: str, name: str) -> str:
    """The SQL file ``name`` that migration ``revision`` applies (``migrations/sql/<revision>/<name>``)."""
    return (resource_dir("migrations") / "sql" / revision / name).read_text()


def frozen_steps(revision: str):
    """(upgrade, downgrade) of a revision that is nothing but its ``upgrade.sql`` and ``downgrade.sql``."""

    def upgrade() -> None:
        from alembic import op

        op.execute(frozen_sql(revision, "upgrade.sql"))

    def downgrade() -> None:
        from alembic import op

        op.execute(frozen_sql(revision, "downgrade.sql"))

    return upgrade, downgrade


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resource_dir("migrations")))
    cfg.attributes["xpdb_url"] = url
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.alembic_version",)).fetchone()[0]
        if exists is None:
            return None
        row = conn.execute(f"SELECT version_num FROM {SCHEMA}.alembic_version").fetchone()
        return row[0] if row else None


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def upgrade_if_needed(url: str) -> bool:
    """Upgrade to head when the database is behind. Returns True if it migrated."""
    if current_revision(url) == head_revision():
        return False
    upgrade(url)
    return True
