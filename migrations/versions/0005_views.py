"""Queries: residual statistics, the Table 2 catalogue, cross-match and validation views.

Revision ID: 0005_views
Revises: 0004_jobs
Create Date: 2026-11-21
"""

from alembic import op

from xpdb.db.migrate import frozen_sql

revision = "0005_views"
down_revision = "0004_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(frozen_sql(revision, "statistics.sql"))
    op.execute(frozen_sql(revision, "views.sql"))
    op.execute("SELECT xpdb.refresh_xm_views()")
    op.execute(frozen_sql("0001_store", "roles.sql"))  # the same grants again, for the new views


def downgrade() -> None:
    op.execute("""DO $$ DECLARE v text; BEGIN
        FOR v IN SELECT viewname FROM pg_views WHERE schemaname = 'xpdb' AND viewname LIKE 'xm\\_%'
                 AND viewname NOT IN ('xm_reference', 'xm_cluster_members') LOOP
            EXECUTE format('DROP VIEW xpdb.%I', v);
        END LOOP; END $$""")
    op.execute("DROP VIEW IF EXISTS xpdb.cluster_summary, xpdb.validation_summary, xpdb.xm_cluster_members, "
               "xpdb.xm_reference, xpdb.catalog, xpdb.catalog_all")
    op.execute("DROP FUNCTION IF EXISTS xpdb.refresh_xm_views(), xpdb.xm_view_name(text), "
               "xpdb.clipped_stats(double precision[], double precision), xpdb.gaussian_fit(double precision[])")
    op.execute("DROP TYPE IF EXISTS xpdb.clipped_stats, xpdb.residual_stats")
