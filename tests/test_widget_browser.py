"""The embeddable widget in real Chromium (Debian's `chromium`, driven by Playwright).

One API server (uvicorn on 127.0.0.1, in a thread, on the worker's embedded Postgres) and one browser
per module. Host pages come from a plain http.server on `localhost:<port>` (on the broker's
allowedOrigins) and on another port (not on it), so the widget really runs cross-origin:
host http://localhost:A, API and iframe http://127.0.0.1:B, stranger http://localhost:C.

Screenshots (desktop and 390 px, light and dark) go to test-artifacts/widget/ (git-ignored); with
FOREXRISK_UPDATE_SCREENSHOT=1 they are also copied to docs/ (widget.png, widget-mobile-390.png,
widget-desktop-dark.png, widget-mobile-390-dark.png) for the README.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
from app.admin.brokers.service import create_broker
from app.config import Settings
from app.main import create_app
from tests import axe
from tests.browser import CHROMIUM, chromium, served

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "widget"
PRIMARY = "#c2185b"  # rgb(194, 24, 91): white text passes AA on it (5.5:1)
LOADER_BUDGET = 5 * 1024
CALC_PATH = "/api/v1/calculate/position-size"
CALC_URL = "**" + CALC_PATH
FRAME_BUDGET = 30 * 1024
# A projection is heavy work: the first one starts the process pool (spawned workers importing NumPy),
# which on a loaded shared box takes longer than Playwright's 15 s default. A wait, not a speed check.
POOL_START_MS = 90_000


pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs a Chromium browser binary (Debian package `chromium`), not found on PATH; "
           "`python3 dev.py test` installs it when run as root")


# --- servers ---------------------------------------------------------------------------------------
@dataclass
class Stack:
    api: str           # http://127.0.0.1:B (the API, the loader and the iframe)
    host: str          # http://localhost:A (on the broker's allowedOrigins)
    stranger: str      # http://localhost:C (not on it)
    slug: str
    name: str
    publishable_key: str
    pages: dict[str, str]
    secret_key: str = ""
    broker_id: str = ""
    app: Any = None    # the served app and its loop, for tests that need a broker of their own
    loop: Any = None



class _Pages(BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def serve_pages(pages: dict[str, str]) -> tuple[ThreadingHTTPServer, int]:
    handler = type("Pages", (_Pages,), {"pages": pages})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def host_page(stack_api: str, key: str, slug: str, body: str = "", attrs: str = "") -> str:
    """A broker's page: the embed snippet exactly as documented, plus a recorder of the widget's events."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme host</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{{font-family:sans-serif;margin:0;padding:16px;background:#eef1f5}}</style></head><body>
<h1 style="font-size:18px">Acme Forex - trading tools</h1>
<script>window.fxrEvents = [];
document.addEventListener('DOMContentLoaded', () => document.querySelectorAll('div').forEach(el =>
  ['ready', 'resize', 'calculated', 'error'].forEach(t => el.addEventListener('forexrisk:' + t,
    e => fxrEvents.push({{type: t, id: el.id, detail: e.detail}})))));
</script>
<script src="{stack_api}/widget.js" data-key="{key}" async></script>
<div id="risk-calculator" data-broker="{slug}"{attrs}></div>
{body}</body></html>"""


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:
    app = create_app(settings)
    with served(app) as server:
        yield from _stack(app, server.url, server.loop)


def _stack(app: Any, api: str, loop: asyncio.AbstractEventLoop) -> Iterator[Stack]:

    pages: dict[str, str] = {}
    host_server, host_port = serve_pages(pages)
    stranger_server, stranger_port = serve_pages(pages)
    host, stranger = f"http://localhost:{host_port}", f"http://localhost:{stranger_port}"
    slug = f"w-{os.getpid()}-{host_port}"
    name = "Acme Forex"
    config = BrokerConfig.model_validate({
        "allowedOrigins": [host], "maxLeverage": 30, "locale": "en", "fullPage": True,
        "branding": {"primaryColor": PRIMARY, "fontFamily": "system-ui, sans-serif"},
        "features": {"advancedScenarios": True, "correlationAnalysis": True},
        # Prices come from the broker's own feed only (what a test pushes), not the development snapshot.
        "marketData": {"providers": ["broker"]},
    })
    spec = BrokerCreate(name=name, slug=slug, tier="standard", config=config,  # type: ignore[call-arg]
                        admin_email=f"admin@{slug}.example.com", admin_password="correct horse battery staple")
    svc = app.state.services
    # force: the name is the one the CLI test gives its broker on the same database
    made = asyncio.run_coroutine_threadsafe(create_broker(svc.db, svc.auth, spec, force=True), loop).result(60)
    stack = Stack(api=api, host=host, stranger=stranger, slug=slug, name=name,
                  publishable_key=made["publishableKey"], pages=pages, secret_key=made["secretKey"],
                  broker_id=str(made["id"]), app=app, loop=loop)
    pages["/embed.html"] = host_page(api, stack.publishable_key, slug)
    yield stack
    for s in (host_server, stranger_server):
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def events(page: Any, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = page.evaluate("t => fxrEvents.filter(e => e.type === t)", kind)
    return out


def wait_event(page: Any, kind: str, count: int = 1, element: str = "risk-calculator") -> dict[str, Any]:
    page.wait_for_function("([t, n, id]) => fxrEvents.filter(e => e.type === t && e.id === id).length >= n",
                           arg=[kind, count, element])
    found = [e for e in events(page, kind) if e["id"] == element]
    detail: dict[str, Any] = found[count - 1]["detail"]
    return detail


def widget_frame(page: Any, selector: str = "#risk-calculator iframe") -> Any:
    frame = page.locator(selector).element_handle().content_frame()
    frame.wait_for_selector("#go")
    return frame


UNNAMED = """() => {
  const text = (id) => (document.getElementById(id) || {}).textContent || '';
  const name = (el) => (el.labels && [...el.labels].map((l) => l.textContent).join('').trim())
    || (el.getAttribute('aria-label') || '').trim()
    || (el.getAttribute('aria-labelledby') || '').split(' ').map(text).join('').trim()
    || (el.tagName === 'BUTTON' && el.textContent.trim());
  const broken = (el) => (el.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && !text(id) &&
    !document.getElementById(id));
  return [...document.querySelectorAll('input, select, button, textarea, [role=tab], output')]
    .filter((el) => !name(el) || broken(el).length).map((el) => el.id || el.outerHTML.slice(0, 80));
}"""


def open_embed(page: Any, stack: Stack) -> Any:
    page.goto(stack.host + "/embed.html")
    wait_event(page, "ready")
    return widget_frame(page)


# --- the acceptance points -------------------------------------------------------------------------
def test_worked_example_set_account_and_calculated_event(page: Any, stack: Stack) -> None:
    frame = open_embed(page, stack)
    iframe = page.locator("#risk-calculator iframe")
    assert iframe.get_attribute("sandbox") == "allow-scripts allow-same-origin allow-forms"
    assert iframe.get_attribute("title") == f"Position size calculator \u2013 {stack.name}"
    assert frame.url.startswith(stack.api + "/widget/frame?")
    assert page.locator("#risk-calculator iframe").count() == 1

    # The worked example, sent by the host page: 10,000 USD, 2 % (the default), EURUSD 1.1850 -> 1.1820,
    # leverage 30 (the broker's maximum, prefilled).
    page.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
        w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
        w.setPrices({entry: 1.1850, stop: 1.1820}); }""")
    first = wait_event(page, "calculated")["result"]
    assert first["lotSize"] == 0.66 and first["stopDistancePips"] == 30 and first["leverage"] == 30
    assert frame.locator("#r-lots").inner_text() == "0.66"
    assert frame.locator("#r-risk").inner_text() == "$198.00"
    assert frame.locator("#r-margin").inner_text() == "$2,607.00"
    assert frame.locator("#r-pip").inner_text() == "$6.60"
    assert frame.locator("#res").get_attribute("aria-live") == "polite"

    # setAccount from the host changes the result: twice the balance, 1.33 lots (floored from 1.3333).
    page.evaluate("() => ForexRisk.get('#risk-calculator').setAccount({balance: 20000, currency: 'USD'})")
    second = wait_event(page, "calculated", 2)["result"]
    assert second["lotSize"] == 1.33
    frame.wait_for_function("() => document.getElementById('r-lots').textContent === '1.33'")

    # A take-profit from the host gives R:R; the resize events set the iframe's height.
    page.evaluate("() => ForexRisk.get('#risk-calculator').setPrices({entry: 1.1850, stop: 1.1820, "
                  "takeProfit: 1.1910})")
    third = wait_event(page, "calculated", 3)["result"]
    assert third["riskRewardRatio"] == 2.0
    frame.wait_for_selector("#r-rr")
    last_resize = events(page, "resize")[-1]["detail"]["height"]
    page.wait_for_function("h => document.querySelector('#risk-calculator iframe').style.height === h + 'px'",
                           arg=last_resize)


