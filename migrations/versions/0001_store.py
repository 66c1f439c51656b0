"""Store: Gaia sources, XP_CONTINUOUS spectra, reference labels, cluster members, ingest runs.

Revision ID: 0001_store
Revises:
Create Date: 2026-11-21

Layout choices (see DESIGN.md, "Storage"):
- XP coefficient arrays are ``bytea`` holding little-endian IEEE floats at the archive's
  own precision (coefficients float64, errors and correlations float32) with
  ``STORAGE EXTERNAL`` (no compression, out of line): about 5x faster to COPY than
  ``real[]`` with correlations, and read back bit-exactly. Array lengths are free, so
  DR4's 51 BP coefficients need no change. ``xpdb.float4_array``/``float8_array`` decode
  them in SQL for ad-hoc use.
- Every table with positions has a q3c index on ``q3c_ang2ipix(ra, dec)``.
- Rows carry ``ingest_run_id`` so a failed chunked load can be removed exactly.
"""

from alembic import op

revision = "0001_store"
down_revision = None
branch_labels = None
depends_on = None

XP_BAND_COLUMNS = """
    {b}_basis_function_id smallint,
    {b}_degrees_of_freedom smallint,
    {b}_n_parameters smallint,
    {b}_n_measurements smallint,
    {b}_n_rejected_measurements smallint,
    {b}_standard_deviation real,
    {b}_chi_squared real,
    {b}_coefficients bytea,
    {b}_coefficient_errors bytea,
    {b}_coefficient_correlations bytea,
    {b}_n_relevant_bases smallint,
    {b}_relative_shrinking real,
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS q3c")
    op.execute("CREATE SCHEMA IF NOT EXISTS xpdb")

    op.execute("""
    CREATE TABLE xpdb.ingest_run (
        run_id        serial PRIMARY KEY,
        kind          text NOT NULL CHECK (kind IN ('xp', 'sources', 'labels', 'members')),
        target        text NOT NULL DEFAULT '',
        path          text NOT NULL,
        sha256        text NOT NULL,
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

    bands = "".join(XP_BAND_COLUMNS.format(b=b) for b in ("bp", "rp"))
    op.execute(f"""
    CREATE TABLE xpdb.xp_continuous (
        source_id   bigint PRIMARY KEY,
        solution_id bigint,
        {bands}
        ingest_run_id integer
    )""")
    for b in ("bp", "rp"):
        for suffix in ("coefficients", "coefficient_errors", "coefficient_correlations"):
            op.execute(f"ALTER TABLE xpdb.xp_continuous ALTER COLUMN {b}_{suffix} SET STORAGE EXTERNAL")
    op.execute("""COMMENT ON TABLE xpdb.xp_continuous IS
        'Gaia DR3 XP_CONTINUOUS; arrays are bytea of little-endian floats: coefficients float64, '
        'errors and correlations float32 (decode with xpdb.float8_array / xpdb.float4_array)'""")

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

    op.execute(open_sql("arrays.sql"))
    op.execute(open_sql("roles.sql"))


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS xpdb.float4_array(bytea), xpdb.float8_array(bytea)")
    for table in ("cluster_member", "cluster", "reference_label", "reference_catalog", "xp_continuous",
                  "gaia_source", "ingest_reject", "ingest_run"):
        op.execute(f"DROP TABLE IF EXISTS xpdb.{table}")


def open_sql(name: str) -> str:
    from xpdb.db.migrate import resource_dir

    return (resource_dir("sql") / name).read_text()
