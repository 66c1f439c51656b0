-- The catalogue (Table 2) is that of the newest UA-CSNet model with predictions: baselines and
-- other model kinds (scatter VAE, transformer) never replace it by being trained later.
CREATE OR REPLACE VIEW xpdb.catalog AS
SELECT source_id, gl, gb, ra, dec, phot_bp_rp_excess_factor, bp_rp0, phot_g_mean_mag, m_g, ebv, rgeo,
       feh, feh_err, flags
FROM xpdb.catalog_all
WHERE model_id = (SELECT m.model_id FROM xpdb.model AS m
                  WHERE m.kind = 'uacsnet' AND EXISTS (SELECT 1 FROM xpdb.prediction AS p WHERE p.model_id = m.model_id)
                  ORDER BY m.created_at DESC, m.model_id DESC LIMIT 1);

COMMENT ON VIEW xpdb.catalog IS 'UA-CSNet catalogue (paper Table 2) of the newest UA-CSNet model with predictions';
