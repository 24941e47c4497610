"""Full-text search over the transcript history."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query

from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.schemas import SearchHitOut, SearchPage
from whisper_transcriber.db.speaker_names import SpeakerNames

router = APIRouter(tags=["transcripts"])


@router.get("/transcripts/search")
def search(
    context: Context,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to find")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchPage:
    """Segments whose text has every word of q, best first: the job, the segment's time in the
    audio, and a snippet (HTML-escaped, matches in <mark>)."""
    hits = context.store.search(q, limit, offset)
    job_ids = sorted({h.job_id for h in hits})
    jobs = {job.id: job for job in context.store.get_many(job_ids)}
    names = SpeakerNames(context.store).of(job_ids) if any(h.speaker for h in hits) else {}
    return SearchPage(
        items=[
            SearchHitOut(
                job_id=hit.job_id,
                source_path=jobs[hit.job_id].source_path,
                start=hit.start,
                end=hit.end,
                snippet=marked(hit.snippet, hit.matches),
                rank=hit.rank,
                speaker=names.get(hit.job_id, {}).get(hit.speaker, hit.speaker)
                if hit.speaker
                else None,
                links={
                    "job": f"/jobs/{hit.job_id}",
                    "transcript": f"/jobs/{hit.job_id}/transcript?format=json",
                },
            )
            for hit in hits
            if hit.job_id in jobs
        ]
    )


def marked(snippet: str, matches: Sequence[tuple[int, int]]) -> str:
    """HTML-safe text with the matches (ordered, apart: db/transcript_search.py) in
    <mark>...</mark>: the transcript's words are text, never markup."""
    parts = []
    at = 0
    for start, end in matches:
        parts += [html.escape(snippet[at:start], quote=False), "<mark>"]
        parts += [html.escape(snippet[start:end], quote=False), "</mark>"]
        at = end
    parts.append(html.escape(snippet[at:], quote=False))
    return "".join(parts)
