"""The FastAPI application, made by create_app from ready parts (no work at import time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.api.browser_guard import BrowserGuardMiddleware
from whisper_transcriber.api.errors import VALIDATION_ERROR_SCHEMA, install_error_handlers
from whisper_transcriber.api.events import EventHub
from whisper_transcriber.api.limits import BodyLimitMiddleware
from whisper_transcriber.api.methods import HeadMiddleware
from whisper_transcriber.api.routes import (
    compat,
    events,
    health,
    jobs,
    media,
    media_servers,
    models,
    openai,
    operations,
    options,
    status,
    transcripts,
    webhooks,
)
from whisper_transcriber.api.routes.docs import mount_docs
from whisper_transcriber.api.routes.ui import mount_dashboard
from whisper_transcriber.api.security import (
    OPEN_PATHS,
    UNAUTHORIZED,
    ApiKeyMiddleware,
    security_schemes,
)
from whisper_transcriber.db.changes import JobChanges


def create_app(context: ApiContext) -> FastAPI:
    hub = EventHub()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The change feed runs while the app serves: /events and requests awaiting their job.
        changes = JobChanges(context.store, hub.publish)
        context.store.add_wake_listener(changes.poke)
        changes.start()
        try:
            yield
        finally:
            context.store.remove_wake_listener(changes.poke)
            changes.stop()

    # /docs is ours (api/routes/docs.py): FastAPI's page and ReDoc's load their scripts from CDNs.
    app = FastAPI(
        title="whisper-transcriber",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.context = context
    app.state.events = hub
    app.include_router(health.router)
    app.include_router(operations.router)
    app.include_router(status.router)
    app.include_router(jobs.router)
    app.include_router(media.router)
    app.include_router(options.router)
    app.include_router(models.router)
    app.include_router(transcripts.router)
    app.include_router(events.router)
    app.include_router(compat.router)
    app.include_router(openai.router)
    app.include_router(webhooks.router)
    app.include_router(media_servers.router)
    mount_docs(app)
    mount_dashboard(app)
    install_error_handlers(app)
    # The last added runs first: the browser checks, the key, the body's size, then HEAD as GET.
    app.add_middleware(HeadMiddleware, router=app.router)
    app.add_middleware(BodyLimitMiddleware, max_upload_bytes=context.max_upload_bytes)
    if context.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=context.api_key)
    app.add_middleware(BrowserGuardMiddleware, policy=context.browser_policy)
    app.openapi = lambda: _openapi(app, keyed=bool(context.api_key))  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, *, keyed: bool) -> dict[str, Any]:
    """FastAPI's document, made true to what the app answers: validation errors in our shape
    (api/errors.py), and, with a key, which requests need it and their 401."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
            schemas.pop("ValidationError", None)
        if keyed:
            schema["components"]["securitySchemes"] = security_schemes()
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    if path in OPEN_PATHS:
                        operation["security"] = []
                    else:
                        operation.setdefault("responses", {})["401"] = UNAUTHORIZED
        app.openapi_schema = schema
    return app.openapi_schema
