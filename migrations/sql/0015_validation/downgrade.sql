-- Back to 0008: the views of 0005 (six cuts for every catalogue via flags & 32; clipped mean and
-- standard deviation per cluster) with the comments 0006 gave them, without the new objects.
DROP VIEW IF EXISTS xpdb.cluster_summary, xpdb.validation_summary, xpdb.xm_cluster_sample, xpdb.xm_validation;
DROP FUNCTION IF EXISTS xpdb.clipped_gaussian_fit(double precision[], double precision);
DROP TYPE IF EXISTS xpdb.clipped_fit;
DROP TRIGGER IF EXISTS cluster_defaults ON xpdb.cluster;
DROP TRIGGER IF EXISTS reference_catalog_defaults ON xpdb.reference_catalog;
DROP FUNCTION IF EXISTS xpdb.cluster_defaults(), xpdb.reference_catalog_defaults(),
    xpdb.default_bp_rp0_min(text), xpdb.cluster_key(text), xpdb.default_validation_selection(text);
DROP TABLE IF EXISTS xpdb.cluster_value;
DELETE FROM xpdb.ingest_run WHERE kind = 'cluster_values';
ALTER TABLE xpdb.ingest_run DROP CONSTRAINT ingest_run_kind_check;
ALTER TABLE xpdb.ingest_run ADD CONSTRAINT ingest_run_kind_check
    CHECK (kind IN ('xp', 'xp_sampled', 'sources', 'labels', 'members'));
ALTER TABLE xpdb.cluster DROP COLUMN selection, DROP COLUMN bp_rp0_min, DROP COLUMN min_membership_probability;
ALTER TABLE xpdb.reference_catalog DROP COLUMN validation_selection;

-- (Aggregates are ordered by source_id so that sums, and so the numbers, are reproducible.)
-- The paper's validation numbers per model and reference catalogue: overall, per reference
-- [Fe/H] bin, per G bin (with the median predicted error, Figure 5), for G < 15 and all G,
-- over the stars that pass the six cuts of giant_sample (prediction flag 32 unset), like the
-- paper's training and test sets.
CREATE OR REPLACE VIEW xpdb.validation_summary AS
WITH x AS (
    SELECT *, CASE WHEN feh_ref <= -3 THEN 'feh<=-3' WHEN feh_ref <= -2 THEN '-3<feh<=-2'
                   WHEN feh_ref <= -1 THEN '-2<feh<=-1' ELSE 'feh>-1' END AS feh_bin,
           CASE WHEN phot_g_mean_mag < 10 THEN 6 ELSE least(floor(phot_g_mean_mag), 17) END AS g_bin
    FROM xpdb.xm_reference WHERE delta_feh IS NOT NULL AND flags & 32 = 0  -- the six cuts, as the paper's test set
), grouped AS (
    SELECT model_id, catalog, 'all' AS scope, 'all' AS subset, NULL::real AS g_min, NULL::real AS g_max,
           array_agg(delta_feh::double precision ORDER BY source_id) AS d, percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err) AS med_err
    FROM x GROUP BY model_id, catalog
    UNION ALL
    SELECT model_id, catalog, 'g<15', 'all', NULL, NULL, array_agg(delta_feh::double precision ORDER BY source_id),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM x WHERE phot_g_mean_mag < 15 GROUP BY model_id, catalog
    UNION ALL
    SELECT model_id, catalog, 'g<15', feh_bin, NULL, NULL, array_agg(delta_feh::double precision ORDER BY source_id),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM x WHERE phot_g_mean_mag < 15 GROUP BY model_id, catalog, feh_bin
    UNION ALL
    SELECT model_id, catalog, 'g<15', 'vmp', NULL, NULL, array_agg(delta_feh::double precision ORDER BY source_id),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM x WHERE phot_g_mean_mag < 15 AND feh_ref <= -2 GROUP BY model_id, catalog
    UNION ALL
    SELECT model_id, catalog, 'all', feh_bin, NULL, NULL, array_agg(delta_feh::double precision ORDER BY source_id),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM x GROUP BY model_id, catalog, feh_bin
    UNION ALL
    SELECT model_id, catalog, 'g-bin', 'g ' || g_bin::text || '-' || (CASE WHEN g_bin = 6 THEN 10 ELSE g_bin + 1 END)::text,
           g_bin, CASE WHEN g_bin = 6 THEN 10 ELSE g_bin + 1 END, array_agg(delta_feh::double precision ORDER BY source_id),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err)
    FROM x GROUP BY model_id, catalog, g_bin
)
SELECT g.model_id, g.catalog, g.scope, g.subset, g.g_min, g.g_max, (s).n, (s).mean, (s).std, (s).median,
       (s).robust_sigma, (s).bias, (s).sigma, (s).method, g.med_err AS median_feh_err
FROM grouped AS g, LATERAL (SELECT xpdb.gaussian_fit(g.d) AS s) AS fit;

-- Per model and cluster: N, mean and sigma of FEH after 3-sigma clipping, and the reference.
CREATE OR REPLACE VIEW xpdb.cluster_summary AS
SELECT g.model_id, g.cluster, g.n_members, (s).n, (s).n_clipped, (s).mean AS feh_mean, (s).sigma AS feh_sigma,
       g.feh_ref, g.feh_ref_err, (s).mean - g.feh_ref AS delta_mean, g.median_feh_err
FROM (SELECT model_id, cluster, count(*) AS n_members, array_agg(feh::double precision ORDER BY source_id) AS d,
             min(feh_ref) AS feh_ref, min(feh_ref_err) AS feh_ref_err,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY feh_err) AS median_feh_err
      FROM xpdb.xm_cluster_members WHERE feh IS NOT NULL GROUP BY model_id, cluster) AS g,
     LATERAL (SELECT xpdb.clipped_stats(g.d) AS s) AS clip;

COMMENT ON VIEW xpdb.validation_summary IS 'Residual statistics of each model against each reference catalogue';
COMMENT ON VIEW xpdb.cluster_summary IS 'Clipped mean [Fe/H] of each model per cluster against the literature value';
COMMENT ON COLUMN xpdb.validation_summary.catalog IS 'Reference catalogue';
COMMENT ON COLUMN xpdb.validation_summary.scope IS 'Stars used: all, g<15 or g-bin';
COMMENT ON COLUMN xpdb.validation_summary.subset IS 'Subset: all, a reference [Fe/H] bin, vmp ([Fe/H]ref <= -2) or a G bin';
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
COMMENT ON COLUMN xpdb.cluster_summary.cluster IS 'Cluster name';
COMMENT ON COLUMN xpdb.cluster_summary.n_members IS 'Members with a prediction';
COMMENT ON COLUMN xpdb.cluster_summary.n IS 'Members kept after 3-sigma clipping';
COMMENT ON COLUMN xpdb.cluster_summary.n_clipped IS 'Members removed by the clipping';
COMMENT ON COLUMN xpdb.cluster_summary.feh_mean IS 'Clipped mean FEH [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.feh_sigma IS 'Clipped standard deviation of FEH [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.delta_mean IS 'Clipped mean FEH - literature [Fe/H] [dex]';
COMMENT ON COLUMN xpdb.cluster_summary.median_feh_err IS 'Median predicted uncertainty FEH_err [dex]';

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    GRANT SELECT ON xpdb.validation_summary, xpdb.cluster_summary TO xpdb_reader;
  END IF;
END
$$;
