-- Dereddened photometry and the UA-CSNet sample selection (paper section 2.3).
-- Constant reddening coefficients of the Zhang et al. (2024) XP curve for a 4500 K giant, as
-- xpdb.xp.extinction computed them when this migration was written (frozen here).

CREATE OR REPLACE FUNCTION xpdb.bp_rp0(bp_rp real, ebv real) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT bp_rp - 1.1219 * ebv $$;

CREATE OR REPLACE FUNCTION xpdb.g0(g real, ebv real) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT g - 2.0867 * ebv $$;

-- rgeo (Bailer-Jones r_med_geo, pc) where known, else 1000/parallax for positive parallaxes.
CREATE OR REPLACE FUNCTION xpdb.distance_pc(rgeo real, parallax double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN rgeo > 0 THEN rgeo::double precision WHEN parallax > 0 THEN 1000.0 / parallax END $$;

CREATE OR REPLACE FUNCTION xpdb.abs_g(g real, ebv real, rgeo real, parallax double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT xpdb.g0(g, ebv) - 5.0 * log(xpdb.distance_pc(rgeo, parallax) / 10.0) $$;

-- Everything the selection needs, per source.
CREATE OR REPLACE VIEW xpdb.source_photometry AS
SELECT s.source_id, s.ra, s.dec, s.l, s.b, s.parallax, s.phot_g_mean_mag, s.bp_rp,
       s.phot_bp_rp_excess_factor, s.ebv, s.rgeo,
       xpdb.bp_rp0(s.bp_rp, s.ebv) AS bp_rp0,
       xpdb.g0(s.phot_g_mean_mag, s.ebv) AS g0,
       xpdb.abs_g(s.phot_g_mean_mag, s.ebv, s.rgeo, s.parallax) AS m_g,
       xpdb.distance_pc(s.rgeo, s.parallax) AS distance_pc,
       xpdb.distance_pc(s.rgeo, s.parallax) * sin(radians(s.b)) / 1000.0 AS z_kpc
FROM xpdb.gaia_source AS s;

-- The six cuts of section 2.3 (training and test sets, and the default inference selection).
CREATE OR REPLACE VIEW xpdb.giant_sample AS
SELECT p.* FROM xpdb.source_photometry AS p
WHERE p.phot_bp_rp_excess_factor < 1.15 + 0.19 * p.bp_rp0 ^ 2            -- 1. reliable BP/RP fluxes
  AND p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9                                  -- 2. red giants ...
  AND p.m_g < -(p.bp_rp0 ^ 2) + 6.5 * p.bp_rp0 - 1.8                     --    ... above the dwarf sequence
  AND abs(p.z_kpc) > 0.2                                                 -- 3. |Z| > 0.2 kpc
  AND abs(p.b) > 20                                                      -- 4. |b| > 20 deg
  AND p.ebv < 0.2                                                        -- 5. E(B-V)_SFD < 0.2
  AND p.g0 > 6;                                                          -- 6. G_0 > 6

-- The paper's final sample (section 4.3): the first three cuts only, where UA-CSNet is applied
-- to make the catalogue (cluster members at low latitude included, as in section 4.2.3).
CREATE OR REPLACE VIEW xpdb.final_sample AS
SELECT p.* FROM xpdb.source_photometry AS p
WHERE p.phot_bp_rp_excess_factor < 1.15 + 0.19 * p.bp_rp0 ^ 2
  AND p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9
  AND p.m_g < -(p.bp_rp0 ^ 2) + 6.5 * p.bp_rp0 - 1.8
  AND abs(p.z_kpc) > 0.2;

-- The model's colour domain (section 4.2): where UA-CSNet may be applied.
CREATE OR REPLACE VIEW xpdb.model_domain AS
SELECT p.* FROM xpdb.source_photometry AS p WHERE p.bp_rp0 > 0.7 AND p.bp_rp0 < 1.9;
