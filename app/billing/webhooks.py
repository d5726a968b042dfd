"""Inbound Stripe events: verified by the SDK, stored once by event id, applied from the current objects.

- Signature: `stripe.Webhook.construct_event` over the raw body with STRIPE_WEBHOOK_SECRET and Stripe's
  300 s tolerance. Any failure is a 400 and nothing is stored or applied.
- Once: the event id is inserted into stripe_events; a second delivery of a processed event is a no-op
  (200). A delivery whose processing failed (Stripe unreachable: 503) is processed again on the retry.
- Out of order: the handler reads the event's object id only, fetches that object from Stripe as it is
  now, and hands the subscription to the state machine (service.apply_subscription).
"""

from __future__ import annotations

from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from app.billing.service import BillingService, _get, invoice_subscription
from app.errors import BillingUnavailable, WebhookSignatureInvalid
from app.models import StripeEvent

LOCAL_WEBHOOK_SECRET = "whsec_forexrisk_local"  # the local server's deliveries (development, tests) only
TOLERANCE_SECONDS = 300


def webhook_secret(billing: BillingService) -> str:
    if billing.settings.stripe_webhook_secret is not None:
        return billing.settings.stripe_webhook_secret.get_secret_value()
    if billing.gateway is not None and billing.gateway.local:
        return LOCAL_WEBHOOK_SECRET
    raise BillingUnavailable("STRIPE_WEBHOOK_SECRET is not set: this deployment cannot verify Stripe events.")


def verify(billing: BillingService, payload: bytes, signature: str | None) -> Any:
    secret = webhook_secret(billing)
    try:
        return stripe.Webhook.construct_event(payload, signature, secret, tolerance=TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureInvalid(f"Stripe-Signature rejected: {exc.user_message or exc}") from None
    except ValueError:  # signed, but not a JSON event
        raise WebhookSignatureInvalid("The body is not a Stripe event.") from None


async def receive(billing: BillingService, payload: bytes, signature: str | None) -> dict[str, Any]:
    event = verify(billing, payload, signature)
    obj = _get(_get(event, "data"), "object")
    object_id, object_type = _get(obj, "id"), _get(obj, "object")
    async with billing.db.platform() as session:
        inserted = await session.scalar(
            insert(StripeEvent).values(id=event.id, type=event.type, created=int(event.created),
                                       object_type=object_type, object_id=object_id, received_at=billing.clock())
            .on_conflict_do_nothing(index_elements=["id"]).returning(StripeEvent.id))
        if inserted is None:
            processed = await session.scalar(select(StripeEvent.processed_at).where(StripeEvent.id == event.id))
            if processed is not None:
                return {"received": True, "duplicate": True}
        await session.commit()
    outcome = await process(billing, str(event.type), object_type, object_id)
    async with billing.db.platform() as session:
        await session.execute(update(StripeEvent).where(StripeEvent.id == event.id)
                              .values(processed_at=billing.clock(), outcome=outcome[:500]))
        await session.commit()
    return {"received": True, "duplicate": False, "outcome": outcome}


async def process(billing: BillingService, type_: str, object_type: str | None, object_id: str | None) -> str:
    """Apply one event from the objects as they are now (the event's snapshot is never trusted)."""
    if not object_id:
        return "ignored: no object"
    gateway = billing.stripe()
    try:
        if type_ == "checkout.session.completed":
            session = await gateway.v1.checkout.sessions.retrieve_async(object_id)
            sub = _get(session, "subscription")
            sub_id = sub if isinstance(sub, str) else _get(sub, "id")
            if not sub_id:
                return "ignored: checkout without a subscription"
            return await billing.sync_subscription(sub_id, source=type_)
        if type_.startswith("customer.subscription."):
            outcome = await billing.sync_subscription(object_id, source=type_)
            if type_ == "customer.subscription.trial_will_end":
                await _notice(billing, object_id, "Your ForexRisk trial ends soon",
                              "Your subscription's trial ends in a few days; the card on file is charged then. "
                              "Manage it in the billing portal (POST /api/v1/billing/portal).",
                              "billing.trial_ending_notice")
            return outcome
        if type_.startswith("invoice.") and type_ in ("invoice.paid", "invoice.payment_succeeded",
                                                       "invoice.payment_failed", "invoice.payment_action_required"):
            invoice = await gateway.v1.invoices.retrieve_async(object_id)
            sub_id = invoice_subscription(invoice)
            if not sub_id:
                return "ignored: invoice without a subscription"
            outcome = await billing.sync_subscription(sub_id, source=type_)
            if type_ == "invoice.payment_failed":
                await _notice(billing, sub_id, "ForexRisk: a payment failed",
                              f"We could not collect your latest invoice. Your plan stays as it is for "
                              f"{billing.settings.billing_grace_days:g} days; update the card in the billing "
                              f"portal (POST /api/v1/billing/portal) to keep it.", "billing.payment_failed_notice")
            return outcome
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return f"ignored: {object_type} {object_id} not found"
        raise BillingUnavailable(f"Stripe refused a read ({exc.user_message or exc}).") from exc
    except stripe.StripeError as exc:
        raise BillingUnavailable(f"Stripe did not answer ({type(exc).__name__}); retry.") from exc
    return "ignored"


async def _notice(billing: BillingService, subscription_id: str, subject: str, body: str, action: str) -> None:
    from app.models import BillingAccount

    async with billing.db.platform() as session:
        broker_id = await session.scalar(select(BillingAccount.broker_id)
                                         .where(BillingAccount.subscription_id == subscription_id))
    if broker_id is not None:
        await billing.notify(broker_id, subject, body, action)
