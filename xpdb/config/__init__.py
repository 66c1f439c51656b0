"""Settings read from the environment: where the database is and where xpdb keeps its files.

``XPDB_DATABASE_URL``  a PostgreSQL URL; when unset, xpdb runs its own embedded cluster.
``XPDB_HOME``          the data directory (default ``./.xpdb``): embedded cluster, logs, reports.
``XPDB_READER_URL``    optional URL for the read-only query role (default: the main URL
                       with the user replaced by ``xpdb_reader``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SCHEMA = "xpdb"
READER_ROLE = "xpdb_reader"


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one xpdb process."""

    database_url: str | None
    home: Path
    reader_url: str | None = None

    @property
    def embedded(self) -> bool:
        """True when xpdb manages its own PostgreSQL cluster under ``home``."""
        return not self.database_url


def get_settings() -> Settings:
    """Read the settings from the environment (every call, so tests may change it)."""
    url = os.environ.get("XPDB_DATABASE_URL") or None
    home = Path(os.environ.get("XPDB_HOME") or ".xpdb").expanduser().absolute()
    return Settings(database_url=url, home=home, reader_url=os.environ.get("XPDB_READER_URL") or None)
