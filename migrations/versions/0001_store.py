"""Store: Gaia sources, XP_CONTINUOUS spectra, reference labels, cluster members, ingest runs.

Revision ID: 0001_store
Revises:
Create Date: 2026-11-21

Layout choices (see DESIGN.md, "Storage", and the closing note of the storage issue):
- XP coefficient arrays are ``bytea`` holding little-endian IEEE floats at the archive's
  own precision (coefficients float64, errors and correlations float32): read back
  bit-exactly, about 5x faster to COPY than ``real[]`` with correlations. Array lengths
  are free, so DR4's 51 BP coefficients need no change. ``xpdb.float4_array`` and
  ``xpdb.float8_array`` decode them in SQL for ad-hoc use.
- One row per source *and band* (``xp_band``), not one per source: a band with its
  1485 correlations is about 6.7 kB and, with ``toast_tuple_target = 8160``, stays inline
  in its heap page instead of being cut into TOAST chunks. Measured on 2 cores: a
  13 kB one-row-per-source layout COPYs at about 9,000 sources/s (TOAST-bound), the
  per-band layout at about 11,500 (14,000 into an empty table). A missing band is
  simply an absent row. The view ``xp_continuous`` gives the archive's one-row layout.
- Every table with positions has a q3c index on ``q3c_ang2ipix(ra, dec)``.
- Rows carry ``ingest_run_id`` so a failed chunked load can be removed exactly.
"""

from alembic import op

from xpdb.db.migrate import frozen_sql

revision = "0001_store"
down_revision = None
branch_labels = None
depends_on = None

