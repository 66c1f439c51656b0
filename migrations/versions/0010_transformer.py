"""Stellar labels from the transformer foundation model: ``label_prediction`` and the catalogue's new columns.

Revision ID: 0010_transformer
Revises: 0008_catalog
Create Date: 2026-11-27

``xpdb.label_prediction`` holds Teff, logg, [M/H] and [alpha/M] with errors per (model, source)
from the ``transformer`` kind (and its tree baseline ``label_xgboost``); the catalogue view
gains those columns from the newest transformer model with predictions, and the view
``transformer_catalog`` lists that model's predictions for every star (dwarfs included).
The downgrade restores the 0008 catalogue exactly.
"""

from alembic import op

from xpdb.db.migrate import frozen_sql

revision = "0010_transformer"
down_revision = "0008_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(frozen_sql(revision, "upgrade.sql"))


def downgrade() -> None:
    op.execute(frozen_sql(revision, "downgrade.sql"))
