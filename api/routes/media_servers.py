"""Notifications from Jellyfin, Plex and Emby (POST /media-servers/{name}): a new item, or one
that starts playing without a subtitle, becomes a job (service/media_servers/hook.py).

Plex can send nothing but a URL, so a media server may be given a token of its own, which its
webhook URL carries as ?token=; without one the request needs the API key as any other does.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.limits import is_form
from whisper_transcriber.api.schemas import ErrorOut, JobOut
from whisper_transcriber.api.security import presented_key

router = APIRouter(tags=["media servers"])

# The form field that holds the JSON: Plex's webhooks, Emby's (older) webhooks plugin.
PAYLOAD_FIELDS = ("payload", "data")
ServerName = Annotated[str, Path(max_length=100, description="A name of the media_servers setting")]


@router.post(
    "/media-servers/{name}",
    responses={
        200: {"description": "Nothing to do, or the item's file already has this job"},
        202: {"description": "A job was recorded for the item's file"},
        400: {"model": ErrorOut, "description": "Not a notification this server sends"},
        401: {"model": ErrorOut, "description": "No token or API key, or a wrong one"},
        403: {"model": ErrorOut, "description": "The file is in no inbox"},
        404: {"model": ErrorOut, "description": "No media server of this name"},
        422: {"model": ErrorOut, "description": "A file no inbox takes, or outside path_map"},
        502: {"model": ErrorOut, "description": "The media server could not name the file"},
    },
)
async def media_server_notification(
    name: ServerName,
    request: Request,
    context: Context,
    token: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    """A Jellyfin (webhook plugin, Generic destination, "Send All Properties"), Plex (webhooks)
    or Emby (webhooks) notification; docs/guides/automation.md sets each up."""
    hook = context.media_servers.get(name)
    if hook is None:  # said only to a caller with the key: the names are not for guessing
        _check_caller(request, context.api_key, None, None)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no media server is named {name!r}")
    _check_caller(request, context.api_key, hook.token, token)
    payload = await _payload(request)
    answer = await run_in_threadpool(hook.handle, payload)
    body: dict[str, Any] = {"detail": answer.detail}
    if answer.job is not None:
        body["job"] = JobOut.from_record(answer.job).model_dump(mode="json")
    return JSONResponse(body, status_code=answer.status)


def _check_caller(
    request: Request, api_key: str | None, server_token: str | None, given: str | None
) -> None:
    """The server's token in the URL, or else the API key (this route is left open by the API
    key's middleware, api/security.py, for the token's sake)."""
    if server_token is not None:
        if given is not None and hmac.compare_digest(given.encode(), server_token.encode()):
            return
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "the token is missing or wrong")
    if api_key is None:
        return
    key = presented_key(dict(request.scope["headers"]))
    if key is None or not hmac.compare_digest(key.encode(), api_key.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API key is required (or give this media server a token)",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _payload(request: Request) -> dict[str, Any]:
    """The notification's JSON: the body, or the form field that holds it."""
    content_type = request.headers.get("content-type", "")
    try:
        if is_form(content_type) or content_type.startswith("application/x-www-form-urlencoded"):
            async with request.form(max_files=2, max_fields=20) as form:
                field = next((form[f] for f in PAYLOAD_FIELDS if f in form), None)
                if field is None or isinstance(field, UploadFile):
                    raise HTTPException(
                        status.HTTP_400_BAD_REQUEST,
                        "a form notification carries its JSON in a payload or data field",
                    )
                loaded = json.loads(field)
        else:
            loaded = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        detail = f"the notification is not JSON: {exc}"
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail) from None
    if not isinstance(loaded, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the notification is not a JSON object")
    return loaded
