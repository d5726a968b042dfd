"""`forexrisk billing sync-catalog`: run twice it creates nothing new; after a price change it makes one new Price
that takes over the lookup key, and is idempotent again. Against a local Stripe server of its own (the
session's server keeps the catalog the other billing tests use)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from app.billing.catalog import lookup_key, sync_catalog
from app.billing.gateway import StripeGateway
from app.billing.localserver.process import LocalStripe
from app.config import Settings
from tests.billing_helpers import stripe_client

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def own_stripe() -> Iterator[str]:
    server = LocalStripe()
    yield server.start()
    server.stop()


def cli_sync(url: str, data_dir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOREXRISK_", "STRIPE_"))}
    env.update(STRIPE_API_BASE=url, FOREXRISK_DATA_DIR=str(data_dir))
    proc = subprocess.run([sys.executable, "-m", "app.cli", "billing", "sync-catalog"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FOREXRISK_BILLING_PRICE_IDS=" in proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def catalog(sdk: stripe.StripeClient) -> tuple[list[str], list[str], dict[str, str]]:
    prices = [p.id for p in sdk.v1.prices.list(params={"limit": 100}).data]
    meters = [m.id for m in sdk.v1.billing.meters.list().data]
    keyed = {t: p.id for t in ("standard", "professional")
             for p in sdk.v1.prices.list(params={"lookup_keys": [lookup_key(t)]}).data}
    return sorted(prices), meters, keyed


def test_sync_catalog_is_idempotent_and_follows_a_price_change(own_stripe: str, tmp_path: Path) -> None:
    sdk = stripe_client(own_stripe)
    first = cli_sync(own_stripe, tmp_path)
    made = catalog(sdk)
    assert len(made[0]) == 2 and len(made[1]) == 1 and made[2] == first["billingPriceIds"]
    assert cli_sync(own_stripe, tmp_path) == first  # the command again: the same ids
    assert catalog(sdk) == made  # and nothing new at Stripe

    settings = Settings(environment="test", data_dir=tmp_path, stripe_api_base=own_stripe,
                        billing_monthly_prices={"standard": 250_000, "professional": 600_000})

    async def sync() -> dict[str, Any]:
        gateway = StripeGateway.build(settings)
        assert gateway is not None
        try:
            return await sync_catalog(gateway, settings)
        finally:
            await gateway.close()

    changed = asyncio.run(sync())
    ids = changed["billingPriceIds"]
    assert ids["standard"] == first["billingPriceIds"]["standard"]
    assert ids["professional"] != first["billingPriceIds"]["professional"]
    assert sdk.v1.prices.retrieve(ids["professional"]).unit_amount == 600_000
    after = catalog(sdk)
    assert len(after[0]) == 3 and after[1] == made[1] and after[2] == ids  # the new Price holds the lookup key
    assert asyncio.run(sync()) == changed and catalog(sdk) == after
