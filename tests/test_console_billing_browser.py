"""The console's Billing page (issue 18, point 6) in real Chromium, against the local Stripe server.

The module runs its own local Stripe pair (localstripe + the double) and its own API server on it, so the
webhook it points at this server (the double delivers Stripe's events) never reaches another module's apps.
A broker signs up (trial), its admin opens Billing, upgrades through the local Checkout page, comes back to
"confirming payment", and sees the paid tier once Stripe's event has been delivered; then the invoice, the
Billing Portal link, a prorated switch and the cancellation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyotp
import pytest

from app.billing.localserver.process import LocalStripe
from app.billing.webhooks import LOCAL_WEBHOOK_SECRET
from app.config import Settings
from tests import test_console_browser as ui
from tests.billing_helpers import WEBHOOK, events_of, helper, sign
from tests.browser import CHROMIUM
from tests.test_console_browser import (
    PASSWORD,
    Console,
    check,
    enrolled,
    ready,
    reset_step,
    serve,
    sign_in,
    sql,
)

# The console tests' fixtures, here on this module's console (pytest resolves `console` per module).
browser = ui.browser
page = ui.page

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or not LocalStripe.available(),
    reason="needs a Chromium browser binary (Debian package `chromium`) on PATH and localstripe (a dev dependency)")

CONFIRMED = 120_000  # ms: a bound on waiting for the page to show what the API already holds, not a speed claim


@pytest.fixture(scope="module")
def stripe_url() -> Iterator[str]:
    local = LocalStripe()
    url = local.start()
    yield url
    local.stop()


@pytest.fixture(scope="module")
def console(settings: Settings, stripe_url: str) -> Iterator[Console]:
    yield from serve(settings.model_copy(update={"stripe_api_base": stripe_url}))


def signed_up(console: Console) -> dict[str, Any]:
    """A broker made through self-serve sign-up and its emailed link (API): on the free trial."""
    email = f"owner@b{uuid.uuid4().hex[:10]}.example.com"
    with httpx.Client(base_url=console.api, timeout=30) as c:
        r = c.post("/api/v1/signup", json={"companyName": f"Billing {email[8:14]}", "adminEmail": email,
                                            "password": PASSWORD})
        assert r.status_code == 202, r.text
        slug = r.json()["slug"]
        link = verification_link(console, email)
        v = c.get(link)
        assert v.status_code == 200 and v.json()["status"] == "active", v.text
    (broker_id, user_id), = sql(console, "select b.id, u.id from brokers b join users u on u.broker_id = b.id "
                                         "where b.slug = :s", {"s": slug})
    return {"slug": slug, "email": email, "id": str(broker_id), "userId": str(user_id)}


def verification_link(console: Console, email: str) -> str:
    mails = console.app.state.services.billing.mailer.messages(to=email)
    assert mails, f"no sign-up mail to {email}"
    body = mails[-1].get_content()
    found = re.search(r"https?://\S+/api/v1/signup/verify\?token=\S+", body)
    assert found, body
    return found.group(0)


def deliver_checkout_event(console: Console, stripe_url: str, session_id: str) -> None:
    """What Stripe does after the payment: send checkout.session.completed, signed, to the webhook."""
    event = next(e for e in events_of(stripe_url, "checkout.session.completed")
                 if e["data"]["object"]["id"] == session_id)
    payload = orjson.dumps(event)
    r = httpx.post(console.api + WEBHOOK, content=payload, timeout=30,
                   headers={"Stripe-Signature": sign(payload, LOCAL_WEBHOOK_SECRET),
                            "Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def calculations(console: Console, who: dict[str, Any], n: int) -> None:
    """n position sizes with the admin's own token (calc:run), before MFA is on: this period's usage."""
    with httpx.Client(base_url=console.api, timeout=30) as c:
        token = c.post("/api/v1/auth/token", json={"broker": who["slug"], "email": who["email"],
                                                    "password": PASSWORD}).json()["accessToken"]
        for _ in range(n):
            r = c.post("/api/v1/calculate/position-size", headers={"Authorization": f"Bearer {token}"},
                       json={"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD",
                             "entryPrice": 1.2, "stopLoss": 1.19, "riskPercentage": 1, "leverage": 30})
            assert r.status_code == 200, r.text


def pay_for_professional(page: Any, console: Console, stripe_url: str) -> None:
    """From the Billing page: Upgrade to Professional, pay on the local Checkout page, Stripe's event delivered,
    and the page confirms it."""
    page.locator("#plans").get_by_role("button", name="Upgrade to Professional").click()
    page.wait_for_url(f"{stripe_url}/checkout/cs_test_*")
    session_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Pay with test card 4242").click()
    page.wait_for_selector("#checkout-confirming")
    deliver_checkout_event(console, stripe_url, session_id)
    page.wait_for_selector("#checkout-confirmed", timeout=CONFIRMED)


def test_upgrade_through_checkout_then_portal_switch_and_cancel(page: Any, console: Console, stripe_url: str) -> None:
    who = signed_up(console)
    calculations(console, who, 12)
    sign_in(page, console, who, enrolled(console, who))
    page.get_by_role("link", name="Billing").click()
    page.wait_for_selector("#plans")
    # Usage against the tier: the analytics store is fed a few seconds behind Postgres; open again until it has
    # all 12 (a bound, then the assertion says what was shown).
    def open_again() -> None:
        page.reload()
        ready(page)
        page.wait_for_selector("#billing-usage[aria-busy=false]")

    page.wait_for_selector("#billing-usage[aria-busy=false]")
    ui.until_shown(page, "#billing-calcs", "12", open_again)
    units = int(page.locator("#billing-units .v").inner_text())
    assert units >= 12
    busiest = page.locator("#busiest")
    assert busiest.get_attribute("max") == "1200"  # the free tier: 20 units a minute, 60 minutes
    # All in one hour, or split over two when the calculations straddled the hour.
    assert units / 2 <= float(busiest.get_attribute("value")) <= units

    # On the trial: the free tier, its end date, no invoices; Upgrade for each paid tier, nothing for enterprise.
    assert page.locator("#billing-tier").get_attribute("data-tier") == "free"
    assert page.locator("#billing-status").get_attribute("data-status") == "trialing"
    assert "Free trial until" in page.locator("#billing-status-text").inner_text()
    assert page.locator("#no-invoices").is_visible()
    plans = page.locator("#plans")
    assert plans.get_by_role("button", name="Upgrade to Standard").is_visible()
    assert plans.locator("tr", has_text="Enterprise").get_by_role("button").count() == 0
    assert "$5,000.00 a month" in plans.locator("tr", has_text="Professional").inner_text()
    assert "20 calculation units a minute" in page.locator("#plan").inner_text()
    check(page, "billing-trial")

    # Upgrade: the browser goes to (local) Stripe Checkout and pays there.
    plans.get_by_role("button", name="Upgrade to Professional").click()
    page.wait_for_url(f"{stripe_url}/checkout/cs_test_*")
    session_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Pay with test card 4242").click()

    # Back in the console: Stripe has not told the API yet (no webhook is configured), so the page says it is
    # confirming, and the plan is still the trial.
    page.wait_for_url(re.compile(re.escape(console.api) + r"/admin/#/billing"))
    ready(page)
    page.wait_for_selector("#checkout-confirming")
    assert page.locator("#billing-tier").get_attribute("data-tier") == "free"
    assert page.evaluate("() => location.hash") == "#/billing"  # a reload does not confirm again
    check(page, "billing-confirming")

    # Stripe's event arrives: the page, still asking, shows the paid tier and the invoice.
    deliver_checkout_event(console, stripe_url, session_id)
    page.wait_for_selector("#checkout-confirmed", timeout=CONFIRMED)
    assert "your plan is now Professional" in page.locator("#checkout-confirmed").inner_text()
    assert page.locator("#billing-tier").get_attribute("data-tier") == "professional"
    assert page.locator("#billing-status").get_attribute("data-status") == "active"
    assert "Renews on" in page.locator("#billing-status-text").inner_text()
    assert "200 calculation units a minute" in page.locator("#plan").inner_text()
    invoice = page.locator("#invoices tbody tr")
    assert invoice.count() >= 1
    assert "$5,000.00" in invoice.first.inner_text() and "Paid" in invoice.first.inner_text()
    assert page.locator("#plans tr", has_text="Professional").get_by_text("Your plan").is_visible()
    assert sql(console, "select tier from brokers where slug = :s", {"s": who["slug"]}) == [("professional",)]
    page.wait_for_selector("#billing-usage[aria-busy=false]")
    check(page, "billing-paid")

    # The Billing Portal: a link made for this customer, opened in the page; its Back returns to Billing.
    page.get_by_role("button", name="Manage billing").click()
    page.wait_for_url(f"{stripe_url}/portal/bps_*")
    customer = sql(console, "select stripe_customer_id from billing_accounts where broker_id = :b",
                   {"b": uuid.UUID(who["id"])})[0][0]
    assert customer and customer in page.locator("body").inner_text()
    page.get_by_role("link", name="Back").click()
    page.wait_for_url(re.compile(re.escape(console.api) + r"/admin/#/billing"))
    ready(page)
    page.get_by_text("Back from the billing portal").wait_for()

    # A running subscription changes tier in place (prorated), after a confirmation.
    page.get_by_role("button", name="Switch to Standard").click()
    page.locator("dialog").get_by_role("button", name="Switch").click()
    page.get_by_text("Your plan is now Standard.").wait_for()
    assert page.locator("#billing-tier").get_attribute("data-tier") == "standard"

    # Cancel: confirmed in a dialog, at the period's end; the plan says when it ends.
    page.get_by_role("button", name="Cancel subscription").click()
    dialog = page.locator("dialog")
    assert "Standard stays until the end of the period" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel subscription").click()
    page.wait_for_selector("#billing-status[data-status=cancelling]")
    assert "the plan ends on" in page.locator("#billing-status-text").inner_text()
    assert page.locator("#cancel").count() == 0
    check(page, "billing-cancelling")


def test_the_webhook_from_the_local_stripe_server_lands_while_the_page_waits(
        page: Any, console: Console, stripe_url: str) -> None:
    """As in development (`forexrisk run`): the double itself delivers Stripe's events to the API."""
    helper(stripe_url, "/_double/webhook", {"url": console.api + WEBHOOK, "secret": LOCAL_WEBHOOK_SECRET})
    try:
        who = signed_up(console)
        sign_in(page, console, who, enrolled(console, who))
        page.goto(console.api + "/admin/#/billing")
        page.locator("#plans").get_by_role("button", name="Upgrade to Standard").click()
        page.wait_for_url(f"{stripe_url}/checkout/cs_test_*")
        page.get_by_role("button", name="Pay with test card 4242").click()
        page.wait_for_url(re.compile(re.escape(console.api) + r"/admin/#/billing"))
        page.wait_for_selector("#checkout-confirmed", timeout=CONFIRMED)
        assert page.locator("#billing-tier").get_attribute("data-tier") == "standard"
    finally:  # later tests on this server deliver events themselves
        helper(stripe_url, "/_double/webhook", {"url": "http://127.0.0.1:9/nowhere", "secret": LOCAL_WEBHOOK_SECRET})


