"""Security: what the read-only role may run and read, owners of TAP jobs, and service users.

Revision ID: 0009_security
Revises: 0008_catalog
Create Date: 2026-11-24

This migration carries its own SQL (earlier migrations read ``sql/*.sql`` from the tree).

``xpdb_reader`` runs every user query. Before this migration it could execute every
function PostgreSQL grants to PUBLIC: large objects (``lo_from_bytea``, ``lowrite``...,
which write even in a READ ONLY transaction), ``pg_terminate_backend``/``pg_cancel_backend``
(which may signal sessions of the same role), ``set_config``, advisory locks, and it could
read ``pg_stat_activity`` (the text of the other clients' queries, all of which share the
role) and internal tables (model artifacts, server file paths, jobs).

Functions. PostgreSQL has no per-role DENY and these functions are granted to PUBLIC, so
they are revoked from PUBLIC in this database and granted back to the role that migrates
(the owner of the schema) and to the group role ``xpdb_writer`` (give it to workers that
log in under another name). The rule is an allow-list: the reader keeps every function
of ``pg_catalog`` that is IMMUTABLE or STABLE (they cannot write) except those that show
other sessions or execute SQL text of their own (``*_to_xml``, ``ts_stat``...), and of the
VOLATILE ones only ``ALLOWED_VOLATILE`` (clocks, random, sizes, sleeping...). Functions
that SQL cannot call (handlers and triggers) are left alone. Every revocation is recorded
in ``xpdb.security_revoked`` so that the downgrade restores exactly what was there.

Views showing other sessions (``pg_stat_activity``, ``pg_locks``, progress views...) are
revoked from PUBLIC the same way (``pg_read_all_stats`` keeps them).

Tables. The reader keeps SELECT on what TAP_SCHEMA publishes and loses it on internal
tables (``model`` - replaced by the view ``model_info`` without the artifact -,
``ingest_run``, ``ingest_reject``, ``job``, ``job_batch``, ``alembic_version``, the UWS and
user tables, ``tap_schema.column_meta``). TAP_SCHEMA lists what the reader may read, so
these disappear from it too.

Role defaults (cluster-wide; set when the migrating role may): statement and
idle-in-transaction timeouts, ``lo_compat_privileges = off``, a ``temp_file_limit``.
Large objects the reader created before are unlinked.

A migrating role that is not a superuser cannot revoke PUBLIC's rights on built-in
functions (PostgreSQL only warns); the migration then warns that a superuser must run
``xpdb db migrate`` once, and ``xpdb serve`` repeats the warning at start-up
(``xpdb.db.security.check``).
"""

from alembic import op

revision = "0009_security"
down_revision = "0008_catalog"
branch_labels = None
depends_on = None

# VOLATILE pg_catalog functions that stay executable by PUBLIC: they neither write nor
# signal nor show other sessions (nextval/setval are bounded by sequence privileges and
# the read-only transaction; nextval stays because other roles' inserts need it).
ALLOWED_VOLATILE = (
    "clock_timestamp", "timeofday", "random", "gen_random_uuid", "currval", "lastval", "nextval",
    "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_jit_available", "pg_is_in_recovery",
    "pg_relation_size", "pg_table_size", "pg_total_relation_size", "pg_indexes_size", "pg_database_size",
    "pg_tablespace_size", "pg_partition_tree", "pg_partition_ancestors", "pg_collation_actual_version",
    "pg_database_collation_actual_version", "pg_notification_queue_usage", "pg_stat_clear_snapshot",
    "pg_sequence_last_value", "pg_xact_status", "txid_status", "current_query", "pg_stat_get_recovery_prefetch",
    "pg_get_wal_resource_managers", "pg_is_wal_replay_paused", "pg_get_wal_replay_pause_state",
    "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp",
    "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn",
    "pg_control_checkpoint", "pg_control_init", "pg_control_recovery", "pg_control_system",
)
# IMMUTABLE/STABLE pg_catalog functions revoked all the same: other sessions' activity,
# functions that run SQL given as text or build whole tables into one value, and those that
# assign a transaction id.
DENIED_STABLE = (
    "pg_stat_get_activity", "pg_stat_get_progress_info", "pg_stat_get_wal_senders", "pg_stat_get_wal_receiver",
    "pg_stat_get_subscription", "pg_lock_status", "pg_blocking_pids", "pg_safe_snapshot_blocking_pids",
    "pg_prepared_xact", "pg_get_multixact_members", "pg_isolation_test_session_is_blocked",
    "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    "ts_stat", "ts_rewrite",
    "txid_current", "pg_current_xact_id",  # assign a transaction id: a write to the commit log, even read-only
)
# pg_catalog views about other sessions
ACTIVITY_VIEWS = (
    "pg_stat_activity", "pg_locks", "pg_prepared_xacts", "pg_stat_ssl", "pg_stat_gssapi", "pg_stat_replication",
    "pg_stat_wal_receiver", "pg_stat_subscription", "pg_stat_progress_analyze", "pg_stat_progress_vacuum",
    "pg_stat_progress_cluster", "pg_stat_progress_create_index", "pg_stat_progress_basebackup",
    "pg_stat_progress_copy",
)
# tables of the service itself: never readable by xpdb_reader
INTERNAL_TABLES = (
    "xpdb.model", "xpdb.ingest_run", "xpdb.ingest_reject", "xpdb.job", "xpdb.job_batch", "xpdb.alembic_version",
    "xpdb.uws_job", "xpdb.uws_result", "xpdb.service_user", "xpdb.security_revoked", "tap_schema.column_meta",
)
# what the reader could read before this migration (restored by the downgrade)
_READABLE_BEFORE = ("xpdb.model", "xpdb.ingest_run", "xpdb.ingest_reject", "xpdb.job", "xpdb.job_batch",
                    "xpdb.alembic_version", "tap_schema.column_meta")
