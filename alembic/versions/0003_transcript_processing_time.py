"""seconds each transcript took to make, for the real-time factor

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transcripts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("processing_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transcripts", schema=None) as batch_op:
        batch_op.drop_column("processing_s")
