"""Plans: the four tiers with their limits (the one tier table, app.ratelimit.tiers) and prices (configuration),
and the Stripe catalog they map to (`forexrisk billing sync-catalog`).

The catalog sync is idempotent: Products have fixed ids (`forexrisk_<tier>`), Prices are found by lookup key
(`forexrisk_<tier>_monthly`); a Price whose amount or currency no longer matches the configuration is
replaced by a new one that takes over the lookup key (Stripe Prices are immutable), so running it again
after a price change is how prices change.
"""

from __future__ import annotations

from typing import Any

import stripe

from app.billing.gateway import StripeGateway
from app.config import Settings
from app.ratelimit.tiers import TIERS

PAID_TIERS = ("standard", "professional")
NAMES = {"free": "Free trial", "standard": "Standard", "professional": "Professional", "enterprise": "Enterprise"}


def plans(settings: Settings) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for name, limit in TIERS.items():
        price: int | None = 0 if name == "free" else settings.billing_monthly_prices.get(name)  # type: ignore[call-overload]
        rows.append({
            "tier": name, "name": NAMES[name],
            "monthlyPrice": price,  # minor units of `currency`; null: custom (talk to us)
            "interval": "month",
            "trialDays": settings.billing_trial_days if name == "free" else None,
            "selfServe": name in PAID_TIERS,
            "limits": {"requestsPerMinute": None if limit.unlimited else limit.per_minute,
                       "burst": None if limit.unlimited else limit.burst, "unlimited": limit.unlimited},
        })
    return {"currency": settings.billing_currency, "plans": rows}


def lookup_key(tier: str) -> str:
    return f"forexrisk_{tier}_monthly"


async def sync_catalog(gateway: StripeGateway, settings: Settings) -> dict[str, Any]:
    """Create (or find) the Products, Prices and usage Meter; returns the configuration to set."""
    prices: dict[str, str] = {}
    for tier in PAID_TIERS:
        product_id = f"forexrisk_{tier}"
        try:
            await gateway.v1.products.retrieve_async(product_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            await gateway.v1.products.create_async(
                params={"id": product_id, "name": f"ForexRisk {NAMES[tier]}", "metadata": {"tier": tier}},
                options={"idempotency_key": f"catalog-product-{tier}"})
        amount = settings.billing_monthly_prices[tier]  # type: ignore[index]
        found = (await gateway.v1.prices.list_async(params={"lookup_keys": [lookup_key(tier)], "limit": 1})).data
        if found and found[0].unit_amount == amount and found[0].currency == settings.billing_currency:
            prices[tier] = found[0].id
            continue
        made = await gateway.v1.prices.create_async(params={
            "product": product_id, "currency": settings.billing_currency, "unit_amount": amount,
            "recurring": {"interval": "month"}, "lookup_key": lookup_key(tier), "transfer_lookup_key": True,
            "metadata": {"tier": tier}})
        prices[tier] = made.id
    meters = (await gateway.v1.billing.meters.list_async(params={"status": "active"})).data
    meter = next((m for m in meters if m.event_name == settings.billing_meter_event_name), None)
    if meter is None:
        meter = await gateway.v1.billing.meters.create_async(params={
            "display_name": "ForexRisk calculation units", "event_name": settings.billing_meter_event_name,
            "default_aggregation": {"formula": "sum"}})
    return {"billingPriceIds": prices, "meterId": meter.id, "meterEventName": settings.billing_meter_event_name,
            "environment": {"FOREXRISK_BILLING_PRICE_IDS": prices}}