# Where, left to right, the first "U" and the "$" after it are drawn in the first "US$" of an element's text.
US_DOLLAR_X = """(el) => {
  const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const i = n.textContent.indexOf('US$');
    if (i < 0) continue;
    const x = (k) => {
      const r = document.createRange(); r.setStart(n, k); r.setEnd(n, k + 1); return r.getBoundingClientRect().left;
    };
    return [x(i), x(i + 2)];
  }
  return null;
}"""


def test_billing_and_sign_up_in_arabic_and_german(page: Any, console: Console, stripe_url: str) -> None:
    """Sign-up and a paid account's Billing page (plan, usage, plans, an invoice, the cancel dialog) in Arabic,
    right to left, and German: no English left, amounts read as the locale writes them, 390 px and axe clean."""
    page.add_init_script(ui.COUNT_FETCHES)
    en = ui.strings("en")
    page.goto(console.api + "/admin/#/signin")
    ready(page)
    for locale in ("ar", "de"):
        tr = ui.strings(locale)
        page.locator("#lang").select_option(locale)  # reloads in that language
        page.wait_for_function("(l) => document.documentElement.lang === l && document.body.dataset.ready === '1'",
                               arg=locale)
        assert page.locator("#to-signup").inner_text() == tr["signin.signUp"]
        assert not ui.english_left(page, en, tr), (locale, "signin", ui.english_left(page, en, tr))
        page.locator("#to-signup").click()
        page.wait_for_selector("#signup-form")
        assert page.locator("h1").inner_text() == tr["signup.title"]
        assert not ui.english_left(page, en, tr), (locale, "signup", ui.english_left(page, en, tr))
        page.wait_for_function("(t) => document.title === t",
                               arg=f"{tr['signup.title']} · {tr['header.documentTitle']}")
        check(page, f"signup-{locale}")
        page.evaluate("() => { location.hash = '#/signin'; }")
        page.wait_for_selector("#to-signup")
    page.locator("#lang").select_option("en")
    page.wait_for_function("() => document.documentElement.lang === 'en' && document.body.dataset.ready === '1'")

    who = signed_up(console)
    calculations(console, who, 3)
    sign_in(page, console, who, enrolled(console, who))
    page.goto(console.api + "/admin/#/billing")
    pay_for_professional(page, console, stripe_url)

    for locale, direction in (("ar", "rtl"), ("de", "ltr")):
        tr = ui.strings(locale)
        ui.switch_locale(page, locale)
        assert page.evaluate("() => document.documentElement.dir") == direction
        page.evaluate("() => { location.hash = '#/billing'; }")
        page.wait_for_function("(t) => document.querySelector('main h1')?.textContent === t", arg=tr["billing.title"])
        page.wait_for_selector("#billing-usage[aria-busy=false]")
        page.wait_for_selector("#invoices tbody tr")
        page.wait_for_function(ui.SETTLED)
        assert tr["nav.billing"] in page.locator("#nav").inner_text()
        assert page.locator("#billing-tier").inner_text() == tr["tier.professional"]
        assert page.locator("#billing-status").inner_text() == tr["billing.status.active"]
        # The plans by the names the console gives the tiers in this locale (the API's names are English).
        plans = page.locator("#plans")
        for tier in ("free", "standard", "professional", "enterprise"):
            assert plans.locator("td strong", has_text=tr[f"tier.{tier}"]).count() == 1, (locale, tier)
        up = plans.locator("button[data-tier]")
        assert up.count() == 1 and up.get_attribute("aria-label") == tr["billing.switchTo"].replace(
            "{plan}", tr["tier.standard"])
        assert tr["billing.invoice.paid"] in page.locator("#invoices tbody tr").first.inner_text()
        assert not ui.english_left(page, en, tr), (locale, "billing", ui.english_left(page, en, tr))
        page.wait_for_function("(t) => document.title === t",
                               arg=f"{tr['billing.title']} · {tr['header.documentTitle']}")
        if locale == "ar":
            # "US$" drawn as one piece, left to right, beside the number (not "$US"): in the plans and the invoice.
            for where in (plans.locator("tr", has_text=tr["tier.professional"]), page.locator("#invoices tbody tr")):
                u, dollar = where.first.evaluate(US_DOLLAR_X)
                assert u < dollar, (locale, u, dollar)
        else:
            assert "5.000,00\xa0$ pro Monat" in plans.locator("tr", has_text=tr["tier.professional"]).inner_text()
        check(page, f"billing-paid-{locale}")
        page.locator("#cancel").click()
        dialog = page.locator("dialog")
        assert dialog.locator("h2").inner_text() == tr["billing.cancelTitle"]
        assert tr["tier.professional"] in dialog.inner_text()
        assert not ui.english_left(page, en, tr), (locale, "cancel", ui.english_left(page, en, tr))
        check(page, f"billing-cancel-{locale}")
        dialog.get_by_role("button", name=tr["billing.keep"]).click()
        assert page.locator("dialog").count() == 0
    assert sql(console, "select tier from brokers where slug = :s", {"s": who["slug"]}) == [("professional",)]


