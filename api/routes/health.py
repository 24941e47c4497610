"""Liveness."""

from __future__ import annotations

from fastapi import APIRouter

from whisper_transcriber.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/health")
def health() -> Health:
    """The process is up and answering."""
    return Health()
