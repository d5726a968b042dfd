"""The admin console at /admin in real Chromium (Debian's `chromium`, driven by Playwright), against a real API
server (uvicorn in a thread on the worker's embedded engines), as a broker admin would use it.

Screenshots at 1280 and 390 px of every page go to test-artifacts/console/ (git-ignored); with
FOREXRISK_UPDATE_SCREENSHOT=1 the usage page at 1280 px is also copied to docs/console.png for the README.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from app.config import Settings
from app.main import create_app
from tests.test_widget_browser import CHROMIUM, free_socket

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "console"
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs a Chromium browser binary (Debian package `chromium`), not found on PATH; "
           "`python3 dev.py test` installs it when run as root")


@dataclass
class Console:
    api: str
    loop: asyncio.AbstractEventLoop
    app: Any

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def broker(self, *, origins: list[str] | None = None, superadmin: bool = False) -> dict[str, Any]:
        slug = f"c-{uuid.uuid4().hex[:10]}"
        email = f"admin@{slug}.example.com"
        config = BrokerConfig.model_validate({"allowedOrigins": origins if origins is not None else ["https://www.example.com"]})
        spec = BrokerCreate(name=f"Console {slug[-4:]}", slug=slug, tier="standard", config=config,  # type: ignore[call-arg]
                            admin_email=email, admin_password=PASSWORD)
        svc = self.app.state.services
        extra: dict[str, Any] = {"is_platform": True, "admin_role": "SUPERADMIN"} if superadmin else {}
        made = self.run(create_broker(svc.db, svc.auth, spec, **extra))
        return {"slug": slug, "email": email, "id": str(made["id"]), "secretKey": made["secretKey"],
                "publishableKey": made["publishableKey"], "userId": str(made["adminUserId"])}


@pytest.fixture(scope="module")
def console(settings: Settings) -> Iterator[Console]:
    import uvicorn

    app = create_app(settings)
    sock = free_socket()
    api = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan="on"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    # The invitation links name the public base URL: this server's.
    app.state.services.settings.public_base_url = api
    yield Console(api=api, loop=loop, app=app)
    server.should_exit = True
    thread.join(30)
    loop.close()
    sock.close()


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.api)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    pg.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.problems = problems
    yield pg
    context.close()


def shoot(page: Any, name: str) -> None:
    """The page at 1280 and at 390 px (full page), kept as artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.screenshot(path=str(ARTIFACTS / f"{name}-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(150)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1"), \
        f"{name}: wider than 390 px"
    page.screenshot(path=str(ARTIFACTS / f"{name}-390.png"), full_page=True)
    page.set_viewport_size(size)


def ready(page: Any) -> None:
    page.wait_for_function("() => document.body.dataset.ready === '1'")


def sign_in(page: Any, console: Console, who: dict[str, Any], code: str | None = None) -> None:
    page.goto(console.api + "/admin/")
    ready(page)
    page.get_by_label("Broker", exact=True).fill(who["slug"])
    page.get_by_label("Email").fill(who["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    if code is not None:
        page.get_by_label("Authentication code").fill(code)
        page.get_by_role("button", name="Sign in", exact=True).click()


def test_smoke(page: Any, console: Console) -> None:
    who = console.broker()
    sign_in(page, console, who)
    page.wait_for_selector("#totp-secret")
    shoot(page, "mfa")
    assert not page.problems, page.problems
