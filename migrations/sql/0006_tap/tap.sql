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

-- Column descriptions where the creating migration left none (never overwrites). Columns
-- of views made later (xm_<catalogue>) borrow the description of a same-named column.
DO $$
DECLARE
  d record;
  target regclass;
BEGIN
  FOR d IN SELECT * FROM (VALUES
      ('gaia_source', 'ingest_run_id', 'Ingest run that loaded the row (xpdb.ingest_run)'),
      ('prediction', 'job_id', 'Batch job that wrote the prediction (xpdb.job)'),
      ('prediction', 'created_at', 'Time the prediction was written'),
      ('xp_band', 'band', 'Photometer: bp or rp'),
      ('xp_band', 'solution_id', 'Solution identifier'),
      ('xp_band', 'basis_function_id', 'Identifier of the set of basis functions'),
      ('xp_band', 'degrees_of_freedom', 'Degrees of freedom of the fit'),
      ('xp_band', 'n_parameters', 'Number of basis-function coefficients'),
      ('xp_band', 'n_measurements', 'Number of epoch spectra used'),
      ('xp_band', 'n_rejected_measurements', 'Number of epoch spectra rejected'),
      ('xp_band', 'standard_deviation', 'Standard deviation of the fit'),
      ('xp_band', 'chi_squared', 'Chi-squared of the fit'),
      ('xp_band', 'coefficients', 'Basis-function coefficients: bytea of little-endian float64 (xpdb.float8_array)'),
      ('xp_band', 'coefficient_errors', 'Coefficient errors: bytea of little-endian float32 (xpdb.float4_array)'),
      ('xp_band', 'coefficient_correlations', 'Correlations of the coefficients (upper triangle): bytea of '
                                              'little-endian float32 (xpdb.float4_array)'),
      ('xp_band', 'n_relevant_bases', 'Number of relevant basis functions'),
      ('xp_band', 'relative_shrinking', 'Relative shrinking of the coefficients'),
      ('xp_band', 'ingest_run_id', 'Ingest run that loaded the row (xpdb.ingest_run)'),
      ('xp_continuous', 'solution_id', 'Solution identifier'),
      ('xp_features', 'preprocessing_id', 'Preprocessing that computed the features (xpdb.preprocessing)'),
      ('xp_features', 'flux', 'Features: dereddened XP flux on 60 pixels, normalised; bytea of float32'),
      ('xp_features', 'flux_error', 'Uncertainty of the features; bytea of float32'),
      ('xp_features', 'computed_at', 'Time the features were computed'),
      ('preprocessing', 'preprocessing_id', 'Preprocessing identifier'),
      ('preprocessing', 'version', 'Preprocessing version'),
      ('preprocessing', 'created_at', 'Time the preprocessing was registered'),
      ('model', 'kind', 'Model kind (uacsnet)'),
      ('model', 'name', 'Model name'),
      ('model', 'version', 'Version within the name (NAME:VERSION)'),
      ('model', 'hyperparameters', 'Training hyperparameters (JSON)'),
      ('model', 'preprocessing_id', 'Feature preprocessing of the inputs (xpdb.preprocessing)'),
      ('model', 'training_catalog', 'Reference catalogue of the training labels'),
      ('model', 'test_catalog', 'Reference catalogue of the test labels'),
      ('model', 'training_set_hash', 'Hash of the training set'),
      ('model', 'n_train', 'Number of training stars'),
      ('model', 'metrics', 'Test metrics (JSON)'),
      ('model', 'artifact', 'The saved model'),
      ('model', 'artifact_format', 'Format of the saved model'),
      ('model', 'package_version', 'xpdb version that trained the model'),
      ('model', 'device', 'Device the model was trained on'),
      ('model', 'created_at', 'Time the model was saved'),
      ('reference_catalog', 'name', 'Reference catalogue name'),
      ('reference_catalog', 'description', 'Description of the catalogue'),
      ('reference_catalog', 'reference', 'Bibliographic reference'),
      ('reference_catalog', 'match_radius_arcsec', 'Cross-match radius for labels without source_id [arcsec]'),
      ('reference_catalog', 'created_at', 'Time the catalogue was loaded'),
      ('reference_label', 'label_id', 'Label identifier'),
      ('reference_label', 'catalog', 'Reference catalogue (xpdb.reference_catalog)'),
      ('reference_label', 'source_id', 'Gaia DR3 source_id given by the catalogue (NULL: matched by position)'),
      ('reference_label', 'ra', 'Right ascension given by the catalogue (ICRS) [deg]'),
      ('reference_label', 'dec', 'Declination given by the catalogue (ICRS) [deg]'),
      ('reference_label', 'feh', 'Reference [Fe/H] [dex]'),
      ('reference_label', 'feh_err', 'Uncertainty of the reference [Fe/H] [dex]'),
      ('reference_label', 'teff', 'Reference effective temperature [K]'),
      ('reference_label', 'teff_err', 'Uncertainty of the reference effective temperature [K]'),
      ('reference_label', 'logg', 'Reference surface gravity log g [dex, cgs]'),
      ('reference_label', 'logg_err', 'Uncertainty of the reference log g [dex]'),
      ('reference_label', 'original_id', 'Identifier of the star in the catalogue'),
      ('reference_label', 'match_sep_arcsec', 'Separation of the positional match to Gaia [arcsec]'),
      ('reference_label', 'extra', 'Other columns of the catalogue (JSON)'),
      ('reference_label', 'ingest_run_id', 'Ingest run that loaded the row (xpdb.ingest_run)'),
      ('cluster', 'name', 'Cluster name'),
      ('cluster', 'reference', 'Bibliographic reference of the cluster [Fe/H]'),
      ('cluster', 'created_at', 'Time the cluster was loaded'),
      ('cluster_member', 'member_id', 'Member identifier'),
      ('cluster_member', 'cluster', 'Cluster name (xpdb.cluster)'),
      ('cluster_member', 'source_id', 'Gaia DR3 source_id given by the member list (NULL: matched by position)'),
      ('cluster_member', 'ra', 'Right ascension given by the member list (ICRS) [deg]'),
      ('cluster_member', 'dec', 'Declination given by the member list (ICRS) [deg]'),
      ('cluster_member', 'original_id', 'Identifier of the star in the member list'),
      ('cluster_member', 'match_sep_arcsec', 'Separation of the positional match to Gaia [arcsec]'),
      ('cluster_member', 'ingest_run_id', 'Ingest run that loaded the row (xpdb.ingest_run)'),
      ('xm_reference', 'catalog', 'Reference catalogue name'),
      ('xm_reference', 'label_id', 'Reference label (xpdb.reference_label)'),
      ('xm_reference', 'original_id', 'Identifier of the star in the reference catalogue'),
      ('xm_reference', 'teff_ref', 'Reference effective temperature [K]'),
      ('xm_reference', 'logg_ref', 'Reference surface gravity log g [dex, cgs]'),
      ('xm_reference', 'match_sep_arcsec', 'Separation of the positional match (NULL: matched by source_id) [arcsec]'),
      ('xm_cluster_members', 'cluster', 'Cluster name'),
      ('xm_cluster_members', 'member_id', 'Cluster member (xpdb.cluster_member)'),
      ('xm_cluster_members', 'original_id', 'Identifier of the star in the member list'),
      ('validation_summary', 'catalog', 'Reference catalogue'),
      ('validation_summary', 'scope', 'Stars used: all, g<15 or g-bin'),
      ('validation_summary', 'subset', 'Subset: all, a reference [Fe/H] bin, vmp ([Fe/H]ref <= -2) or a G bin'),
      ('validation_summary', 'g_min', 'Lower G of the bin [mag]'),
      ('validation_summary', 'g_max', 'Upper G of the bin [mag]'),
      ('validation_summary', 'n', 'Number of stars'),
      ('validation_summary', 'mean', 'Mean of FEH - FEH_ref [dex]'),
      ('validation_summary', 'std', 'Standard deviation of FEH - FEH_ref [dex]'),
      ('validation_summary', 'median', 'Median of FEH - FEH_ref [dex]'),
      ('validation_summary', 'robust_sigma', 'Robust (MAD-based) sigma of FEH - FEH_ref [dex]'),
      ('validation_summary', 'bias', 'Bias (Gaussian fit centre) of FEH - FEH_ref [dex]'),
      ('validation_summary', 'sigma', 'Dispersion (Gaussian fit sigma) of FEH - FEH_ref [dex]'),
      ('validation_summary', 'method', 'How bias and sigma were obtained'),
      ('validation_summary', 'median_feh_err', 'Median predicted uncertainty FEH_err [dex]'),
      ('cluster_summary', 'cluster', 'Cluster name'),
      ('cluster_summary', 'n_members', 'Members with a prediction'),
      ('cluster_summary', 'n', 'Members kept after 3-sigma clipping'),
      ('cluster_summary', 'n_clipped', 'Members removed by the clipping'),
      ('cluster_summary', 'feh_mean', 'Clipped mean FEH [dex]'),
      ('cluster_summary', 'feh_sigma', 'Clipped standard deviation of FEH [dex]'),
      ('cluster_summary', 'delta_mean', 'Clipped mean FEH - literature [Fe/H] [dex]'),
      ('cluster_summary', 'median_feh_err', 'Median predicted uncertainty FEH_err [dex]'),
      ('ingest_run', 'run_id', 'Ingest run identifier'),
      ('ingest_run', 'kind', 'What was loaded: xp, sources, labels or members'),
      ('ingest_run', 'target', 'Catalogue or cluster loaded into (empty for xp and sources)'),
      ('ingest_run', 'path', 'Path of the file'),
      ('ingest_run', 'sha256', 'SHA-256 of the file'),
      ('ingest_run', 'file_size', 'Size of the file [byte]'),
      ('ingest_run', 'file_format', 'Format of the file'),
      ('ingest_run', 'options', 'Loading options (JSON)'),
      ('ingest_run', 'status', 'running, done or failed'),
      ('ingest_run', 'rows_read', 'Rows read from the file'),
      ('ingest_run', 'rows_loaded', 'Rows loaded'),
      ('ingest_run', 'rows_rejected', 'Rows rejected (xpdb.ingest_reject)'),
      ('ingest_run', 'next_row', 'Row a resumed load starts from'),
      ('ingest_run', 'error', 'Error of a failed run'),
      ('ingest_run', 'started_at', 'Start time'),
      ('ingest_run', 'finished_at', 'End time'),
      ('ingest_reject', 'run_id', 'Ingest run (xpdb.ingest_run)'),
      ('ingest_reject', 'row_number', 'Row number in the file'),
      ('ingest_reject', 'column_name', 'Column at fault'),
      ('ingest_reject', 'reason', 'Why the row was rejected'),
      ('ingest_reject', 'value', 'Value at fault'),
      ('job', 'job_id', 'Batch job identifier'),
      ('job', 'kind', 'Job kind (infer)'),
      ('job', 'selection', 'Sources the job covers'),
      ('job', 'spec', 'Job options (JSON)'),
      ('job', 'batch_size', 'Sources per batch'),
      ('job', 'max_attempts', 'Attempts per batch before it fails'),
      ('job', 'lease_seconds', 'Lease of a batch on a worker [s]'),
      ('job', 'state', 'pending, running, done, failed or cancelled'),
      ('job', 'n_sources', 'Number of sources'),
      ('job', 'n_batches', 'Number of batches'),
      ('job', 'created_at', 'Submission time'),
      ('job', 'finished_at', 'End time'),
      ('job_batch', 'batch_id', 'Batch identifier'),
      ('job_batch', 'job_id', 'Batch job (xpdb.job)'),
      ('job_batch', 'first_source_id', 'First source_id of the range'),
      ('job_batch', 'last_source_id', 'Last source_id of the range'),
      ('job_batch', 'n_sources', 'Number of sources in the range'),
      ('job_batch', 'state', 'pending, running, done, failed or cancelled'),
      ('job_batch', 'lease_owner', 'Worker holding the lease'),
      ('job_batch', 'lease_expires', 'End of the lease'),
      ('job_batch', 'attempts', 'Attempts so far'),
      ('job_batch', 'error', 'Error of the last failed attempt'),
      ('job_batch', 'n_predicted', 'Predictions written'),
      ('job_batch', 'seconds', 'Run time [s]'),
      ('job_batch', 'started_at', 'Start time'),
      ('job_batch', 'finished_at', 'End time')) AS v(rel, col, text)
  LOOP
    target := to_regclass('xpdb.' || d.rel);
    IF target IS NOT NULL AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = d.col
                                      AND NOT attisdropped)
       AND col_description(target, (SELECT attnum FROM pg_attribute WHERE attrelid = target
                                    AND attname = d.col)) IS NULL THEN
      EXECUTE format('COMMENT ON COLUMN xpdb.%I.%I IS %L', d.rel, d.col, d.text);
    END IF;
  END LOOP;
  -- xp_continuous: bp_<field> and rp_<field> take the xp_band description of <field>
  target := to_regclass('xpdb.xp_continuous');
  IF target IS NOT NULL THEN
    FOR d IN SELECT a.attname AS col, upper(left(a.attname, 2)) AS band,
                    col_description('xpdb.xp_band'::regclass, b.attnum) AS text
             FROM pg_attribute AS a
             JOIN pg_attribute AS b ON b.attrelid = 'xpdb.xp_band'::regclass AND b.attname = substr(a.attname, 4)
             WHERE a.attrelid = target AND a.attname ~ '^(bp|rp)_' AND NOT a.attisdropped
               AND col_description(target, a.attnum) IS NULL
    LOOP
      IF d.text IS NOT NULL THEN
        EXECUTE format('COMMENT ON COLUMN xpdb.xp_continuous.%I IS %L', d.col, d.band || ': ' || d.text);
      END IF;
    END LOOP;
  END IF;
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
           col_description(c.oid, a.attnum) AS comment,
           (SELECT col_description(a2.attrelid, a2.attnum)
            FROM pg_attribute AS a2 JOIN pg_class AS c2 ON c2.oid = a2.attrelid
            WHERE c2.relnamespace = c.relnamespace AND a2.attname = a.attname AND a2.attnum > 0
              AND col_description(a2.attrelid, a2.attnum) IS NOT NULL
            ORDER BY c2.relkind = 'v', c2.relname LIMIT 1) AS borrowed
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
       coalesce(cols.comment, m.description, cols.borrowed) AS description,
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
COMMENT ON COLUMN tap_schema.schemas.utype IS 'Data model type (none here)';
COMMENT ON COLUMN tap_schema.schemas.schema_index IS 'Suggested order of the schemas';
COMMENT ON COLUMN tap_schema.tables.utype IS 'Data model type (none here)';
COMMENT ON COLUMN tap_schema.tables.table_index IS 'Suggested order of the tables';
COMMENT ON COLUMN tap_schema.columns.utype IS 'Data model type (none here)';
COMMENT ON COLUMN tap_schema.columns.size IS 'Length of fixed-length text columns (deprecated: see arraysize)';
COMMENT ON COLUMN tap_schema.columns.std IS '1 if the column is defined by a standard';
COMMENT ON COLUMN tap_schema.columns.column_index IS 'Suggested order of the columns';
COMMENT ON COLUMN tap_schema.keys.utype IS 'Data model type (none here)';
COMMENT ON COLUMN tap_schema.keys.description IS 'Description of the key';
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
