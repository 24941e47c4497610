"""Liveness."""

from __future__ import annotations

from fastapi import APIRouter

from api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/health")
def health() -> Health:
    """The process is up and answering."""
    return Health()