def test_billing_is_a_broker_admins_page(page: Any, console: Console) -> None:
    root = console.broker(superadmin=True)
    sign_in(page, console, root, enrolled(console, root))
    assert "Billing" not in page.locator("#nav").inner_text()  # the operator's broker is not billed
    page.goto(console.api + "/admin/#/billing")
    page.wait_for_selector("#brand-form")  # sent to its start page instead
    assert page.evaluate("() => location.hash") == "#/start"


def test_from_sign_up_to_a_live_widget_a_paid_tier_and_a_compliance_report(page: Any, console: Console,
                                                                           stripe_url: str) -> None:
    """Issue 18's "Done when", in one browser: sign up, confirm the email from the mailed link, enrol MFA and
    sign in, the guided start to the embed snippet, a paid tier through Checkout, the compliance report."""
    email = f"owner@s{uuid.uuid4().hex[:10]}.example.com"
    page.goto(console.api + "/admin/")
    ready(page)
    page.get_by_role("link", name="Create an account").click()
    page.wait_for_selector("#signup-form")
    check(page, "signup")
    page.get_by_label("Company name").fill(f"Acme {email[7:13]} Forex")
    page.get_by_label("Your work email").fill(email)
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_selector("input[name=password][aria-invalid=true]")  # the API's 422 beside the field
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    slug = page.locator("#signup-slug").inner_text().strip()
    assert email in page.locator("#signup-sent").inner_text()
    check(page, "signup-sent")

    # The mailed link, opened in the browser: the email is confirmed, and the sign-in page says so.
    page.goto(verification_link(console, email))
    page.wait_for_selector("#signup-verified")
    assert page.get_by_label("Broker", exact=True).input_value() == slug
    check(page, "signup-verified")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    # MFA first (every admin), then a sign-in with the code.
    page.wait_for_selector("#totp-secret")
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    page.locator("#recovery-codes li").first.wait_for()
    page.get_by_role("button", name="I have stored them: sign in again").click()
    (user_id,), = sql(console, "select id from users where lower(email) = :e", {"e": email})
    reset_step(console, str(user_id))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in", exact=True).click()

    # The guided start: brand, the site, a publishable key, the snippet.
    page.wait_for_selector("#brand-form")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_selector("#origins-form")
    page.get_by_label("Add a site").fill("https://www.acme-forex.example")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_role("button", name="Create a publishable key").click()
    key = page.locator("#pk-value").inner_text().strip()
    page.get_by_role("button", name="Continue").click()
    snippet = page.locator("#snippet").inner_text()
    assert f'data-key="{key}"' in snippet and f'data-broker="{slug}"' in snippet
    with httpx.Client(base_url=console.api, timeout=30) as c:  # the key works for the widget's site
        r = c.post("/api/v1/calculate/pip-value", json={"accountCurrency": "USD", "currencyPair": "EURUSD", "lots": 1,
                                                        "price": 1.1},
                   headers={"Authorization": f"Bearer {key}", "Origin": "https://www.acme-forex.example"})
        assert r.status_code == 200, r.text

    # A paid tier through Checkout.
    page.get_by_role("link", name="Billing").click()
    pay_for_professional(page, console, stripe_url)
    assert page.locator("#billing-tier").get_attribute("data-tier") == "professional"

    # The compliance report, started and downloaded here.
    page.get_by_role("link", name="Usage and reports").click()
    page.get_by_role("button", name="Create report").click()
    page.locator("#reports button[data-format=pdf]").wait_for(timeout=60_000)
    with page.expect_download() as got:
        page.locator("#reports button[data-format=pdf]").click()
    assert Path(got.value.path()).read_bytes().startswith(b"%PDF")
