"""/docs renders the whole API in a real Chromium with every request outside the service refused:
Swagger UI comes from the installed package, never from a CDN."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from tests.helpers.service import Service


def test_docs_render_every_operation_with_no_network(page: Page, service: Service) -> None:
    ours = urlsplit(service.base_url).netloc
    refused: list[str] = []

    def only_the_service(route: Route) -> None:
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    page.goto(service.base_url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("whisper-transcriber")
    transcribe = page.locator(".opblock-post", has_text="/transcribe").first
    expect(transcribe).to_be_visible()
    paths = service.client.get("/openapi.json").json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    expect(page.locator(".opblock")).to_have_count(operations)
    assert refused == []


def test_docs_assets_are_served_with_their_types(service: Service) -> None:
    page = service.client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text
    for asset, kind in (
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon-32x32.png", "image/png"),
    ):
        assert f"/docs/assets/{asset}" in page.text
        response = service.client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200, asset
        assert kind in response.headers["content-type"]
    assert service.client.get("/redoc").status_code == 404
