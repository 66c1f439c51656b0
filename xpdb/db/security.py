"""What the read-only role must not be able to do, checked against a live database.

Migration ``0009_security`` sets the rights up (see its docstring); :func:`check` verifies
them, so that ``xpdb serve`` can warn when a database was migrated by a role that could
not revoke PostgreSQL's defaults (a non-superuser), and tests can assert them.
"""

from __future__ import annotations

import psycopg

from xpdb.config import READER_ROLE

# service bookkeeping: never readable by the read-only role (nor published in TAP_SCHEMA)
INTERNAL_RELATIONS = (
    "xpdb.model", "xpdb.ingest_run", "xpdb.ingest_reject", "xpdb.job", "xpdb.job_batch", "xpdb.alembic_version",
    "xpdb.uws_job", "xpdb.uws_result", "xpdb.uws_upload", "xpdb.service_user", "xpdb.security_revoked", "tap_schema.column_meta",
)
# functions that write, signal, change settings or show other sessions: a sample of each kind
FORBIDDEN_FUNCTIONS = (
    "lo_create(oid)", "lo_from_bytea(oid,bytea)", "lo_put(oid,bigint,bytea)", "lowrite(integer,bytea)",
    "lo_unlink(oid)", "lo_import(text)", "pg_terminate_backend(integer,bigint)", "pg_cancel_backend(integer)",
    "set_config(text,text,boolean)", "pg_advisory_lock(bigint)", "pg_try_advisory_lock(bigint)",
    "pg_notify(text,text)", "pg_stat_get_activity(integer)", "pg_stat_get_backend_activity(integer)",
    "query_to_xml(text,boolean,boolean,text)", "table_to_xml(regclass,boolean,boolean,text)",
    "pg_logical_emit_message(boolean,text,text)", "setval(regclass,bigint)", "xpdb.refresh_xm_views()",
    "txid_current()", "pg_current_xact_id()",
)
FORBIDDEN_VIEWS = ("pg_catalog.pg_stat_activity", "pg_catalog.pg_locks", "pg_catalog.pg_stat_progress_copy")


def check(url: str, role: str = READER_ROLE) -> list[str]:
    """What ``role`` can do that it should not (empty when all is well, or when the role does not exist)."""
    problems: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            return problems
        for signature in FORBIDDEN_FUNCTIONS:
            row = conn.execute("SELECT to_regprocedure(%s)", (signature,)).fetchone()
            if row[0] is not None and conn.execute("SELECT has_function_privilege(%s, %s::regprocedure, 'EXECUTE')",
                                                   (role, signature)).fetchone()[0]:
                problems.append(f"{role} may execute {signature}")
        for name in (*FORBIDDEN_VIEWS, *INTERNAL_RELATIONS):
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, %s, 'SELECT')",
                            (name, role, name)).fetchone()[0]:
                problems.append(f"{role} may read {name}")
    return problems
