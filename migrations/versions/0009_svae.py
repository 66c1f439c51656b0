"""The scatter VAE: per-model latents, fit statistics and anomaly scores; latent k-NN with cube + GiST.

Revision ID: 0009_svae
Revises: 0008_catalog
Create Date: 2026-11-28

``xpdb.svae_output`` (keyed by model_id, source_id) holds what the ``svae`` kind and its PCA
baseline (``xp_pca``) write; ``latent`` is a generated ``cube`` of z1..z6 with a GiST index
(with model_id, through ``btree_gist``) so that ``ORDER BY latent <-> ...`` finds nearest
neighbours in the index. ``xpdb.svae_similar`` (SQL) and the view ``xpdb.svae_neighbours``
(ADQL, which has no ``<->``) answer similarity searches; ``xpdb.xp_outliers`` ranks the
newest sVAE's spectra by anomaly score.
"""

from alembic import op

from xpdb.db.migrate import frozen_sql

revision = "0009_svae"
down_revision = "0008_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(frozen_sql(revision, "upgrade.sql"))


def downgrade() -> None:
    op.execute(frozen_sql(revision, "downgrade.sql"))