def test_results_always_belong_to_the_inputs_on_screen(browser: Any, stack: Stack) -> None:
    """Issue 19's stale answers: an edit marks the shown result stale at once, one debounced request replaces
    it, and an answer that cannot belong to the form (a missing rate) clears it. Timers are Playwright's
    fake clock, so the debounce is stepped, never waited for."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    sent: list[dict[str, Any]] = []
    pg.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/calculate/position-size") else None)
    try:
        pg.clock.install()
        pg.goto(stack.host + "/embed.html")
        wait_event(pg, "ready")
        frame = widget_frame(pg)
        pg.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
            w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
            w.setPrices({entry: 1.1850, stop: 1.1820}); }""")
        pg.clock.run_for(100)
        assert wait_event(pg, "calculated")["result"]["lotSize"] == 0.66
        assert frame.locator("#r-lots").inner_text() == "0.66"
        assert frame.locator("#res").get_attribute("data-stale") is None

        # The edits, without pressing Calculate: the old answer is marked at once ...
        frame.locator("#stop").fill("1.1750")
        assert frame.locator("#res").get_attribute("data-stale") == ""
        assert frame.locator("#stale").is_visible()
        assert frame.evaluate("document.getElementById('out').inert")
        assert frame.locator("#copy").is_disabled()  # nor can the old answer be copied
        frame.locator("#risk").fill("0.5")
        assert frame.locator("#res").get_attribute("data-stale") == ""
        assert len(sent) == 1  # nothing sent yet: the debounce is still running
        # ... and one request (not one per edit) replaces it: 50 USD / (100 pips x 10 USD) = 0.05 lots.
        pg.clock.run_for(500)
        assert wait_event(pg, "calculated", 2)["result"]["lotSize"] == 0.05
        frame.wait_for_function("() => document.getElementById('r-lots').textContent === '0.05'")
        assert frame.locator("#r-units").inner_text() == "5,000"
        assert frame.locator("#res").get_attribute("data-stale") is None and not frame.locator("#stale").is_visible()
        assert frame.locator("#copy").is_enabled()
        assert len(sent) == 2 and sent[1]["stopLoss"] == 1.175 and sent[1]["riskPercentage"] == 0.5

        # Putting the inputs back to those of the shown answer un-marks it without a request.
        frame.locator("#risk").fill("1")
        assert frame.locator("#res").get_attribute("data-stale") == ""
        frame.locator("#risk").fill("0.5")
        assert frame.locator("#res").get_attribute("data-stale") is None
        pg.clock.run_for(500)
        assert len(sent) == 2

        # Another pair: the EURUSD prices (entry, stop price) are dropped with its answer ...
        frame.locator("#sym").fill("EURCHF")
        frame.locator("#sym").press("Tab")
        assert frame.locator("#r-lots").count() == 0 and "0.05" not in frame.locator("#out").inner_text()
        assert frame.locator("#entry").input_value() == "" and frame.locator("#stop").input_value() == ""
        # ... and with its own prices, a conversion no one has a rate for: the form asks for it, no number shown.
        frame.locator("#entry").fill("0.9300")
        frame.locator("#stop").fill("0.9250")
        pg.clock.run_for(500)
        assert wait_event(pg, "error")["code"] == "missing_rate"
        frame.wait_for_selector("#rate-f-USDCHF")
        assert frame.locator("#r-lots").count() == 0
        # An incomplete form clears a result too (nothing to recalculate it with).
        frame.locator("#rate-f-USDCHF").fill("0.9")
        pg.clock.run_for(500)
        wait_event(pg, "calculated", 3)
        frame.wait_for_selector("#r-lots")
        frame.locator("#stop").fill("")
        assert frame.locator("#r-lots").count() == 0
    finally:
        context.close()


def test_an_edit_cancels_the_request_in_flight(page: Any, stack: Stack) -> None:
    """The request for inputs no longer on screen is cancelled, not only ignored when it answers."""
    frame = open_embed(page, stack)
    page.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
        w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
        w.setPrices({entry: 1.1850, stop: 1.1820}); }""")
    wait_event(page, "calculated")
    held: list[Any] = []
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.failure or "") if r.url.endswith(CALC_PATH) else None)
    page.route(CALC_URL, lambda route: held.append(route))
    with page.expect_request(CALC_URL):
        frame.locator("#stop").fill("1.1750")
    with page.expect_request(CALC_URL):
        frame.locator("#risk").fill("0.5")
    deadline = time.monotonic() + 15  # a hang guard, not a speed check
    while (len(held) < 2 or not failed) and time.monotonic() < deadline:
        page.wait_for_timeout(20)  # states, not time: both requests held, the first one given up by the page
    assert len(failed) == 1 and "ABORTED" in failed[0].upper(), failed
    held[-1].continue_()
    page.unroute(CALC_URL)
    frame.wait_for_function("() => (document.getElementById('r-lots') || {}).textContent === '0.05'")


def test_messages_from_another_origin_are_ignored(page: Any, stack: Stack) -> None:
    """A frame from another origin that knows the widget id still cannot drive the widget."""
    stack.pages["/evil.html"] = """<!doctype html><script>
