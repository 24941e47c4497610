"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from api.app_context import ApiContext


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]

# Job ids are 64-bit in the database: anything larger is a 422, never a driver overflow.
MAX_JOB_ID = 2**63 - 1
JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="A job's id")]
