"""Dependencies shared by the routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Request
from pydantic import AfterValidator, AwareDatetime

from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.db.models import MAX_JOB_ID


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]

# Job ids are 64-bit in the database: anything larger is a 422, never a driver overflow.
JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="A job's id")]


def _in_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range: in UTC it falls outside the years 1 to 9999") from None


# A moment with its offset (2026-01-31T12:00:00Z, ...T13:00:00+01:00), as UTC: a naive one
# (whose zone the service would have to guess) or one past the calendar in UTC is a 422.
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]
