"""TAP service: UWS job tables and TAP_SCHEMA (views over pg_catalog).

Revision ID: 0006_tap
Revises: 0005_views
Create Date: 2026-11-22

``tap.sql`` creates ``xpdb.uws_job``/``xpdb.uws_result`` (the asynchronous jobs of
``xpdb serve``, hidden from the read-only role) and the ``tap_schema`` views;
``column_meta.sql`` holds the units, UCDs and descriptions of well-known columns as
``xpdb.query.columns.COLUMNS`` had them then (the server refreshes them at start-up).
"""

from alembic import op

from xpdb.db.migrate import frozen_sql

revision = "0006_tap"
down_revision = "0005_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(frozen_sql(revision, "tap.sql"))
    op.execute(frozen_sql(revision, "column_meta.sql"))


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS tap_schema CASCADE")
    op.execute("DROP TABLE IF EXISTS xpdb.uws_result, xpdb.uws_job")
    op.execute("COMMENT ON SCHEMA xpdb IS NULL")
