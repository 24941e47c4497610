"""PostgreSQL: every change of a job row is announced on a channel (the change feed's wake-up)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 17:00:00

The change feed (db/changes.py) behind /events and the requests that wait for their job read the
jobs table when this channel speaks, and only slowly otherwise. A trigger rather than a NOTIFY in
each writing statement: whatever writes a job (any version of the service, any machine, a hand
UPDATE) is heard. Row-level, so that an UPDATE matching no row (an idle worker's claim) is silent;
PostgreSQL sends one notification per transaction however many rows it changed (identical ones
fold). SQLite has no channel: its feed watches the database file instead.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Also in db/announcements.py (CHANGES_CHANNEL); a migration keeps its own copy, as it must not
# change when the code does.
CHANNEL = "whisper_transcriber_job_changes"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION whisper_transcriber_job_changed() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; "
        "END $$"
    )
    op.execute(
        "CREATE TRIGGER jobs_changed AFTER INSERT OR UPDATE ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION whisper_transcriber_job_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER jobs_changed ON jobs")
    op.execute("DROP FUNCTION whisper_transcriber_job_changed()")