addEventListener('message', e => {
  const w = parent.frames[e.data.index];
  w.postMessage({fxr: 1, type: 'setAccount', wid: e.data.wid, payload: {balance: 1, currency: 'JPY'}}, '*');
  parent.postMessage('sent', '*');
});</script>"""
    frame = open_embed(page, stack)
    page.evaluate("() => ForexRisk.get('#risk-calculator').setAccount({balance: 10000, currency: 'USD'})")
    frame.wait_for_function("() => document.getElementById('bal').value === '10000'")
    page.evaluate("""url => new Promise(done => {
        const f = document.createElement('iframe'); f.src = url; document.body.appendChild(f);
        addEventListener('message', e => { if (e.data === 'sent') done(); });
        f.onload = () => f.contentWindow.postMessage(
            {index: 0, wid: ForexRisk.get('#risk-calculator').wid}, '*');
    })""", stack.stranger + "/evil.html")
    page.wait_for_timeout(300)
    assert frame.locator("#bal").input_value() == "10000"
    assert frame.locator("#cur").input_value() == "USD"
    # The same message from the real parent is accepted (so the check above could fail).
    page.evaluate("() => ForexRisk.get('#risk-calculator').setAccount({balance: 1, currency: 'JPY'})")
    frame.wait_for_function("() => document.getElementById('cur').value === 'JPY'")


def test_page_not_on_the_allow_list_gets_no_widget(page: Any, stack: Stack) -> None:
    console: list[tuple[str, str]] = []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.goto(stack.stranger + "/embed.html")
    try:
        error = wait_event(page, "error")
    except Exception as exc:
        raise AssertionError(f"no error event; console: {console}; events: {page.evaluate('fxrEvents')}") from exc
    assert error["code"] == "config"
    warnings = [text for kind, text in console if kind == "warning"]
    assert page.locator("#risk-calculator iframe").count() == 0
    assert any("[ForexRisk]" in w for w in warnings)

    # Copying the frame URL into the stranger's page does not help: frame-ancestors blocks it.
    r = httpx.get(f"{stack.api}/api/v1/widget/config",
                  params={"broker": stack.slug, "key": stack.publishable_key}, headers={"Origin": stack.host})
    assert r.status_code == 200
    stack.pages["/copied.html"] = f'<!doctype html><iframe id="f" src="{r.json()["frameUrl"]}&wid=x1"></iframe>'
    page.goto(stack.stranger + "/copied.html")
    page.wait_for_timeout(500)
    framed = page.locator("#f").element_handle().content_frame()
    assert framed is None or framed.url.startswith("chrome-error:") or framed.query_selector("#app") is None


def test_branding_colour_contrast_and_dark_mode(page: Any, stack: Stack) -> None:
    frame = open_embed(page, stack)
    style = "el => { const s = getComputedStyle(el); return [s.backgroundColor, s.color]; }"
    assert frame.locator("#go").evaluate(style) == ["rgb(194, 24, 91)", "rgb(255, 255, 255)"]
    # A light primary colour gets near-black text (white on yellow would fail WCAG AA).
    page.evaluate("() => ForexRisk.get('#risk-calculator').setTheme({theme: 'dark', primaryColor: '#ffd400'})")
    frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    assert frame.locator("#go").evaluate(style) == ["rgb(255, 212, 0)", "rgb(17, 17, 17)"]
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 20, 26)"


def test_arabic_is_right_to_left_with_arabic_numbers(page: Any, stack: Stack) -> None:
    strings = json.loads((ROOT / "widget" / "i18n" / "ar.json").read_text())
    stack.pages["/ar.html"] = host_page(stack.api, stack.publishable_key, stack.slug, attrs=' data-locale="ar"')
    page.goto(stack.host + "/ar.html")
    wait_event(page, "ready")
    frame = widget_frame(page)
    assert frame.evaluate("[document.documentElement.dir, document.documentElement.lang]") == ["rtl", "ar"]
    assert frame.evaluate("getComputedStyle(document.querySelector('form')).direction") == "rtl"
    assert frame.locator("#go").inner_text() == strings["calculate"]
    assert frame.evaluate(UNNAMED) == []
    page.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
        w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
        w.setPrices({entry: 1.185, stop: 1.182}); }""")
    assert wait_event(page, "calculated")["result"]["lotSize"] == 0.66
    expected = frame.evaluate("new Intl.NumberFormat('ar', {minimumFractionDigits: 2}).format(0.66)")
    frame.wait_for_function("t => document.getElementById('r-lots').textContent === t", arg=expected)
    # Amounts as Intl writes them in Arabic, each kept whole, and in reading order right to left: the
    # money first (rightmost), then its percentage (issue 19: "US$ (1.98%) 198.00" came out scrambled).
    money = frame.evaluate("new Intl.NumberFormat('ar', {style: 'currency', currency: 'USD'}).format(198)")
    share = frame.evaluate("'(' + new Intl.NumberFormat('ar', {style: 'percent', minimumFractionDigits: 2})"
                           ".format(0.0198) + ')'")
    assert frame.locator("#r-risk").inner_text() == money
    assert frame.locator("#r-riskpct").inner_text() == share
    boxes = frame.evaluate("""() => ['r-risk', 'r-riskpct'].map((id) => {
        const r = document.getElementById(id).getBoundingClientRect(); return [r.left, r.right, r.top]; })""")
    (risk_left, _, risk_top), (_, pct_right, pct_top) = boxes
    assert abs(risk_top - pct_top) < 4 and pct_right <= risk_left, boxes  # one line, percentage left of money
    # The rendered line reads as the parts in order: nothing of one number moved into the other.
    line = frame.evaluate("document.getElementById('r-risk').parentElement.innerText")
    assert line.index(money) < line.index(share), line
    # The same on the Portfolio tab (it printed "US$ (1.98%) 198.00" there: the amount's symbol was split from
    # its digits by the percentage). Every piece of each amount lies right of its percentage.
    frame.locator("#tab-port").click()
    frame.locator("#padd").click()
    frame.locator("#pgo2").click()
    frame.wait_for_selector("#q-risk")
    laid = frame.evaluate("""() => { const dd = document.getElementById('q-risk'), r = document.createRange();
        r.selectNodeContents(dd.firstChild); const boxes = [...r.getClientRects()].filter((b) => b.width > 0);
        const pct = dd.querySelector('.mut').getBoundingClientRect();
        return [boxes.length, Math.min(...boxes.map((b) => b.left)), pct.right, dd.firstChild.textContent]; }""")
    assert laid[0] >= 1 and laid[2] <= laid[1], laid  # every piece of the amount right of its percentage
    assert laid[3] == money, laid


def test_every_locale_is_complete_on_screen(browser: Any, stack: Stack) -> None:
    """Each shipped locale, rendered (full page, every tab's markup): no visible text, label, placeholder or
    title is an English string, other than the words that language uses as they are (test_widget_assets)."""
    from tests.test_widget_assets import SAME_AS_ENGLISH

    en = json.loads((ROOT / "widget" / "i18n" / "en.json").read_text())
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        for locale in sorted(SAME_AS_ENGLISH):
            allowed = {en[k] for k in SAME_AS_ENGLISH[locale]}
            english = {v for v in en.values() if "{" not in v and v not in allowed and len(v) > 2}
            pg.goto(f"{stack.api}/w/{stack.slug}?locale={locale}")
            pg.wait_for_selector("#go")
            pg.fill("#sym", "EURUSD")
            texts = pg.evaluate("""() => {
                const out = [document.title];
                const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
                while (walk.nextNode()) out.push(walk.currentNode.textContent.trim());
                document.querySelectorAll('[aria-label],[placeholder],[title],option').forEach((el) => out.push(
                    el.getAttribute('aria-label') || '', el.getAttribute('placeholder') || '',
                    el.getAttribute('title') || '', el.textContent || ''));
                return out.filter(Boolean);
            }""")
            left = sorted({t for t in texts if t in english})
            assert left == [], f"{locale}: English on screen: {left}"
            hint = pg.locator("#sym-h").inner_text()
            assert "euro" not in hint.lower() or locale in ("de", "fr", "es", "it", "pt"), (locale, hint)
    finally:
        context.close()


