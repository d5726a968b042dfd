"""The admin console at /admin in real Chromium (Debian's `chromium`, driven by Playwright), against a real API
server (uvicorn in a thread on the worker's embedded engines), as a broker admin would use it.

Screenshots at 1280 and 390 px of every page go to test-artifacts/console/ (git-ignored); with
FOREXRISK_UPDATE_SCREENSHOT=1 the usage page at 1280 px is also copied to docs/console.png for the README.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from app.config import Settings
from app.main import create_app
from tests.axe import blocking, report
from tests.browser import CHROMIUM, chromium, served

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
    yield from serve(settings)


def serve(settings: Settings) -> Iterator[Console]:
    """An app on these settings, served by uvicorn in a thread on a free port, until the generator is closed."""
    app = create_app(settings)
    with served(app) as server:
        # The invitation links name the public base URL: this server's.
        app.state.services.settings.public_base_url = server.url
        yield Console(api=server.url, loop=server.loop, app=app)


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.api)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    # A 4xx the page expects (a wrong password, no session yet) is logged by Chromium as a failed resource:
    # those are the API's answers, shown in the page; every other console error, and any 5xx, is a problem.
    pg.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}")
          if m.type == "error" and "status of 4" not in m.text else None)
    pg.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    pg.problems = problems
    yield pg
    context.close()


def check(page: Any, name: str) -> None:
    """Every page: no script errors, axe-core clean of serious and critical issues (light and dark), nothing wider
    than 390 px, screenshots at 1280 and 390 px kept as artifacts."""
    assert not page.problems, page.problems
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    found = blocking(page)
    assert not found, report(found, f"{name}, light, 1280 px")
    page.screenshot(path=str(ARTIFACTS / f"{name}-1280.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    found = blocking(page)
    assert not found, report(found, f"{name}, dark, 1280 px")
    page.screenshot(path=str(ARTIFACTS / f"{name}-1280-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(100)
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= 391, f"{name}: {wide} px wide at 390"
    found = blocking(page)
    assert not found, report(found, f"{name}, light, 390 px")
    page.screenshot(path=str(ARTIFACTS / f"{name}-390.png"), full_page=True)
    page.set_viewport_size(size)
    docs = DOCS.get(name)
    if docs is not None and os.environ.get("FOREXRISK_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(ARTIFACTS / f"{name}-{docs[1]}.png", ROOT / "docs" / docs[0])


# Screenshots the README shows (copied with FOREXRISK_UPDATE_SCREENSHOT=1).
DOCS = {"start-snippet": ("console.png", "1280"), "usage": ("console-usage.png", "1280"),
        "start-brand-colour": ("console-mobile-390.png", "390"),
        "billing-paid": ("console-billing.png", "1280")}  # tests/test_console_billing_browser.py


def ready(page: Any) -> None:
    page.wait_for_function("() => document.body.dataset.ready === '1'")


def sql(console: Console, statement: str, params: dict[str, Any]) -> list[Any]:
    async def go() -> list[Any]:
        engine = create_async_engine(console.app.state.services.db.urls.owner, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()
    rows: list[Any] = console.run(go())
    return rows


def reset_step(console: Console, user_id: str) -> None:
    """Forget the last accepted TOTP step, so this step's code works once more (a person would wait 30 s)."""
    sql(console, "update users set totp_last_step = null where id = :u", {"u": uuid.UUID(user_id)})


