-- "The newest model of a kind with predictions" was written EXISTS (SELECT 1 FROM <outputs> WHERE model_id = m.model_id),
-- which PostgreSQL turns into a semi-join that reads and hashes every output row (0.1-0.2 s for 200,000
-- predictions, in every TAP query on xpdb.catalog). OFFSET 0 keeps the EXISTS a subplan that stops at the first
-- row. Same columns, rows, grants and comments (CREATE OR REPLACE VIEW).
CREATE OR REPLACE VIEW xpdb.catalog AS
SELECT c.source_id, c.gl, c.gb, c.ra, c.dec, c.phot_bp_rp_excess_factor, c.bp_rp0, c.phot_g_mean_mag, c.m_g,
       c.ebv, c.rgeo, c.feh, c.feh_err, c.flags,
       t.teff, t.teff_err, t.logg, t.logg_err, t.m_h, t.m_h_err, t.alpha_m, t.alpha_m_err
FROM xpdb.catalog_all AS c
LEFT JOIN xpdb.label_prediction AS t
  ON t.source_id = c.source_id
 AND t.model_id = (SELECT m.model_id FROM xpdb.model AS m
                      WHERE m.kind = 'transformer'
                        AND EXISTS (SELECT 1 FROM xpdb.label_prediction AS p WHERE p.model_id = m.model_id OFFSET 0)
                      ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1)
WHERE c.model_id = (SELECT m.model_id FROM xpdb.model AS m
                    WHERE m.kind = 'uacsnet' AND EXISTS (SELECT 1 FROM xpdb.prediction AS p WHERE p.model_id = m.model_id OFFSET 0)
                    ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1);

CREATE OR REPLACE VIEW xpdb.transformer_catalog AS
SELECT t.source_id, s.ra, s.dec, s.l AS gl, s.b AS gb, s.phot_g_mean_mag, s.bp_rp, s.ebv,
       t.teff, t.teff_err, t.logg, t.logg_err, t.m_h, t.m_h_err, t.alpha_m, t.alpha_m_err, t.n_tokens,
       t.flags AS label_flags
FROM xpdb.label_prediction AS t
JOIN xpdb.gaia_source AS s ON s.source_id = t.source_id
WHERE t.model_id = (SELECT m.model_id FROM xpdb.model AS m
                   WHERE m.kind = 'transformer'
                     AND EXISTS (SELECT 1 FROM xpdb.label_prediction AS p WHERE p.model_id = m.model_id OFFSET 0)
                   ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1);

CREATE OR REPLACE VIEW xpdb.xp_outliers AS
SELECT (rank() OVER (ORDER BY o.anomaly_score DESC NULLS LAST))::integer AS rank,
       o.source_id, s.ra, s.dec, s.phot_g_mean_mag, s.bp_rp, o.anomaly_score, o.chi2_red, o.chi2_red_scatter,
       o.max_abs_residual, o.flags, o.model_id
FROM xpdb.svae_output AS o
LEFT JOIN xpdb.gaia_source AS s ON s.source_id = o.source_id
WHERE o.model_id = (SELECT m.model_id FROM xpdb.model AS m
                    WHERE m.kind = 'svae' AND EXISTS (SELECT 1 FROM xpdb.svae_output AS p WHERE p.model_id = m.model_id OFFSET 0)
                    ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1)
  AND o.anomaly_score IS NOT NULL
ORDER BY o.anomaly_score DESC;

-- The tables a TAP asynchronous job uploads (UPLOAD=name,param:part or an http(s) URL): kept as sent until the
-- job runs (a job may run after a restart), removed with the job. Service bookkeeping, not public.
CREATE TABLE IF NOT EXISTS xpdb.uws_upload (
    job_id  text NOT NULL REFERENCES xpdb.uws_job ON DELETE CASCADE,
    name    text NOT NULL,
    source  text NOT NULL,
    content bytea NOT NULL,
    PRIMARY KEY (job_id, name)
);
COMMENT ON TABLE xpdb.uws_upload IS 'Uploaded tables (TAP_UPLOAD) of TAP asynchronous jobs, as sent; service bookkeeping, not public';
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader') THEN
    REVOKE ALL ON xpdb.uws_upload FROM xpdb_reader;
  END IF;
END
$$;
