"""Renamed speakers in the published files: the names each job's files show, and whether they
are behind the names given since

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 11:00:00

A rename marks the transcript's files outdated; an instance that can reach them rewrites them
with the names (worker/renamed_files.py) and records the names they now show.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("transcripts", sa.Column("names_in_files", sa.JSON(), nullable=True))
    op.add_column(
        "transcripts",
        sa.Column("files_outdated", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index("ix_transcripts_files_outdated", "transcripts", ["files_outdated"])
    # Names given before this version are not in the files yet: the first pass writes them.
    transcripts = sa.table(
        "transcripts", sa.column("speaker_names", sa.JSON()), sa.column("files_outdated")
    )
    op.execute(
        transcripts.update()
        .where(transcripts.c.speaker_names.is_not(None))
        .values(files_outdated=sa.true())
    )


def downgrade() -> None:
    op.drop_index("ix_transcripts_files_outdated", table_name="transcripts")
    with op.batch_alter_table("transcripts") as batch:
        batch.drop_column("files_outdated")
        batch.drop_column("names_in_files")