def enrolled(console: Console, who: dict[str, Any]) -> str:
    """MFA set up through the API (for tests about other pages); the TOTP secret."""
    with httpx.Client(base_url=console.api) as c:
        token = c.post("/api/v1/auth/token", json={"broker": who["slug"], "email": who["email"],
                                                    "password": PASSWORD}).json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}
        secret: str = c.post("/api/v1/auth/mfa/enrol", headers=auth).json()["secret"]
        confirmed = c.post("/api/v1/auth/mfa/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=auth)
        assert confirmed.status_code == 200, confirmed.text
    reset_step(console, who["userId"])
    return secret


def sign_in(page: Any, console: Console, who: dict[str, Any], secret: str | None = None) -> None:
    page.goto(console.api + "/admin/")
    ready(page)
    page.get_by_label("Broker", exact=True).fill(who["slug"])
    page.get_by_label("Email").fill(who["email"])
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    if secret is not None:
        page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_selector("#nav a")


def broker_config(console: Console, who: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=console.api) as c:
        r = c.get(f"/api/v1/brokers/{who['id']}", headers={"Authorization": f"Bearer {who['secretKey']}"})
        assert r.status_code == 200, r.text
        config: dict[str, Any] = r.json()["config"]
        return config


def preview_colour(page: Any) -> str:
    frame = page.frame_locator("#preview iframe")
    value: str = frame.locator("html").evaluate("el => el.style.getPropertyValue('--p')")
    return value


# --- the acceptance path -----------------------------------------------------------------------------
def test_sign_in_with_totp_then_the_guided_start(page: Any, console: Console) -> None:
    who = console.broker(origins=[])
    page.goto(console.api + "/admin/")
    ready(page)
    check(page, "sign-in")
    sign_in_form = page.locator("form")
    page.get_by_label("Broker", exact=True).fill(who["slug"])
    page.get_by_label("Email").fill(who["email"])
    page.get_by_label("Password", exact=True).fill("wrong password, long enough")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_selector(".banner.bad")  # the API's problem, shown in the form
    assert "Wrong broker, email or password" in sign_in_form.inner_text()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    # An admin without MFA enrols first: QR code from the API, the key for manual entry, a first code.
    page.wait_for_selector("#totp-secret")
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml")
    check(page, "mfa-enrol")
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("Code from the app").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_selector("[aria-invalid=true]")  # a wrong code: the error is beside the field
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    codes = page.locator("#recovery-codes li")
    codes.first.wait_for()
    assert codes.count() >= 8
    check(page, "mfa-recovery-codes")
    page.get_by_role("button", name="I have stored them: sign in again").click()

    # Signing in again asks for the code; the session is then an MFA session and the console opens.
    reset_step(console, who["userId"])
    page.get_by_label("Password", exact=True).wait_for()
    assert page.get_by_label("Broker", exact=True).input_value() == who["slug"]  # remembered
    page.get_by_label("Email").fill(who["email"])
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_selector("#brand-form")
    assert page.evaluate("() => document.cookie").count("fxr_rt") == 0  # the refresh token is not readable

    # A reload keeps the session (the httpOnly cookie refreshes it) without a new login.
    page.reload()
    ready(page)
    page.wait_for_selector("#brand-form")

    # Guided start, 1: the brand. The preview is the real widget; it changes colour as the colour is typed.
    page.wait_for_selector("#preview[data-ready='1']")
    assert preview_colour(page) == "#1f6feb"
    check(page, "start-brand")
    page.get_by_label("Primary colour", exact=True).fill("#c2185b")
    page.frame_locator("#preview iframe").locator("html").wait_for()
    page.wait_for_function("""() => document.querySelector('#preview iframe').contentDocument
        .documentElement.style.getPropertyValue('--p') === '#c2185b'""")
    assert "passes WCAG AA" in page.locator("#contrast").inner_text()
    check(page, "start-brand-colour")
    page.get_by_role("button", name="Save and continue").click()

    # 2: allowed pages, with the check of a page address.
    page.wait_for_selector("#origins-form")
    assert broker_config(console, who)["branding"]["primaryColor"] == "#c2185b"
    page.get_by_label("Add a site").fill("https://www.acme-forex.com/tools/calculator?x=1")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_label("Page address").fill("https://www.acme-forex.com/en/risk")
    page.get_by_role("button", name="Check", exact=True).click()
    assert "Yes: https://www.acme-forex.com is allowed" in page.locator("#origin-verdict").inner_text()
    page.get_by_label("Page address").fill("https://acme-forex.com/en/risk")
    page.get_by_role("button", name="Check", exact=True).click()
    assert "No: https://acme-forex.com is not on the list" in page.locator("#origin-verdict").inner_text()
    check(page, "start-origins")
    page.get_by_role("button", name="Save and continue").click()

    # 3: a publishable key, shown once.
    page.get_by_role("button", name="Create a publishable key").click()
    key = page.locator("#pk-value").inner_text().strip()
    assert key.startswith("fxr_live_pk_")
    assert broker_config(console, who)["allowedOrigins"] == ["https://www.acme-forex.com"]
    check(page, "start-key")
    page.get_by_role("button", name="Continue").click()

    # 4: the snippet with that key and the broker's slug, copied with one button; the preview in the new colour.
    snippet = page.locator("#snippet").inner_text()
    assert f'data-key="{key}"' in snippet and f'data-broker="{who["slug"]}"' in snippet
    assert f'src="{console.api}/widget.js"' in snippet
    page.get_by_role("button", name="Copy the snippet").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == snippet
    page.wait_for_selector("#preview[data-ready='1']")
    assert preview_colour(page) == "#c2185b"
    check(page, "start-snippet")


def test_keys_created_shown_once_rotated_and_revoked(page: Any, console: Console) -> None:
    who = console.broker()
    sign_in(page, console, who, enrolled(console, who))
    page.get_by_role("link", name="API keys").click()
    page.wait_for_selector("#key-form")
    check(page, "keys")
    page.get_by_label("Name (optional)").fill("reporting server")
    for scope in ("brokers:write", "users:write", "keys:manage", "audit:read"):
        page.get_by_label(scope, exact=True).uncheck()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#key-value").inner_text().strip()
    assert secret.startswith("fxr_live_sk_")
    with httpx.Client(base_url=console.api) as c:  # the key works, with exactly the scopes chosen
        listed = c.get(f"/api/v1/brokers/{who['id']}/api-keys", headers={"Authorization": f"Bearer {secret}"})
        assert listed.status_code == 403
        assert c.get(f"/api/v1/brokers/{who['id']}/analytics/usage",
                     headers={"Authorization": f"Bearer {secret}"}).status_code in (200, 503)
    check(page, "keys-created")
    row = page.locator("tr", has_text="reporting server")
    assert "analytics:read, brokers:read, calc:run, calculations:read, users:read" in row.inner_text()
    prefix = row.locator(".mono").inner_text().split("…")[0]
    page.get_by_role("button", name=f"Rotate {prefix}…", exact=False).first.click()
    page.get_by_label("Overlap (hours)").fill("2")
    page.locator("dialog").get_by_role("button", name="Rotate").click()
    page.get_by_role("heading", name="The new key").wait_for()
    rotated = page.locator("#key-value")
    new_key = rotated.inner_text().strip()
    assert new_key.startswith("fxr_live_sk_") and new_key != secret
    assert "The old key works until" in page.locator("#key-shown").inner_text()
    with httpx.Client(base_url=console.api) as c:  # both work during the overlap
        for k in (secret, new_key):
            assert c.post("/api/v1/calculate/pip-value", headers={"Authorization": f"Bearer {k}"},
                          json={"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1,
                                "price": 1.1}).status_code == 200
    # Revoke the new key: confirmed in a dialog, then refused at once.
    new_prefix = new_key[: len(prefix)]
    page.get_by_role("button", name=f"Revoke {new_prefix}…", exact=False).first.click()
    dialog = page.locator("dialog")
    assert "cannot be undone" in dialog.inner_text()
    dialog.get_by_role("button", name="Revoke").click()
    page.wait_for_selector("dialog", state="detached")
    # The dialog closes before the DELETE answers; the page says so once the server has revoked the key.
    page.wait_for_function("() => document.getElementById('status').textContent === 'Key revoked.'")
    with httpx.Client(base_url=console.api) as c:
        assert c.post("/api/v1/calculate/pip-value", headers={"Authorization": f"Bearer {new_key}"},
                      json={"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1,
                            "price": 1.1}).status_code == 401
    check(page, "keys-after")


def test_invite_a_user_who_sets_a_password_and_signs_in(page: Any, browser: Any, console: Console) -> None:
    who = console.broker()
    sign_in(page, console, who, enrolled(console, who))
    page.get_by_role("link", name="Users").click()
    page.wait_for_selector("#invite-form")
    check(page, "users")
    page.get_by_label("Email", exact=True).fill("not an email")
    page.get_by_role("button", name="Invite", exact=True).click()
    page.wait_for_selector("#invite-email[aria-invalid=true]")  # the API's 422 beside the field
    assert page.locator("#invite-email-e").inner_text() or page.locator("[data-error-for=email]").inner_text()
    invitee = f"analyst@{who['slug']}.example.com"
    page.get_by_label("Email", exact=True).fill(invitee)
    page.get_by_role("button", name="Invite", exact=True).click()
    url = page.locator("#invite-url").inner_text().strip()
    assert url.startswith(console.api + "/admin/#/accept/fxr_inv_")
    assert page.locator("#invite-mail").get_attribute("href").startswith("mailto:")
    assert page.locator("tr", has_text=invitee).count() == 1
    check(page, "users-invited")

    # The invitee, in another browser: chooses a password, signs in, sees usage (a BROKER_USER has no admin pages).
    other = browser.new_context(viewport={"width": 390, "height": 844})
    guest = other.new_page()
    guest.problems = []
    guest.goto(url)
    ready(guest)
    guest.get_by_label("New password").fill("short")
    guest.get_by_role("button", name="Set password").click()
    guest.wait_for_selector("[aria-invalid=true]")
    guest.get_by_label("New password").fill("a long and new passphrase 7")
    guest.get_by_role("button", name="Set password").click()
    guest.get_by_role("heading", name="Your password is set").wait_for()
    check(guest, "accept-invitation")
    guest.goto("about:blank")
    guest.goto(url)  # single use
    ready(guest)
    guest.get_by_label("New password").fill("another long passphrase 8")
    guest.get_by_role("button", name="Set password").click()
    assert "already used" in guest.locator(".banner.bad").inner_text()
    guest.goto(console.api + "/admin/")
    ready(guest)
    guest.get_by_label("Broker", exact=True).fill(who["slug"])
    guest.get_by_label("Email").fill(invitee)
    guest.get_by_label("Password", exact=True).fill("a long and new passphrase 7")
    guest.get_by_role("button", name="Sign in", exact=True).click()
    guest.wait_for_selector("#usage-form")
    assert guest.locator("#nav a").all_inner_texts() == ["Usage and reports", "Account and SSO"]
    other.close()

    # Role change and disabling, from the admin's table.
    page.reload()
    ready(page)
    page.get_by_label(f"Role of {invitee}").select_option("BROKER_ADMIN")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('changed')")
    page.get_by_role("button", name=f"Disable {invitee}").click()
    page.locator("dialog").get_by_role("button", name="Disable").click()
    page.get_by_role("button", name=f"Enable {invitee}").wait_for()
    rows = sql(console, "select role, status from users where lower(email) = :e", {"e": invitee})
    assert rows == [("BROKER_ADMIN", "disabled")]


def test_usage_charts_after_50_calculations_and_the_compliance_report(page: Any, console: Console) -> None:
    who = console.broker()
    with httpx.Client(base_url=console.api, headers={"Authorization": f"Bearer {who['secretKey']}"}) as c:
        for i in range(50):
            pair = ("EURUSD", "GBPUSD", "USDJPY")[i % 3]
            body = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": pair,
                    "entryPrice": 150.0 if pair == "USDJPY" else 1.2, "stopLoss": 149.5 if pair == "USDJPY" else 1.19,
                    "riskPercentage": 1 + i % 2, "leverage": 30,
                    **({"conversionRates": {"USDJPY": 150.0}} if pair == "USDJPY" else {})}
            r = c.post("/api/v1/calculate/position-size", json=body)
            assert r.status_code == 200, r.text
    sign_in(page, console, who, enrolled(console, who))
    page.get_by_role("link", name="Usage and reports").click()
    page.wait_for_selector("#usage-form")
    # The analytics store is fed a few seconds behind Postgres: show again until all 50 are in.
    def show_again() -> None:
        page.get_by_role("button", name="Show", exact=True).click()
        page.wait_for_selector("#usage-out[aria-busy=false]")

    until_shown(page, "#kpi-calcs", "50", show_again)
    assert int(page.locator("#chart-calcs").get_attribute("data-points")) >= 28
    assert page.locator("#chart-calcs path.s1").count() == 1
    top = page.locator("table", has_text="Instrument").first.inner_text()
    for pair in ("EURUSD", "GBPUSD", "USDJPY"):
        assert pair in top
    assert "1.5" in page.locator(".kpi", has_text="Average risk").inner_text()  # (1 + 2) / 2 %
    # Count axes tick in whole numbers, evenly (not 0, 0.3, 0.5, 0.8, 1 for a count of one, nor 0, 13, 25, 38, 50).
    axis = "(id) => [...document.querySelectorAll(`#${id} text[text-anchor=end]`)].map((t) => t.textContent)"
    for chart_id in ("chart-calcs", "chart-units", "chart-users"):
        ticks = [int(v.replace(",", "")) for v in page.evaluate(axis, chart_id)]
        assert len(ticks) >= 2 and len({b - a for a, b in zip(ticks, ticks[1:], strict=False)}) == 1, (chart_id, ticks)
    one = page.evaluate("""async () => {
      const { chart } = await import(document.body.dataset.static + '/js/charts.js');
      const fig = chart({ id: 'probe', title: 'probe', labels: ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'],
                          series: [{ name: 'probe', values: [0, 1] }] });
      return [...fig.querySelectorAll('text[text-anchor=end]')].map((t) => t.textContent);
    }""")
    assert one == ["0", "1"], one
    check(page, "usage")

    # The compliance report: requested here, followed until ready, downloaded as PDF and CSV.
    page.get_by_role("button", name="Create report").click()
    page.locator("#reports button[data-format=pdf]").wait_for(timeout=60_000)
    with page.expect_download() as got:
        page.locator("#reports button[data-format=pdf]").click()
    pdf = Path(got.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert got.value.suggested_filename.startswith("compliance-") and got.value.suggested_filename.endswith(".pdf")
    with page.expect_download() as got:
        page.locator("#reports button[data-format=csv]").click()
    assert "position-size" in Path(got.value.path()).read_text(encoding="utf-8-sig")
    check(page, "usage-report")


def test_settings_are_merge_patches_with_a_preview_errors_beside_fields_and_offline_confirmed(
        page: Any, console: Console) -> None:
    who = console.broker(origins=["https://www.example.com"])
    sign_in(page, console, who, enrolled(console, who))
    page.get_by_role("link", name="Branding and settings").click()
    page.wait_for_selector("#settings-form")
    check(page, "settings")
    # A field the API refuses: its problem+json error appears beside that field.
    page.get_by_label("Logo URL").fill("http://insecure.example.com/logo.png")
    page.get_by_role("button", name="Review changes").click()
    assert '"logoUrl": "http://insecure.example.com/logo.png"' in page.locator("#patch-preview").inner_text()
    page.locator("dialog").get_by_role("button", name="Apply").click()
    logo = page.get_by_label("Logo URL")
    page.wait_for_selector("input[name='branding.logoUrl'][aria-invalid=true]")
    assert "https" in page.locator(f"#{logo.get_attribute('id')}-e").inner_text()
    assert page.evaluate("() => document.activeElement.name") == "branding.logoUrl"

    # Only what changed is sent, and shown first.
    logo.fill("")
    page.get_by_label("Leverage cap").fill("50")
    page.get_by_label("Jurisdiction").select_option("fca")
    page.get_by_label("Correlation analysis").check()
    page.get_by_role("button", name="Review changes").click()
    patch = page.locator("#patch-preview").inner_text()
    assert '"maxLeverage": 50' in patch and '"jurisdiction": "fca"' in patch and '"correlationAnalysis": true' in patch
    assert "allowedOrigins" not in patch and "primaryColor" not in patch
    page.locator("dialog").get_by_role("button", name="Apply").click()
    page.wait_for_function("() => document.getElementById('status').textContent === 'Saved.'")
    config = broker_config(console, who)
    assert config["maxLeverage"] == 50 and config["jurisdiction"] == "fca"
    assert config["allowedOrigins"] == ["https://www.example.com"]  # untouched

    # Removing the last origin takes the widget offline: a second, explicit confirmation; cancel keeps it.
    page.get_by_label("Allowed origins").fill("")
    page.get_by_role("button", name="Review changes").click()
    page.locator("dialog").get_by_role("button", name="Apply").click()
    offline = page.locator("dialog", has_text="Take the calculator offline?")
    offline.wait_for()
    check(page, "settings-offline-confirm")
    offline.get_by_role("button", name="Cancel").click()
    assert broker_config(console, who)["allowedOrigins"] == ["https://www.example.com"]


def test_keyboard_only_sign_in_and_navigation(page: Any, console: Console) -> None:
    who = console.broker()
    secret = enrolled(console, who)
    page.goto(console.api + "/admin/")
    ready(page)
    assert page.evaluate("() => document.activeElement.tagName") == "H1"  # a page starts at its heading
    assert page.evaluate("() => document.querySelector('a, button, input, select').id") == "skip"  # first stop
    # Tab to the broker field, then type everything and submit with Enter.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.name") == "broker":
            break
    page.keyboard.type(who["slug"])
    page.keyboard.press("Tab")
    page.keyboard.type(who["email"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_label("Authentication code").wait_for()
    assert page.evaluate("() => document.activeElement.name") == "totpCode"
    page.keyboard.type(pyotp.TOTP(secret).now())
    page.keyboard.press("Enter")
    page.wait_for_selector("#brand-form")
    page.wait_for_function("() => document.activeElement.tagName === 'H1'")  # focus moves to the new page's heading
    # The navigation (before the page in tab order) is reachable with Shift+Tab and opens with Enter.
    for _ in range(30):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("() => document.activeElement.textContent") == "API keys":
            break
    page.keyboard.press("Enter")
    page.wait_for_selector("#key-form")
    page.wait_for_function("() => document.activeElement.tagName === 'H1'")
    # A dialog keeps focus and Escape closes it, returning focus to its opener.
    revoke = page.locator("button.danger").first
    revoke.focus()
    page.keyboard.press("Enter")
    page.locator("dialog").wait_for()
    assert page.evaluate("() => document.activeElement.closest('dialog') !== null")
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog", state="detached")
    assert page.evaluate("() => document.activeElement.classList.contains('danger')")


def test_platform_operator_sets_tiers_and_suspends(page: Any, console: Console) -> None:
    root = console.broker(superadmin=True)
    tenant = console.broker()
    sign_in(page, console, root, enrolled(console, root))
    page.get_by_role("link", name="Platform").click()
    row = page.locator("tr", has_text=tenant["slug"])
    row.wait_for()
    check(page, "platform")
    name = row.locator("strong").inner_text()
    page.get_by_label(f"Tier of {name}").select_option("professional")
    page.wait_for_selector("#platform-out .banner.ok")
    page.get_by_role("button", name=f"Suspend {name}").click()
    page.locator("dialog").get_by_role("button", name="Suspend").click()
    page.get_by_role("button", name=f"Reactivate {name}").wait_for()
    assert sql(console, "select tier, status from brokers where slug = :s", {"s": tenant["slug"]}) == \
        [("professional", "suspended")]
    with httpx.Client(base_url=console.api) as c:  # a suspended broker's keys stop at once
        assert c.post("/api/v1/calculate/pip-value", headers={"Authorization": f"Bearer {tenant['secretKey']}"},
                      json={"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1,
                            "price": 1.1}).status_code == 401
    page.get_by_role("button", name=f"Reactivate {name}").click()
    page.get_by_role("button", name=f"Suspend {name}").wait_for()
    page.get_by_role("link", name="Platform-wide usage").click()
    page.wait_for_selector("#kpi-calcs")
    check(page, "platform-usage")


@pytest.mark.parametrize(("locale", "heading", "direction"), [("de", "Anmelden", "ltr"), ("ar", "تسجيل الدخول", "rtl"),
                                                            ("ja", "サインイン", "ltr")])
def test_the_console_speaks_the_widgets_languages(page: Any, console: Console, locale: str, heading: str,
                                                  direction: str) -> None:
    page.goto(console.api + "/admin/")
    ready(page)
    page.get_by_label("Language").select_option(locale)  # reloads in that language
    page.wait_for_function("(l) => document.documentElement.lang === l && document.body.dataset.ready === '1'",
                           arg=locale)
    assert page.locator("h1").inner_text() == heading
    assert page.evaluate("() => document.documentElement.dir") == direction
    check(page, f"sign-in-{locale}")


def test_alert_rules_and_webhook_endpoints(page: Any, console: Console) -> None:
    who = console.broker()
    sign_in(page, console, who, enrolled(console, who))
    page.get_by_role("link", name="Alerts and webhooks").click()
    page.wait_for_selector("#rule-form")
    check(page, "alerts")
    page.get_by_label("Rule", exact=True).select_option("total-risk")
    page.get_by_label("Threshold").fill("6")
    page.get_by_label("Clears at").fill("5")
    page.get_by_role("button", name="Add rule").click()
    page.locator("tr", has_text="Total risk at the stops").wait_for()
    # An address the API refuses (a name that does not resolve): its error beside the URL field.
    page.get_by_label("URL", exact=True).fill("https://hooks.invalid/in")
    page.get_by_role("button", name="Add endpoint").click()
    page.wait_for_selector("#endpoint-url[aria-invalid=true]")
    hook = "http://127.0.0.1:9/forexrisk"  # loopback: allowed outside production (nothing is delivered here)
    page.get_by_label("URL", exact=True).fill(hook)
    page.get_by_label("calculation.flagged").uncheck()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#webhook-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    row = page.locator("tr", has_text=hook)
    assert "alert.triggered, alert.cleared" in row.inner_text()
    page.get_by_role("button", name=f"Delivery log of {hook}").click()
    page.get_by_text("Nothing delivered yet.").wait_for()
    check(page, "alerts-endpoint")
    rules = sql(console, "select kind, threshold from alert_rules where broker_id = :b", {"b": uuid.UUID(who["id"])})
    assert [(k, float(t)) for k, t in rules] == [("total-risk", 6.0)]


# Every page an admin sees, with the heading it shows: in each locale the page renders in that language (no string
# left in English), at 390 px without overflow, axe-clean; Arabic right to left.
PAGES = [("start", "start.title"), ("start/origins", "start.title"), ("settings", "settings.title"),
         ("keys", "keys.title"), ("users", "users.title"), ("usage", "usage.title"), ("alerts", "alerts.title"),
         ("billing", "billing.title"), ("account", "account.title")]


def strings(locale: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((ROOT / "console" / "i18n" / f"{locale}.json").read_text(encoding="utf-8"))
    return data


def switch_locale(page: Any, locale: str) -> None:
    page.locator("#lang").select_option(locale)  # reloads in that language; the session survives (refresh cookie)
    page.wait_for_function("(l) => document.documentElement.lang === l && document.body.dataset.ready === '1'"
                           " && document.querySelector('#nav a') !== null", arg=locale)


def english_left(page: Any, en: dict[str, str], tr: dict[str, str]) -> list[str]:
    """Texts on the page (text nodes, also of closed dialogs, and aria-label, placeholder and title attributes) that
    are an English string this locale translates differently: a string the locale lacks shows in English."""
    english = {v for k, v in en.items() if v and tr.get(k) != v} - set(tr.values())
    texts: list[str] = page.evaluate("""() => {
      const out = [];
      const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let n = walk.nextNode(); n; n = walk.nextNode()) out.push(n.textContent);
      for (const e of document.querySelectorAll('[aria-label], [placeholder], [title]'))
        for (const a of ['aria-label', 'placeholder', 'title']) if (e.hasAttribute(a)) out.push(e.getAttribute(a));
      return out;
    }""")
    # "2. Allowed pages" (the steps), "Console 1a2b · Admin" (the header): the string is one piece of the text.
    pieces = {re.sub(r"^\d+\.\s*", "", p.strip()) for text in texts for p in text.split(" · ")}
    return sorted(pieces & english)


def until_shown(page: Any, selector: str, expected: str, again: Callable[[], None]) -> None:
    """Analytics land a few seconds behind Postgres: ask the page `again` until `selector`'s figure shows
    `expected` (a 60 s bound against a hang, not a speed check), then assert it."""
    deadline = time.monotonic() + 60
    while True:
        page.wait_for_selector(selector)
        if page.locator(f"{selector} .v").inner_text() == expected or time.monotonic() > deadline:
            break
        page.wait_for_timeout(1000)
        again()
    assert page.locator(f"{selector} .v").inner_text() == expected


# Counts the console document's own requests in flight. `networkidle` also waits for the frames (the live widget
# preview on Settings fetches quotes and recalculates), which on a busy box never left a 500 ms gap in 20 s.
COUNT_FETCHES = """(() => { let n = 0; const f = window.fetch;
  window.fetch = (...a) => { n++; return f(...a).finally(() => { n--; }); };
  Object.defineProperty(window, '__inFlight', { get: () => n }); })()"""
SETTLED = "() => window.__inFlight === 0 && !document.querySelector('main [aria-busy=\"true\"]')"


def test_the_console_in_arabic_german_and_japanese(page: Any, console: Console) -> None:
    page.add_init_script(COUNT_FETCHES)
    who = console.broker()
    sign_in(page, console, who, enrolled(console, who))
    en = strings("en")
    for locale, direction in (("ar", "rtl"), ("de", "ltr"), ("ja", "ltr")):
        tr = strings(locale)
        switch_locale(page, locale)
        assert page.evaluate("() => document.documentElement.dir") == direction
        assert page.locator("#lang").get_attribute("aria-label") == tr["header.language"]
        nav = page.locator("#nav").inner_text()
        for key in ("nav.start", "nav.keys", "nav.users", "nav.usage", "nav.alerts", "nav.billing", "nav.account"):
            assert tr[key] in nav, (locale, key, nav)
        assert page.locator("#nav").get_attribute("aria-label") == tr["nav.label"]
        assert tr["header.signOut"] == page.locator("#signout").inner_text().strip()
        for route, title in PAGES:
            page.evaluate("(r) => { location.hash = '#/' + r; }", route)
            page.wait_for_function("(t) => document.querySelector('main h1')?.textContent === t", arg=tr[title])
            page.wait_for_function(SETTLED)  # everything this page asked the API for has been drawn
            assert not english_left(page, en, tr), (locale, route, english_left(page, en, tr))
            # The tab's title: this page's heading and the console's name, both in this locale (set once drawn).
            page.wait_for_function("(t) => document.title === t", arg=f"{tr[title]} · {tr['header.documentTitle']}")
            check(page, f"{locale}-{route.replace('/', '-')}")
    # Known strings, written out here rather than read back from the files.
    assert page.locator("#nav").get_by_role("link", name="APIキー").count() == 1
    switch_locale(page, "ar")
    assert page.locator("#nav").get_by_role("link", name="مفاتيح API").count() == 1
    switch_locale(page, "de")
    assert page.locator("#nav").get_by_role("link", name="Benutzer").count() == 1
    switch_locale(page, "en")
    assert page.evaluate("() => document.documentElement.dir") == "ltr"
    assert page.locator("#nav").get_by_role("link", name="Users").count() == 1
