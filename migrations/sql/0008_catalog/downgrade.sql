CREATE OR REPLACE VIEW xpdb.catalog AS
SELECT source_id, gl, gb, ra, dec, phot_bp_rp_excess_factor, bp_rp0, phot_g_mean_mag, m_g, ebv, rgeo,
       feh, feh_err, flags
FROM xpdb.catalog_all
WHERE model_id = (SELECT model_id FROM xpdb.model ORDER BY created_at DESC, model_id DESC LIMIT 1);

COMMENT ON VIEW xpdb.catalog IS 'UA-CSNet catalogue (paper Table 2) of the newest model';
