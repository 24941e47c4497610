"""Webhooks: job events in an outbox, callbacks asked for by requests, deliveries and attempts

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 02:10:00

Each job change that webhooks may want writes a job_events row in its own transaction, so that
no event is lost with a crash and none is invented by a rolled-back change; the sender routes
events into webhook_deliveries, one per receiver, and sends them until delivered or given up.
Events and callbacks have no foreign key to their job: a job the retention forgets before its
events are routed still has them delivered.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("job_id", ID_TYPE, nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("job", sa.JSON(), nullable=False),
        sa.Column("callback_id", ID_TYPE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.create_table(
        "job_callbacks",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("job_id", ID_TYPE, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("transcript", sa.Boolean(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_callbacks"),
    )
    op.create_index("ix_job_callbacks_job_id", "job_callbacks", ["job_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("job_id", ID_TYPE, nullable=True),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("subscription", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("guarded", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resent_after", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("message_id", name="uq_webhook_deliveries_message_id"),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at", "id"]
    )
    op.create_index("ix_webhook_deliveries_job_id", "webhook_deliveries", ["job_id"])
    op.create_index("ix_webhook_deliveries_created_at", "webhook_deliveries", ["created_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("job_callbacks")
    op.drop_table("job_events")
