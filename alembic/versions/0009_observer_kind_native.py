"""inbox_scans.observer says native, as the setting does, where it said inotify

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:00:00

One name for an observer kind (db.values.ObserverKind): the observer setting, the rows, GET
/status and the dashboard all say native or polling.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMED = ("inotify", "native")  # old spelling, new spelling


def _rename(old: str, new: str) -> None:
    op.execute(
        sa.text("UPDATE inbox_scans SET observer = :new WHERE observer = :old").bindparams(
            old=old, new=new
        )
    )


def upgrade() -> None:
    _rename(*RENAMED)


def downgrade() -> None:
    _rename(*reversed(RENAMED))
