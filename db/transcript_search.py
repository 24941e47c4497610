"""Full-text search of transcript segments: the SQL of SQLite's FTS5 and of PostgreSQL's tsvector.

Hits come back as plain text with the offsets of the matched words; turning them into markup (and
escaping the text) is the API's.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import Connection, text

from whisper_transcriber.db.values import SearchHit

# Marks that the engines put around matched words in a snippet: private-use characters, which
# speech never produces; they are taken out again here (_plain).
MATCH_START, MATCH_END = "\ue000", "\ue001"
_MARKS = re.compile(f"([{MATCH_START}{MATCH_END}])")
SNIPPET_WORDS = 16

_POSTGRESQL = text(
    'SELECT s.job_id, s.start, s."end", s.speaker, '
    "ts_headline('simple', s.text, q, :options) AS snippet, "
    "ts_rank(s.search_vector, q) AS rank "
    "FROM transcript_segments s, plainto_tsquery('simple', :query) q "
    "WHERE s.search_vector @@ q "
    "ORDER BY rank DESC, s.job_id DESC, s.position LIMIT :limit OFFSET :offset"
)
_SQLITE = text(
    'SELECT s.job_id, s.start, s."end", s.speaker, '
    "snippet(transcript_segments_fts, 0, :mark_start, :mark_end, '…', :words) "
    "AS snippet, -bm25(transcript_segments_fts) AS rank "
    "FROM transcript_segments_fts JOIN transcript_segments s "
    "ON s.id = transcript_segments_fts.rowid "
    "WHERE transcript_segments_fts MATCH :query "
    "ORDER BY rank DESC, s.job_id DESC, s.position LIMIT :limit OFFSET :offset"
)


def search_segments(conn: Connection, query: str, limit: int, offset: int) -> list[SearchHit]:
    """Transcript segments matching every word of the query, best first, each with a snippet
    and where its matches lie. FTS5 on SQLite, a tsvector and its GIN index on PostgreSQL."""
    # Control characters (NUL above all) mean nothing in speech and break both engines' parsers.
    query = "".join(" " if unicodedata.category(c) == "Cc" else c for c in query)
    words = query.split()
    if not words:
        return []
    params: dict[str, object]
    if conn.dialect.name == "postgresql":
        statement = _POSTGRESQL
        options = f"StartSel={MATCH_START}, StopSel={MATCH_END}, MaxWords={SNIPPET_WORDS}"
        params = {"query": query, "options": options}
    else:
        statement = _SQLITE
        # Every word as a quoted phrase: the user's text is never FTS5 syntax.
        quoted = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        params = {
            "query": quoted,
            "mark_start": MATCH_START,
            "mark_end": MATCH_END,
            "words": SNIPPET_WORDS,
        }
    rows = conn.execute(statement, {**params, "limit": limit, "offset": offset}).all()
    hits = []
    for row in rows:
        snippet, matches = _plain(row.snippet)
        hits.append(
            SearchHit(
                job_id=row.job_id,
                start=row.start,
                end=row.end,
                snippet=snippet,
                matches=matches,
                rank=row.rank,
                speaker=row.speaker,
            )
        )
    return hits


def _plain(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The snippet without its marks, and the (start, end) offsets of what they enclosed, in
    order and apart. A mark left open closes at the end; a close without an open is dropped."""
    pieces: list[str] = []
    matches: list[tuple[int, int]] = []
    length = 0
    opened: int | None = None
    for piece in _MARKS.split(marked):
        if piece == MATCH_START:
            opened = length if opened is None else opened
        elif piece == MATCH_END:
            if opened is not None:
                matches.append((opened, length))
                opened = None
        else:
            pieces.append(piece)
            length += len(piece)
    if opened is not None:
        matches.append((opened, length))
    return "".join(pieces), tuple(matches)
