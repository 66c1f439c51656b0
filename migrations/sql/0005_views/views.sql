-- The catalogue (paper Table 2), cross-matches with reference catalogues and clusters,
-- and the validation summaries. Every figure of `xpdb report` reads these views.

-- Table 2 for every model: one row per (model, source) with a prediction.
CREATE OR REPLACE VIEW xpdb.catalog_all AS
SELECT p.model_id, m.name || ':' || m.version AS model,
       s.source_id, s.l AS gl, s.b AS gb, s.ra, s.dec, s.phot_bp_rp_excess_factor,
       xpdb.bp_rp0(s.bp_rp, s.ebv) AS bp_rp0, s.phot_g_mean_mag,
       xpdb.abs_g(s.phot_g_mean_mag, s.ebv, s.rgeo, s.parallax) AS m_g,
       s.ebv, s.rgeo, p.feh, p.feh_err, p.flags
FROM xpdb.prediction AS p
JOIN xpdb.gaia_source AS s ON s.source_id = p.source_id
JOIN xpdb.model AS m ON m.model_id = p.model_id;

COMMENT ON VIEW xpdb.catalog_all IS 'UA-CSNet catalogue (paper Table 2) for every model; pick one with model_id';

-- The newest model's catalogue.
CREATE OR REPLACE VIEW xpdb.catalog AS
SELECT source_id, gl, gb, ra, dec, phot_bp_rp_excess_factor, bp_rp0, phot_g_mean_mag, m_g, ebv, rgeo,
       feh, feh_err, flags
FROM xpdb.catalog_all
WHERE model_id = (SELECT model_id FROM xpdb.model ORDER BY created_at DESC, model_id DESC LIMIT 1);

COMMENT ON VIEW xpdb.catalog IS 'UA-CSNet catalogue (paper Table 2) of the newest model';

-- Reference labels cross-matched with every model's predictions: by source_id, or for labels
-- stored without one, by the nearest source within the catalogue's match radius (q3c).
CREATE OR REPLACE VIEW xpdb.xm_reference AS
SELECT l.catalog, c.model_id, c.model, l.label_id, l.original_id, c.source_id, c.ra, c.dec, c.gl, c.gb,
       c.phot_g_mean_mag, c.bp_rp0, c.m_g, c.ebv, c.feh, c.feh_err, c.flags,
       l.feh AS feh_ref, l.feh_err AS feh_ref_err, l.teff AS teff_ref, l.logg AS logg_ref,
       coalesce(l.match_sep_arcsec, matched.sep) AS match_sep_arcsec,
       c.feh - l.feh AS delta_feh
FROM xpdb.reference_label AS l
JOIN xpdb.reference_catalog AS rc ON rc.name = l.catalog
CROSS JOIN LATERAL (
    SELECT l.source_id AS source_id, NULL::double precision AS sep WHERE l.source_id IS NOT NULL
    UNION ALL
    (SELECT g.source_id, q3c_dist(l.ra, l.dec, g.ra, g.dec) * 3600
     FROM xpdb.gaia_source AS g
     WHERE l.source_id IS NULL AND l.ra IS NOT NULL
       AND q3c_join(l.ra, l.dec, g.ra, g.dec, rc.match_radius_arcsec / 3600.0)
     ORDER BY q3c_dist(l.ra, l.dec, g.ra, g.dec) LIMIT 1)
) AS matched
JOIN xpdb.catalog_all AS c ON c.source_id = matched.source_id;

-- Cluster members cross-matched the same way, with the cluster's reference [Fe/H].
CREATE OR REPLACE VIEW xpdb.xm_cluster_members AS
SELECT cm.cluster, c.model_id, c.model, cm.member_id, cm.original_id, c.source_id, c.ra, c.dec,
       c.phot_g_mean_mag, c.bp_rp0, c.m_g, c.ebv, c.feh, c.feh_err, c.flags, cm.membership_probability,
       cl.feh_ref, cl.feh_ref_err, c.feh - cl.feh_ref AS delta_feh
FROM xpdb.cluster_member AS cm
JOIN xpdb.cluster AS cl ON cl.name = cm.cluster
CROSS JOIN LATERAL (
    SELECT cm.source_id AS source_id WHERE cm.source_id IS NOT NULL
    UNION ALL
    (SELECT g.source_id FROM xpdb.gaia_source AS g
     WHERE cm.source_id IS NULL AND cm.ra IS NOT NULL AND q3c_join(cm.ra, cm.dec, g.ra, g.dec, 1.0 / 3600)
     ORDER BY q3c_dist(cm.ra, cm.dec, g.ra, g.dec) LIMIT 1)
) AS matched
JOIN xpdb.catalog_all AS c ON c.source_id = matched.source_id;

-- One view per reference catalogue (xm_pastel, xm_saga, ...), made by a function so that a new
-- catalogue gets its view when it is loaded (`xpdb ingest labels` calls it).
CREATE OR REPLACE FUNCTION xpdb.xm_view_name(catalog text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT 'xm_' || trim(both '_' from regexp_replace(lower(catalog), '[^a-z0-9]+', '_', 'g'))
$$;

CREATE OR REPLACE FUNCTION xpdb.refresh_xm_views() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    cat text;
    view_name text;
BEGIN
    FOR cat IN SELECT name FROM xpdb.reference_catalog ORDER BY name LOOP
        view_name := xpdb.xm_view_name(cat);
        IF view_name IN ('xm_reference', 'xm_cluster_members') THEN
            CONTINUE;
        END IF;
        EXECUTE format('CREATE OR REPLACE VIEW xpdb.%I AS SELECT * FROM xpdb.xm_reference WHERE catalog = %L',
                       view_name, cat);
        EXECUTE format('COMMENT ON VIEW xpdb.%I IS %L', view_name,
                       'predictions cross-matched with reference catalogue ' || cat || '; delta_feh = feh - feh_ref');
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
            EXECUTE format('GRANT SELECT ON xpdb.%I TO xpdb_reader', view_name);
        END IF;
        RETURN NEXT view_name;
    END LOOP;
END
$$;

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
