"""The catalogue view follows the newest UA-CSNet model with predictions (not any newest model).

Revision ID: 0008_catalog
Revises: 0007_real_stars
Create Date: 2026-11-27
"""

from alembic import op

from xpdb.db.migrate import frozen_sql

revision = "0008_catalog"
down_revision = "0007_real_stars"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(frozen_sql(revision, "upgrade.sql"))


def downgrade() -> None:
    op.execute(frozen_sql(revision, "downgrade.sql"))
