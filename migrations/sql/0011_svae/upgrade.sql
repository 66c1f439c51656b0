-- The scatter VAE (sVAE) of Laroche & Speagle and its PCA baseline: one row per model and
-- source with the latent means and log-variances, goodness of fit with and without the
-- learned scatter, an anomaly score and the per-pixel scatter; the latent as a `cube` with a
-- GiST index for k-nearest-neighbour searches (`<->`) inside PostgreSQL.

CREATE EXTENSION IF NOT EXISTS cube WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;  -- model_id beside the cube in one GiST index

CREATE TABLE xpdb.svae_output (
    model_id          integer NOT NULL REFERENCES xpdb.model ON DELETE CASCADE,
    source_id         bigint NOT NULL,
    z1 real, z2 real, z3 real, z4 real, z5 real, z6 real,
    z1_log_var real, z2_log_var real, z3_log_var real, z4_log_var real, z5_log_var real, z6_log_var real,
    chi2_red          real,
    chi2_red_scatter  real,
    nll               real,
    anomaly_score     real,
    max_abs_residual  real,
    n_pixels          smallint,
    scatter           bytea,
    flags             integer NOT NULL DEFAULT 0,
    job_id            integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    latent            public.cube GENERATED ALWAYS AS (  -- NULL for a source without usable input (flags)
        CASE WHEN z1 IS NOT NULL THEN
             public.cube(ARRAY[z1, coalesce(z2, 0), coalesce(z3, 0), coalesce(z4, 0), coalesce(z5, 0),
                               coalesce(z6, 0)]::float8[]) END) STORED,
    PRIMARY KEY (model_id, source_id)
);
ALTER TABLE xpdb.svae_output ALTER COLUMN scatter SET STORAGE EXTERNAL;
CREATE INDEX svae_output_latent_idx ON xpdb.svae_output USING gist (model_id, latent);
CREATE INDEX svae_output_score_idx ON xpdb.svae_output (model_id, anomaly_score DESC NULLS LAST);

COMMENT ON TABLE xpdb.svae_output IS 'Scatter VAE (and PCA baseline) outputs per model and source: latent, chi-square with and without the learned scatter, anomaly score';
COMMENT ON COLUMN xpdb.svae_output.model_id IS 'Model identifier in xpdb.model (kind svae or xp_pca)';
COMMENT ON COLUMN xpdb.svae_output.z1 IS 'Latent mean, dimension 1 (sVAE encoder mean; PCA: first component score)';
COMMENT ON COLUMN xpdb.svae_output.z2 IS 'Latent mean, dimension 2';
COMMENT ON COLUMN xpdb.svae_output.z3 IS 'Latent mean, dimension 3';
COMMENT ON COLUMN xpdb.svae_output.z4 IS 'Latent mean, dimension 4';
COMMENT ON COLUMN xpdb.svae_output.z5 IS 'Latent mean, dimension 5';
COMMENT ON COLUMN xpdb.svae_output.z6 IS 'Latent mean, dimension 6';
COMMENT ON COLUMN xpdb.svae_output.z1_log_var IS 'Latent log-variance, dimension 1 (NULL for PCA)';
COMMENT ON COLUMN xpdb.svae_output.z2_log_var IS 'Latent log-variance, dimension 2';
COMMENT ON COLUMN xpdb.svae_output.z3_log_var IS 'Latent log-variance, dimension 3';
COMMENT ON COLUMN xpdb.svae_output.z4_log_var IS 'Latent log-variance, dimension 4';
COMMENT ON COLUMN xpdb.svae_output.z5_log_var IS 'Latent log-variance, dimension 5';
COMMENT ON COLUMN xpdb.svae_output.z6_log_var IS 'Latent log-variance, dimension 6';
COMMENT ON COLUMN xpdb.svae_output.chi2_red IS 'Reduced chi-square of the reconstruction with the measurement errors only';
COMMENT ON COLUMN xpdb.svae_output.chi2_red_scatter IS 'Reduced chi-square with the measurement errors and the learned scatter added in quadrature';
COMMENT ON COLUMN xpdb.svae_output.nll IS 'Negative log-likelihood of the spectrum under the model (the loss without KL), in standardised units';
COMMENT ON COLUMN xpdb.svae_output.anomaly_score IS 'Anomaly score, larger is more anomalous: -log10 of the smaller of two tail probabilities under the model''s own error budget (errors and learned scatter; PCA: its per-pixel population scatter): that of chi2_red_scatter * n_pixels (chi-square, n_pixels degrees of freedom) and that of max_abs_residual (largest of n_pixels unit Gaussians)';
COMMENT ON COLUMN xpdb.svae_output.max_abs_residual IS 'Largest |x - xhat| / sqrt(err^2 + scatter^2) over the pixels';
COMMENT ON COLUMN xpdb.svae_output.n_pixels IS 'Number of input pixels (samples or coefficients) the model reads';
COMMENT ON COLUMN xpdb.svae_output.scatter IS 'Learned scatter per input pixel, in the units of the input (flux / G flux), for spectra whose anomaly score reaches the model''s scatter_min_score (else NULL: the model decodes it from z1..z6): bytea of little-endian float32 (xpdb.float4_array)';
COMMENT ON COLUMN xpdb.svae_output.flags IS 'Flags: 1 no input spectrum in the model''s representation, 2 no G flux, 4 non-finite or non-positive input error';
COMMENT ON COLUMN xpdb.svae_output.job_id IS 'Batch job that wrote the row (xpdb.job)';
COMMENT ON COLUMN xpdb.svae_output.created_at IS 'Time the row was written';
COMMENT ON COLUMN xpdb.svae_output.latent IS 'The latent means as a cube (z1..z6; NULL without usable input), GiST-indexed for nearest-neighbour searches with <->';

