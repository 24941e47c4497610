"""The dashboard: a static page at / and its assets under /ui/, shipped inside the package.

The page holds no data of its own: it reads everything through the public JSON API and /events
(with the API key the visitor gives it), so it needs no build step and no key to be fetched.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
UI_PREFIX = "/ui"
HEADERS = {
    # Revalidated on every load (ETag): an upgraded service serves its new page at once.
    "Cache-Control": "no-cache",
    # Only our own scripts run, and no other site may frame the page (it holds the key).
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", headers=HEADERS)


class _Assets(StaticFiles):
    async def get_response(self, path: str, scope: Scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(UI_PREFIX, _Assets(directory=UI_DIR), name="ui")
