"""The local double's request shapes (app/billing/localserver/double.py), through the official SDK: what Stripe
refuses, it refuses, naming the parameter; and the pass-through to localstripe keeps working."""

from __future__ import annotations

import pytest
import stripe

from app.billing.localserver.forms import decode, encode
from app.config import Settings
from tests.billing_helpers import stripe_client


@pytest.fixture(scope="module")
def sdk(settings: Settings) -> stripe.StripeClient:
    assert settings.stripe_api_base
    return stripe_client(settings.stripe_api_base)


def test_form_encoding_round_trips() -> None:
    data = {"line_items": [{"price": "price_1", "quantity": "1"}], "metadata": {"tier": "pro"}, "mode": "x"}
    assert decode(encode(data)) == data


@pytest.mark.parametrize(("params", "param"), [
    ({"mode": "subscription", "bogus": "1"}, "bogus"),
    ({"success_url": "http://x"}, "mode"),
    ({"mode": "subscription"}, "success_url"),
    ({"mode": "subscription", "success_url": "http://x", "line_items": [{"price": "price_missing", "quantity": 1}]},
     "price"),
])
def test_checkout_sessions_refuse_what_stripe_refuses(sdk: stripe.StripeClient, params: dict[str, object],
                                                      param: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.checkout.sessions.create(params=params)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_prices_meters_and_portal(sdk: stripe.StripeClient) -> None:
    product = sdk.v1.products.create(params={"name": "Shape test"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.prices.create(params={"product": product.id, "unit_amount": 100})
    assert caught.value.param == "currency"
    metered = sdk.v1.prices.create(params={"product": product.id, "currency": "usd", "unit_amount": 1,
                                           "recurring": {"interval": "month", "usage_type": "metered"}})
    customer = sdk.v1.customers.create(params={"email": "shape@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.checkout.sessions.create(params={"mode": "subscription", "customer": customer.id,
                                                "success_url": "http://x",
                                                "line_items": [{"price": metered.id, "quantity": 1}]})
    assert caught.value.param == "line_items[0][quantity]"
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.billing_portal.sessions.create(params={"return_url": "http://x"})  # type: ignore[typeddict-item]
    portal = sdk.v1.billing_portal.sessions.create(params={"customer": customer.id, "return_url": "http://x"})
    assert portal.url.startswith("http") and portal.customer == customer.id
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.billing.meter_events.create(params={"event_name": "no_such_meter",
                                                   "payload": {"stripe_customer_id": customer.id, "value": "1"}})


def test_idempotency_keys_replay_and_refuse_other_parameters(sdk: stripe.StripeClient) -> None:
    """Stripe's idempotent requests, on the double's own endpoints and on those passed to localstripe."""
    customer = sdk.v1.customers.create(params={"email": "idem@example.com"},
                                       options={"idempotency_key": "idem-customer-1"})
    again = sdk.v1.customers.create(params={"email": "idem@example.com"},
                                    options={"idempotency_key": "idem-customer-1"})
    assert again.id == customer.id and again.last_response.headers.get("Idempotent-Replayed") == "true"
    portal = {"customer": customer.id, "return_url": "http://x"}
    first = sdk.v1.billing_portal.sessions.create(params=portal, options={"idempotency_key": "idem-portal-1"})
    assert sdk.v1.billing_portal.sessions.create(params=portal, options={"idempotency_key": "idem-portal-1"}).id \
        == first.id
    assert sdk.v1.billing_portal.sessions.create(params=portal).id != first.id  # the SDK's own fresh key
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.billing_portal.sessions.create(params={**portal, "return_url": "http://y"},
                                              options={"idempotency_key": "idem-portal-1"})