-- Nearest neighbours in latent space of one model, by the GiST index (k-NN ordering with <->).
CREATE FUNCTION xpdb.svae_similar(p_model_id integer, p_source_id bigint, k integer DEFAULT 20,
                                  include_self boolean DEFAULT false)
RETURNS TABLE (rank integer, source_id bigint, latent_distance double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  q public.cube;
BEGIN
  SELECT o.latent INTO q FROM xpdb.svae_output AS o WHERE o.model_id = p_model_id AND o.source_id = p_source_id;
  IF q IS NULL THEN
    RETURN;
  END IF;
  -- the cube is a parameter here, so the GiST index returns rows in distance order and LIMIT stops early
  RETURN QUERY
    SELECT (row_number() OVER (ORDER BY o.latent <-> q))::integer, o.source_id, o.latent <-> q
    FROM xpdb.svae_output AS o
    WHERE o.model_id = p_model_id AND o.latent IS NOT NULL AND (include_self OR o.source_id <> p_source_id)
    ORDER BY o.latent <-> q
    LIMIT k;
END
$$;
COMMENT ON FUNCTION xpdb.svae_similar(integer, bigint, integer, boolean) IS 'The k nearest stars to a source in the latent space of a model (Euclidean distance of the latent means, GiST k-NN)';

-- The same for ADQL (which has no <->): each source's 50 nearest other stars in its model's
-- latent space, computed on demand by the GiST index. Filter by source_id (and model_id).
CREATE VIEW xpdb.svae_neighbours AS
SELECT o.model_id, o.source_id, n.rank, n.neighbour_id, n.latent_distance
FROM xpdb.svae_output AS o
CROSS JOIN LATERAL (
    SELECT (row_number() OVER (ORDER BY o2.latent <-> o.latent))::integer AS rank,
           o2.source_id AS neighbour_id, o2.latent <-> o.latent AS latent_distance
    FROM xpdb.svae_output AS o2
    WHERE o2.model_id = o.model_id AND o2.source_id <> o.source_id AND o2.latent IS NOT NULL
    ORDER BY o2.latent <-> o.latent
    LIMIT 50) AS n;
COMMENT ON VIEW xpdb.svae_neighbours IS 'The 50 nearest other stars of each source in the latent space of each sVAE/PCA model (computed on demand; filter by source_id)';
COMMENT ON COLUMN xpdb.svae_neighbours.rank IS 'Rank of the neighbour, 1 = nearest';
COMMENT ON COLUMN xpdb.svae_neighbours.neighbour_id IS 'source_id of the neighbour';
COMMENT ON COLUMN xpdb.svae_neighbours.latent_distance IS 'Euclidean distance between the latent means';

-- The anomaly ranking of the newest sVAE model with outputs, most anomalous first.
CREATE VIEW xpdb.xp_outliers AS
SELECT (rank() OVER (ORDER BY o.anomaly_score DESC NULLS LAST))::integer AS rank,
       o.source_id, s.ra, s.dec, s.phot_g_mean_mag, s.bp_rp, o.anomaly_score, o.chi2_red, o.chi2_red_scatter,
       o.max_abs_residual, o.flags, o.model_id
FROM xpdb.svae_output AS o
LEFT JOIN xpdb.gaia_source AS s ON s.source_id = o.source_id
WHERE o.model_id = (SELECT m.model_id FROM xpdb.model AS m
                    WHERE m.kind = 'svae' AND EXISTS (SELECT 1 FROM xpdb.svae_output AS p WHERE p.model_id = m.model_id)
                    ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1)
  AND o.anomaly_score IS NOT NULL
ORDER BY o.anomaly_score DESC;
COMMENT ON VIEW xpdb.xp_outliers IS 'Spectra ranked by the anomaly score of the newest scatter VAE with outputs, most anomalous first';
COMMENT ON COLUMN xpdb.xp_outliers.rank IS 'Rank by anomaly score, 1 = most anomalous';

-- public relations: readable by the query role (and so listed in TAP_SCHEMA)
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    GRANT SELECT ON xpdb.svae_output, xpdb.svae_neighbours, xpdb.xp_outliers TO xpdb_reader;
  END IF;
END
$$;
