"""Models per job: the job's model where the claim can see it, and the models each worker holds

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 20:30:00

A job may name one of the configured models (its options' `model`); the claim prefers jobs for
a model the worker has loaded, through an index of its own. A worker's heartbeat says which
models it holds, for GET /models. Jobs recorded before name none: the default model.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("model", sa.String(length=100), nullable=True))
    op.create_index("ix_jobs_claim_model", "jobs", ["status", "model", "run_after", "id"])
    op.add_column("workers", sa.Column("models", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_index("ix_jobs_claim_model", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("model")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("models")
