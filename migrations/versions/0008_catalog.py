"""The catalogue view follows the newest UA-CSNet model with predictions (not any newest model).

Revision ID: 0008_catalog
Revises: 0007_real_stars
Create Date: 2026-11-27
"""

from xpdb.db.migrate import frozen_steps

revision = "0008_catalog"
down_revision = "0007_real_stars"
branch_labels = None
depends_on = None

upgrade, downgrade = frozen_steps(revision)
