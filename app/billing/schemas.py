"""Billing request and response bodies (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from app.schemas import ApiModel, OutModel

PaidTier = Literal["standard", "professional"]


class Limits(OutModel):
    requests_per_minute: int | None
    burst: int | None
    unlimited: bool


class Plan(OutModel):
    tier: Literal["free", "standard", "professional", "enterprise"]
    name: str
    monthly_price: int | None = Field(description="In the currency's minor unit (cents); null: custom pricing")
    interval: Literal["month"]
    trial_days: int | None
    self_serve: bool = Field(description="Bought through checkout; enterprise is arranged with us")
    limits: Limits


class Plans(OutModel):
    currency: str
    plans: list[Plan]


class CheckoutRequest(ApiModel):
    tier: PaidTier


class CheckoutOut(OutModel):
    session_id: str
    url: str = Field(description="Stripe Checkout's page: send the customer's browser there")
    tier: PaidTier
    expires_at: datetime | None


class PortalOut(OutModel):
    url: str = Field(description="A short-lived Billing Portal link for this broker; treat it as a secret")


class ChangeRequest(ApiModel):
    tier: PaidTier


class CancelRequest(ApiModel):
    at_period_end: bool = True


class EnterpriseRequest(ApiModel):
    enterprise: bool


class InvoiceOut(OutModel):
    id: str
    number: str | None = Field(default=None, description="The number printed on the invoice (none while a draft)")
    status: str | None
    amount_due: int | None
    amount_paid: int | None
    currency: str | None
    created: datetime | None
    hosted_invoice_url: str | None


class SubscriptionOut(OutModel):
    tier: str = Field(description="The tier enforced now (rate limits)")
    status: Literal["trialing", "free", "active", "past_due", "enterprise", "managed"] = Field(
        description="`managed`: a paid tier the platform operator set, with no Stripe subscription behind it")
    paid_tier: str | None
    subscription_id: str | None
    subscription_status: str | None
    current_period_end: datetime | None
    trial_ends_at: datetime | None
    cancel_at_period_end: bool
    grace_ends_at: datetime | None
    invoices: list[InvoiceOut] = []


class WebhookAck(OutModel):
    received: bool
    duplicate: bool
    outcome: str | None = None


Password = Annotated[str, Field(min_length=12, max_length=200)]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class SignupRequest(ApiModel):
    company_name: Annotated[str, Field(min_length=1, max_length=200)]
    admin_email: Email
    password: Password


class SignupOut(OutModel):
    broker_id: uuid.UUID
    slug: str = Field(description="The `broker` to log in with")
    admin_email: str
    status: Literal["pending_verification", "active"]
    next: list[str]


class VerifyRequest(ApiModel):
    token: Annotated[str, Field(min_length=10, max_length=2000)]


class VerifiedOut(OutModel):
    broker_id: uuid.UUID
    slug: str
    status: Literal["active"]
    trial_ends_at: datetime | None
    next: list[str]
