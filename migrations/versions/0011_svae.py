"""The scatter VAE: per-model latents, fit statistics and anomaly scores; latent k-NN with cube + GiST.

Revision ID: 0011_svae
Revises: 0009_security
Create Date: 2026-11-28

``xpdb.svae_output`` (keyed by model_id, source_id) holds what the ``svae`` kind and its PCA
baseline (``xp_pca``) write; ``latent`` is a generated ``cube`` of z1..z6 with a GiST index
(with model_id, through ``btree_gist``) so that ``ORDER BY latent <-> ...`` finds nearest
neighbours in the index. ``xpdb.svae_similar`` (SQL) and the view ``xpdb.svae_neighbours``
(ADQL, which has no ``<->``) answer similarity searches; ``xpdb.xp_outliers`` ranks the
newest sVAE's spectra by anomaly score.

All three relations are public: readable by ``xpdb_reader`` (so TAP_SCHEMA lists them);
``xp_outliers`` reads the internal ``xpdb.model`` with its owner's rights and shows only
``model_id`` from it.
"""

from xpdb.db.migrate import frozen_steps

revision = "0011_svae"
down_revision = "0009_security"
branch_labels = None
depends_on = None

upgrade, downgrade = frozen_steps(revision)
