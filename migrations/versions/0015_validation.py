"""Validation as the paper does it: per-catalogue validation selections, cluster samples and published values.

Revision ID: 0015_validation
Revises: 0014_adql_radius
Create Date: 2026-11-28

``reference_catalog.validation_selection`` says which stars of a catalogue the validation uses
(set by name on insert); ``xm_validation`` marks them and ``validation_summary`` gives both the
G < 15 and the all-G scopes with the cuts applied. ``cluster`` gains the membership selection,
colour and probability cuts; ``xm_cluster_sample`` marks the members that count and
``cluster_summary`` fits a Gaussian with 3-sigma clipping (``xpdb.clipped_gaussian_fit``) and
shows the published value (``cluster_value``, ``xpdb ingest cluster-values``) beside it. The
rendered SQL (rendered.sql) comes from ``xpdb.validation``.

Every relation it adds is public: ``xm_validation``, ``validation_summary``, ``xm_cluster_sample``,
``cluster_summary`` and ``cluster_value`` are granted to ``xpdb_reader`` (and so listed in
TAP_SCHEMA, which shows what the reader may read); none is internal (``xpdb.db.security``).
"""

from alembic import op

from xpdb.db.migrate import frozen_sql

revision = "0015_validation"
down_revision = "0014_adql_radius"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(frozen_sql(revision, "schema.sql"))
    op.execute(frozen_sql(revision, "rendered.sql"))
    op.execute(frozen_sql(revision, "views.sql"))


def downgrade() -> None:
    op.execute(frozen_sql(revision, "downgrade.sql"))
