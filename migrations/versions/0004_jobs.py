"""Jobs: batch jobs split into leased source_id ranges, and the predictions they write back.

Revision ID: 0004_jobs
Revises: 0003_models
Create Date: 2026-11-21
"""

from alembic import op

revision = "0004_jobs"
down_revision = "0003_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE xpdb.prediction (
        model_id   integer NOT NULL REFERENCES xpdb.model ON DELETE CASCADE,
        source_id  bigint NOT NULL,
        feh        real,
        feh_err    real,
        flags      integer NOT NULL DEFAULT 0,
        job_id     integer,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model_id, source_id)
    )""")
    for column, comment in {
        "feh": "[Fe/H] predicted by the model (UA-CSNet mean) [dex]",
        "feh_err": "Predicted uncertainty of FEH (UA-CSNet sigma) [dex]; recommended for G < 15 only",
        "flags": "bits: 1 outside 0.7<(BP-RP)0<1.9, 2 G>15, 4 E(B-V)>=0.5, 8 missing band, "
                 "16 features not computable, 32 fails the giant_sample cuts",
    }.items():
        op.execute(f"COMMENT ON COLUMN xpdb.prediction.{column} IS '{comment}'")
    op.execute("""
    CREATE TABLE xpdb.job (
        job_id       serial PRIMARY KEY,
        kind         text NOT NULL DEFAULT 'infer',
        model_id     integer REFERENCES xpdb.model ON DELETE CASCADE,
        selection    text NOT NULL,
        spec         jsonb NOT NULL DEFAULT '{}'::jsonb,
        batch_size   integer NOT NULL,
        max_attempts integer NOT NULL DEFAULT 3,
        lease_seconds integer NOT NULL DEFAULT 600,
        state        text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled')),
        n_sources    bigint NOT NULL DEFAULT 0,
        n_batches    integer NOT NULL DEFAULT 0,
        created_at   timestamptz NOT NULL DEFAULT now(),
        finished_at  timestamptz
    )""")
    op.execute("""
    CREATE TABLE xpdb.job_batch (
        batch_id        bigserial PRIMARY KEY,
        job_id          integer NOT NULL REFERENCES xpdb.job ON DELETE CASCADE,
        first_source_id bigint NOT NULL,
        last_source_id  bigint NOT NULL,
        n_sources       integer NOT NULL,
        state           text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled')),
        lease_owner     text,
        lease_expires   timestamptz,
        attempts        integer NOT NULL DEFAULT 0,
        error           text,
        n_predicted     integer,
        seconds         real,
        started_at      timestamptz,
        finished_at     timestamptz
    )""")
    op.execute("CREATE INDEX job_batch_state_idx ON xpdb.job_batch (job_id, state, batch_id)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS xpdb.job_batch, xpdb.job, xpdb.prediction")
