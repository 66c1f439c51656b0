"""Connections to the xpdb database: the configured server or the embedded cluster.

``database_url()`` resolves where the data are (starting the embedded cluster on demand);
``ready()`` additionally brings the schema to the newest migration once per process.
Fast paths (COPY) use psycopg 3 connections; composed queries may use SQLAlchemy Core.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import sqlalchemy as sa

from xpdb.config import READER_ROLE, Settings, get_settings
from xpdb.db.embedded import EmbeddedCluster

_ready_urls: set[str] = set()
_ready_lock = threading.Lock()


def database_url(settings: Settings | None = None, *, start: bool = True) -> str:
    """The libpq URL of the database; starts the embedded cluster when no URL is configured."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    cluster = EmbeddedCluster(settings)
    if start:
        cluster.start()
    return cluster.url


def reader_url(settings: Settings | None = None) -> str:
    """URL for the read-only role used by ``xpdb query``, cone search and the TAP service."""
    settings = settings or get_settings()
    if settings.reader_url:
        return settings.reader_url
    return with_user(database_url(settings), READER_ROLE)


def with_user(url: str, user: str) -> str:
    """Return ``url`` with its user name replaced (password dropped)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("user", "password")]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), parts.fragment))


def ready(settings: Settings | None = None) -> str:
    """Resolve the database, start it if embedded and migrate it to head (once per process)."""
    url = database_url(settings)
    if url not in _ready_urls:
        with _ready_lock:
            if url not in _ready_urls:
                from xpdb.db.migrate import upgrade_if_needed

                upgrade_if_needed(url)
                _ready_urls.add(url)
    return url


def connect(url: str | None = None, *, autocommit: bool = False, **kwargs) -> psycopg.Connection:
    """A psycopg connection to the (migrated) xpdb database."""
    return psycopg.connect(url or ready(), autocommit=autocommit, **kwargs)


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq URL into a SQLAlchemy URL for the psycopg 3 driver."""
    scheme, rest = url.split("://", 1)
    if "+" in scheme:
        return url
    return f"postgresql+psycopg://{rest}"


@lru_cache(maxsize=8)
def engine(url: str | None = None) -> sa.Engine:
    """A pooled SQLAlchemy engine for composed (Core) queries."""
    return sa.create_engine(sqlalchemy_url(url or ready()), pool_pre_ping=True)