def test_nothing_cut_at_320_px_in_any_locale(browser: Any, stack: Stack) -> None:
    """At 320 px every tab's name, every button's text and the preset chooser's text are whole in every
    locale (the English tabs read "Calculator Projection Portf", the chooser "No prese")."""
    from tests.test_widget_assets import SAME_AS_ENGLISH

    context = browser.new_context(viewport={"width": 320, "height": 900})
    cut = """() => {
        const c = document.createElement('canvas').getContext('2d'), out = [];
        const box = (el) => el.getBoundingClientRect();
        const tl = document.querySelector('[role=tablist]');
        if (tl && tl.scrollWidth > tl.clientWidth) out.push(['tablist', tl.scrollWidth, tl.clientWidth]);
        document.querySelectorAll('[role=tab], button').forEach((el) => {
          if (el.offsetParent && el.scrollWidth > el.clientWidth) out.push([el.id || el.textContent, el.scrollWidth,
            el.clientWidth]);
          if (tl && el.role === 'tab' && (box(el).left < box(tl).left - 0.5 || box(el).right > box(tl).right + 0.5))
            out.push([el.id, 'outside the tab list']);
        });
        document.querySelectorAll('select').forEach((s) => {
          if (!s.offsetParent || !s.selectedOptions[0]) return;
          c.font = getComputedStyle(s).font;
          const text = c.measureText(s.selectedOptions[0].text).width;
          if (text + 30 > s.clientWidth) out.push([s.id, Math.round(text), s.clientWidth]);
        });
        if (box(document.getElementById('psave')).top !== box(document.getElementById('pdel')).top)
          out.push(['preset buttons on two lines']);
        return out;
    }"""
    try:
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        for locale in sorted(SAME_AS_ENGLISH) + ["en"]:
            pg.goto(f"{stack.api}/w/{stack.slug}?locale={locale}")
            pg.wait_for_selector("#go")
            found = pg.evaluate(cut)
            assert found == [], (locale, found)
    finally:
        context.close()


def https_font_server() -> tuple[ThreadingHTTPServer, str]:
    """A broker's font host: https on localhost (a throwaway self-signed certificate), a stylesheet and a
    TrueType file from the system's DejaVu, served with CORS as font CDNs do."""
    import ssl
    import tempfile

    from tests.tls import self_signed

    cert_file, key_file = self_signed(Path(tempfile.mkdtemp(prefix="font-host-")), "localhost")
    files: dict[str, tuple[str, bytes]] = {"/f.ttf": ("font/ttf", FONT_FILE.read_bytes())}

    class Fonts(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            kind, body = files.get(self.path, ("", b""))
            if not body:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fonts)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    origin = f"https://localhost:{server.server_address[1]}"
    files["/font.css"] = ("text/css", ('@font-face { font-family: "Broker Sans"; '
                                       f'src: url({origin}/f.ttf) format("truetype"); }}').encode())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, origin


FONT_FILE = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")


@pytest.mark.skipif(not FONT_FILE.is_file(), reason="needs a TrueType file to serve (Debian's fonts-dejavu-core)")
def test_a_brokers_web_font_loads_in_the_frame(browser: Any, stack: Stack) -> None:
    """Issue 19: the broker's web font was blocked by the frame's CSP. A broker with a font stylesheet and
    font host (https) gets its font in the frame: loaded, used, and no CSP violation reported."""
    font_server, origin = https_font_server()
    slug = f"{stack.slug}-font"
    config = BrokerConfig.model_validate({
        "allowedOrigins": [stack.host], "maxLeverage": 30, "locale": "en",
        "branding": {"primaryColor": PRIMARY, "fontFamily": '"Broker Sans", sans-serif',
                     "fontStylesheet": f"{origin}/font.css", "fontHosts": [origin]}})
    spec = BrokerCreate(name="Font Forex", slug=slug, tier="standard", config=config,  # type: ignore[call-arg]
                        admin_email=f"admin@{slug}.example.com", admin_password="correct horse battery staple")
    svc = stack.app.state.services
    made = asyncio.run_coroutine_threadsafe(create_broker(svc.db, svc.auth, spec, force=True), stack.loop).result(60)
    stack.pages["/font.html"] = host_page(stack.api, made["publishableKey"], slug)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
    console: list[str] = []
    try:
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        pg.on("console", lambda m: console.append(m.text))
        pg.goto(stack.host + "/font.html")
        wait_event(pg, "ready")
        frame = widget_frame(pg)
        frame.wait_for_function("""async () => { await document.fonts.ready;
            return [...document.fonts].some((f) => f.family.replace(/"/g, '') === 'Broker Sans'
              && f.status !== 'unloaded'); }""")
        status = frame.evaluate("""async () => { await document.fonts.ready;
            return [...document.fonts].filter((f) => f.family.replace(/"/g, '') === 'Broker Sans')
              .map((f) => f.status); }""")
        assert status == ["loaded"], (status, console)
        assert frame.evaluate("document.fonts.check('16px \"Broker Sans\"')")
        assert "Broker Sans" in frame.locator("#go").evaluate("el => getComputedStyle(el).fontFamily")
        assert not [m for m in console if "Content Security Policy" in m], console
    finally:
        context.close()
        font_server.shutdown()
        font_server.server_close()


@pytest.mark.parametrize(("features", "tabs", "advanced"), [
    ("advancedScenarios", [], True),
    ("portfolio,projections", ["tab-calc", "tab-proj", "tab-port"], False),
    ("portfolio", ["tab-calc", "tab-port"], False),
])
def test_features_choose_tabs_and_options(browser: Any, stack: Stack, features: str, tabs: list[str],
                                          advanced: bool) -> None:
    """Issue 19: features.portfolio and features.projections were read by nothing. They choose the tabs;
    advancedScenarios the ATR and points stops, reverse mode, the ladder and costs (the host may narrow)."""
    name = f"/features-{features.replace(',', '-')}.html"
    stack.pages[name] = host_page(stack.api, stack.publishable_key, stack.slug, attrs=f' data-features="{features}"')
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        pg.goto(stack.host + name)
        wait_event(pg, "ready")
        frame = widget_frame(pg)
        assert frame.evaluate("[...document.querySelectorAll('[role=tab]')].map((b) => b.id)") == tabs
        assert frame.locator("#p-proj").count() == ("tab-proj" in tabs)
        assert frame.locator("#p-port").count() == ("tab-port" in tabs)
        for option in ("#sm-atr", "#sm-points", "#rm-lots", "#tp-add", "#comm"):
            assert frame.locator(option).count() == advanced, option
    finally:
        context.close()


