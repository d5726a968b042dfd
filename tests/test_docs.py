"""/docs and /redoc: the published contract is complete and the pages work on a closed network.

The document: security schemes (so Swagger UI has Authorize), every calculation names the credentials
it accepts and its cost, every error status is a Problem, every calculation has a response model.
The pages: served from this app's own assets; in Chromium with every request off 127.0.0.1 refused,
Swagger UI shows its Authorize button and ReDoc renders the operations.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.calc.flags import FLAG_CODES
from app.calculations.routes import ROUTES_BY_PATH
from app.config import Settings
from app.main import create_app
from tests.browser import CHROMIUM, served

SHOTS = Path(os.environ.get("FOREXRISK_SCREENSHOTS", tempfile.gettempdir()))  # to look at after a run


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def test_security_schemes_are_declared(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {"secretKey", "accessToken", "publishableKey", "widgetSession"}
    assert all(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    ops = document["paths"]
    for path in ROUTES_BY_PATH:
        assert {next(iter(s)) for s in ops[path]["post"]["security"]} == set(schemes), path
    assert {next(iter(s)) for s in ops["/api/v1/brokers"]["get"]["security"]} == {"secretKey", "accessToken"}
    assert "security" not in ops["/api/v1/auth/token"]["post"]  # how a user gets a token


def test_every_calculation_documents_its_response_cost_and_problems(document: dict[str, Any]) -> None:
    for path in ROUTES_BY_PATH:
        op = document["paths"][path]["post"]
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in ok, f"{path}: no response model"
        assert "**Cost** (rate-limit units)" in op["description"], path
        for status in ("400", "401", "403", "413", "415", "422", "429", "500", "503"):
            problem = op["responses"][status]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}, (path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_flag_code_is_in_the_description(document: dict[str, Any]) -> None:
    described = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", document["info"]["description"]))
    assert set(FLAG_CODES) <= described


def test_the_doc_pages_load_nothing_from_elsewhere(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html) + re.findall(r"""url:\s*['"]([^'"]+)""", html)
        assert urls, page
        assert all(u.startswith("/") for u in urls), (page, urls)
        for u in urls:
            if u != "/openapi.json":
                asset = client.get(u)
                assert asset.status_code == 200 and len(asset.content) > 1000, u
    assert "fonts.googleapis" not in client.get("/redoc").text


# --- in Chromium, offline ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[str]:
    with served(create_app(settings)) as server:
        yield server.url


@pytest.mark.skipif(CHROMIUM is None, reason="needs a Chromium browser binary (Debian package `chromium`)")
def test_docs_and_redoc_render_offline_with_authorize(api: str) -> None:
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()

            def gate(route: Any) -> None:
                if route.request.url.startswith(api):
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            page.route("**/*", gate)
            page.goto(f"{api}/docs")
            authorize = page.locator("button.authorize")
            authorize.wait_for(timeout=30_000)
            page.locator(".opblock-summary-path", has_text="/api/v1/calculate/position-size").wait_for(timeout=30_000)
            authorize.click()
            page.get_by_text("secretKey", exact=False).first.wait_for(timeout=10_000)
            page.screenshot(path=str(SHOTS / "docs.png"))

            page.goto(f"{api}/redoc")
            page.get_by_role("heading", name=re.compile("ForexRisk API")).wait_for(timeout=30_000)
            assert page.get_by_text("Position size from account risk").count() >= 1
            page.screenshot(path=str(SHOTS / "redoc.png"))
        finally:
            browser.close()
    # Everything the pages need came from the app. ReDoc's footer asks for its vendor's logo; refused, the
    # pages above still rendered in full (that is what "works offline" means here).
    assert [u for u in refused if u != "https://cdn.redoc.ly/redoc/logo-mini.svg"] == []
