"""Every error is JSON with a readable `detail`; never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from whisper_transcriber.api.limits import ContentTooLarge
from whisper_transcriber.api.methods import allowed_methods
from whisper_transcriber.db.errors import DatabaseRefused, DatabaseUnavailable

log = logging.getLogger(__name__)

# What _invalid answers (422), for the OpenAPI document in place of FastAPI's default.
VALIDATION_ERROR_SCHEMA = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["detail", "errors"],
    "properties": {
        "detail": {"type": "string", "description": "Every problem, readable, on one line"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array", "items": {}}, "msg": {"type": "string"}},
            },
        },
    },
}


def _location(error: dict[str, object]) -> str:
    parts = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]  # type: ignore[attr-defined]
    return ".".join(parts) or "request"


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    readable = "; ".join(f"{_location(e)}: {e.get('msg', 'invalid')}" for e in errors)
    return JSONResponse(
        status_code=422,
        content={
            "detail": readable,
            "errors": [{"loc": e.get("loc"), "msg": e.get("msg")} for e in errors],
        },
    )


async def _database_away(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": f"database unavailable: {exc}"})


async def _database_refused(request: Request, exc: Exception) -> JSONResponse:
    """A statement the database refused: the same request would fail again, so no 503 (which
    asks clients to retry); one line in the log, the traceback only at DEBUG."""
    log.error(
        "%s %s: the database refused it: %s",
        request.method,
        request.url.path,
        exc,
        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
    )
    return JSONResponse(status_code=500, content={"detail": f"the database refused it: {exc}"})


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client closed its connection mid-request (an upload cut short, a body never sent, a
    synchronous request given up): one line; the answer goes nowhere."""
    said = f": {exc}" if str(exc) else ""
    log.info("%s %s: the client went away%s", request.method, request.url.path, said)
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500, content={"detail": f"internal error ({type(exc).__name__}); see the log"}
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    # Starlette names only the first matching route's methods; a path may have several routes.
    allowed = allowed_methods(request.app.router, request.scope)
    return JSONResponse(
        status_code=405,
        content={"detail": f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"},
        headers={"Allow": ", ".join(allowed)},
    )


async def _too_large(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=413, content={"detail": str(exc)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ContentTooLarge, _too_large)
    app.add_exception_handler(DatabaseUnavailable, _database_away)
    app.add_exception_handler(DatabaseRefused, _database_refused)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
