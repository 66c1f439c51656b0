-- The exact inverse of upgrade.sql: the 0008 catalogue, without the label tables and views.
DELETE FROM tap_schema.column_meta
WHERE column_name IN ('teff', 'teff_err', 'logg', 'logg_err', 'm_h', 'm_h_err', 'alpha_m', 'alpha_m_err');
DROP VIEW xpdb.transformer_catalog;
DROP VIEW xpdb.catalog;
CREATE VIEW xpdb.catalog AS
SELECT source_id, gl, gb, ra, dec, phot_bp_rp_excess_factor, bp_rp0, phot_g_mean_mag, m_g, ebv, rgeo,
       feh, feh_err, flags
FROM xpdb.catalog_all
WHERE model_id = (SELECT m.model_id FROM xpdb.model AS m
                  WHERE m.kind = 'uacsnet' AND EXISTS (SELECT 1 FROM xpdb.prediction AS p WHERE p.model_id = m.model_id)
                  ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1);
COMMENT ON VIEW xpdb.catalog IS 'UA-CSNet catalogue (paper Table 2) of the newest UA-CSNet model with predictions';
GRANT SELECT ON xpdb.catalog TO xpdb_reader;
DROP TABLE xpdb.label_prediction;
