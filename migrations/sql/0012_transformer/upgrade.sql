-- Stellar labels predicted by the transformer foundation model (kind 'transformer') and its tree
-- baseline (kind 'label_xgboost'), written by the leased inference jobs; the catalogue gains them.

CREATE TABLE xpdb.label_prediction (
    model_id    integer NOT NULL REFERENCES xpdb.model ON DELETE CASCADE,
    source_id   bigint NOT NULL,
    teff        real,
    teff_err    real,
    logg        real,
    logg_err    real,
    m_h         real,
    m_h_err     real,
    alpha_m     real,
    alpha_m_err real,
    n_tokens    smallint NOT NULL DEFAULT 0,
    flags       integer NOT NULL DEFAULT 0,
    job_id      integer,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, source_id)
);
COMMENT ON TABLE xpdb.label_prediction IS 'Teff, log g, [M/H] and [alpha/M] with uncertainties per model and source: the transformer foundation model (kind transformer) and its tree baseline (label_xgboost)';
COMMENT ON COLUMN xpdb.label_prediction.model_id IS 'Model (xpdb.model)';
COMMENT ON COLUMN xpdb.label_prediction.source_id IS 'Gaia DR3 source_id';
COMMENT ON COLUMN xpdb.label_prediction.teff IS 'Predicted effective temperature [K]';
COMMENT ON COLUMN xpdb.label_prediction.teff_err IS 'Predicted uncertainty of teff [K]';
COMMENT ON COLUMN xpdb.label_prediction.logg IS 'Predicted surface gravity log g [dex, cgs]';
COMMENT ON COLUMN xpdb.label_prediction.logg_err IS 'Predicted uncertainty of logg [dex]';
COMMENT ON COLUMN xpdb.label_prediction.m_h IS 'Predicted metallicity [M/H] (trained on APOGEE [Fe/H]) [dex]';
COMMENT ON COLUMN xpdb.label_prediction.m_h_err IS 'Predicted uncertainty of m_h [dex]';
COMMENT ON COLUMN xpdb.label_prediction.alpha_m IS 'Predicted [alpha/M] [dex]';
COMMENT ON COLUMN xpdb.label_prediction.alpha_m_err IS 'Predicted uncertainty of alpha_m [dex]';
COMMENT ON COLUMN xpdb.label_prediction.n_tokens IS 'Number of input tokens the model saw (XP values and photometry)';
COMMENT ON COLUMN xpdb.label_prediction.flags IS 'Label flags: 1 no XP spectrum (photometry only), 2 no E(B-V), 4 G, BP-RP, J-H or J-K missing, 8 predicted Teff >= 7000 K (not validated)';
COMMENT ON COLUMN xpdb.label_prediction.job_id IS 'Batch job that wrote the prediction (xpdb.job)';
COMMENT ON COLUMN xpdb.label_prediction.created_at IS 'Time the prediction was written';

-- The catalogue: UA-CSNet's Table 2 (as 0008) with the labels of the newest transformer model with
-- predictions (a scalar subquery: evaluated once per query, then the primary key is used).
DROP VIEW xpdb.catalog;
CREATE VIEW xpdb.catalog AS
SELECT c.source_id, c.gl, c.gb, c.ra, c.dec, c.phot_bp_rp_excess_factor, c.bp_rp0, c.phot_g_mean_mag, c.m_g,
       c.ebv, c.rgeo, c.feh, c.feh_err, c.flags,
       t.teff, t.teff_err, t.logg, t.logg_err, t.m_h, t.m_h_err, t.alpha_m, t.alpha_m_err
FROM xpdb.catalog_all AS c
LEFT JOIN xpdb.label_prediction AS t
  ON t.source_id = c.source_id
 AND t.model_id = (SELECT m.model_id FROM xpdb.model AS m
                      WHERE m.kind = 'transformer'
                        AND EXISTS (SELECT 1 FROM xpdb.label_prediction AS p WHERE p.model_id = m.model_id)
                      ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1)
