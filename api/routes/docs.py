"""/docs: Swagger UI served by the app itself, so that it works on a machine with no network.

FastAPI's own /docs page loads Swagger UI from a CDN. The assets here come from the
fastapi-swagger package (a current Swagger UI 5, which renders the OpenAPI 3.1 document FastAPI
makes); only its files are used, not its patching of the app.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
ASSETS_PACKAGE = ("fastapi_swagger", "resources")

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH)
def swagger_ui(request: Request) -> HTMLResponse:
    # Behind a reverse proxy's prefix (root_path), every URL the page loads keeps the prefix.
    root = request.scope.get("root_path", "").rstrip("/")
    assets = root + ASSETS_PATH
    return get_swagger_ui_html(
        openapi_url=root + "/openapi.json",
        title="whisper-transcriber API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon-32x32.png",
    )


def mount_docs(app: FastAPI) -> None:
    """The app must be made with docs_url=None and redoc_url=None (ReDoc has no packaged copy)."""
    app.include_router(router)
    app.mount(ASSETS_PATH, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
