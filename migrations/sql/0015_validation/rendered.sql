-- Rendered once from xpdb.validation and xpdb.selection (python -m xpdb.validation) and frozen here;
-- tests/db check that the database's objects still equal what that code renders.

-- default_validation_selection: rendered by xpdb.validation
CREATE OR REPLACE FUNCTION xpdb.default_validation_selection(catalog text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
         WHEN k LIKE 'pastel%' THEN 'giant_sample'
         WHEN k LIKE 'saga%' THEN 'giant_sample'
         WHEN k LIKE 'apogee%' THEN 'spectroscopic_giants'
         ELSE 'survey_validation' END
  FROM (SELECT regexp_replace(lower(catalog), '[^a-z0-9]', '', 'g') AS k) AS n $$;

-- cluster_key: rendered by xpdb.validation
CREATE OR REPLACE FUNCTION xpdb.cluster_key(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce((SELECT m.ngc FROM (VALUES (2, 'ngc7089'), (3, 'ngc5272'), (4, 'ngc6121'), (5, 'ngc5904'), (6, 'ngc6405'), (7, 'ngc6475'), (9, 'ngc6333'), (10, 'ngc6254'), (11, 'ngc6705'), (12, 'ngc6218'), (13, 'ngc6205'), (14, 'ngc6402'), (15, 'ngc7078'), (18, 'ngc6613'), (19, 'ngc6273'), (21, 'ngc6531'), (22, 'ngc6656'), (23, 'ngc6494'), (25, 'ic4725'), (26, 'ngc6694'), (28, 'ngc6626'), (29, 'ngc6913'), (30, 'ngc7099'), (34, 'ngc1039'), (35, 'ngc2168'), (36, 'ngc1960'), (37, 'ngc2099'), (38, 'ngc1912'), (39, 'ngc7092'), (41, 'ngc2287'), (44, 'ngc2632'), (45, 'melotte22'), (46, 'ngc2437'), (47, 'ngc2422'), (48, 'ngc2548'), (50, 'ngc2323'), (52, 'ngc7654'), (53, 'ngc5024'), (54, 'ngc6715'), (55, 'ngc6809'), (56, 'ngc6779'), (62, 'ngc6266'), (67, 'ngc2682'), (68, 'ngc4590'), (69, 'ngc6637'), (70, 'ngc6681'), (71, 'ngc6838'), (72, 'ngc6981'), (75, 'ngc6864'), (79, 'ngc1904'), (80, 'ngc6093'), (92, 'ngc6341'), (93, 'ngc2447'), (103, 'ngc581'), (107, 'ngc6171')) AS m(number, ngc)
                   WHERE k ~ '^(m|messier)0*[0-9]+$' AND m.number = substring(k FROM '[0-9]+$')::integer),
                  k)
  FROM (SELECT regexp_replace(lower(name), '[^a-z0-9]', '', 'g') AS k) AS n $$;

-- default_bp_rp0_min: rendered by xpdb.validation
CREATE OR REPLACE FUNCTION xpdb.default_bp_rp0_min(cluster text) RETURNS real
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE xpdb.cluster_key(cluster)
         WHEN 'ngc6791' THEN 1.05::real
         END $$;

-- xm_validation: rendered by xpdb.validation
CREATE OR REPLACE VIEW xpdb.xm_validation AS
SELECT x.*, rc.validation_selection AS selection,
    CASE rc.validation_selection
        WHEN 'giant_sample' THEN 'cuts 1-6 of section 2.3'
        WHEN 'survey_validation' THEN 'cuts 1-3 of section 2.3 and E(B-V) < 0.5'
        WHEN 'spectroscopic_giants' THEN '0.7 < (BP-RP)0 < 1.9 and logg_ref < 3.6'
        WHEN 'final_sample' THEN 'cuts 1-3 of section 2.3'
    END AS cuts,
    CASE rc.validation_selection
        WHEN 'giant_sample' THEN coalesce(p.phot_bp_rp_excess_factor < 1.15 + 0.19 * p.bp_rp0 ^ 2 AND p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9 AND p.m_g < -(p.bp_rp0 ^ 2) + 6.5 * p.bp_rp0 - 1.8 AND abs(p.z_kpc) > 0.2 AND abs(p.b) > 20 AND p.ebv < 0.2 AND p.g0 > 6, false)
        WHEN 'survey_validation' THEN coalesce(p.phot_bp_rp_excess_factor < 1.15 + 0.19 * p.bp_rp0 ^ 2 AND p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9 AND p.m_g < -(p.bp_rp0 ^ 2) + 6.5 * p.bp_rp0 - 1.8 AND abs(p.z_kpc) > 0.2 AND p.ebv < 0.5, false)
        WHEN 'spectroscopic_giants' THEN coalesce(p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9 AND l.logg < 3.6, false)
        WHEN 'final_sample' THEN coalesce(p.phot_bp_rp_excess_factor < 1.15 + 0.19 * p.bp_rp0 ^ 2 AND p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9 AND p.m_g < -(p.bp_rp0 ^ 2) + 6.5 * p.bp_rp0 - 1.8 AND abs(p.z_kpc) > 0.2, false)
        ELSE false END AS in_scope
FROM xpdb.xm_reference AS x
JOIN xpdb.reference_catalog AS rc ON rc.name = x.catalog
JOIN xpdb.reference_label AS l ON l.label_id = x.label_id
LEFT JOIN xpdb.source_photometry AS p ON p.source_id = x.source_id;

-- xm_cluster_sample: rendered by xpdb.validation
CREATE OR REPLACE VIEW xpdb.xm_cluster_sample AS
SELECT y.*, y.passes_selection AND y.passes_colour AND y.passes_probability AND y.passes_flags AS in_sample
FROM (
  SELECT x.*, cl.selection, cl.bp_rp0_min, cl.min_membership_probability,
    CASE cl.selection
            WHEN 'final_sample' THEN 'cuts 1-3 of section 2.3'
            WHEN 'giant_sample' THEN 'cuts 1-6 of section 2.3'
            WHEN 'survey_validation' THEN 'cuts 1-3 of section 2.3 and E(B-V) < 0.5'
            WHEN 'model_domain' THEN '0.7 < (BP-RP)0 < 1.9'
        END AS cuts,
    CASE cl.selection
            WHEN 'final_sample' THEN coalesce(p.phot_bp_rp_excess_factor < 1.15 + 0.19 * p.bp_rp0 ^ 2 AND p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9 AND p.m_g < -(p.bp_rp0 ^ 2) + 6.5 * p.bp_rp0 - 1.8 AND abs(p.z_kpc) > 0.2, false)
            WHEN 'giant_sample' THEN coalesce(p.phot_bp_rp_excess_factor < 1.15 + 0.19 * p.bp_rp0 ^ 2 AND p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9 AND p.m_g < -(p.bp_rp0 ^ 2) + 6.5 * p.bp_rp0 - 1.8 AND abs(p.z_kpc) > 0.2 AND abs(p.b) > 20 AND p.ebv < 0.2 AND p.g0 > 6, false)
            WHEN 'survey_validation' THEN coalesce(p.phot_bp_rp_excess_factor < 1.15 + 0.19 * p.bp_rp0 ^ 2 AND p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9 AND p.m_g < -(p.bp_rp0 ^ 2) + 6.5 * p.bp_rp0 - 1.8 AND abs(p.z_kpc) > 0.2 AND p.ebv < 0.5, false)
            WHEN 'model_domain' THEN coalesce(p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9, false)
            ELSE false END AS passes_selection,
    (cl.bp_rp0_min IS NULL OR coalesce(x.bp_rp0 > cl.bp_rp0_min, false)) AS passes_colour,
    (cl.min_membership_probability IS NULL OR x.membership_probability IS NULL
     OR x.membership_probability >= cl.min_membership_probability) AS passes_probability,
    (coalesce(x.flags, 0) & 24 = 0 AND x.feh IS NOT NULL) AS passes_flags
  FROM xpdb.xm_cluster_members AS x
  JOIN xpdb.cluster AS cl ON cl.name = x.cluster
  LEFT JOIN xpdb.source_photometry AS p ON p.source_id = x.source_id
) AS y;

