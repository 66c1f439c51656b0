"""Users of ``xpdb serve`` and their tokens (``xpdb users add|list|reset|remove``).

A user is a name and one secret token, shown once when it is made; the database keeps
only the token's SHA-256 (``xpdb.service_user``, which the read-only role cannot read).
Tokens are 256 random bits, so a plain SHA-256 is enough to store them (no salt or slow
hash is needed for secrets that are not chosen by people).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from datetime import datetime

import psycopg

TOKEN_PREFIX = "xpdb_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class UserError(ValueError):
    """A user name that is invalid, taken or unknown."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise UserError(f"user names are 1-64 letters, digits and _ . @ - (starting with a letter or digit), "
                        f"not {name!r}")


def add_user(conn: psycopg.Connection, name: str) -> str:
    """Create ``name``; returns its token (shown once: only its hash is kept)."""
    _check_name(name)
    token = new_token()
    try:
        with conn.transaction():
            conn.execute("INSERT INTO xpdb.service_user (name, token_sha256) VALUES (%s, %s)",
                         (name, token_hash(token)))
    except psycopg.errors.UniqueViolation:
        raise UserError(f"there is already a user {name!r} (`xpdb users reset {name}` gives a new token)") from None
    return token


def reset_token(conn: psycopg.Connection, name: str) -> str:
    """A new token for ``name``; the old one stops working."""
    token = new_token()
    with conn.transaction():
        done = conn.execute("UPDATE xpdb.service_user SET token_sha256 = %s, token_created_at = now() "
                            "WHERE name = %s", (token_hash(token), name)).rowcount
    if not done:
        raise UserError(f"no user {name!r}")
    return token


def remove_user(conn: psycopg.Connection, name: str) -> None:
    """Remove ``name``; its token stops working (its TAP jobs stay until they are destroyed)."""
    with conn.transaction():
        if not conn.execute("DELETE FROM xpdb.service_user WHERE name = %s", (name,)).rowcount:
            raise UserError(f"no user {name!r}")


def list_users(conn: psycopg.Connection) -> list[tuple[str, datetime, datetime]]:
    """(name, created_at, token_created_at) of every user."""
    return conn.execute("SELECT name, created_at, token_created_at FROM xpdb.service_user ORDER BY name").fetchall()


class UserDirectory:
    """Token -> user name for the service, with a short cache (a removed token works for at most ``ttl_s``)."""

    def __init__(self, pool, ttl_s: float = 10.0):
        self.pool = pool
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def lookup(self, token: str) -> str | None:
        digest = token_hash(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and now - hit[1] < self.ttl_s:
                return hit[0]
        with self.pool.connection() as conn:
            row = conn.execute("SELECT name FROM xpdb.service_user WHERE token_sha256 = %s", (digest,)).fetchone()
        name = row[0] if row else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (name, now)
        return name