def test_keyboard_only_calculation(page: Any, stack: Stack) -> None:
    """Tab into the widget, fill the worked example (stop in pips, chosen with the arrow keys), press Enter."""
    frame = open_embed(page, stack)
    page.locator("h1").click()  # focus starts on the host page, outside the widget

    def tab_to(element_id: str, limit: int = 25) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if frame.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
                # A radio is drawn by its label: the ring is on the label.
                ring = frame.evaluate("() => { const a = document.activeElement, el = a.type === 'radio' ?"
                                      " a.nextElementSibling : a, s = getComputedStyle(el);"
                                      " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }")
                assert ring[0] != "none" and ring[1] >= 2, f"no visible focus on #{element_id}: {ring}"
                return
        raise AssertionError(f"#{element_id} is not reachable with Tab")

    tab_to("bal")
    page.keyboard.type("10000")
    tab_to("sym")
    page.keyboard.type("EURUSD")
    tab_to("entry")
    page.keyboard.type("1.1850")
    tab_to("stop")
    page.keyboard.type("30")
    tab_to("sm-price")
    page.keyboard.press("ArrowRight")  # price -> pips
    assert frame.locator("#sm-pips").is_checked()
    tab_to("risk")
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    assert wait_event(page, "calculated")["result"]["lotSize"] == 0.66
    assert frame.locator("#r-lots").inner_text() == "0.66"


def test_missing_conversion_rate_asks_for_it(page: Any, stack: Stack) -> None:
    """The widget has no market data: EURJPY in a USD account needs USDJPY, which the trader types in."""
    frame = open_embed(page, stack)
    page.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
        w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURJPY');
        w.setPrices({entry: 160.00, stop: 159.50}); }""")
    assert wait_event(page, "error")["code"] == "missing_rate"
    rate = frame.locator("#rate-f-USDJPY")
    assert rate.get_attribute("aria-invalid") == "true"
    rate.fill("150")
    rate.press("Enter")
    # 200 USD at risk / (0.50 JPY x 100,000 / 150) = 0.6 lots
    assert wait_event(page, "calculated")["result"]["lotSize"] == 0.6
    assert frame.locator("#r-lots").inner_text() == "0.60"


def test_market_prices_fill_rate_and_entry(page: Any, stack: Stack) -> None:
    """With quotes in the broker's feed, EURJPY in a USD account needs neither a USDJPY rate nor an entry:
    the widget sends a side instead, and says where the prices came from."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    quotes = [{"symbol": "EURJPY", "bid": 160.00, "ask": 160.02, "time": stamp},
              {"symbol": "USDJPY", "bid": 149.99, "ask": 150.01, "time": stamp}]
    r = httpx.put(f"{stack.api}/api/v1/brokers/{stack.broker_id}/quotes", json={"quotes": quotes},
                  headers={"Authorization": f"Bearer {stack.secret_key}"}, timeout=30)
    assert r.status_code == 200, r.text
    frame = open_embed(page, stack)
    page.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
        w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURJPY'); }""")
    frame.locator("label[for=sm-pips]").click()
    frame.locator("#stop").fill("50")
    frame.locator("label[for=dm-short]").click()
    frame.locator("#go").click()
    result = wait_event(page, "calculated")["result"]
    assert result["entryPrice"] == 160.00 and result["direction"] == "short"  # a sell takes the bid
    assert result["marketData"]["fetched"]["USDJPY"]["source"] == "broker"
    # 200 USD at risk / (0.50 JPY x 100,000 / 150 (USDJPY mid)) = 0.6 lots
    assert result["lotSize"] == 0.6
    assert frame.locator("#rates-f input").count() == 0  # no rate was asked for
    assert "broker" in frame.locator("#r-src").inner_text()
    assert frame.locator("#dm-short").is_checked()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "market-prices.png"), full_page=True)


def push_quotes(stack: Stack, quotes: list[dict[str, Any]]) -> None:
    r = httpx.put(f"{stack.api}/api/v1/brokers/{stack.broker_id}/quotes", json={"quotes": quotes},
                  headers={"Authorization": f"Bearer {stack.secret_key}"}, timeout=30)
    assert r.status_code == 200, r.text


def test_entry_comes_from_the_quotes_by_side(page: Any, stack: Stack) -> None:
    """The entry is the broker's ask for a buy and bid for a sell, with source and time under it; a typed
    entry is the trader's; no current quote is said so."""
    now = time.time()
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    push_quotes(stack, [{"symbol": "EURUSD", "bid": 1.18500, "ask": 1.18512, "time": stamp(now)},
                        # older than the feed's 60 s: stale
                        {"symbol": "GBPUSD", "bid": 1.27000, "ask": 1.27020, "time": stamp(now - 600)}])
    frame = open_embed(page, stack)
    page.evaluate("""() => ForexRisk.get('#risk-calculator').setAccount({balance: 10000, currency: 'USD'})
        .setSymbol('EURUSD')""")
    frame.wait_for_function("() => document.getElementById('entry').value === '1.18512'")  # buy: the ask
    hint = frame.locator("#entry-h").inner_text()
    assert "1.18500" in hint and "1.18512" in hint and "broker" in hint and "UTC" in hint, hint
    frame.locator("label[for=dm-short]").click()
    frame.wait_for_function("() => document.getElementById('entry').value === '1.18500'")  # sell: the bid
    frame.locator("label[for=sm-pips]").click()
    frame.locator("#stop").fill("30")
    result = wait_event(page, "calculated")["result"]
    assert (result["direction"], result["entryPrice"], result["lotSize"]) == ("short", 1.185, 0.66)
    # A typed entry is the trader's: the side no longer rewrites it.
    frame.locator("#entry").fill("1.19000")
    frame.locator("label[for=dm-long]").click()
    assert frame.locator("#entry").input_value() == "1.19000"
    # No fresh quote: said under the field, nothing prefilled, the old pair's entry gone.
    page.evaluate("() => ForexRisk.get('#risk-calculator').setSymbol('GBPUSD')")
    strings = json.loads((ROOT / "widget" / "i18n" / "en.json").read_text())
    frame.wait_for_function("t => document.getElementById('entry-h').textContent === t", arg=strings["quoteStale"])
    assert frame.locator("#entry").input_value() == ""


