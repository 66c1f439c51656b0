"""Stellar labels from the transformer foundation model: ``label_prediction`` and the catalogue's new columns.

Revision ID: 0012_transformer
Revises: 0011_svae
Create Date: 2026-11-27

``xpdb.label_prediction`` holds Teff, logg, [M/H] and [alpha/M] with errors per (model, source)
from the ``transformer`` kind (and its tree baseline ``label_xgboost``); the catalogue view
gains those columns from the newest transformer model with predictions, and the view
``transformer_catalog`` lists that model's predictions for every star (dwarfs included).
All three are public: ``xpdb_reader`` may read them (they join the internal ``xpdb.model``
as the views' owner). The downgrade restores the 0008 catalogue exactly.
"""

from xpdb.db.migrate import frozen_steps

revision = "0012_transformer"
down_revision = "0011_svae"
branch_labels = None
depends_on = None

upgrade, downgrade = frozen_steps(revision)
