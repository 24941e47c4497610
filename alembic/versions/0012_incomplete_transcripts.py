"""Transcripts that lack something their job asked for (speaker labels that could not be made)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 11:30:00

Such a job ends done with its transcript and a note saying why; a request for the same work
then runs it again instead of being answered with it (an inbox's rescan does not).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "transcripts",
        sa.Column("incomplete", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # Jobs that ended so before: their note says it (worker/engine.py's wording).
    jobs = sa.table("jobs", sa.column("id"), sa.column("note"))
    transcripts = sa.table("transcripts", sa.column("job_id"), sa.column("incomplete"))
    op.execute(
        transcripts.update()
        .where(
            transcripts.c.job_id.in_(
                sa.select(jobs.c.id).where(jobs.c.note.like("no speaker labels:%"))
            )
        )
        .values(incomplete=sa.true())
    )


def downgrade() -> None:
    with op.batch_alter_table("transcripts") as batch:
        batch.drop_column("incomplete")