READER_SETTINGS = {  # cluster-wide defaults of the role
    "statement_timeout": "60s",
    "idle_in_transaction_session_timeout": "5min",
    "lo_compat_privileges": "off",
    "temp_file_limit": "10GB",
}


def _array(names) -> str:
    return "ARRAY[" + ", ".join(f"'{n}'" for n in names) + "]::text[]"


UPGRADE = f"""
CREATE TABLE xpdb.security_revoked (
    kind      text NOT NULL CHECK (kind IN ('function', 'relation')),
    signature text NOT NULL,
    grantees  text[] NOT NULL,
    PRIMARY KEY (kind, signature)
);
COMMENT ON TABLE xpdb.security_revoked IS
    'Rights that migration 0007 revoked from PUBLIC, and the roles it granted them to instead (for the downgrade)';

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_writer') THEN
    BEGIN
      CREATE ROLE xpdb_writer NOLOGIN;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'xpdb: no privilege to create the group role xpdb_writer';
    END;
  END IF;
END
$$;

DO $$
DECLARE
  f record;
  targets text[] := ARRAY[current_user::text];
  g text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_writer') THEN
    targets := targets || 'xpdb_writer'::text;
  END IF;
  FOR f IN
    SELECT p.oid::regprocedure::text AS signature
    FROM pg_proc AS p
    WHERE p.pronamespace = 'pg_catalog'::regnamespace
      AND has_function_privilege('public', p.oid, 'EXECUTE')
      AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype, 'language_handler'::regtype,
                               'index_am_handler'::regtype, 'table_am_handler'::regtype, 'tsm_handler'::regtype,
                               'fdw_handler'::regtype, 'internal'::regtype)
      AND NOT 'internal'::regtype = ANY (p.proargtypes::regtype[])
      AND p.proname NOT LIKE 'plpgsql\\_%'
      AND ((p.provolatile = 'v' AND NOT (p.proname = ANY ({_array(ALLOWED_VOLATILE)})
                                         OR p.proname LIKE 'pg\\_stat\\_get\\_xact\\_%'))
           OR p.proname = ANY ({_array(DENIED_STABLE)})
           OR p.proname LIKE 'pg\\_stat\\_get\\_backend\\_%')
    ORDER BY 1
  LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.signature);
    FOREACH g IN ARRAY targets LOOP
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f.signature, g);
    END LOOP;
    INSERT INTO xpdb.security_revoked VALUES ('function', f.signature, targets);
  END LOOP;
  -- the activity views: pg_read_all_stats (pg_monitor) keeps them
  targets := targets || 'pg_read_all_stats'::text;
  FOR f IN
    SELECT c.oid::regclass::text AS signature
    FROM pg_class AS c
    WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relname = ANY ({_array(ACTIVITY_VIEWS)})
      AND has_table_privilege('public', c.oid, 'SELECT')
    ORDER BY 1
  LOOP
    EXECUTE format('REVOKE SELECT ON %s FROM PUBLIC', f.signature);
    FOREACH g IN ARRAY targets LOOP
      EXECUTE format('GRANT SELECT ON %s TO %I', f.signature, g);
    END LOOP;
    INSERT INTO xpdb.security_revoked VALUES ('relation', f.signature, targets);
  END LOOP;
  -- the activity views call these: their readers need them too
  FOR f IN
    SELECT signature FROM xpdb.security_revoked
    WHERE kind = 'function'
      AND (split_part(signature, '(', 1) IN ('pg_stat_get_activity', 'pg_stat_get_progress_info', 'pg_lock_status',
                                             'pg_prepared_xact', 'pg_stat_get_wal_senders',
                                             'pg_stat_get_wal_receiver', 'pg_stat_get_subscription')
           OR signature LIKE 'pg\\_stat\\_get\\_backend\\_%')
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats', f.signature);
    UPDATE xpdb.security_revoked SET grantees = grantees || 'pg_read_all_stats'::text
    WHERE kind = 'function' AND signature = f.signature;
  END LOOP;
  -- xpdb's own writing function
  REVOKE EXECUTE ON FUNCTION xpdb.refresh_xm_views() FROM PUBLIC;
  INSERT INTO xpdb.security_revoked VALUES ('function', 'xpdb.refresh_xm_views()', ARRAY[]::text[]);
  IF has_function_privilege('public', 'pg_catalog.lo_create(oid)', 'EXECUTE') THEN
    RAISE WARNING 'xpdb: % may not revoke rights on PostgreSQL''s functions: the read-only role can still '
                  'write large objects and signal sessions; run `xpdb db migrate` once as a superuser',
                  current_user;
  END IF;
END
$$;

-- UWS jobs get an owner: the authenticated user, NULL for anonymous jobs
ALTER TABLE xpdb.uws_job ADD COLUMN owner_id text;
CREATE INDEX uws_job_owner_idx ON xpdb.uws_job (owner_id, creation_time);
COMMENT ON COLUMN xpdb.uws_job.owner_id IS
    'User who created the job (xpdb.service_user); NULL: anonymous, reachable only through its job id';

-- users of the service: one secret token each, stored as its SHA-256
CREATE TABLE xpdb.service_user (
    name             text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{{0,63}}$'),
    token_sha256     text NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    token_created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE xpdb.service_user IS 'Users of xpdb serve and the SHA-256 of their tokens (xpdb users); not public';

-- the model registry without the artifact, for the public
CREATE VIEW xpdb.model_info AS
SELECT model_id, kind, name, version, hyperparameters, preprocessing_id, training_catalog, test_catalog,
       training_set_hash, n_train, metrics, artifact_format, octet_length(artifact) AS artifact_bytes,
       package_version, device, created_at
FROM xpdb.model;
COMMENT ON VIEW xpdb.model_info IS 'Trained models (the registry without the saved model itself)';
COMMENT ON COLUMN xpdb.model_info.model_id IS 'Model identifier';
COMMENT ON COLUMN xpdb.model_info.artifact_bytes IS 'Size of the saved model [byte]';

DO $$
DECLARE
  t text;
  setting record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    RAISE NOTICE 'xpdb: no role xpdb_reader; ask the DBA to run sql/roles.sql, then migrate again';
    RETURN;
  END IF;
  FOREACH t IN ARRAY {_array(INTERNAL_TABLES)} LOOP
    EXECUTE format('REVOKE ALL ON %s FROM xpdb_reader', t);
  END LOOP;
  GRANT SELECT ON xpdb.model_info TO xpdb_reader;
  FOR setting IN SELECT * FROM (VALUES {", ".join(f"('{k}', '{v}')" for k, v in READER_SETTINGS.items())})
                 AS s(name, value) LOOP
    BEGIN
      EXECUTE format('ALTER ROLE xpdb_reader SET %I = %L', setting.name, setting.value);
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'xpdb: cannot set % for xpdb_reader (needs a superuser)', setting.name;
    END;
  END LOOP;
  BEGIN  -- large objects the reader may have written before
    PERFORM lo_unlink(m.oid) FROM pg_largeobject_metadata AS m
    WHERE m.lomowner = (SELECT oid FROM pg_roles WHERE rolname = 'xpdb_reader');
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'xpdb: cannot remove the large objects of xpdb_reader (needs a superuser)';
  END;
END
$$;
"""

