"""The FastAPI application, made by create_app from ready parts (no work at import time)."""

from __future__ import annotations

from fastapi import FastAPI

from api.app_context import ApiContext
from api.routes import health, jobs


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(title="whisper-transcriber", version="0.1.0")
    app.state.context = context
    app.include_router(health.router)
    app.include_router(jobs.router)
    return app