WHERE c.model_id = (SELECT m.model_id FROM xpdb.model AS m
                    WHERE m.kind = 'uacsnet' AND EXISTS (SELECT 1 FROM xpdb.prediction AS p WHERE p.model_id = m.model_id)
                    ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1);
COMMENT ON VIEW xpdb.catalog IS 'UA-CSNet catalogue (paper Table 2) of the newest UA-CSNet model with predictions, with Teff, log g, [M/H] and [alpha/M] of the newest transformer model';
COMMENT ON COLUMN xpdb.catalog.teff IS 'Effective temperature from the newest transformer model [K]';
COMMENT ON COLUMN xpdb.catalog.teff_err IS 'Predicted uncertainty of teff [K]';
COMMENT ON COLUMN xpdb.catalog.logg IS 'Surface gravity log g from the newest transformer model [dex, cgs]';
COMMENT ON COLUMN xpdb.catalog.logg_err IS 'Predicted uncertainty of logg [dex]';
COMMENT ON COLUMN xpdb.catalog.m_h IS '[M/H] from the newest transformer model (trained on APOGEE [Fe/H]) [dex]';
COMMENT ON COLUMN xpdb.catalog.m_h_err IS 'Predicted uncertainty of m_h [dex]';
COMMENT ON COLUMN xpdb.catalog.alpha_m IS '[alpha/M] from the newest transformer model [dex]';
COMMENT ON COLUMN xpdb.catalog.alpha_m_err IS 'Predicted uncertainty of alpha_m [dex]';

-- Every star the newest transformer model has labelled (dwarfs too), with position and photometry.
CREATE VIEW xpdb.transformer_catalog AS
SELECT t.source_id, s.ra, s.dec, s.l AS gl, s.b AS gb, s.phot_g_mean_mag, s.bp_rp, s.ebv,
       t.teff, t.teff_err, t.logg, t.logg_err, t.m_h, t.m_h_err, t.alpha_m, t.alpha_m_err, t.n_tokens,
       t.flags AS label_flags
FROM xpdb.label_prediction AS t
JOIN xpdb.gaia_source AS s ON s.source_id = t.source_id
WHERE t.model_id = (SELECT m.model_id FROM xpdb.model AS m
                   WHERE m.kind = 'transformer'
                     AND EXISTS (SELECT 1 FROM xpdb.label_prediction AS p WHERE p.model_id = m.model_id)
                   ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1);
COMMENT ON VIEW xpdb.transformer_catalog IS 'Teff, log g, [M/H] and [alpha/M] of every star labelled by the newest transformer model, with position and photometry';
COMMENT ON COLUMN xpdb.transformer_catalog.label_flags IS 'Label flags (xpdb.label_prediction.flags)';

GRANT SELECT ON xpdb.label_prediction, xpdb.catalog, xpdb.transformer_catalog TO xpdb_reader;

-- Units and UCDs of the new columns in TAP_SCHEMA (as xpdb.query.columns has them; the server refreshes them).
INSERT INTO tap_schema.column_meta (column_name, unit, ucd, description) VALUES
  ('teff', 'K', 'phys.temperature.effective', 'Effective temperature [K]'),
  ('teff_err', 'K', 'stat.error;phys.temperature.effective', 'Uncertainty of the effective temperature [K]'),
  ('logg', NULL, 'phys.gravity', 'Surface gravity log g [dex, cgs]'),
  ('logg_err', NULL, 'stat.error;phys.gravity', 'Uncertainty of log g [dex]'),
  ('m_h', NULL, 'phys.abund.Z', 'Metallicity [M/H] [dex]'),
  ('m_h_err', NULL, 'stat.error;phys.abund.Z', 'Uncertainty of [M/H] [dex]'),
  ('alpha_m', NULL, 'phys.abund', '[alpha/M] [dex]'),
  ('alpha_m_err', NULL, 'stat.error;phys.abund', 'Uncertainty of [alpha/M] [dex]')
ON CONFLICT (column_name) DO NOTHING;