def sent_bodies(pg: Any, route: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    pg.on("request", lambda r: bodies.append(r.post_data_json) if r.url.split("?")[0].endswith(route) else None)
    return bodies


def test_reward_to_risk_ladder_reverse_mode_and_atr_stop(page: Any, stack: Stack) -> None:
    sent = sent_bodies(page, "/calculate/position-size")
    frame = open_embed(page, stack)
    page.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
        w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
        w.setPrices({entry: 1.1850, stop: 1.1820, takeProfit: 1.1910}); }""")
    assert wait_event(page, "calculated")["result"]["riskRewardRatio"] == 2
    # A 60-pip target on a 30-pip stop, said risk first (issue 19: it read "1 : 2.00", backwards).
    frame.wait_for_function("() => (document.getElementById('r-rr') || {}).textContent === 'risk 1 : reward 2'")

    # A second target, the shares left empty: half the position at each.
    frame.locator("#tp-add").click()
    frame.locator("#tp2").fill("1.1940")
    frame.wait_for_function("() => document.querySelectorAll('#r-ladder tbody tr').length === 2")
    assert sent[-1]["takeProfit"] == [{"price": 1.191, "share": 0.5}, {"price": 1.194, "share": 0.5}]
    legs = frame.locator("#r-ladder tbody tr").all_inner_texts()
    assert "risk 1 : reward 2" in legs[0] and "risk 1 : reward 3" in legs[1], legs
    # Shares that do not add up are the trader's to fix, never sent.
    frame.locator("#tp1s").fill("70")
    frame.locator("#tp2s").fill("20")
    frame.locator("#tp2s").fill("30")
    frame.wait_for_function("() => [...document.querySelectorAll('#r-ladder tbody tr')].map(r => r.cells[1]"
                            ".textContent).join() === '70.00%,30.00%'")
    assert all(b.get("takeProfit") != [{"price": 1.191, "share": 0.7}, {"price": 1.194, "share": 0.2}] for b in sent)

    # Reverse mode: lots in, the risk of that size out (1 lot x 30 pips x 10 USD).
    frame.locator("label[for=rm-lots]").click()
    frame.locator("#risk").fill("1")
    frame.wait_for_function("() => (document.getElementById('r-big') || {}).textContent === '$300.00'")
    assert sent[-1]["lots"] == 1 and "riskPercentage" not in sent[-1]
    assert frame.locator("#r-lots").inner_text() == "1.00"

    # The spread widens an ATR stop and nothing else: with a price stop it is not offered (it was, and did
    # nothing); commission always is.
    frame.locator("#more summary").click()
    assert frame.locator("#comm").is_visible() and frame.locator("#spread").is_hidden()

    # ATR stop: ATR(14) of the pair's daily history times the multiplier typed in the stop field.
    frame.locator("label[for=rm-pct]").click()
    frame.locator("#risk").fill("1")
    frame.locator("label[for=sm-atr]").click()
    assert frame.locator("#spread").is_visible()
    frame.locator("#stop").fill("2")
    frame.wait_for_function("() => /ATR\\(14\\)/.test(document.getElementById('stop-h').textContent)")
    frame.wait_for_function("() => /2 × ATR/.test((document.getElementById('out') || {}).textContent)")
    body = sent[-1]
    assert body["atrMultiplier"] == 2 and body["atr"] > 0 and "stopLoss" not in body and body["direction"] == "long"
    result = events(page, "calculated")[-1]["detail"]["result"]
    assert result["stopDistance"] == pytest.approx(2 * body["atr"])


def test_presets_copy_and_share_link(browser: Any, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    try:
        pg.goto(stack.host + "/embed.html")
        wait_event(pg, "ready")
        frame = widget_frame(pg)
        pg.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
            w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
            w.setPrices({entry: 1.1850, stop: 1.1820}); }""")
        frame.locator("#risk").fill("1")
        frame.wait_for_function("() => (document.getElementById('r-lots') || {}).textContent === '0.33'")
        frame.locator("#psave").click()
        assert "EURUSD · 1 %" in frame.locator("#preset").inner_text()
        frame.locator("#risk").fill("3")
        frame.wait_for_function("() => document.getElementById('r-lots').textContent === '1.00'")
        frame.locator("#preset").select_option(label=frame.locator("#preset option").nth(1).inner_text())
        frame.wait_for_function("() => document.getElementById('r-lots').textContent === '0.33'")
        assert frame.locator("#risk").input_value() == "1"

        frame.locator("#copy").click()
        strings = json.loads((ROOT / "widget" / "i18n" / "en.json").read_text())
        frame.wait_for_function("t => document.getElementById('acts-s').textContent === t", arg=strings["copied"])

        frame.locator("#share-b").click()
        url = frame.locator("#share-u").input_value()
        assert url.startswith(stack.host + "/embed.html#fxr="), url

        # The link opens the host page with the same inputs, in a browser that has never seen them.
        other = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            p2 = other.new_page()
            p2.set_default_timeout(15_000)
            p2.goto(url)
            wait_event(p2, "ready")
            f2 = widget_frame(p2)
            f2.wait_for_function("() => (document.getElementById('r-lots') || {}).textContent === '0.33'")
            values = [f2.locator(f"#{i}").input_value() for i in ("bal", "sym", "entry", "stop")]
            assert values == ["10000", "EURUSD", "1.185", "1.182"]
            assert f2.locator("#preset option").count() == 1  # presets are per browser, never in a link
        finally:
            other.close()
        # Presets survive a reload.
        pg.reload()
        wait_event(pg, "ready")
        assert "EURUSD · 1 %" in widget_frame(pg).locator("#preset").inner_text()
    finally:
        context.close()


