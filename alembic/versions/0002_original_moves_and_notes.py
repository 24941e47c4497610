"""moves of originals after a job ends, and notes on skipped jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("move_on_done", "move_on_failure", "original_moved_to", "note")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
