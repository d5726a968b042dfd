"""Billing rules: accounts, checkout, portal, plan changes, and the one state machine that turns a Stripe
subscription into the tier a broker gets.

The state machine (`apply_subscription`) is only ever fed the *current* subscription, fetched from Stripe,
never an event's snapshot: a replayed or reordered event then applies today's state again, which is a no-op.
It runs under a row lock on the broker, in the caller's transaction (`apply_subscription_in`; the webhook route
claims the event id in the same one), so two deliveries at once apply one after the other.

Tier enforced (brokers.tier) from the account:
- active / trialing subscription: the tier its Price maps to;
- past_due: that tier until the grace period ends (billing_grace_days), then free (the dunning job);
- canceled / unpaid / incomplete_expired / none: free;
- enterprise: set by the platform operator; Stripe subscriptions do not change it.
A change commits the account, the broker's tier and an audit entry together, then announces the broker
to every worker (auth.forget_broker: Redis pub/sub), whose rate limiter applies the new tier on its next request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.audit import service as audit
from app.auth.principal import Principal
from app.auth.service import AuthService
from app.billing.catalog import PAID_TIERS
from app.billing.gateway import StripeGateway, require_gateway, unavailable
from app.billing.mail import Mailer
from app.config import Settings
from app.db.engine import Database
from app.errors import BillingUnavailable, Conflict, InvalidField, NotFound
from app.models import BillingAccount, Broker, User

Clock = Callable[[], datetime]
log = structlog.get_logger(__name__)

LIVE = ("active", "trialing", "past_due")  # Stripe statuses that keep a subscription the account's own
ENDED = ("canceled", "unpaid", "incomplete_expired")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _get(obj: Any, key: str) -> Any:
    """A field of an SDK object or a plain dict (the SDK's objects are dict-like; missing keys are None)."""
    try:
        return obj[key]
    except (KeyError, TypeError):
        return None


def subscription_items(sub: Any) -> list[Any]:
    items = _get(sub, "items")
    return list(_get(items, "data") or []) if items is not None else []


def item_price_id(item: Any) -> str | None:
    price = _get(item, "price") or _get(item, "plan")  # localstripe's items carry `plan` only
    return price if isinstance(price, str) else _get(price, "id")


def period_end(sub: Any) -> datetime | None:
    # API 2025-03-31 and later keep the period on each item; older versions (and localstripe) on the subscription.
    ends = [_get(i, "current_period_end") for i in subscription_items(sub)]
    ends = [e for e in ends if e]
    return _ts(max(ends)) if ends else _ts(_get(sub, "current_period_end"))


def invoice_subscription(invoice: Any) -> str | None:
    # API 2025-03-31 and later: parent.subscription_details.subscription; older (and localstripe): subscription.
    parent = _get(invoice, "parent")
    details = _get(parent, "subscription_details") if parent is not None else None
    found = _get(details, "subscription") if details is not None else None
    found = found or _get(invoice, "subscription")
    return found if isinstance(found, str) or found is None else _get(found, "id")


def account_out(account: BillingAccount | None, tier: str) -> dict[str, Any]:
    # A paid tier with no paid subscription behind it was set by the platform operator (`forexrisk admin
    # create-broker --tier`, PATCH of the broker): "managed", never shown as the free tier.
    if account is None:
        return {"tier": tier, "status": "free" if tier == "free" else "managed", "paidTier": None,
                "subscriptionId": None, "subscriptionStatus": None,
                "currentPeriodEnd": None, "trialEndsAt": None, "cancelAtPeriodEnd": False, "graceEndsAt": None}
    status = "managed" if account.status == "free" and tier not in ("free", "enterprise") else account.status
    return {"tier": tier, "status": status, "paidTier": account.paid_tier,
            "subscriptionId": account.subscription_id, "subscriptionStatus": account.subscription_status,
            "currentPeriodEnd": account.current_period_end, "trialEndsAt": account.trial_ends_at,
            "cancelAtPeriodEnd": account.cancel_at_period_end, "graceEndsAt": account.grace_ends_at}


class BillingService:
    def __init__(self, settings: Settings, db: Database, auth: AuthService, gateway: StripeGateway | None,
                 mailer: Mailer, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.db = db
        self.auth = auth
        self.gateway = gateway
        self.mailer = mailer
        self.clock = clock
        self.price_ids: dict[str, str] = {str(k): v for k, v in settings.billing_price_ids.items()}

    # --- configuration ----------------------------------------------------------------------------------
    def tier_of_price(self, price_id: str | None) -> str | None:
        for tier, known in self.price_ids.items():
            if known == price_id:
                return tier
        return None

    def return_url(self, what: str) -> str:
        """Where Checkout and the portal send the customer back: the console's Billing page (which reads the query
        after its route: #/billing?checkout=success), unless billing_return_url names another page."""
        base = self.settings.billing_return_url or f"{self.settings.public_base_url.rstrip('/')}/admin/#/billing"
        return f"{base}?{what}"

    def stripe(self) -> StripeGateway:
        return require_gateway(self.gateway)

    # --- accounts ---------------------------------------------------------------------------------------
    async def open_account(self, session: AsyncSession, broker_id: uuid.UUID, *, trial: bool) -> BillingAccount:
        """The broker's account (platform session), created on first use: on a trial after a sign-up, free for
        brokers the operator created before billing existed."""
        account = await session.get(BillingAccount, broker_id, with_for_update=True)
        if account is None:
            now = self.clock()
            account = BillingAccount(broker_id=broker_id, status="trialing" if trial else "free",
                                     trial_ends_at=now + timedelta(days=self.settings.billing_trial_days)
                                     if trial else None, created_at=now, updated_at=now)
            session.add(account)
            await session.flush()
        return account

    async def customer_for(self, broker_id: uuid.UUID) -> str:
        """The broker's Stripe customer, created once (the idempotency key is the broker id)."""
        gateway = self.stripe()
        async with self.db.platform() as session:
            account = await self.open_account(session, broker_id, trial=False)
            if account.stripe_customer_id:
                await session.commit()
                return account.stripe_customer_id
            broker = await session.get(Broker, broker_id)
            admin = await session.scalar(select(User.email).where(User.broker_id == broker_id,
                                                                  User.role == "BROKER_ADMIN")
                                         .order_by(User.created_at).limit(1))
            try:
                customer = await gateway.v1.customers.create_async(
                    params={"name": broker.name if broker else str(broker_id), "email": admin,
                            "metadata": {"broker_id": str(broker_id)}},
                    options={"idempotency_key": f"customer-{broker_id}"})
            except stripe.StripeError as exc:
                raise unavailable(exc) from exc
            account.stripe_customer_id = customer.id
            account.updated_at = self.clock()
            await session.commit()
            return str(customer.id)

    async def view(self, session: AsyncSession, broker_id: uuid.UUID) -> dict[str, Any]:
        """The caller's own billing state (a tenant session: RLS shows no other broker's account)."""
        account = await session.get(BillingAccount, broker_id)
        broker = await session.get(Broker, broker_id)
        if broker is None:
            raise NotFound("No broker with this id.")
        out = account_out(account, broker.tier)
        out["invoices"] = []
        if account is not None and account.stripe_customer_id and self.gateway is not None:
            try:
                listed = await self.gateway.v1.invoices.list_async(
                    params={"customer": account.stripe_customer_id, "limit": 5})
            except stripe.StripeError as exc:
                raise unavailable(exc) from exc
            out["invoices"] = [{"id": i.id, "number": _get(i, "number"), "status": _get(i, "status"),
                                "amountDue": _get(i, "amount_due"), "amountPaid": _get(i, "amount_paid"),
                                "currency": _get(i, "currency"), "created": _ts(_get(i, "created")),
                                "hostedInvoiceUrl": _get(i, "hosted_invoice_url")}
                               for i in listed.data]
        return out

    # --- checkout, portal, changes ----------------------------------------------------------------------------
    async def checkout(self, principal: Principal, tier: str, operation: str, conn: HTTPConnection) -> dict[str, Any]:
        if tier not in PAID_TIERS:
            raise InvalidField("tier", "standard or professional (enterprise is set by the platform operator)")
        gateway = self.stripe()
        price_id = self.price_ids.get(tier)
        if price_id is None:
            raise BillingUnavailable(f"No Stripe Price is configured for {tier}: run `forexrisk billing sync-catalog` "
                                     f"and set FOREXRISK_BILLING_PRICE_IDS.")
        async with self.db.platform() as session:
            account = await self.open_account(session, principal.broker_id, trial=False)
            if account.status == "enterprise":
                raise Conflict("Enterprise billing is managed by the platform operator.")
            if account.subscription_id and account.subscription_status in LIVE:
                raise Conflict("This broker already has a subscription: change its tier with POST "
                               "/api/v1/billing/subscription, or use the billing portal.")
            await session.commit()
        customer = await self.customer_for(principal.broker_id)
        line_items: list[dict[str, Any]] = [{"price": price_id, "quantity": 1}]
        if self.settings.billing_overage_price_id:
            line_items.append({"price": self.settings.billing_overage_price_id})
        metadata = {"broker_id": str(principal.broker_id), "tier": tier}
        try:
            session_ = await gateway.v1.checkout.sessions.create_async(params={
                "mode": "subscription", "customer": customer, "line_items": line_items,
                "client_reference_id": str(principal.broker_id), "metadata": metadata,
                "subscription_data": {"metadata": metadata},
                "success_url": self.return_url("checkout=success&session_id={CHECKOUT_SESSION_ID}"),
                "cancel_url": self.return_url("checkout=cancelled")},
                options={"idempotency_key": f"checkout-{principal.broker_id}-{tier}-{operation}"})
        except stripe.InvalidRequestError as exc:
            raise InvalidField("tier", f"Stripe refused the checkout: {exc.user_message or exc}") from exc
        except stripe.StripeError as exc:
            raise unavailable(exc) from exc
        async with self.db.platform() as session:
            await audit.record(session, broker_id=principal.broker_id, action="billing.checkout_created", conn=conn,
                               principal=principal, target_type="checkout_session", target_id=session_.id,
                               details={"tier": tier})
            await session.commit()
        return {"sessionId": session_.id, "url": session_.url, "tier": tier,
                "expiresAt": _ts(_get(session_, "expires_at"))}

    async def portal(self, principal: Principal, operation: str, conn: HTTPConnection) -> dict[str, Any]:
        gateway = self.stripe()
        customer = await self.customer_for(principal.broker_id)
        try:
            portal = await gateway.v1.billing_portal.sessions.create_async(
                params={"customer": customer, "return_url": self.return_url("portal=done")},
                options={"idempotency_key": f"portal-{principal.broker_id}-{operation}"})
        except stripe.StripeError as exc:
            raise unavailable(exc) from exc
        async with self.db.platform() as session:
            # The URL is a bearer credential for the customer's billing: never logged or audited.
            await audit.record(session, broker_id=principal.broker_id, action="billing.portal_opened", conn=conn,
                               principal=principal, target_type="customer", target_id=customer)
            await session.commit()
        return {"url": portal.url}

    async def _live_subscription(self, broker_id: uuid.UUID) -> Any:
        gateway = self.stripe()
        async with self.db.platform() as session:
            account = await session.get(BillingAccount, broker_id)
        if account is None or not account.subscription_id or account.subscription_status not in LIVE:
            raise Conflict("This broker has no subscription: start one with POST /api/v1/billing/checkout.")
        try:
            return await gateway.v1.subscriptions.retrieve_async(account.subscription_id)
        except stripe.StripeError as exc:
            raise unavailable(exc) from exc

    async def change_tier(self, principal: Principal, tier: str, operation: str,
                          conn: HTTPConnection) -> dict[str, Any]:
        """Upgrade or downgrade an existing subscription now, prorated."""
        if tier not in PAID_TIERS:
            raise InvalidField("tier", "standard or professional; to leave, cancel the subscription")
        price_id = self.price_ids.get(tier)
        if price_id is None:
            raise BillingUnavailable(f"No Stripe Price is configured for {tier}.")
        sub = await self._live_subscription(principal.broker_id)
        item = next((i for i in subscription_items(sub) if self.tier_of_price(item_price_id(i))), None)
        if item is None:
            raise Conflict("The subscription has no tier item to change; use the billing portal.")
        try:
            await self.stripe().v1.subscriptions.update_async(sub.id, params={
                "items": [{"id": item.id, "price": price_id}], "proration_behavior": "create_prorations",
                "metadata": {"broker_id": str(principal.broker_id), "tier": tier}},
                options={"idempotency_key": f"change-{sub.id}-{tier}-{operation}"})
        except stripe.StripeError as exc:
            raise unavailable(exc) from exc
        await self.sync_subscription(sub.id, source="api", conn=conn, principal=principal)
        return await self.current(principal.broker_id)

    async def cancel(self, principal: Principal, at_period_end: bool, operation: str,
                     conn: HTTPConnection) -> dict[str, Any]:
        sub = await self._live_subscription(principal.broker_id)
        try:
            if at_period_end:
                await self.stripe().v1.subscriptions.update_async(
                    sub.id, params={"cancel_at_period_end": True},
                    options={"idempotency_key": f"cancel-{sub.id}-{operation}"})
            else:
                await self.stripe().v1.subscriptions.cancel_async(
                    sub.id, options={"idempotency_key": f"cancel-now-{sub.id}-{operation}"})
        except stripe.StripeError as exc:
            raise unavailable(exc) from exc
        await self.sync_subscription(sub.id, source="api", conn=conn, principal=principal)
        return await self.current(principal.broker_id)

    async def current(self, broker_id: uuid.UUID) -> dict[str, Any]:
        """What GET /subscription shows, invoices included (a change or cancellation answers the same)."""
        async with self.db.tenant(broker_id) as session:
            return await self.view(session, broker_id)

    async def set_enterprise(self, principal: Principal, broker_id: uuid.UUID, enterprise: bool,
                             conn: HTTPConnection) -> dict[str, Any]:
        """The platform operator's switch: enterprise (custom contract, invoiced outside self-serve) or back."""
        async with self.db.platform() as session:
            broker = await session.get(Broker, broker_id)
            if broker is None or broker.status == "deleted" or broker.is_platform:
                raise NotFound("No broker with this id.")
            account = await self.open_account(session, broker_id, trial=False)
            if enterprise == (account.status == "enterprise"):
                await session.commit()  # already so: nothing changes (a broker the operator put on a tier by
                return await self.current(broker_id)  # hand before billing existed keeps it)
            if enterprise:
                account.status, account.paid_tier = "enterprise", "enterprise"
            else:
                account.status, account.paid_tier = "free", None
            account.updated_at = self.clock()
            tier = "enterprise" if enterprise else self._enforced(account)
            await self._set_tier(session, broker, tier, "billing.enterprise_set" if enterprise
                                 else "billing.enterprise_ended", conn=conn, principal=principal)
            await session.commit()
        self.auth.forget_broker(broker_id)
        return await self.current(broker_id)

    # --- the state machine ----------------------------------------------------------------------------------
    def _enforced(self, account: BillingAccount) -> str:
        if account.status == "enterprise":
            return "enterprise"
        if account.status == "active" and account.paid_tier:
            return account.paid_tier
        if account.status == "past_due" and account.paid_tier and account.grace_ends_at is not None \
                and self.clock() < account.grace_ends_at:
            return account.paid_tier
        return "free"

    async def _set_tier(self, session: AsyncSession, broker: Broker, tier: str, action: str, *,
                        conn: HTTPConnection | None = None, principal: Principal | None = None,
                        details: dict[str, Any] | None = None) -> bool:
        changed = broker.tier != tier
        if changed:
            await session.execute(update(Broker).where(Broker.id == broker.id)
                                  .values(tier=tier, updated_at=self.clock()))
        await audit.record(session, broker_id=broker.id, action=action, conn=conn, principal=principal,
                           actor_type=None if principal else "system", actor_id=None if principal else "billing",
                           target_type="broker", target_id=broker.id,
                           details={"tier": tier, "previousTier": broker.tier, **(details or {})})
        return changed

    async def broker_of_customer(self, session: AsyncSession, customer: str | None,
                                 metadata_broker: str | None) -> uuid.UUID | None:
        if customer:
            found = await session.scalar(select(BillingAccount.broker_id)
                                         .where(BillingAccount.stripe_customer_id == customer))
            if found is not None:
                return found
        try:
            return uuid.UUID(metadata_broker) if metadata_broker else None
        except ValueError:
            return None

    async def sync_subscription(self, subscription_id: str, *, source: str, conn: HTTPConnection | None = None,
                                principal: Principal | None = None) -> str:
        """Fetch the subscription as it is now and apply it; returns what happened (for the event log)."""
        try:
            sub = await self.stripe().v1.subscriptions.retrieve_async(subscription_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return "subscription not found"
            raise unavailable(exc) from exc
        except stripe.StripeError as exc:
            raise unavailable(exc) from exc
        return await self.apply_subscription(sub, source=source, conn=conn, principal=principal)

    async def apply_subscription(self, sub: Any, *, source: str, conn: HTTPConnection | None = None,
                                 principal: Principal | None = None) -> str:
        """Apply the subscription in a transaction of its own, then announce a tier change to every worker."""
        async with self.db.platform() as session:
            outcome, changed = await self.apply_subscription_in(session, sub, source=source, conn=conn,
                                                                principal=principal)
            await session.commit()
        if changed is not None:
            self.auth.forget_broker(changed)  # every worker's limiter: the announcement path (Redis pub/sub)
        return outcome

    async def apply_subscription_in(self, session: AsyncSession, sub: Any, *, source: str,
                                    conn: HTTPConnection | None = None, principal: Principal | None = None,
                                    reread: bool = False) -> tuple[str, uuid.UUID | None]:
        """The state machine, in the caller's transaction (a platform session): what happened, and the broker
        whose tier changed (None when none did). The caller commits, then announces that broker
        (`auth.forget_broker`). `reread`: read the subscription again once the broker's row is locked (the
        webhook route: events about one subscription come in bursts, each fetched on its own, and the one
        fetched first could commit last; read under the lock, the state applied last is the newest)."""
        status = str(_get(sub, "status"))
        customer = _get(sub, "customer")
        customer = customer if isinstance(customer, str) else _get(customer, "id")
        metadata = _get(sub, "metadata") or {}
        broker_id = await self.broker_of_customer(session, customer, _get(metadata, "broker_id"))
        if broker_id is None:
            return "no broker for this customer", None
        broker = await session.get(Broker, broker_id, with_for_update=True)
        if broker is None or broker.status == "deleted":
            return "broker deleted", None
        if reread:
            try:
                sub = await self.stripe().v1.subscriptions.retrieve_async(sub.id)
                status = str(_get(sub, "status"))
            except stripe.StripeError as exc:  # the caller's transaction rolls back; Stripe delivers it again
                raise unavailable(exc) from exc
        account = await self.open_account(session, broker_id, trial=False)
        if account.stripe_customer_id is None and customer:
            account.stripe_customer_id = customer
        if account.status == "enterprise":
            return "ignored: enterprise is set by the operator", None
        current = account.subscription_id
        if current and current != sub.id and account.subscription_status in LIVE and status not in LIVE:
            return "ignored: an older subscription", None  # the account has moved on to another one
        tier = next((t for t in map(self.tier_of_price, map(item_price_id, subscription_items(sub))) if t), None)
        now = self.clock()
        before = (account.status, account.paid_tier, account.subscription_status, account.cancel_at_period_end)
        account.subscription_id = sub.id
        account.subscription_status = status
        account.price_id = next((item_price_id(i) for i in subscription_items(sub)), None)
        account.current_period_end = period_end(sub)
        account.cancel_at_period_end = bool(_get(sub, "cancel_at_period_end"))
        if status in ("active", "trialing") and tier:
            account.status, account.paid_tier = "active", tier
            account.past_due_since = account.grace_ends_at = None
            if status == "trialing":
                account.trial_ends_at = _ts(_get(sub, "trial_end"))
            elif account.trial_ends_at is not None and account.trial_ends_at > now:
                account.trial_ends_at = now  # paying ends the sign-up trial: never "active" with a trial ahead
        elif status == "past_due" and tier:
            account.paid_tier = tier
            if account.status != "past_due" or account.past_due_since is None:
                account.status = "past_due"
                account.past_due_since = now
                account.grace_ends_at = now + timedelta(days=self.settings.billing_grace_days)
        elif status in ENDED:
            account.status, account.paid_tier = "free", None
            account.past_due_since = account.grace_ends_at = None
        else:  # incomplete: the first payment is still pending; nothing is granted yet
            return f"waiting: subscription {status}", None
        account.updated_at = now
        after = (account.status, account.paid_tier, account.subscription_status, account.cancel_at_period_end)
        tier_now = self._enforced(account)
        changed = False
        if before != after or broker.tier != tier_now:
            changed = await self._set_tier(session, broker, tier_now, "billing.subscription_applied",
                                           conn=conn, principal=principal,
                                           details={"subscription": sub.id, "subscriptionStatus": status,
                                                    "accountStatus": account.status, "source": source})
        return f"{account.status} {tier_now}" + (" (tier changed)" if changed else ""), broker_id if changed else None

    async def reapply(self, broker_id: uuid.UUID, source: str) -> bool:
        """Enforce the account's tier as of now (the grace period's end); True when the tier changed."""
        async with self.db.platform() as session:
            broker = await session.get(Broker, broker_id, with_for_update=True)
            account = await session.get(BillingAccount, broker_id, with_for_update=True)
            if broker is None or account is None or broker.status == "deleted":
                return False
            tier = self._enforced(account)
            changed = broker.tier != tier
            if changed:
                await self._set_tier(session, broker, tier, "billing.grace_period_ended",
                                     details={"accountStatus": account.status, "source": source})
            await session.commit()
        if changed:
            self.auth.forget_broker(broker_id)
        return changed

    # --- notices ------------------------------------------------------------------------------------------
    async def admin_emails(self, session: AsyncSession, broker_id: uuid.UUID) -> list[str]:
        rows = await session.execute(select(User.email).where(User.broker_id == broker_id,
                                                              User.role == "BROKER_ADMIN", User.status == "active"))
        return [r[0] for r in rows.all()]

    async def notice_in(self, session: AsyncSession, broker_id: uuid.UUID, action: str) -> list[str]:
        """A notice to the broker's admins, audited in the caller's transaction: the addresses to mail."""
        emails = await self.admin_emails(session, broker_id)
        await audit.record(session, broker_id=broker_id, action=action, conn=None, actor_type="system",
                           actor_id="billing", target_type="broker", target_id=broker_id,
                           details={"recipients": len(emails)})
        return emails

    async def notify(self, broker_id: uuid.UUID, subject: str, body: str, action: str) -> None:
        async with self.db.platform() as session:
            emails = await self.notice_in(session, broker_id, action)
            await session.commit()
        for email in emails:
            await self.mailer.send(email, subject, body)

    async def close(self) -> None:
        if self.gateway is not None:
            await self.gateway.close()


async def start_billing(settings: Settings, db: Database, auth: AuthService) -> BillingService:
    """Built in the lifespan. With the local server and no configured prices, the catalog is synced here
    (idempotent), so development and tests need no setup step; with Stripe it is an operator's command."""
    from app.billing.catalog import sync_catalog
    from app.billing.mail import build_mailer

    gateway = StripeGateway.build(settings)
    service = BillingService(settings, db, auth, gateway, build_mailer(settings))
    if gateway is not None and gateway.local and not service.price_ids:
        try:
            service.price_ids = dict((await sync_catalog(gateway, settings))["billingPriceIds"])
        except stripe.StripeError as exc:
            log.warning("billing_catalog_unavailable", error=f"{type(exc).__name__}: {exc}")
    elif gateway is None:
        log.debug("billing_unavailable", reason="neither STRIPE_API_KEY nor a local Stripe server (STRIPE_API_BASE)")
    return service
