"""Models: the registry of trained models (hyperparameters, metrics, the artifact itself).

Revision ID: 0003_models
Revises: 0002_features
Create Date: 2026-11-21
"""

from alembic import op

revision = "0003_models"
down_revision = "0002_features"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE xpdb.model (
        model_id          serial PRIMARY KEY,
        kind              text NOT NULL,
        name              text NOT NULL,
        version           integer NOT NULL,
        hyperparameters   jsonb NOT NULL,
        preprocessing_id  smallint REFERENCES xpdb.preprocessing,
        training_catalog  text,
        test_catalog      text,
        training_set_hash text,
        n_train           integer,
        metrics           jsonb,
        artifact          bytea NOT NULL,
        artifact_format   text NOT NULL DEFAULT 'keras',
        package_version   text,
        device            text,
        created_at        timestamptz NOT NULL DEFAULT now(),
        UNIQUE (name, version)
    )""")
    op.execute("COMMENT ON TABLE xpdb.model IS 'Trained models: kind (uacsnet, ...), versioned by name; "
               "artifact holds the saved model (.keras bytes)'")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS xpdb.model")
