-- Defaults by name on insert (the functions are in rendered.sql), and the existing rows.
CREATE OR REPLACE FUNCTION xpdb.reference_catalog_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.validation_selection := coalesce(NEW.validation_selection, xpdb.default_validation_selection(NEW.name));
    RETURN NEW;
END
$$;
CREATE TRIGGER reference_catalog_defaults BEFORE INSERT ON xpdb.reference_catalog
    FOR EACH ROW EXECUTE FUNCTION xpdb.reference_catalog_defaults();
UPDATE xpdb.reference_catalog SET validation_selection = xpdb.default_validation_selection(name);
ALTER TABLE xpdb.reference_catalog ALTER COLUMN validation_selection SET NOT NULL;

CREATE OR REPLACE FUNCTION xpdb.cluster_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.bp_rp0_min := coalesce(NEW.bp_rp0_min, xpdb.default_bp_rp0_min(NEW.name));
    RETURN NEW;
END
$$;
CREATE TRIGGER cluster_defaults BEFORE INSERT ON xpdb.cluster
    FOR EACH ROW EXECUTE FUNCTION xpdb.cluster_defaults();
UPDATE xpdb.cluster SET bp_rp0_min = xpdb.default_bp_rp0_min(name);

COMMENT ON VIEW xpdb.xm_validation IS 'xm_reference with each catalogue''s validation selection: in_scope marks the stars that validation_summary and the report use';
COMMENT ON COLUMN xpdb.xm_validation.selection IS 'The catalogue''s validation selection (xpdb.reference_catalog.validation_selection)';
COMMENT ON COLUMN xpdb.xm_validation.cuts IS 'The cuts of that selection, in words';
COMMENT ON COLUMN xpdb.xm_validation.in_scope IS 'The star passes its catalogue''s validation selection';

COMMENT ON VIEW xpdb.xm_cluster_sample IS 'Cluster members with predictions and the sample cuts of section 4.2.3: in_sample marks those cluster_summary uses';
COMMENT ON COLUMN xpdb.xm_cluster_sample.selection IS 'The cluster''s membership selection (xpdb.cluster.selection)';
COMMENT ON COLUMN xpdb.xm_cluster_sample.cuts IS 'The cuts of that selection, in words';
COMMENT ON COLUMN xpdb.xm_cluster_sample.passes_selection IS 'The member passes the selection''s cuts';
COMMENT ON COLUMN xpdb.xm_cluster_sample.passes_colour IS 'The member is redder than the cluster''s bp_rp0_min (or there is none)';
COMMENT ON COLUMN xpdb.xm_cluster_sample.passes_probability IS 'The membership probability reaches the cluster''s minimum (or either is missing)';
COMMENT ON COLUMN xpdb.xm_cluster_sample.passes_flags IS 'The prediction exists and has neither flag 8 (missing band) nor 16 (no features)';
COMMENT ON COLUMN xpdb.xm_cluster_sample.in_sample IS 'The member counts in cluster_summary: all four of the above';