def test_projection_and_portfolio_tabs(page: Any, stack: Stack) -> None:
    frame = open_embed(page, stack)
    page.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
        w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
        w.setPrices({entry: 1.185, stop: 1.182, takeProfit: 1.191}); }""")
    wait_event(page, "calculated")
    frame.locator("#tab-proj").click()
    assert frame.locator("#pbal").input_value() == "10000" and frame.locator("#prr").input_value() == "2"
    frame.locator("#pgo").click()
    frame.wait_for_selector("svg.fan path.ln", timeout=POOL_START_MS)
    assert frame.locator("svg.fan path.b1, svg.fan path.b2").count() == 2
    line = frame.locator("svg.fan path.ln").get_attribute("d")
    assert line.count("C") > 10 and "L" not in line  # cubic curves through the points, not a jagged polyline
    # ... and smooth: the median of a 50 % win rate alternates with odd and even trade counts; drawn through
    # every point it zigzagged (about 90 turns in 100 trades). Same for the edges of the bands.
    outer = frame.locator("svg.fan path.b1").get_attribute("d")
    for name, d in (("median", line), ("95th", outer.split("L")[0]), ("5th", outer.split("L")[1])):
        ys = [float(seg.split()[-1].split(",")[1]) for seg in d.rstrip("Z").split("C")[1:]]
        turns = sum((b - a) * (c - b) < 0 for a, b, c in zip(ys, ys[1:], ys[2:], strict=False))
        assert turns <= 6, (name, turns)
    assert frame.locator("svg.fan").get_attribute("role") == "img"
    median = frame.locator("#p-median").inner_text()
    assert median.startswith("$")
    # Every figure and curve, not only the median (which is the same on most unseeded runs too: with a 50 %
    # win rate it is nearly always the run with 50 wins in 100); the drawdown odds and the bands are not.
    shown = "() => [document.querySelector('#pout dl').innerText, document.querySelector('svg.fan').innerHTML]"
    first = frame.evaluate(shown)
    frame.evaluate("document.getElementById('pout').innerHTML = ''")
    frame.locator("#pgo").click()  # seeded: the same figures again
    frame.wait_for_selector("#p-median")
    assert frame.locator("#p-median").inner_text() == median
    assert frame.evaluate(shown) == first
    frame.locator("#tab-port").press("ArrowRight")  # arrow keys move between tabs
    frame.locator("#tab-calc").press("ArrowLeft")
    assert frame.locator("#tab-port").get_attribute("aria-selected") == "true"
    frame.locator("#padd").click()
    frame.locator("#prow").click()  # an empty row: its fields are named too
    assert frame.evaluate(UNNAMED) == []
    frame.locator("[data-del='1']").click()
    frame.locator("#pgo2").click()
    frame.wait_for_selector("#q-risk")
    assert frame.locator("#q-risk").inner_text().startswith("$198.00")
    assert frame.locator("#q-heat").count() == 0  # one pair: nothing to correlate

    # A second pair: correlation-adjusted risk from the market history and the heat map (issue 19: the
    # "correlation analysis" showed no correlation).
    frame.locator("#prow").click()
    for key, value in (("currencyPair", "GBPUSD"), ("lots", "0.5"), ("entryPrice", "1.27"), ("stopLossPips", "40")):
        frame.locator(f"#prows input[data-i='1'][data-k='{key}']").fill(value)
        frame.locator(f"#prows input[data-i='1'][data-k='{key}']").dispatch_event("change")
    frame.locator("#pgo2").click()
    frame.wait_for_selector("#q-heat")
    assert frame.locator("#q-corr").inner_text().startswith("$")
    cells = frame.locator("#q-heat tbody td").all_inner_texts()
    assert len(cells) == 4 and cells[0] == cells[3] == "1.00", cells
    assert -1 <= float(cells[1]) <= 1 and cells[1] == cells[2]
    # The development-history warning is said once (it was under the heat map and again in the warnings).
    note = json.loads((ROOT / "widget" / "i18n" / "en.json").read_text())["flag_DEVELOPMENT_HISTORY"]
    assert frame.locator("#qout").inner_text().count(note) <= 1
    # The table keeps every field whole at desktop width and on phones (issue 19: "Buy" cut to "Bu" at
    # 1280 px, the instrument hidden at 390 px).
    for width in (1280, 390, 320):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)
        sizes = frame.evaluate("""() => [...document.querySelectorAll('#prows tr:first-child :is(input, select)')]
            .map((el) => [el.dataset.k, Math.round(el.getBoundingClientRect().width)])""")
        assert all(w >= 60 for _, w in sizes), (width, sizes)
        side = frame.evaluate("""() => { const s = document.querySelector('#prows select'),
            c = document.createElement('canvas').getContext('2d'); c.font = getComputedStyle(s).font;
            return [c.measureText(s.selectedOptions[0].text).width, s.clientWidth]; }""")
        assert side[0] + 16 <= side[1], (width, side)  # the option's text fits its box
        overflow = frame.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (width, overflow)
        if width < 560:  # the cards' labels read like the table's headers ("Lots", not "lots")
            labels = frame.evaluate("""() => [...document.querySelectorAll('#prows tr:first-child td[data-l]')]
                .map((td) => { const b = getComputedStyle(td, '::before');
                  return [td.dataset.l, b.content, b.textTransform]; })""")
            lots = next(entry for entry in labels if entry[0] == "lots")
            assert lots[2] == "capitalize" and lots[1] == '"lots"', labels


def test_full_page_mode(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.api}/w/{stack.slug}?locale=de")
    page.wait_for_selector("#go")
    assert page.evaluate("document.documentElement.classList.contains('page')")
    page.fill("#bal", "10.000")  # German grouping
    page.fill("#sym", "EURUSD")
    page.fill("#entry", "1,1850")  # German decimal comma
    page.fill("#stop", "1,1820")
    page.press("#stop", "Enter")
    page.wait_for_function("() => document.getElementById('r-lots')")
    assert page.locator("#r-lots").inner_text() == "0,66"
    problems = axe.blocking(page)
    assert not problems, axe.report(problems, "full page, de")


def test_session_is_renewed_before_it_expires(browser: Any, stack: Stack) -> None:
    """Fake timers: 14 minutes on, the widget has renewed its session and calculates with the new token."""
    context = browser.new_context()
    pg = context.new_page()
    try:
        pg.clock.install()
        renewed: list[tuple[int, str]] = []
        sent: list[str] = []

        def on_response(r: Any) -> None:
            if r.url.endswith("/api/v1/widget/session"):
                renewed.append((r.status, r.json().get("token", "")))

        def on_request(r: Any) -> None:
            if r.url.endswith("/api/v1/calculate/position-size"):
                sent.append(r.headers.get("authorization", ""))

        pg.on("response", on_response)
        pg.on("request", on_request)
        pg.goto(stack.host + "/embed.html")
        wait_event(pg, "ready")
        frame = widget_frame(pg)
        pg.clock.fast_forward("14:00")  # the session lives 15 minutes; renewal is due two minutes before
        deadline = time.monotonic() + 10
        while not renewed and time.monotonic() < deadline:
            pg.wait_for_timeout(50)
        assert [status for status, _ in renewed] == [200]
        new_token = renewed[0][1]
        assert new_token.startswith("fxw_")
        pg.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
            w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
            w.setPrices({entry: 1.185, stop: 1.182}); }""")
        pg.clock.run_for(100)
        assert wait_event(pg, "calculated")["result"]["lotSize"] == 0.66
        assert frame.locator("#r-lots").inner_text() == "0.66"
        assert sent == [f"Bearer {new_token}"]
    finally:
        context.close()


def wire_log(pg: Any, origin: str) -> list[dict[str, Any]]:
    """Every finished request to `origin`, with the bytes Chromium received for it (headers and encoded
    body, from the network log: what a compressed response really cost)."""
    log: list[dict[str, Any]] = []

    def done(req: Any) -> None:
        if not req.url.startswith(origin):
            return
        sizes = req.sizes()
        resp = req.response()
        log.append({"path": req.url.removeprefix(origin).split("?")[0], "status": resp.status if resp else 0,
                    "bytes": sizes["responseBodySize"] + sizes["responseHeadersSize"],
                    "encoding": (resp.headers.get("content-encoding") if resp else None)})

    pg.on("requestfinished", done)
    return log


