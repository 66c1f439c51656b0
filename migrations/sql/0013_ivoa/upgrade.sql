-- Issue 19 (taplint): names ADQL reserves are published delimited ("size", "catalog", "value"), so
-- that a query copied from TAP_SCHEMA parses; the columns of TAP_SCHEMA itself are std = 1.
CREATE OR REPLACE FUNCTION tap_schema.adql_name(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN lower(name) = ANY (ARRAY['abs', 'acos', 'area', 'asin', 'atan', 'atan2', 'bigint', 'box', 'cbrt', 'ceiling', 'centroid', 'circle', 'contains', 'coord1', 'coord2', 'coordsys', 'cos', 'cot', 'degrees', 'distance', 'exp', 'floor', 'ilike', 'intersects', 'in_unit', 'log', 'log10', 'mod', 'pi', 'point', 'polygon', 'power', 'radians', 'region', 'rand', 'round', 'sin', 'sqrt', 'top', 'tan', 'truncate', 'absolute', 'action', 'add', 'all', 'allocate', 'alter', 'and', 'any', 'are', 'as', 'asc', 'assertion', 'at', 'authorization', 'avg', 'begin', 'between', 'bit', 'bit_length', 'both', 'by', 'cascade', 'cascaded', 'case', 'cast', 'catalog', 'char', 'character', 'char_length', 'character_length', 'check', 'close', 'coalesce', 'collate', 'collation', 'column', 'commit', 'connect', 'connection', 'constraint', 'constraints', 'continue', 'convert', 'corresponding', 'count', 'create', 'cross', 'current', 'current_date', 'current_time', 'current_timestamp', 'current_user', 'cursor', 'date', 'day', 'deallocate', 'decimal', 'declare', 'default', 'deferrable', 'deferred', 'delete', 'desc', 'describe', 'descriptor', 'diagnostics', 'disconnect', 'distinct', 'domain', 'double', 'drop', 'else', 'end', 'end-exec', 'escape', 'except', 'exception', 'exec', 'execute', 'exists', 'external', 'extract', 'false', 'fetch', 'first', 'float', 'for', 'foreign', 'found', 'from', 'full', 'get', 'global', 'go', 'goto', 'grant', 'group', 'having', 'hour', 'identity', 'immediate', 'in', 'indicator', 'initially', 'inner', 'input', 'insensitive', 'insert', 'int', 'integer', 'intersect', 'interval', 'into', 'is', 'isolation', 'join', 'key', 'language', 'last', 'leading', 'left', 'level', 'like', 'local', 'lower', 'match', 'max', 'min', 'minute', 'module', 'month', 'names', 'national', 'natural', 'nchar', 'next', 'no', 'not', 'null', 'nullif', 'numeric', 'octet_length', 'of', 'offset', 'on', 'only', 'open', 'option', 'or', 'order', 'outer', 'output', 'overlaps', 'pad', 'partial', 'position', 'precision', 'prepare', 'preserve', 'primary', 'prior', 'privileges', 'procedure', 'public', 'read', 'real', 'references', 'relative', 'restrict', 'revoke', 'right', 'rollback', 'rows', 'schema', 'scroll', 'second', 'section', 'select', 'session', 'session_user', 'set', 'size', 'smallint', 'some', 'space', 'sql', 'sqlcode', 'sqlerror', 'sqlstate', 'substring', 'sum', 'system_user', 'table', 'temporary', 'then', 'time', 'timestamp', 'timezone_hour', 'timezone_minute', 'to', 'trailing', 'transaction', 'translate', 'translation', 'trim', 'true', 'union', 'unique', 'unknown', 'update', 'upper', 'usage', 'user', 'using', 'value', 'values', 'varchar', 'varying', 'view', 'when', 'whenever', 'where', 'with', 'work', 'write', 'year', 'zone']) OR name !~ '^[a-z][a-z0-9_]*$'
              THEN '"' || replace(name, '"', '""') || '"' ELSE name END
$$;
COMMENT ON FUNCTION tap_schema.adql_name(text) IS 'A column name as ADQL must write it (delimited when reserved)';

CREATE OR REPLACE VIEW tap_schema.columns AS
WITH cols AS (
    SELECT t.table_name, a.attname::text AS column_name, a.attnum, c.oid AS relid,
           CASE WHEN a.attndims > 0 OR ty.typcategory = 'A' THEN 'array' ELSE ty.typname::text END AS pg_type,
           el.typname::text AS element_type,
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
    LEFT JOIN pg_type AS el ON el.oid = ty.typelem AND ty.typcategory = 'A'
)
SELECT cols.table_name, tap_schema.adql_name(cols.column_name) AS column_name,
       -- VOTable datatypes (TAP 1.1); values of other types are served as text
       CASE cols.pg_type WHEN 'int2' THEN 'short' WHEN 'int4' THEN 'int' WHEN 'int8' THEN 'long'
                         WHEN 'float4' THEN 'float' WHEN 'float8' THEN 'double' WHEN 'numeric' THEN 'double'
                         WHEN 'bool' THEN 'boolean'
                         -- arrays of numbers are served as arrays (arraysize *), others as text
                         WHEN 'array' THEN CASE cols.element_type WHEN 'int2' THEN 'short' WHEN 'int4' THEN 'int'
                                                WHEN 'int8' THEN 'long' WHEN 'float4' THEN 'float'
                                                WHEN 'float8' THEN 'double' ELSE 'char' END
                         ELSE 'char' END::text AS datatype,
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
       CASE WHEN cols.table_name LIKE 'tap\_schema.%' THEN 1 ELSE 0 END AS std,
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
WHERE co.contype = 'f'
UNION ALL  -- TAP_SCHEMA's own foreign keys (TAP 1.1 section 4): views have no constraints to read
SELECT k.key_id, k.from_table, k.target_table, NULL::text, k.description
FROM (VALUES ('tap_schema.tables.schema_fk', 'tap_schema.tables', 'tap_schema.schemas', 'The schema of a table'),
             ('tap_schema.columns.table_fk', 'tap_schema.columns', 'tap_schema.tables', 'The table of a column'),
             ('tap_schema.keys.from_fk', 'tap_schema.keys', 'tap_schema.tables', 'The table a key is from'),
             ('tap_schema.keys.target_fk', 'tap_schema.keys', 'tap_schema.tables', 'The table a key points to'),
             ('tap_schema.key_columns.key_fk', 'tap_schema.key_columns', 'tap_schema.keys', 'The key of a column pair'))
     AS k(key_id, from_table, target_table, description);

CREATE OR REPLACE VIEW tap_schema.key_columns AS
SELECT (ft.table_name || '.' || co.conname)::text AS key_id,
       tap_schema.adql_name(fa.attname::text) AS from_column, tap_schema.adql_name(ta.attname::text) AS target_column
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
WHERE co.contype = 'f'
UNION ALL
SELECT k.key_id, k.from_column, k.target_column
FROM (VALUES ('tap_schema.tables.schema_fk', 'schema_name', 'schema_name'),
             ('tap_schema.columns.table_fk', 'table_name', 'table_name'),
             ('tap_schema.keys.from_fk', 'from_table', 'table_name'),
             ('tap_schema.keys.target_fk', 'target_table', 'table_name'),
             ('tap_schema.key_columns.key_fk', 'key_id', 'key_id'))
     AS k(key_id, from_column, target_column);
