"""Billing API: `/api/v1/billing/...` (plans, checkout, portal, subscription, Stripe webhooks)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from app.auth.service import require
from app.billing import catalog, webhooks
from app.billing.schemas import (
    CancelRequest,
    ChangeRequest,
    CheckoutOut,
    CheckoutRequest,
    EnterpriseRequest,
    Plans,
    PortalOut,
    SubscriptionOut,
    WebhookAck,
)
from app.billing.service import BillingService
from app.deps import BrokerScope, CurrentPrincipal, TenantDB
from app.jsonbody import StrictRoute
from app.services import services

router = APIRouter(prefix="/api/v1/billing", tags=["billing"], route_class=StrictRoute)


def billing(request: Request) -> BillingService:
    found: BillingService = services(request.app).billing
    return found


def operation(request: Request) -> str:
    """Our operation id for Stripe's idempotency key: the client's Idempotency-Key when it sent one (its
    retry then reaches the same Stripe object), else this request's id."""
    return request.headers.get("idempotency-key") or str(request.scope.get("state", {}).get("request_id")
                                                         or uuid.uuid4())


@router.get("/plans", response_model=Plans, summary="The tiers, their limits and prices (public)")
async def plans(request: Request) -> dict[str, Any]:
    return catalog.plans(services(request.app).settings)


@router.get("/subscription", response_model=SubscriptionOut,
            summary="This broker's tier, subscription status, period and trial ends, latest invoices")
async def subscription(principal: CurrentPrincipal, session: TenantDB, request: Request) -> dict[str, Any]:
    require(principal, "billing:read:own")
    return await billing(request).view(session, principal.broker_id)


@router.post("/checkout", response_model=CheckoutOut, status_code=201,
             summary="A Stripe Checkout Session for a paid tier; send the browser to its url")
async def checkout(body: CheckoutRequest, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    require(principal, "billing:manage:own")
    return await billing(request).checkout(principal, body.tier, operation(request), request)


@router.post("/portal", response_model=PortalOut, status_code=201,
             summary="A Stripe Billing Portal link (cards, invoices, plan changes, cancellation)")
async def portal(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    require(principal, "billing:manage:own")
    return await billing(request).portal(principal, operation(request), request)


@router.post("/subscription", response_model=SubscriptionOut,
             summary="Move the subscription to another paid tier now (prorated)")
async def change(body: ChangeRequest, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    require(principal, "billing:manage:own")
    return await billing(request).change_tier(principal, body.tier, operation(request), request)


@router.post("/subscription/cancel", response_model=SubscriptionOut,
             summary="Cancel: at the period's end (default) or now; the broker is then on the free tier")
async def cancel(principal: CurrentPrincipal, request: Request, body: CancelRequest | None = None) -> dict[str, Any]:
    require(principal, "billing:manage:own")
    return await billing(request).cancel(principal, (body or CancelRequest()).at_period_end, operation(request),
                                         request)


@router.put("/brokers/{broker_id}/enterprise", response_model=SubscriptionOut,
            summary="Platform operator: put a broker on (or take it off) the enterprise tier")
async def enterprise(target: BrokerScope, body: EnterpriseRequest, principal: CurrentPrincipal,
                     request: Request) -> dict[str, Any]:
    # BrokerScope: another broker's id is a 404 for everyone but the operator; the permission is the operator's.
    require(principal, "billing:manage:any")
    return await billing(request).set_enterprise(principal, target, body.enterprise, request)


@router.post("/webhooks/stripe", response_model=WebhookAck, summary="Stripe's events (signed; not for clients)")
async def stripe_webhook(request: Request) -> dict[str, Any]:
    payload = await request.body()  # the raw bytes: re-serialised JSON would not match the signature
    return await webhooks.receive(billing(request), payload, request.headers.get("stripe-signature"))
