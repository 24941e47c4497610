"""inbox_scans: each inbox's latest scan, for /status on any instance

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_scans",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("observer", sa.String(length=16), nullable=False),
        sa.Column("poll_interval_s", sa.Float(), nullable=True),
        sa.Column("last_scan_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_scan_new", sa.Integer(), nullable=True),
        sa.Column("scanned_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_inbox_scans")),
    )


def downgrade() -> None:
    op.drop_table("inbox_scans")
