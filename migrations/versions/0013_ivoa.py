"""IVOA conformance (issue 19): TAP_SCHEMA columns whose names ADQL reserves are delimited, std flags.

Revision ID: 0013_ivoa
Revises: 0012_transformer
Create Date: 2026-11-27

``tap_schema.columns`` publishes ``"size"``, ``"catalog"``, ``"value"``... delimited (the
function ``tap_schema.adql_name``), as ADQL requires them to be written, and marks the
columns of TAP_SCHEMA itself ``std = 1`` (TAP 1.1 section 4). STILTS taplint counted both as
errors.
"""

from xpdb.db.migrate import frozen_steps

revision = "0013_ivoa"
down_revision = "0012_transformer"
branch_labels = None
depends_on = None

upgrade, downgrade = frozen_steps(revision)
