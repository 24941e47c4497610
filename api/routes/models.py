"""The models jobs may name (GET /models), and the check every route that takes a model makes."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from whisper_transcriber.api.app_context import ApiContext
from whisper_transcriber.api.deps import Context
from whisper_transcriber.api.schemas import ErrorOut, ModelOut
from whisper_transcriber.db.values import DEFAULT_MODEL_NAME, unknown_model

router = APIRouter(tags=["jobs"])


@router.get(
    "/models",
    responses={503: {"model": ErrorOut, "description": "The database is unavailable"}},
)
def models(context: Context) -> list[ModelOut]:
    """The default model and the models setting's, each with how many live workers (on every
    instance) hold it loaded now, as their last heartbeat said."""
    holding: dict[str, int] = {}
    for worker in context.worker_registry().workers():
        if worker.live:
            for name in worker.models:
                holding[name] = holding.get(name, 0) + 1
    named = {DEFAULT_MODEL_NAME: context.default_model, **context.models}
    return [
        ModelOut(
            name=name,
            model=choice.model,
            compute_type=choice.compute_type,
            default=name == DEFAULT_MODEL_NAME,
            loaded_by=holding.get(name, 0),
        )
        for name, choice in named.items()
    ]


def require_known_model(
    context: ApiContext, name: str | None, refusal: int = status.HTTP_400_BAD_REQUEST
) -> None:
    """An HTTP error (400: the request named it; 409: a job to run again that names a model the
    settings no longer have) for a model the settings do not name, listing those they do: no
    worker would take such a job."""
    problem = unknown_model(name, context.models)
    if problem is not None:
        raise HTTPException(refusal, problem)