DOWNGRADE = f"""
DO $$
DECLARE
  r record;
  g text;
BEGIN
  FOR r IN SELECT * FROM xpdb.security_revoked LOOP
    IF r.kind = 'function' THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', r.signature);
      FOREACH g IN ARRAY r.grantees LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I', r.signature, g);
      END LOOP;
    ELSE
      EXECUTE format('GRANT SELECT ON %s TO PUBLIC', r.signature);
      FOREACH g IN ARRAY r.grantees LOOP
        EXECUTE format('REVOKE SELECT ON %s FROM %I', r.signature, g);
      END LOOP;
    END IF;
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    FOREACH g IN ARRAY {_array(_READABLE_BEFORE)} LOOP
      EXECUTE format('GRANT SELECT ON %s TO xpdb_reader', g);
    END LOOP;
    FOREACH g IN ARRAY {_array(k for k in READER_SETTINGS if k != "statement_timeout")} LOOP
      BEGIN
        EXECUTE format('ALTER ROLE xpdb_reader RESET %I', g);
      EXCEPTION WHEN insufficient_privilege THEN
        NULL;
      END;
    END LOOP;
  END IF;
END
$$;
DROP TABLE xpdb.security_revoked;
DROP VIEW xpdb.model_info;
DROP TABLE xpdb.service_user;
DROP INDEX xpdb.uws_job_owner_idx;
ALTER TABLE xpdb.uws_job DROP COLUMN owner_id;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
