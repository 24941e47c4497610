"""Speaker labels: each searchable segment's speaker, and each transcript's names for its speakers

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00

Segments of a job that asked for speakers (diarize) carry a label, "Speaker 1", ...: in the
transcript's segments JSON, and here in transcript_segments so that a search hit says who spoke.
transcripts.speaker_names maps labels to the names people gave them (renamed per job).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("transcript_segments", sa.Column("speaker", sa.String(100), nullable=True))
    op.add_column("transcripts", sa.Column("speaker_names", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transcripts") as batch:
        batch.drop_column("speaker_names")
    with op.batch_alter_table("transcript_segments") as batch:
        batch.drop_column("speaker")
