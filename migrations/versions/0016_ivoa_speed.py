"""Faster "newest model with outputs" in xpdb.catalog, transformer_catalog and xp_outliers.

Revision ID: 0016_ivoa_speed
Revises: 0015_validation
Create Date: 2026-11-27

The views chose their model with ``EXISTS (SELECT 1 FROM outputs WHERE model_id = m.model_id)``,
which PostgreSQL plans as a semi-join hashing every output row: 0.1-0.2 s per TAP query on
``xpdb.catalog`` with 200,000 predictions (bench/serve.py). ``OFFSET 0`` in the EXISTS keeps
it a subplan that stops at the first row. Columns, rows, grants and comments are unchanged.

Also ``xpdb.uws_upload``: the tables a TAP asynchronous job uploads, kept until it runs.
"""

from xpdb.db.migrate import frozen_steps

revision = "0016_ivoa_speed"
down_revision = "0015_validation"
branch_labels = None
depends_on = None

upgrade, downgrade = frozen_steps(revision)
