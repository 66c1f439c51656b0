"""Spectra: preprocessing versions, the 60-pixel features, dereddened photometry and the sample selection.

Revision ID: 0002_features
Revises: 0001_store
Create Date: 2026-11-21
"""

from alembic import op

from xpdb.db.migrate import frozen_sql

revision = "0002_features"
down_revision = "0001_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE xpdb.preprocessing (
        preprocessing_id smallserial PRIMARY KEY,
        version          text NOT NULL UNIQUE,
        created_at       timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE xpdb.xp_features (
        preprocessing_id smallint NOT NULL REFERENCES xpdb.preprocessing ON DELETE CASCADE,
        source_id        bigint NOT NULL,
        flux             bytea,
        flux_error       bytea,
        flags            integer NOT NULL DEFAULT 0,
        computed_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (preprocessing_id, source_id)
    )""")
    op.execute("""COMMENT ON TABLE xpdb.xp_features IS
        'UA-CSNet input: 60-pixel dereddened XP flux normalised near 5500 A and its error, float32 bytea; '
        'NULL when flags say the features cannot be computed'""")
    op.execute(frozen_sql(revision, "selection.sql"))
    op.execute("GRANT SELECT ON ALL TABLES IN SCHEMA xpdb TO xpdb_reader") if _reader_exists() else None


def _reader_exists() -> bool:
    return bool(op.get_bind().exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = 'xpdb_reader'").first())


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS xpdb.model_domain, xpdb.final_sample, xpdb.giant_sample, xpdb.source_photometry")
    op.execute("DROP FUNCTION IF EXISTS xpdb.abs_g(real, real, real, double precision), "
               "xpdb.distance_pc(real, double precision), xpdb.g0(real, real), xpdb.bp_rp0(real, real)")
    op.execute("DROP TABLE IF EXISTS xpdb.xp_features, xpdb.preprocessing")
