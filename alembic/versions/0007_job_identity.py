"""job identity: inode, ctime and a fingerprint of the source, the options, one key per work;
when the retention removed an upload

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 22:30:00

Jobs recorded before keep inode and ctime unknown (-1), which any inode and ctime match, so an
upgrade queues nothing again; the newest job of each (path, size, mtime, options) holds its key.
The keys are computed with db.identity as it is at this revision.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from whisper_transcriber.db.identity import UNKNOWN, FileVersion, file_work_key, options_key
from whisper_transcriber.db.values import stored_options

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_version_constraint() -> bool:
    constraints = sa.inspect(op.get_bind()).get_unique_constraints("jobs")
    return any(c["name"] == "uq_jobs_source" for c in constraints)


def upgrade() -> None:
    had_version_constraint = _has_version_constraint()
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source_inode", sa.BigInteger(), server_default="-1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("source_ctime_ns", sa.BigInteger(), server_default="-1", nullable=False)
        )
        batch_op.add_column(sa.Column("source_fingerprint", sa.String(length=80), nullable=True))
        batch_op.add_column(
            sa.Column("options_key", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("source_removed_at", sa.DateTime(timezone=True), nullable=True)
        )
        if had_version_constraint:  # not after a downgrade that could not put it back
            batch_op.drop_constraint("uq_jobs_source", type_="unique")
        batch_op.create_index("ix_jobs_source_path", ["source_path"], unique=False)
        batch_op.create_index("ix_jobs_source_fingerprint", ["source_fingerprint"], unique=False)
    _key_existing_jobs()
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_jobs_dedupe_key", ["dedupe_key"])


def _key_existing_jobs() -> None:
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.BigInteger()),
        sa.column("source_path", sa.Text()),
        sa.column("source_size", sa.BigInteger()),
        sa.column("source_mtime_ns", sa.BigInteger()),
        sa.column("options", sa.JSON()),
        sa.column("options_key", sa.String()),
        sa.column("dedupe_key", sa.String()),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            jobs.c.id,
            jobs.c.source_path,
            jobs.c.source_size,
            jobs.c.source_mtime_ns,
            jobs.c.options,
        ).order_by(jobs.c.id.desc())
    )
    taken: set[str] = set()
    updates: list[dict[str, Any]] = []
    for job_id, path, size, mtime_ns, options in rows:
        key_of_options = options_key(stored_options(options))
        version = FileVersion(path, size, mtime_ns, UNKNOWN, UNKNOWN)
        key = file_work_key(version, key_of_options)
        # An older job of the same work holds no key: the newest does.
        holder = None if key in taken else key
        taken.add(key)
        updates.append({"job_id": job_id, "options_key": key_of_options, "dedupe_key": holder})
    if updates:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == sa.bindparam("job_id"))
            .values(options_key=sa.bindparam("options_key"), dedupe_key=sa.bindparam("dedupe_key")),
            updates,
        )


def downgrade() -> None:
    # The old rule (one job per path, size and mtime) comes back only where it holds: other options
    # and forced runs may have made several jobs of one version since.
    conn = op.get_bind()
    shared = conn.execute(
        sa.text(
            "SELECT 1 FROM jobs GROUP BY source_path, source_size, source_mtime_ns "
            "HAVING count(*) > 1 LIMIT 1"
        )
    ).first()
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_jobs_dedupe_key", type_="unique")
        batch_op.drop_index("ix_jobs_source_fingerprint")
        batch_op.drop_index("ix_jobs_source_path")
        for name in (
            "source_removed_at",
            "dedupe_key",
            "options_key",
            "source_fingerprint",
            "source_ctime_ns",
            "source_inode",
        ):
            batch_op.drop_column(name)
        if shared is None:
            batch_op.create_unique_constraint(
                "uq_jobs_source", ["source_path", "source_size", "source_mtime_ns"]
            )
