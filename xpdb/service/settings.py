"""Limits and defaults of ``xpdb serve``: from ``XPDB_SERVE_*`` environment variables or arguments.

``XPDB_SERVE_MAXREC``           default MAXREC of TAP and cone search (rows, default 10000)
``XPDB_SERVE_MAXREC_LIMIT``     the MAXREC ceiling (rows, default 1000000)
``XPDB_SERVE_TIMEOUT``          statement timeout of synchronous queries (seconds, default 60)
``XPDB_SERVE_ASYNC_DURATION``   default execution duration of async jobs (seconds, default 600)
``XPDB_SERVE_ASYNC_LIMIT``      longest execution duration a job may ask for (seconds, default 3600)
``XPDB_SERVE_RETENTION``        time from creation to destruction of a job (seconds, default 7 days)
``XPDB_SERVE_POOL``             read-only connections for synchronous requests (default 8)
``XPDB_SERVE_ASYNC_WORKERS``    threads executing async jobs (default 2)
``XPDB_SERVE_MAX_RESULT_MB``    largest result one query may return (MB of result table, counted while the
                                rows are read: numbers at their size, text 4 bytes a character; default 100)
``XPDB_SERVE_ADQL_MAX_LENGTH``  longest ADQL query accepted (characters, default 1000000)
``XPDB_SERVE_PARSE_TIMEOUT``    longest time for translating one ADQL query (seconds, default 30)
``XPDB_SERVE_UPLOAD_MAX_MB``   largest TAP_UPLOAD of one request, all tables together (MB, default 20)
``XPDB_SERVE_UPLOAD_MAX_ROWS`` most rows of one uploaded table (default 1000000)
``XPDB_SERVE_UPLOAD_URLS``    1 (default): UPLOAD may name an http(s) URL, fetched by the service (TAP 1.1's
                                mandatory upload-http); 0: only tables sent in the request
``XPDB_SERVE_REQUIRE_TOKEN``    1: every request but the VOSI capabilities and availability needs a user
                                token (``xpdb users add``); default 0: anonymous reading allowed
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

_ENV = {
    "maxrec": "XPDB_SERVE_MAXREC",
    "maxrec_limit": "XPDB_SERVE_MAXREC_LIMIT",
    "sync_timeout_s": "XPDB_SERVE_TIMEOUT",
    "async_duration_s": "XPDB_SERVE_ASYNC_DURATION",
    "async_duration_limit_s": "XPDB_SERVE_ASYNC_LIMIT",
    "retention_s": "XPDB_SERVE_RETENTION",
    "pool_size": "XPDB_SERVE_POOL",
    "async_workers": "XPDB_SERVE_ASYNC_WORKERS",
    "max_result_mb": "XPDB_SERVE_MAX_RESULT_MB",
    "adql_max_length": "XPDB_SERVE_ADQL_MAX_LENGTH",
    "parse_timeout_s": "XPDB_SERVE_PARSE_TIMEOUT",
    "require_token": "XPDB_SERVE_REQUIRE_TOKEN",
    "upload_max_mb": "XPDB_SERVE_UPLOAD_MAX_MB",
    "upload_max_rows": "XPDB_SERVE_UPLOAD_MAX_ROWS",
    "upload_urls": "XPDB_SERVE_UPLOAD_URLS",
}


@dataclass(frozen=True)
class ServiceSettings:
    """What the service allows; every value has a safe default."""

    maxrec: int = 10_000
    maxrec_limit: int = 1_000_000
    sync_timeout_s: float = 60.0
    async_duration_s: int = 600
    async_duration_limit_s: int = 3600
    retention_s: int = 7 * 86400
    pool_size: int = 8
    async_workers: int = 2
    max_result_mb: float = 100.0    # rows beyond it are not read (OVERFLOW); a query holds at most ~5x this
    adql_max_length: int = 1_000_000  # characters of ADQL
    parse_timeout_s: float = 30.0   # translating one ADQL query (worker processes, see parsing.py)
    parse_workers: int = 2          # worker processes for small queries (and one for large ones)
    require_token: bool = False     # anonymous requests refused (401) when True
    upload_max_mb: float = 20.0     # TAP_UPLOAD: bytes of all the tables of one request
    upload_max_rows: int = 1_000_000  # TAP_UPLOAD: rows of one table
    upload_urls: bool = True        # TAP_UPLOAD: fetch tables named by http(s) URL (TAP 1.1 upload-http)
    pool_wait_s: float = 30.0       # longest wait for a free connection before answering 503
    wait_limit_s: float = 30.0      # longest UWS WAIT blocking
    maintenance_s: float = 30.0     # how often expired jobs are destroyed and orphans recovered
    poll_s: float = 1.0             # how often idle executors look for jobs queued by other servers

    def __post_init__(self) -> None:
        if self.maxrec < 0 or self.maxrec_limit < 1 or self.maxrec > self.maxrec_limit:
            raise ValueError(f"need 0 <= maxrec ({self.maxrec}) <= maxrec_limit ({self.maxrec_limit})")
        if self.sync_timeout_s <= 0 or self.async_duration_s <= 0 or self.async_duration_limit_s <= 0:
            raise ValueError("timeouts and execution durations must be positive")
        if self.max_result_mb <= 0:
            raise ValueError("max_result_mb must be positive")
        if self.adql_max_length < 1 or self.parse_timeout_s <= 0 or self.parse_workers < 1:
            raise ValueError("adql_max_length, parse_timeout_s and parse_workers must be positive")
        if self.upload_max_mb < 0 or self.upload_max_rows < 0:
            raise ValueError("upload_max_mb and upload_max_rows must not be negative")
        if self.pool_size < 1 or self.async_workers < 1:
            raise ValueError("pool_size and async_workers must be at least 1")

    @property
    def max_result_bytes(self) -> int:
        return int(self.max_result_mb * 1e6)

    @property
    def max_body_bytes(self) -> int:
        """Largest request body: room for the longest query, URL-encoded, and the other parameters."""
        return 3 * self.adql_max_length + (64 << 10)

    @property
    def max_multipart_bytes(self) -> int:
        """Largest multipart request body: that of :attr:`max_body_bytes` and the uploaded tables."""
        return self.max_body_bytes + self.upload_max_bytes

    @property
    def upload_max_bytes(self) -> int:
        return int(self.upload_max_mb * 1e6)

    def to_env(self) -> dict[str, str]:
        """The ``XPDB_SERVE_*`` variables that make :meth:`from_env` return these settings."""
        return {var: str(int(value) if isinstance(value, bool) else value)
                for name, var in _ENV.items() for value in [getattr(self, name)]}

    @classmethod
    def from_env(cls, **overrides) -> ServiceSettings:
        """Defaults, then ``XPDB_SERVE_*`` variables, then the non-None ``overrides``."""
        values: dict = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in _ENV.items():
            raw = os.environ.get(var)
            if raw:
                if types[name] in ("bool", bool):
                    if raw.strip().lower() not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(f"{var}={raw!r} is not 0 or 1")
                    values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
                    continue
                kind = float if types[name] in ("float", float) else int
                try:
                    values[name] = kind(raw)
                except ValueError as exc:
                    raise ValueError(f"{var}={raw!r} is not a number") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)