XP_BAND_FIELDS = (
    "basis_function_id", "degrees_of_freedom", "n_parameters", "n_measurements", "n_rejected_measurements",
    "standard_deviation", "chi_squared", "coefficients", "coefficient_errors", "coefficient_correlations",
    "n_relevant_bases", "relative_shrinking",
)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS q3c WITH SCHEMA public")
    op.execute("CREATE SCHEMA IF NOT EXISTS xpdb")

    op.execute("""
    CREATE TABLE xpdb.ingest_run (
        run_id        serial PRIMARY KEY,
        kind          text NOT NULL CHECK (kind IN ('xp', 'sources', 'labels', 'members')),
        target        text NOT NULL DEFAULT '',
        path          text NOT NULL,
        sha256        text NOT NULL,
        file_size     bigint,
        file_format   text,
        options       jsonb NOT NULL DEFAULT '{}'::jsonb,
        status        text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'done', 'failed')),
        rows_read     bigint NOT NULL DEFAULT 0,
        rows_loaded   bigint NOT NULL DEFAULT 0,
        rows_rejected bigint NOT NULL DEFAULT 0,
        next_row      bigint NOT NULL DEFAULT 0,
        error         text,
        started_at    timestamptz NOT NULL DEFAULT now(),
        finished_at   timestamptz
    )""")
    op.execute("CREATE INDEX ingest_run_sha_idx ON xpdb.ingest_run (kind, target, sha256)")
    op.execute("CREATE INDEX ingest_run_size_idx ON xpdb.ingest_run (kind, target, file_size)")
    op.execute("""
    CREATE TABLE xpdb.ingest_reject (
        run_id      integer NOT NULL REFERENCES xpdb.ingest_run ON DELETE CASCADE,
        row_number  bigint NOT NULL,
        source_id   bigint,
        column_name text,
        reason      text NOT NULL,
        value       text
    )""")
    op.execute("CREATE INDEX ingest_reject_run_idx ON xpdb.ingest_reject (run_id, row_number)")

    op.execute("""
    CREATE TABLE xpdb.gaia_source (
        source_id                bigint PRIMARY KEY,
        ra                       double precision NOT NULL,
        dec                      double precision NOT NULL,
        ra_error                 real,
        dec_error                real,
        l                        double precision,
        b                        double precision,
        parallax                 double precision,
        parallax_error           real,
        pmra                     double precision,
        pmra_error               real,
        pmdec                    double precision,
        pmdec_error              real,
        ruwe                     real,
        phot_g_mean_mag          real,
        phot_bp_mean_mag         real,
        phot_rp_mean_mag         real,
        bp_rp                    real,
        phot_bp_rp_excess_factor real,
        radial_velocity          real,
        ebv                      real,
        rgeo                     real,
        ingest_run_id            integer
    )""")
    op.execute("CREATE INDEX gaia_source_q3c_idx ON xpdb.gaia_source (q3c_ang2ipix(ra, dec))")
    op.execute("ALTER TABLE xpdb.gaia_source CLUSTER ON gaia_source_q3c_idx")
    for column, comment in {
        "source_id": "Unique source identifier (unique within a particular Data Release)",
        "ra": "Right ascension (ICRS, epoch 2016.0) [deg]",
        "dec": "Declination (ICRS, epoch 2016.0) [deg]",
        "l": "Galactic longitude [deg]",
        "b": "Galactic latitude [deg]",
        "parallax": "Parallax [mas]",
        "phot_g_mean_mag": "G-band mean magnitude (Vega) [mag]",
        "bp_rp": "BP - RP colour [mag]",
        "phot_bp_rp_excess_factor": "BP/RP excess factor",
        "ebv": "E(B-V) from the Schlegel, Finkbeiner & Davis (1998) map [mag]",
        "rgeo": "Geometric distance r_med_geo of Bailer-Jones et al. (2021) [pc]",
    }.items():
        op.execute(f"COMMENT ON COLUMN xpdb.gaia_source.{column} IS '{comment}'")

    op.execute("""
    CREATE TABLE xpdb.xp_band (
        source_id                bigint NOT NULL,
        band                     text NOT NULL CHECK (band IN ('bp', 'rp')),
        solution_id              bigint,
        basis_function_id        smallint,
        degrees_of_freedom       smallint,
        n_parameters             smallint NOT NULL,
        n_measurements           smallint,
        n_rejected_measurements  smallint,
        standard_deviation       real,
        chi_squared              real,
        coefficients             bytea NOT NULL,
        coefficient_errors       bytea NOT NULL,
        coefficient_correlations bytea,
        n_relevant_bases         smallint,
        relative_shrinking       real,
        ingest_run_id            integer,
        PRIMARY KEY (source_id, band)
    ) WITH (toast_tuple_target = 8160)""")
    for column in ("coefficients", "coefficient_errors", "coefficient_correlations"):
        op.execute(f"ALTER TABLE xpdb.xp_band ALTER COLUMN {column} SET STORAGE EXTERNAL")
    # ANALYZE samples 300 x the largest statistics target rows: 6.7 kB rows make the default
    # (30,000 rows, 200 MB) cost more than a load; the planner needs little on this table.
    for column in ("source_id", "band", "solution_id", "n_parameters", "ingest_run_id"):
        op.execute(f"ALTER TABLE xpdb.xp_band ALTER COLUMN {column} SET STATISTICS 10")
    for column in ("basis_function_id", "degrees_of_freedom", "n_measurements", "n_rejected_measurements",
                   "standard_deviation", "chi_squared", "coefficients", "coefficient_errors",
                   "coefficient_correlations", "n_relevant_bases", "relative_shrinking"):
        op.execute(f"ALTER TABLE xpdb.xp_band ALTER COLUMN {column} SET STATISTICS 0")
    op.execute("""COMMENT ON TABLE xpdb.xp_band IS
        'Gaia DR3 XP_CONTINUOUS, one row per source and band; arrays are bytea of little-endian floats: '
        'coefficients float64, errors and correlations float32 (xpdb.float8_array / xpdb.float4_array)'""")
    pivot = ",\n        ".join(f"{b}.{f} AS {b}_{f}" for b in ("bp", "rp") for f in XP_BAND_FIELDS)
    op.execute(f"""
    CREATE VIEW xpdb.xp_continuous AS
    SELECT coalesce(bp.source_id, rp.source_id) AS source_id,
           coalesce(bp.solution_id, rp.solution_id) AS solution_id,
        {pivot}
    FROM (SELECT * FROM xpdb.xp_band WHERE band = 'bp') AS bp
    FULL JOIN (SELECT * FROM xpdb.xp_band WHERE band = 'rp') AS rp ON rp.source_id = bp.source_id""")
    op.execute("COMMENT ON VIEW xpdb.xp_continuous IS 'XP_CONTINUOUS in the archive layout: one row per source'")

    op.execute("""
    CREATE TABLE xpdb.reference_catalog (
        name                text PRIMARY KEY,
        description         text,
        reference           text,
        match_radius_arcsec real NOT NULL DEFAULT 1.0,
        created_at          timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE xpdb.reference_label (
        label_id         bigserial PRIMARY KEY,
        catalog          text NOT NULL REFERENCES xpdb.reference_catalog ON DELETE CASCADE,
        source_id        bigint,
        ra               double precision,
        dec              double precision,
        feh              real,
        feh_err          real,
        teff             real,
        teff_err         real,
        logg             real,
        logg_err         real,
        original_id      text,
        match_sep_arcsec real,
        extra            jsonb,
        ingest_run_id    integer
    )""")
    op.execute("CREATE UNIQUE INDEX reference_label_source_idx ON xpdb.reference_label (catalog, source_id)")
    op.execute("CREATE INDEX reference_label_q3c_idx ON xpdb.reference_label (q3c_ang2ipix(ra, dec))")

    op.execute("""
    CREATE TABLE xpdb.cluster (
        name        text PRIMARY KEY,
        feh_ref     real,
        feh_ref_err real,
        reference   text,
        created_at  timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE xpdb.cluster_member (
        member_id              bigserial PRIMARY KEY,
        cluster                text NOT NULL REFERENCES xpdb.cluster ON DELETE CASCADE,
        source_id              bigint,
        ra                     double precision,
        dec                    double precision,
        membership_probability real,
        original_id            text,
        match_sep_arcsec       real,
        ingest_run_id          integer
    )""")
    op.execute("CREATE UNIQUE INDEX cluster_member_source_idx ON xpdb.cluster_member (cluster, source_id)")
    op.execute("CREATE INDEX cluster_member_q3c_idx ON xpdb.cluster_member (q3c_ang2ipix(ra, dec))")

    op.execute(frozen_sql(revision, "arrays.sql"))
    op.execute(frozen_sql(revision, "roles.sql"))


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS xpdb.float4_array(bytea), xpdb.float8_array(bytea)")
    op.execute("DROP VIEW IF EXISTS xpdb.xp_continuous")
    for table in ("cluster_member", "cluster", "reference_label", "reference_catalog", "xp_band",
                  "gaia_source", "ingest_reject", "ingest_run"):
        op.execute(f"DROP TABLE IF EXISTS xpdb.{table}")