-- The paper's validation numbers per model and reference catalogue, over the stars of each
-- catalogue's validation selection (xm_validation.in_scope): overall, per reference [Fe/H] bin,
-- VMP and metal-poor, for all G (scope 'all') and G < 15 (scope 'g<15'), and per G bin with the
-- median predicted error (scope 'g-bin', all G; Figure 5). Bias and sigma by xpdb.gaussian_fit.
-- (Aggregates are ordered by source_id so that sums, and so the numbers, are reproducible.)
DROP VIEW xpdb.validation_summary;
CREATE VIEW xpdb.validation_summary AS
WITH x AS (
    SELECT *, CASE WHEN feh_ref <= -3 THEN 'feh<=-3' WHEN feh_ref <= -2 THEN '-3<feh<=-2'
                   WHEN feh_ref <= -1 THEN '-2<feh<=-1' ELSE 'feh>-1' END AS feh_bin,
           CASE WHEN phot_g_mean_mag < 10 THEN 6 ELSE least(floor(phot_g_mean_mag), 17) END AS g_bin
    FROM xpdb.xm_validation WHERE in_scope AND delta_feh IS NOT NULL
), scoped AS (
    SELECT x.*, s.scope FROM x CROSS JOIN (VALUES ('all'), ('g<15')) AS s(scope)
    WHERE s.scope = 'all' OR x.phot_g_mean_mag < 15
), grouped AS (
    SELECT model_id, catalog, selection, cuts, scope, 'all' AS subset, NULL::real AS g_min, NULL::real AS g_max,
           array_agg(delta_feh::double precision ORDER BY source_id) AS d,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err) AS med_err
    FROM scoped GROUP BY model_id, catalog, selection, cuts, scope
    UNION ALL
    SELECT model_id, catalog, selection, cuts, scope, feh_bin, NULL, NULL,
           array_agg(delta_feh::double precision ORDER BY source_id), percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM scoped GROUP BY model_id, catalog, selection, cuts, scope, feh_bin
    UNION ALL
    SELECT model_id, catalog, selection, cuts, scope, 'vmp', NULL, NULL,
           array_agg(delta_feh::double precision ORDER BY source_id), percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM scoped WHERE feh_ref <= -2 GROUP BY model_id, catalog, selection, cuts, scope
    UNION ALL
    SELECT model_id, catalog, selection, cuts, scope, 'metal_poor', NULL, NULL,
           array_agg(delta_feh::double precision ORDER BY source_id), percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM scoped WHERE feh_ref <= -1.5 GROUP BY model_id, catalog, selection, cuts, scope
    UNION ALL
    SELECT model_id, catalog, selection, cuts, 'g-bin', 'g ' || g_bin::text || '-' || (CASE WHEN g_bin = 6 THEN 10 ELSE g_bin + 1 END)::text,
           g_bin, CASE WHEN g_bin = 6 THEN 10 ELSE g_bin + 1 END, array_agg(delta_feh::double precision ORDER BY source_id),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM x GROUP BY model_id, catalog, selection, cuts, g_bin
)
SELECT g.model_id, g.catalog, g.selection, g.cuts, g.scope, g.subset, g.g_min, g.g_max, (s).n, (s).mean, (s).std,
       (s).median, (s).robust_sigma, (s).bias, (s).sigma, (s).method, g.med_err AS median_feh_err
FROM grouped AS g, LATERAL (SELECT xpdb.gaussian_fit(g.d) AS s) AS fit;

COMMENT ON VIEW xpdb.validation_summary IS 'Residual statistics of each model against each reference catalogue, over the stars of the catalogue''s validation selection';
COMMENT ON COLUMN xpdb.validation_summary.model_id IS 'Model (xpdb.model)';
COMMENT ON COLUMN xpdb.validation_summary.catalog IS 'Reference catalogue';
COMMENT ON COLUMN xpdb.validation_summary.selection IS 'The catalogue''s validation selection: giant_sample, survey_validation, spectroscopic_giants or final_sample';
COMMENT ON COLUMN xpdb.validation_summary.cuts IS 'The cuts applied, in words';
COMMENT ON COLUMN xpdb.validation_summary.scope IS 'Stars used: all (every G), g<15, or g-bin (every G, per G bin)';
COMMENT ON COLUMN xpdb.validation_summary.subset IS 'Subset: all, a reference [Fe/H] bin, vmp ([Fe/H]ref <= -2), metal_poor ([Fe/H]ref <= -1.5) or a G bin';
COMMENT ON COLUMN xpdb.validation_summary.g_min IS 'Lower G of the bin [mag]';
COMMENT ON COLUMN xpdb.validation_summary.g_max IS 'Upper G of the bin [mag]';
COMMENT ON COLUMN xpdb.validation_summary.n IS 'Number of stars';
COMMENT ON COLUMN xpdb.validation_summary.mean IS 'Mean of FEH - FEH_ref [dex]';
COMMENT ON COLUMN xpdb.validation_summary.std IS 'Standard deviation of FEH - FEH_ref [dex]';
COMMENT ON COLUMN xpdb.validation_summary.median IS 'Median of FEH - FEH_ref [dex]';
COMMENT ON COLUMN xpdb.validation_summary.robust_sigma IS 'Robust (MAD-based) sigma of FEH - FEH_ref [dex]';
COMMENT ON COLUMN xpdb.validation_summary.bias IS 'Bias (Gaussian fit centre) of FEH - FEH_ref [dex]';
COMMENT ON COLUMN xpdb.validation_summary.sigma IS 'Dispersion (Gaussian fit sigma) of FEH - FEH_ref [dex]';
COMMENT ON COLUMN xpdb.validation_summary.method IS 'How bias and sigma were obtained';
COMMENT ON COLUMN xpdb.validation_summary.median_feh_err IS 'Median predicted uncertainty FEH_err [dex]';

