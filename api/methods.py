"""Which methods a path answers, for the Allow header of a 405; and HEAD wherever GET answers.

FastAPI's GET routes refuse HEAD. Rather than declare HEAD on every route (and in the OpenAPI
document), HeadMiddleware runs a HEAD request that no route takes itself as a GET and ends the
response after its headers: the GET's status and headers, Content-Length included, and no body.
Routes that take HEAD themselves (the dashboard's static files) answer it their own way.
"""

from __future__ import annotations

from starlette.routing import Match, Mount, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _answers(router: Router, scope: Scope, method: str) -> bool:
    # From the top: inside a mount (a 405 of the static files) root_path has grown by its prefix.
    root_path = scope.get("app_root_path", scope.get("root_path", ""))
    probe = {**scope, "method": method, "root_path": root_path}
    for route in router.routes:
        match, _ = route.matches(probe)
        if match is Match.FULL:
            # A mount matches every method; the only one here serves static files.
            return not isinstance(route, Mount) or (
                isinstance(route.app, StaticFiles) and method in ("GET", "HEAD")
            )
    return False


def allowed_methods(router: Router, scope: Scope) -> list[str]:
    """The methods the request's path answers, HEAD wherever GET (HeadMiddleware)."""
    allowed = {method for method in METHODS if _answers(router, scope, method)}
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed)


class HeadMiddleware:
    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or _answers(self.router, scope, "HEAD")
            or not _answers(self.router, scope, "GET")
        ):
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if ended:
                return  # the rest of the GET's body; a stream stops once it sees the disconnect
            if message["type"] != "http.response.start":
                ended = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
