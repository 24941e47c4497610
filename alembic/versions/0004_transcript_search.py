"""full-text search over transcript segments: FTS5 on SQLite, tsvector + GIN on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 14:10:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "transcript_segments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_transcript_segments_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcript_segments")),
    )
    op.create_index("ix_transcript_segments_job_id", "transcript_segments", ["job_id"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # 'simple': no stemming, so that every language is searched alike.
        op.execute(
            "ALTER TABLE transcript_segments ADD COLUMN search_vector tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED"
        )
        op.execute(
            "CREATE INDEX ix_transcript_segments_search_vector ON transcript_segments "
            "USING gin (search_vector)"
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE transcript_segments_fts USING fts5("
            "text, content='transcript_segments', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER transcript_segments_fts_insert AFTER INSERT ON transcript_segments "
            "BEGIN INSERT INTO transcript_segments_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER transcript_segments_fts_delete AFTER DELETE ON transcript_segments "
            "BEGIN INSERT INTO transcript_segments_fts(transcript_segments_fts, rowid, text) "
            "VALUES ('delete', old.id, old.text); END"
        )
    _index_existing_transcripts(bind)


def _index_existing_transcripts(bind: sa.Connection) -> None:
    transcripts = bind.execute(sa.text("SELECT job_id, segments FROM transcripts")).all()
    rows = []
    for job_id, segments in transcripts:
        for position, segment in enumerate(
            json.loads(segments) if isinstance(segments, str) else segments
        ):
            rows.append(
                {
                    "job_id": job_id,
                    "position": position,
                    "start": segment["start"],
                    "end": segment["end"],
                    "text": segment["text"].strip(),
                }
            )
    if rows:
        table = sa.table(
            "transcript_segments",
            sa.column("job_id"),
            sa.column("position"),
            sa.column("start"),
            sa.column("end"),
            sa.column("text"),
        )
        op.bulk_insert(table, rows)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS transcript_segments_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS transcript_segments_fts_insert")
        op.execute("DROP TABLE IF EXISTS transcript_segments_fts")
    op.drop_index("ix_transcript_segments_job_id", table_name="transcript_segments")
    op.drop_table("transcript_segments")
