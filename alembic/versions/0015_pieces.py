"""Long files split across workers: a piece is a job of its own, pointing at its parent

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 23:20:00

A file longer than the split_after_s setting is cut at silences into pieces that any worker may
claim (worker/split_files.py); the parent joins their transcripts. Pieces go with their parent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", ID_TYPE, nullable=True))
        batch.create_foreign_key(
            "fk_jobs_parent_id_jobs", "jobs", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_jobs_parent_id", ["parent_id"])


def downgrade() -> None:
    # Pieces are work in progress of their parents, which run again whole after a downgrade.
    # SQLite runs migrations without foreign keys: their transcripts go by hand, first.
    pieces = "SELECT id FROM jobs WHERE parent_id IS NOT NULL"
    op.execute(f"DELETE FROM transcript_segments WHERE job_id IN ({pieces})")
    op.execute(f"DELETE FROM transcripts WHERE job_id IN ({pieces})")
    op.execute("DELETE FROM jobs WHERE parent_id IS NOT NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_parent_id")
        batch.drop_constraint("fk_jobs_parent_id_jobs", type_="foreignkey")
        batch.drop_column("parent_id")
