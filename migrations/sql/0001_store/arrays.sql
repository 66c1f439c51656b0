-- Decode the bytea arrays of xpdb.xp_continuous in SQL (little-endian IEEE 754).
-- For ad-hoc use (`SELECT xpdb.float8_array(bp_coefficients) ...`); bulk readers decode in numpy.

CREATE OR REPLACE FUNCTION xpdb.float4_array(b bytea) RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(
    CASE WHEN e = 255 THEN CASE WHEN m <> 0 THEN 'NaN'::real
                                WHEN s = 1 THEN '-Infinity'::real ELSE 'Infinity'::real END
         WHEN e = 0 THEN ((1 - 2 * s) * m * power(2::float8, -149))::real
         ELSE ((1 - 2 * s) * (1 + m / 8388608.0::float8) * power(2::float8, e - 127))::real
    END ORDER BY i), '{}')
  FROM (SELECT i, (bits >> 31) & 1 AS s, (bits >> 23) & 255 AS e, bits & 8388607 AS m
        FROM (SELECT i, get_byte(b, 4 * i)::bigint
                      | (get_byte(b, 4 * i + 1)::bigint << 8)
                      | (get_byte(b, 4 * i + 2)::bigint << 16)
                      | (get_byte(b, 4 * i + 3)::bigint << 24) AS bits
              FROM generate_series(0, length(b) / 4 - 1) AS i) AS raw) AS parts
$$;

CREATE OR REPLACE FUNCTION xpdb.float8_array(b bytea) RETURNS double precision[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(
    CASE WHEN e = 2047 THEN CASE WHEN m <> 0 THEN 'NaN'::float8
                                 WHEN s = 1 THEN '-Infinity'::float8 ELSE 'Infinity'::float8 END
         WHEN e = 0 THEN (1 - 2 * s) * m * power(2::float8, -1074)
         ELSE (1 - 2 * s) * (1 + m / 4503599627370496.0::float8) * power(2::float8, e - 1023)
    END ORDER BY i), '{}')
  FROM (SELECT i, (hi >> 31) & 1 AS s, (hi >> 20) & 2047 AS e,
               (hi & 1048575)::float8 * 4294967296.0::float8 + lo::float8 AS m
        FROM (SELECT i,
                     get_byte(b, 8 * i)::bigint | (get_byte(b, 8 * i + 1)::bigint << 8)
                   | (get_byte(b, 8 * i + 2)::bigint << 16) | (get_byte(b, 8 * i + 3)::bigint << 24) AS lo,
                     get_byte(b, 8 * i + 4)::bigint | (get_byte(b, 8 * i + 5)::bigint << 8)
                   | (get_byte(b, 8 * i + 6)::bigint << 16) | (get_byte(b, 8 * i + 7)::bigint << 24) AS hi
              FROM generate_series(0, length(b) / 8 - 1) AS i) AS raw) AS parts
$$;
