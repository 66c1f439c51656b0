-- The TAP service (`xpdb serve`): UWS job bookkeeping and a queryable TAP_SCHEMA.
--
-- xpdb.uws_job / xpdb.uws_result are written by the service with the main role and are
-- not readable by xpdb_reader (users' queries must not see each other's jobs).
-- TAP_SCHEMA is a set of views over pg_catalog, so tables and views that appear later
-- (xm_<catalogue> views made by `xpdb ingest labels`) are listed without any refresh.
-- Units, UCDs and descriptions of well-known column names come from
-- tap_schema.column_meta, filled from xpdb.query.columns.COLUMNS by the migration and
-- again each time the server starts.

CREATE TABLE IF NOT EXISTS xpdb.uws_job (
    job_id             text PRIMARY KEY,
    run_id             text,
    phase              text NOT NULL DEFAULT 'PENDING'
                       CHECK (phase IN ('PENDING', 'QUEUED', 'EXECUTING', 'COMPLETED', 'ERROR', 'ABORTED',
                                        'UNKNOWN', 'HELD', 'SUSPENDED', 'ARCHIVED')),
    parameters         jsonb NOT NULL DEFAULT '{}'::jsonb,
    creation_time      timestamptz NOT NULL DEFAULT now(),
    start_time         timestamptz,
    end_time           timestamptz,
    execution_duration integer NOT NULL,
    destruction        timestamptz NOT NULL,
    error_message      text,
    result_type        text,
    result_rows        bigint,
    overflow           boolean,
    executor           text,
    attempts           integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uws_job_phase_idx ON xpdb.uws_job (phase, creation_time);
CREATE INDEX IF NOT EXISTS uws_job_destruction_idx ON xpdb.uws_job (destruction);
COMMENT ON TABLE xpdb.uws_job IS 'TAP asynchronous (UWS 1.1) jobs of xpdb serve; service bookkeeping, not public';

CREATE TABLE IF NOT EXISTS xpdb.uws_result (
    job_id     text PRIMARY KEY REFERENCES xpdb.uws_job ON DELETE CASCADE,
    media_type text NOT NULL,
    content    bytea NOT NULL
);
COMMENT ON TABLE xpdb.uws_result IS 'Result documents of TAP asynchronous jobs; service bookkeeping, not public';

COMMENT ON SCHEMA xpdb IS 'Gaia DR3 sources, XP spectra, reference labels and UA-CSNet [Fe/H] predictions';

-- Descriptions for TAP_SCHEMA.tables where the creating migration left none (never overwrites).
DO $$
DECLARE
  d record;
BEGIN
  FOR d IN SELECT * FROM (VALUES
      ('gaia_source', 'Gaia DR3 gaia_source columns used here, with E(B-V) (SFD) and the Bailer-Jones geometric distance'),
      ('prediction', 'UA-CSNet [Fe/H] predictions, one row per model and source'),
      ('source_photometry', 'gaia_source with dereddened colour and magnitudes, absolute G, distance and height Z'),
      ('giant_sample', 'source_photometry rows passing the six red-giant selection cuts of the paper (section 2.3)'),
      ('model_domain', 'source_photometry rows inside the model colour domain 0.7 < (BP-RP)0 < 1.9'),
      ('reference_catalog', 'Reference [Fe/H] catalogues and their cross-match radii'),
      ('reference_label', 'Reference labels ([Fe/H], Teff, log g) of the reference catalogues'),
      ('cluster', 'Clusters with literature [Fe/H]'),
      ('cluster_member', 'Cluster members'),
      ('xm_reference', 'Predictions cross-matched with every reference catalogue; delta_feh = feh - feh_ref'),
      ('xm_cluster_members', 'Predictions of cluster members with the cluster reference [Fe/H]'),
      ('validation_summary', 'Residual statistics of each model against each reference catalogue'),
      ('cluster_summary', 'Clipped mean [Fe/H] of each model per cluster against the literature value'),
      ('preprocessing', 'Versions of the feature preprocessing (xp_features)'),
      ('ingest_run', 'Loaded files: kind, path, checksum and options'),
      ('ingest_reject', 'Rows rejected while loading files'),
      ('job', 'Batch inference jobs'),
      ('job_batch', 'Source-id ranges of the batch inference jobs')) AS v(name, text)
  LOOP
    IF to_regclass('xpdb.' || d.name) IS NOT NULL
       AND obj_description(to_regclass('xpdb.' || d.name), 'pg_class') IS NULL THEN
      EXECUTE format('COMMENT ON %s xpdb.%I IS %L',
                     CASE WHEN (SELECT relkind FROM pg_class WHERE oid = to_regclass('xpdb.' || d.name)) = 'v'
                          THEN 'VIEW' ELSE 'TABLE' END, d.name, d.text);
    END IF;
  END LOOP;
END
$$;

CREATE SCHEMA IF NOT EXISTS tap_schema;
COMMENT ON SCHEMA tap_schema IS 'TAP 1.1 metadata: the schemas, tables, columns and foreign keys of this service';

CREATE TABLE IF NOT EXISTS tap_schema.column_meta (
    column_name text PRIMARY KEY,
    unit        text,
    ucd         text,
    description text
);
COMMENT ON TABLE tap_schema.column_meta IS 'Units, UCDs and descriptions by column name (xpdb.query.columns)';

-- The five standard tables, TAP 1.1 section 4.
CREATE OR REPLACE VIEW tap_schema.schemas AS
SELECT n.nspname::text AS schema_name, NULL::text AS utype,
       obj_description(n.oid, 'pg_namespace') AS description,
       CASE n.nspname WHEN 'xpdb' THEN 0 ELSE 1 END AS schema_index
FROM pg_namespace AS n
WHERE n.nspname IN ('xpdb', 'tap_schema');

CREATE OR REPLACE VIEW tap_schema.tables AS
SELECT n.nspname::text AS schema_name,
       (n.nspname || '.' || c.relname)::text AS table_name,
       CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END::text AS table_type,
       NULL::text AS utype,
       obj_description(c.oid, 'pg_class') AS description,
       CASE WHEN n.nspname = 'tap_schema' THEN 100 ELSE 0 END
         + CASE c.relname WHEN 'catalog' THEN 0 WHEN 'gaia_source' THEN 1 WHEN 'prediction' THEN 2
                          WHEN 'schemas' THEN 0 WHEN 'tables' THEN 1 WHEN 'columns' THEN 2
                          WHEN 'keys' THEN 3 WHEN 'key_columns' THEN 4 ELSE 10 END AS table_index
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND ((n.nspname = 'xpdb' AND c.relname NOT IN ('alembic_version', 'uws_job', 'uws_result'))
       OR (n.nspname = 'tap_schema' AND c.relname IN ('schemas', 'tables', 'columns', 'keys', 'key_columns')))
  AND has_table_privilege(c.oid, 'SELECT');

CREATE OR REPLACE VIEW tap_schema.columns AS
WITH cols AS (
    SELECT t.table_name, a.attname::text AS column_name, a.attnum, c.oid AS relid,
           CASE WHEN a.attndims > 0 OR ty.typcategory = 'A' THEN 'array' ELSE ty.typname::text END AS pg_type,
           CASE WHEN ty.typname = 'bpchar' AND a.atttypmod > 4 THEN a.atttypmod - 4 END AS char_length,
           col_description(c.oid, a.attnum) AS comment
    FROM tap_schema.tables AS t
    JOIN pg_namespace AS n ON n.nspname = t.schema_name
    JOIN pg_class AS c ON c.relnamespace = n.oid AND n.nspname || '.' || c.relname = t.table_name
    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type AS ty ON ty.oid = a.atttypid
)
SELECT cols.table_name, cols.column_name,
       -- VOTable datatypes (TAP 1.1); values of other types are served as text
       CASE cols.pg_type WHEN 'int2' THEN 'short' WHEN 'int4' THEN 'int' WHEN 'int8' THEN 'long'
                         WHEN 'float4' THEN 'float' WHEN 'float8' THEN 'double' WHEN 'numeric' THEN 'double'
                         WHEN 'bool' THEN 'boolean' ELSE 'char' END::text AS datatype,
       CASE WHEN cols.pg_type IN ('int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'bool') THEN NULL
            WHEN cols.char_length IS NOT NULL THEN cols.char_length::text
            ELSE '*' END::text AS arraysize,
       CASE WHEN cols.pg_type IN ('timestamp', 'timestamptz', 'date') THEN 'timestamp' END::text AS xtype,
       cols.char_length AS "size",
       coalesce(cols.comment, m.description) AS description,
       NULL::text AS utype,
       m.unit, m.ucd,
       CASE WHEN EXISTS (SELECT 1 FROM pg_index AS i
                         WHERE i.indrelid = cols.relid
                           AND (cols.attnum = ANY (i.indkey::int2[])
                                OR pg_get_expr(i.indexprs, i.indrelid) ~ ('\m' || cols.column_name || '\M')))
            THEN 1 ELSE 0 END AS indexed,
       CASE WHEN m.column_name IS NOT NULL THEN 1 ELSE 0 END AS principal,
       0 AS std,
       cols.attnum::integer AS column_index
FROM cols
LEFT JOIN tap_schema.column_meta AS m ON m.column_name = lower(cols.column_name);

CREATE OR REPLACE VIEW tap_schema.keys AS
SELECT (ft.table_name || '.' || co.conname)::text AS key_id,
       ft.table_name AS from_table, tt.table_name AS target_table,
       NULL::text AS utype, obj_description(co.oid, 'pg_constraint') AS description
FROM pg_constraint AS co
JOIN pg_class AS fc ON fc.oid = co.conrelid
JOIN pg_namespace AS fn ON fn.oid = fc.relnamespace
JOIN tap_schema.tables AS ft ON ft.table_name = fn.nspname || '.' || fc.relname
JOIN pg_class AS tc ON tc.oid = co.confrelid
JOIN pg_namespace AS tn ON tn.oid = tc.relnamespace
JOIN tap_schema.tables AS tt ON tt.table_name = tn.nspname || '.' || tc.relname
WHERE co.contype = 'f';

CREATE OR REPLACE VIEW tap_schema.key_columns AS
SELECT (ft.table_name || '.' || co.conname)::text AS key_id,
       fa.attname::text AS from_column, ta.attname::text AS target_column
FROM pg_constraint AS co
JOIN pg_class AS fc ON fc.oid = co.conrelid
JOIN pg_namespace AS fn ON fn.oid = fc.relnamespace
JOIN tap_schema.tables AS ft ON ft.table_name = fn.nspname || '.' || fc.relname
JOIN pg_class AS tc ON tc.oid = co.confrelid
JOIN pg_namespace AS tn ON tn.oid = tc.relnamespace
JOIN tap_schema.tables AS tt ON tt.table_name = tn.nspname || '.' || tc.relname
CROSS JOIN LATERAL unnest(co.conkey, co.confkey) WITH ORDINALITY AS k(from_attnum, to_attnum, position)
JOIN pg_attribute AS fa ON fa.attrelid = co.conrelid AND fa.attnum = k.from_attnum
JOIN pg_attribute AS ta ON ta.attrelid = co.confrelid AND ta.attnum = k.to_attnum
WHERE co.contype = 'f';

COMMENT ON VIEW tap_schema.schemas IS 'Schemas of this TAP service';
COMMENT ON VIEW tap_schema.tables IS 'Tables and views of this TAP service';
COMMENT ON VIEW tap_schema.columns IS 'Columns of the tables and views, with units, UCDs and descriptions';
COMMENT ON VIEW tap_schema.keys IS 'Foreign keys between the tables';
COMMENT ON VIEW tap_schema.key_columns IS 'Columns of the foreign keys';

COMMENT ON COLUMN tap_schema.schemas.schema_name IS 'Schema name, as used in queries';
COMMENT ON COLUMN tap_schema.schemas.description IS 'Description of the schema';
COMMENT ON COLUMN tap_schema.tables.schema_name IS 'Schema of the table';
COMMENT ON COLUMN tap_schema.tables.table_name IS 'Fully qualified table name, as used in queries';
COMMENT ON COLUMN tap_schema.tables.table_type IS 'table or view';
COMMENT ON COLUMN tap_schema.tables.description IS 'Description of the table';
COMMENT ON COLUMN tap_schema.columns.table_name IS 'Fully qualified name of the table the column belongs to';
COMMENT ON COLUMN tap_schema.columns.column_name IS 'Column name';
COMMENT ON COLUMN tap_schema.columns.datatype IS 'VOTable datatype of the values';
COMMENT ON COLUMN tap_schema.columns.arraysize IS 'VOTable arraysize (* for variable-length text)';
COMMENT ON COLUMN tap_schema.columns.xtype IS 'VOTable xtype (timestamp)';
COMMENT ON COLUMN tap_schema.columns.description IS 'Description of the column';
COMMENT ON COLUMN tap_schema.columns.unit IS 'Unit (VOUnit)';
COMMENT ON COLUMN tap_schema.columns.ucd IS 'Unified Content Descriptor (UCD1+)';
COMMENT ON COLUMN tap_schema.columns.indexed IS '1 if an index covers the column';
COMMENT ON COLUMN tap_schema.columns.principal IS '1 for the columns of main interest';
COMMENT ON COLUMN tap_schema.keys.key_id IS 'Unique key identifier';
COMMENT ON COLUMN tap_schema.keys.from_table IS 'Table with the foreign key';
COMMENT ON COLUMN tap_schema.keys.target_table IS 'Table the key refers to';
COMMENT ON COLUMN tap_schema.key_columns.key_id IS 'Key identifier (tap_schema.keys)';
COMMENT ON COLUMN tap_schema.key_columns.from_column IS 'Column in the from_table';
COMMENT ON COLUMN tap_schema.key_columns.target_column IS 'Column in the target_table';

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    REVOKE ALL ON xpdb.uws_job, xpdb.uws_result FROM xpdb_reader;
    GRANT USAGE ON SCHEMA tap_schema TO xpdb_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA tap_schema TO xpdb_reader;
    ALTER DEFAULT PRIVILEGES IN SCHEMA tap_schema GRANT SELECT ON TABLES TO xpdb_reader;
  END IF;
END
$$;
