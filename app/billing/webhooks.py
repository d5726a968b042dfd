"""Inbound Stripe events: verified by the SDK, claimed once by event id, applied from the current objects.

- Signature: `stripe.Webhook.construct_event` over the raw body with STRIPE_WEBHOOK_SECRET and Stripe's
  300 s tolerance. Any failure is a 400 and nothing is stored or applied.
- Out of order: only the event's object id is read from it; that object is fetched from Stripe as it is now
  (outside any transaction), read again under the broker's row lock (so of two events about one subscription
  the one applied last applies the newest state), and goes to the state machine (service.apply_subscription_in).
- Once, even for two copies delivered at the same moment: one transaction claims the event id (an INSERT into
  stripe_events that conflicts on the primary key), applies the event (account, tier, audit rows), marks it
  processed and commits. A second copy's INSERT waits on the unique index until the first commits, then
  conflicts and is answered as a duplicate (200, nothing applied); had the first rolled back, the second
  applies it. A notice's mail goes out just before that commit: a mail failure rolls everything back (503),
  and Stripe's retry applies the event again, so a notice is neither lost nor sent twice by two copies.
  The broker whose tier changed is announced to every worker after the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from app.billing.service import BillingService, _get, invoice_subscription
from app.errors import BillingUnavailable, WebhookSignatureInvalid
from app.models import BillingAccount, StripeEvent

LOCAL_WEBHOOK_SECRET = "whsec_forexrisk_local"  # the local server's deliveries (development, tests) only
TOLERANCE_SECONDS = 300
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed",
                  "invoice.payment_action_required")


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


@dataclass(frozen=True)
class EventRef:
    """What we keep of an event: its id and type, and which object it is about."""

    id: str
    type: str
    created: int
    object_type: str | None
    object_id: str | None


@dataclass(frozen=True)
class Notice:
    subject: str
    body: str
    action: str  # the audit entry's action


@dataclass(frozen=True)
class Fetched:
    """What an event is about, read from Stripe now: the subscription to apply and the notice to send."""

    subscription: Any = None
    ignored: str | None = None
    notice: Notice | None = None


async def receive(billing: BillingService, payload: bytes, signature: str | None) -> dict[str, Any]:
    event = verify(billing, payload, signature)
    obj = _get(_get(event, "data"), "object")
    return await handle(billing, EventRef(id=str(event.id), type=str(event.type), created=int(event.created),
                                          object_type=_get(obj, "object"), object_id=_get(obj, "id")))


async def handle(billing: BillingService, ref: EventRef) -> dict[str, Any]:
    """Apply one event at most once (the claim: this module's docstring)."""
    async with billing.db.platform() as session:  # a replay of a processed event asks Stripe nothing
        processed = await session.scalar(select(StripeEvent.processed_at).where(StripeEvent.id == ref.id))
    if processed is not None:
        return {"received": True, "duplicate": True}
    return await apply_fetched(billing, ref, await fetch(billing, ref.type, ref.object_type, ref.object_id))


async def apply_fetched(billing: BillingService, ref: EventRef, fetched: Fetched) -> dict[str, Any]:
    """The claim and the state machine, once the event's subscription was fetched (outside any transaction)."""
    now = billing.clock()
    announce: uuid.UUID | None = None
    async with billing.db.platform() as session:
        stmt = insert(StripeEvent).values(id=ref.id, type=ref.type, created=ref.created, object_type=ref.object_type,
                                          object_id=ref.object_id, received_at=now, processed_at=now)
        claimed = await session.scalar(stmt.on_conflict_do_update(  # a row stored but never processed: ours too
            index_elements=["id"], set_={"processed_at": stmt.excluded.processed_at},
            where=StripeEvent.processed_at.is_(None)).returning(StripeEvent.id))
        if claimed is None:  # a copy processed it and committed first (this INSERT waited for that)
            return {"received": True, "duplicate": True}
        mails: list[str] = []
        if fetched.subscription is None:
            outcome = fetched.ignored or "ignored"
        else:
            outcome, announce = await billing.apply_subscription_in(session, fetched.subscription, source=ref.type,
                                                                    reread=True)
            if fetched.notice is not None:
                broker_id = await session.scalar(select(BillingAccount.broker_id).where(
                    BillingAccount.subscription_id == fetched.subscription.id))
                if broker_id is not None:
                    mails = await billing.notice_in(session, broker_id, fetched.notice.action)
        await session.execute(update(StripeEvent).where(StripeEvent.id == ref.id).values(outcome=outcome[:500]))
        for email in mails:
            assert fetched.notice is not None
            await billing.mailer.send(email, fetched.notice.subject, fetched.notice.body)
        await session.commit()
    if announce is not None:
        billing.auth.forget_broker(announce)  # every worker's limiter: the announcement path (Redis pub/sub)
    return {"received": True, "duplicate": False, "outcome": outcome}


async def fetch(billing: BillingService, type_: str, object_type: str | None, object_id: str | None) -> Fetched:
    """The subscription an event is about, as it is now (the event's snapshot is never trusted). Reads only."""
    if not object_id:
        return Fetched(ignored="ignored: no object")
    gateway = billing.stripe()
    try:
        if type_ == "checkout.session.completed":
            session = await gateway.v1.checkout.sessions.retrieve_async(object_id)
            sub = _get(session, "subscription")
            sub_id = sub if isinstance(sub, str) else _get(sub, "id")
            if not sub_id:
                return Fetched(ignored="ignored: checkout without a subscription")
        elif type_.startswith("customer.subscription."):
            sub_id = object_id
        elif type_ in INVOICE_EVENTS:
            sub_id = invoice_subscription(await gateway.v1.invoices.retrieve_async(object_id))
            if not sub_id:
                return Fetched(ignored="ignored: invoice without a subscription")
        else:
            return Fetched(ignored="ignored")
        if sub_id != object_id:
            object_type, object_id = "subscription", sub_id
        subscription = await gateway.v1.subscriptions.retrieve_async(sub_id)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return Fetched(ignored=f"ignored: {object_type} {object_id} not found")
        raise BillingUnavailable(f"Stripe refused a read ({exc.user_message or exc}).") from exc
    except stripe.StripeError as exc:
        raise BillingUnavailable(f"Stripe did not answer ({type(exc).__name__}); retry.") from exc
    return Fetched(subscription=subscription, notice=notice_of(billing, type_))


def notice_of(billing: BillingService, type_: str) -> Notice | None:
    """The events that mail the broker's admins (audited as `action`)."""
    if type_ == "customer.subscription.trial_will_end":
        return Notice("Your ForexRisk trial ends soon",
                      "Your subscription's trial ends in a few days; the card on file is charged then. "
                      "Manage it in the billing portal (POST /api/v1/billing/portal).", "billing.trial_ending_notice")
    if type_ == "invoice.payment_failed":
        return Notice("ForexRisk: a payment failed",
                      f"We could not collect your latest invoice. Your plan stays as it is for "
                      f"{billing.settings.billing_grace_days:g} days; update the card in the billing "
                      f"portal (POST /api/v1/billing/portal) to keep it.", "billing.payment_failed_notice")
    return None
