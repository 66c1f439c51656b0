"""TAP service: UWS job tables and TAP_SCHEMA (views over pg_catalog).

Revision ID: 0006_tap
Revises: 0005_views
Create Date: 2026-11-22

``sql/tap.sql`` creates ``xpdb.uws_job``/``xpdb.uws_result`` (the asynchronous jobs of
``xpdb serve``, hidden from the read-only role) and the ``tap_schema`` views; the
units, UCDs and descriptions of well-known columns are copied here from
``xpdb.query.columns.COLUMNS`` (and again by the server at start-up).
"""

import sqlalchemy as sa
from alembic import op

from xpdb.db.migrate import resource_dir

revision = "0006_tap"
down_revision = "0005_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute((resource_dir("sql") / "tap.sql").read_text())
    from xpdb.query.columns import COLUMNS

    rows = [{"name": name, "unit": m.unit, "ucd": m.ucd, "description": m.description} for name, m in COLUMNS.items()]
    op.get_bind().execute(sa.text(
        "INSERT INTO tap_schema.column_meta (column_name, unit, ucd, description) "
        "VALUES (:name, :unit, :ucd, :description) ON CONFLICT (column_name) DO UPDATE "
        "SET unit = excluded.unit, ucd = excluded.ucd, description = excluded.description"), rows)


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS tap_schema CASCADE")
    op.execute("DROP TABLE IF EXISTS xpdb.uws_result, xpdb.uws_job")
    op.execute("COMMENT ON SCHEMA xpdb IS NULL")
