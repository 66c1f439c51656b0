-- TAP_SCHEMA.columns as migration 0006_tap made it
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

DROP FUNCTION IF EXISTS tap_schema.adql_name(text);