-- Per model and cluster (Figure 9): the members that count (xm_cluster_sample.in_sample), a
-- Gaussian fitted with 3-sigma clipping, the reference [Fe/H] and the published value
-- (xpdb.cluster_value, the newest load) beside it.
DROP VIEW xpdb.cluster_summary;
CREATE VIEW xpdb.cluster_summary AS
SELECT g.model_id, g.cluster, g.selection, g.cuts, g.bp_rp0_min, g.min_membership_probability,
       g.n_members, g.n_selected, (f).n, (f).n_clipped, (f).mean AS feh_mean, (f).sigma AS feh_sigma,
       (f).method, g.feh_ref, g.feh_ref_err, (f).mean - g.feh_ref AS delta_mean,
       pv.feh AS feh_paper, pv.feh_err AS feh_paper_err, pv.source || ': ' || pv.value_column AS feh_paper_source,
       (f).mean - pv.feh AS delta_paper, g.median_feh_err
FROM (SELECT model_id, cluster, selection, cuts, bp_rp0_min, min_membership_probability,
             count(*) FILTER (WHERE feh IS NOT NULL) AS n_members, count(*) FILTER (WHERE in_sample) AS n_selected,
             coalesce(array_agg(feh::double precision ORDER BY source_id) FILTER (WHERE in_sample),
                      '{}'::double precision[]) AS d,
             min(feh_ref) AS feh_ref, min(feh_ref_err) AS feh_ref_err,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err) FILTER (WHERE in_sample) AS median_feh_err
      FROM xpdb.xm_cluster_sample
      GROUP BY model_id, cluster, selection, cuts, bp_rp0_min, min_membership_probability) AS g
CROSS JOIN LATERAL (SELECT xpdb.clipped_gaussian_fit(g.d, 3) AS f) AS fit
LEFT JOIN LATERAL (SELECT v.feh, v.feh_err, v.source, v.value_column FROM xpdb.cluster_value AS v
                   WHERE v.cluster_key = xpdb.cluster_key(g.cluster)
                   ORDER BY v.loaded_at DESC, v.source LIMIT 1) AS pv ON true;

COMMENT ON VIEW xpdb.cluster_summary IS 'Mean [Fe/H] of each model per cluster (Gaussian fit, 3-sigma clipping) against the reference and the published value';
COMMENT ON COLUMN xpdb.cluster_summary.model_id IS 'Model (xpdb.model)';
COMMENT ON COLUMN xpdb.cluster_summary.cluster IS 'Cluster name';
COMMENT ON COLUMN xpdb.cluster_summary.selection IS 'The membership selection (xpdb.cluster.selection)';
COMMENT ON COLUMN xpdb.cluster_summary.cuts IS 'The cuts of that selection, in words';
COMMENT ON COLUMN xpdb.cluster_summary.bp_rp0_min IS 'The colour cut: (BP-RP)0 above this [mag]';
COMMENT ON COLUMN xpdb.cluster_summary.min_membership_probability IS 'The membership-probability cut';
COMMENT ON COLUMN xpdb.cluster_summary.n_members IS 'Members with a prediction';
COMMENT ON COLUMN xpdb.cluster_summary.n_selected IS 'Members that pass the cuts, the colour, probability and flag filters';
COMMENT ON COLUMN xpdb.cluster_summary.n IS 'Members kept after 3-sigma clipping';
COMMENT ON COLUMN xpdb.cluster_summary.n_clipped IS 'Selected members removed by the clipping';
COMMENT ON COLUMN xpdb.cluster_summary.feh_mean IS 'Mean FEH: centre of the Gaussian fitted with 3-sigma clipping [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.feh_sigma IS 'Dispersion of FEH: sigma of that Gaussian [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.method IS 'The fit: gaussian fit (histogram, 50 members or more), maximum likelihood (fewer) or robust';
COMMENT ON COLUMN xpdb.cluster_summary.feh_ref IS 'Reference [Fe/H] of the cluster (xpdb.cluster) [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.feh_ref_err IS 'Its uncertainty [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.delta_mean IS 'feh_mean - feh_ref [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.feh_paper IS 'Published mean [Fe/H] (xpdb.cluster_value, e.g. cluster_paper.csv feh_c) [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.feh_paper_err IS 'Its uncertainty [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.feh_paper_source IS 'Source and column of the published value';
COMMENT ON COLUMN xpdb.cluster_summary.delta_paper IS 'feh_mean - feh_paper [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.median_feh_err IS 'Median predicted uncertainty FEH_err of the selected members [dex]';

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    GRANT SELECT ON xpdb.xm_validation, xpdb.validation_summary, xpdb.xm_cluster_sample, xpdb.cluster_summary,
                    xpdb.cluster_value TO xpdb_reader;
  END IF;
END
$$;
