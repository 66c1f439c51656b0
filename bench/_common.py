"""Helpers shared by the benchmark scripts: a scratch database and a timer."""

from __future__ import annotations

import time
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

from xpdb.db.engine import database_url
from xpdb.db.migrate import upgrade


def scratch_database(name: str) -> str:
    """Create (or recreate) database ``name`` next to the configured one and migrate it."""
    base = database_url()
    parts = urlsplit(base)
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    upgrade(url)
    return url


@contextmanager
def timer():
    t = {"seconds": 0.0}
    t0 = time.perf_counter()
    yield t
    t["seconds"] = time.perf_counter() - t0


def ratio_line(label: str, ours: float, base: float, unit: str) -> str:
    return f"{label:<44s} {ours:>12,.0f} {unit}   baseline {base:>12,.0f} {unit}   ratio {ours / base:6.2f}"