def test_wire_budgets_first_and_repeat_load(browser: Any, stack: Stack) -> None:
    """Issue 19's budgets in bytes as the browser received them: loader <= 5 KB, the iframe's first load
    <= 30 KB (config, document, script, styles, strings, instruments), a repeat load <= 5 KB."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    log = wire_log(pg, stack.api)
    try:
        pg.goto(stack.host + "/embed.html")
        wait_event(pg, "ready")
        # `requestfinished` reaches Python after the page's own events: wait for the frame's four files.
        deadline = time.monotonic() + 15
        while sum(e["path"].startswith("/widget/v/") for e in log) < 4 and time.monotonic() < deadline:
            pg.wait_for_timeout(20)
        first = list(log)
        paths = [e["path"] for e in first]
        loader = sum(e["bytes"] for e in first if e["path"] == "/widget.js")
        framed = sum(e["bytes"] for e in first if e["path"] != "/widget.js")
        assert {"/widget.js", "/api/v1/widget/config", "/widget/frame"} <= set(paths), paths
        assert sum(p.startswith("/widget/v/") for p in paths) == 4, paths  # css, js, strings, instruments
        assert "/api/v1/instruments" not in paths
        assert len(paths) == len(set(paths)), f"fetched twice (a preload not used?): {paths}"
        big = [e for e in first if e["path"] != "/api/v1/widget/config"]
        assert all(e["encoding"] in ("gzip", "br") for e in big), first
        assert loader <= LOADER_BUDGET, first
        assert framed <= FRAME_BUDGET, first
        log.clear()
        pg.goto(stack.host + "/embed.html")  # the same browser again: hashed files come from its cache
        wait_event(pg, "ready")
        # As above: count the repeat load once its config and document have reached the log (summed at
        # `ready`, the document's entry was sometimes still on its way: 1.5 KB reported for 3 KB received).
        deadline = time.monotonic() + 15
        while not {"/api/v1/widget/config", "/widget/frame"} <= {e["path"] for e in log} \
                and time.monotonic() < deadline:
            pg.wait_for_timeout(20)
        assert {"/api/v1/widget/config", "/widget/frame"} <= {e["path"] for e in log}, log
        repeat = sum(e["bytes"] for e in log)
        assert not [e for e in log if e["path"].startswith("/widget/v/") and e["bytes"]], log
        assert repeat <= 5 * 1024, log
        print(f"\nwire: loader {loader} B, iframe first load {framed} B, repeat load {repeat} B")
    finally:
        context.close()


def test_screenshots_responsive_and_size_budget(browser: Any, stack: Stack) -> None:
    """Desktop and 390 px screenshots; nothing overflows at 390 or 320 px (the wire budgets have their own
    test, from the network log)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = [(1280, "desktop", "light"), (390, "mobile-390", "light"), (320, "mobile-320", "light"),
             (1280, "desktop-dark", "dark"), (390, "mobile-390-dark", "dark")]
    stack.pages["/embed-dark.html"] = host_page(stack.api, stack.publishable_key, stack.slug,
                                                attrs=' data-theme="dark"')
    for width, name, theme in shots:
        # Tall enough for the whole widget: Chromium paints a cross-origin frame only inside the viewport, so
        # a taller element's screenshot would show it cut off where the viewport ends.
        context = browser.new_context(viewport={"width": width, "height": 2200 if width < 800 else 1100},
                                      device_scale_factor=1)
        pg = context.new_page()
        try:
            pg.goto(stack.host + ("/embed-dark.html" if theme == "dark" else "/embed.html"))
            wait_event(pg, "ready")
            frame = widget_frame(pg)
            pg.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
                w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
                w.setPrices({entry: 1.1850, stop: 1.1820, takeProfit: 1.1910}); }""")
            wait_event(pg, "calculated")
            frame.wait_for_selector("#r-rr")
            pg.wait_for_function("() => { const f = document.querySelector('#risk-calculator iframe');"
                                 " return f.contentWindow && parseInt(f.style.height) > 0; }")
            pg.wait_for_timeout(150)  # the last resize
            overflow = frame.evaluate("() => document.documentElement.scrollWidth - document.documentElement"
                                      ".clientWidth")
            assert overflow <= 0, f"horizontal overflow of {overflow}px at {width}px"
            shot = ARTIFACTS / f"widget-{name}.png"
            pg.locator("#risk-calculator").screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            if name != "mobile-320" and os.environ.get("FOREXRISK_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(shot, ROOT / "docs" / ("widget.png" if name == "desktop" else f"widget-{name}.png"))
        finally:
            context.close()


# --- accessibility: axe-core in every state the trader can reach ---------------------------------------


def axe_clean(frame: Any, where: str, found: list[str]) -> None:
    """Serious and critical axe violations in the widget's frame go to `found` (one report per state), so a
    run lists every state that fails, not only the first."""
    problems = axe.blocking(frame)
    if problems:
        found.append(axe.report(problems, where))


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("locale", ["en", "ar"])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_clean_in_every_state(browser: Any, stack: Stack, theme: str, locale: str, width: int) -> None:
    """Issue 19: axe-core reports no serious or critical issue on any tab (calculator, projection, portfolio),
    with results, with a stale result, with an error, in both themes, in English and Arabic (right to
    left), at desktop and phone widths. No rule is turned off."""
    page_name = f"/embed-axe-{theme}-{locale}.html"
    stack.pages[page_name] = host_page(stack.api, stack.publishable_key, stack.slug,
                                       attrs=f' data-theme="{theme}" data-locale="{locale}"')
    context = browser.new_context(viewport={"width": width, "height": 900}, locale=locale)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    found: list[str] = []
    label = f"{theme}, {locale}, {width} px"
    try:
        pg.goto(stack.host + page_name)
        wait_event(pg, "ready")
        frame = widget_frame(pg)
        assert frame.evaluate("document.documentElement.lang") == locale
        assert frame.evaluate("document.documentElement.dataset.theme") == theme
        # The host side of the widget: the iframe the loader wrote (its title names it).
        host = axe.blocking(pg, "#risk-calculator")
        if host:
            found.append(axe.report(host, f"{label}, host page"))
        axe_clean(frame, f"{label}, calculator, empty", found)

        pg.evaluate("""() => { const w = ForexRisk.get('#risk-calculator');
            w.setAccount({balance: 10000, currency: 'USD'}); w.setSymbol('EURUSD');
            w.setPrices({entry: 1.1850, stop: 1.1820, takeProfit: 1.1910}); }""")
        wait_event(pg, "calculated")
        frame.wait_for_selector("#r-rr")
        axe_clean(frame, f"{label}, calculator, result", found)

        frame.locator("#tab-proj").click()
        frame.locator("#pgo").click()
        frame.wait_for_selector("#p-median", timeout=POOL_START_MS)
        axe_clean(frame, f"{label}, projection, result", found)

        frame.locator("#tab-port").click()
        frame.locator("#padd").click()
        frame.locator("#prow").click()
        # USDCHF moves against EURUSD: the heat map has cells of both colours.
        for key, value in (("currencyPair", "USDCHF"), ("lots", "0.5"), ("entryPrice", "0.80"),
                           ("stopLossPips", "40")):
            cell = frame.locator(f"#prows input[data-i='1'][data-k='{key}']")
            cell.fill(value)
            cell.dispatch_event("change")
        frame.locator("#pgo2").click()
        frame.wait_for_selector("#q-heat")
        assert frame.locator("#q-heat td.cn").count() == 2 and frame.locator("#q-heat td.cp").count() == 2
        axe_clean(frame, f"{label}, portfolio, result", found)

        # Stale: an edit marks the shown result at once; its recalculation is held in flight meanwhile.
        frame.locator("#tab-calc").click()
        held: list[Any] = []

        def hold(route: Any) -> None:
            held.append(route)

        pg.route(CALC_URL, hold)
        with pg.expect_request(CALC_URL):
            frame.locator("#stop").fill("1.1750")
        assert frame.locator("#stale").is_visible()
        frame.wait_for_selector("#res[aria-busy=true]")
        axe_clean(frame, f"{label}, calculator, stale result", found)

        # An error: the held request fails as a lost connection would; the banner says so, no result.
        while not held:
            pg.wait_for_timeout(20)  # the route handler runs when Playwright next waits
        held[0].abort("internetdisconnected")
        frame.wait_for_selector("#banner:not([hidden])")
        assert frame.locator("#r-lots").count() == 0
        axe_clean(frame, f"{label}, calculator, network error", found)
        pg.unroute(CALC_URL)

        # And the fields' own errors: an empty balance, Calculate pressed.
        frame.locator("#bal").fill("")
        frame.locator("#go").click()
        frame.wait_for_selector("#bal[aria-invalid=true]")
        axe_clean(frame, f"{label}, calculator, field error", found)
    finally:
        context.close()
    assert not found, "\n\n".join(found)
