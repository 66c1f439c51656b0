-- Validation as the paper does it (issue 16): per-catalogue validation selections, cluster
-- sample settings, the published cluster values, and the Gaussian fit with 3-sigma clipping.

-- Which stars of a reference catalogue the validation uses (a name in xpdb.selection.SELECTIONS):
-- giant_sample (the six cuts; SAGA, PASTEL), survey_validation (the first three cuts and
-- E(B-V) < 0.5; LAMOST, SDSS and other surveys, the default), spectroscopic_giants (APOGEE
-- library labels, no parallaxes). Set on ingest by name (xpdb.default_validation_selection).
ALTER TABLE xpdb.reference_catalog ADD COLUMN validation_selection text
    CHECK (validation_selection IN ('giant_sample', 'survey_validation', 'spectroscopic_giants', 'final_sample'));
COMMENT ON COLUMN xpdb.reference_catalog.validation_selection IS
    'Stars of this catalogue that the validation uses: giant_sample (cuts 1-6, SAGA and PASTEL), survey_validation (cuts 1-3 and E(B-V) < 0.5, surveys), spectroscopic_giants (APOGEE labels), final_sample (cuts 1-3)';

-- Which members of a cluster count (section 4.2.3).
ALTER TABLE xpdb.cluster
    ADD COLUMN selection text NOT NULL DEFAULT 'final_sample'
        CHECK (selection IN ('final_sample', 'giant_sample', 'survey_validation', 'model_domain')),
    ADD COLUMN bp_rp0_min real,
    ADD COLUMN min_membership_probability real DEFAULT 0.5;
COMMENT ON COLUMN xpdb.cluster.selection IS 'Cuts the members must pass: final_sample (cuts 1-3, the paper''s membership selection), giant_sample, survey_validation or model_domain';
COMMENT ON COLUMN xpdb.cluster.bp_rp0_min IS 'Members must have (BP-RP)0 above this (NGC 6791: 1.05, giants only); NULL: no colour cut [mag]';
COMMENT ON COLUMN xpdb.cluster.min_membership_probability IS 'Members must have at least this membership probability (members without one are kept); NULL: no cut';

-- Published mean [Fe/H] of clusters (e.g. cluster_paper.csv), shown beside the project's values.
CREATE TABLE xpdb.cluster_value (
    cluster_key   text NOT NULL,
    name          text NOT NULL,
    source        text NOT NULL,
    value_column  text NOT NULL,
    feh           real,
    feh_err       real,
    n_member      integer,
    extra         jsonb,
    ingest_run_id integer,
    loaded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_key, source)
);
COMMENT ON TABLE xpdb.cluster_value IS 'Published mean [Fe/H] of star clusters (xpdb ingest cluster-values), matched to xpdb.cluster by xpdb.cluster_key';
COMMENT ON COLUMN xpdb.cluster_value.cluster_key IS 'xpdb.cluster_key of the name: lower-case letters and digits, Messier numbers as NGC names';
COMMENT ON COLUMN xpdb.cluster_value.name IS 'Cluster name as in the file';
COMMENT ON COLUMN xpdb.cluster_value.source IS 'Where the value comes from (the file, unless named)';
COMMENT ON COLUMN xpdb.cluster_value.value_column IS 'The column of the file that feh was read from';
COMMENT ON COLUMN xpdb.cluster_value.feh IS 'Published mean [Fe/H] [dex]';
COMMENT ON COLUMN xpdb.cluster_value.feh_err IS 'Its uncertainty [dex]';
COMMENT ON COLUMN xpdb.cluster_value.n_member IS 'Members behind the published value';
COMMENT ON COLUMN xpdb.cluster_value.extra IS 'Every other column of the file (JSON)';
COMMENT ON COLUMN xpdb.cluster_value.ingest_run_id IS 'Ingest run that loaded the row (xpdb.ingest_run)';
COMMENT ON COLUMN xpdb.cluster_value.loaded_at IS 'Time the row was loaded';

ALTER TABLE xpdb.ingest_run DROP CONSTRAINT ingest_run_kind_check;
ALTER TABLE xpdb.ingest_run ADD CONSTRAINT ingest_run_kind_check
    CHECK (kind IN ('xp', 'xp_sampled', 'sources', 'labels', 'members', 'cluster_values'));

-- The cluster statistic of Figure 9: a Gaussian fitted with iterative 3-sigma clipping.
-- Each pass fits the kept values - by xpdb.gaussian_fit (the histogram fit of the validation
-- statistics) when there are at least 50, by maximum likelihood (mean, population standard
-- deviation) below - and keeps the values within nsigma sigma of its centre, out of all of
-- them; it stops when the kept values do not change (at most 20 passes). The result is the
-- last fit and the values it used. xpdb.models.evaluate.clipped_gaussian_fit does the same.
CREATE TYPE xpdb.clipped_fit AS (n integer, n_clipped integer, mean double precision, sigma double precision,
                                 method text);

CREATE OR REPLACE FUNCTION xpdb.clipped_gaussian_fit(vals double precision[], nsigma double precision DEFAULT 3)
RETURNS xpdb.clipped_fit LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    r xpdb.clipped_fit;
    finite double precision[];
    kept double precision[];
    nxt double precision[];
    fit xpdb.residual_stats;
    m double precision;
    s double precision;
    how text := 'none';
    it integer;
BEGIN
    SELECT coalesce(array_agg(v ORDER BY v), '{}') INTO finite
      FROM unnest(vals) AS v WHERE v = v AND v NOT IN ('Infinity', '-Infinity');
    kept := finite;
    FOR it IN 1 .. 20 LOOP
        EXIT WHEN cardinality(kept) = 0;
        IF cardinality(kept) >= 50 THEN
            fit := xpdb.gaussian_fit(kept);
            m := fit.bias; s := fit.sigma; how := fit.method;
        ELSE
            SELECT avg(v), stddev_pop(v) INTO m, s FROM unnest(kept) AS v;
            how := 'maximum likelihood';
        END IF;
        EXIT WHEN s IS NULL OR s <= 0;
        SELECT coalesce(array_agg(v ORDER BY v), '{}') INTO nxt FROM unnest(finite) AS v WHERE abs(v - m) <= nsigma * s;
        EXIT WHEN nxt = kept OR it = 20;
        kept := nxt;
    END LOOP;
    r.n := cardinality(kept);
    r.n_clipped := cardinality(finite) - cardinality(kept);
    r.mean := m;
    r.sigma := s;
    r.method := how;
    RETURN r;
END
$$;
