"""Requests and responses of /api/v1/brokers/{brokerId}/webhook-endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from app.integrations.webhooks.service import EVENT_TYPES
from app.schemas import ApiModel, OutModel

EventTypes = Annotated[list[Literal["alert.triggered", "alert.cleared", "calculation.flagged"]],
                       Field(min_length=1, max_length=len(EVENT_TYPES),
                             description=f"Event types sent to the endpoint: {', '.join(EVENT_TYPES)}")]
Url = Annotated[str, Field(min_length=8, max_length=2048, description="https URL (http and loopback only in "
                           "development); private, loopback, link-local and metadata addresses are refused")]
Description = Annotated[str, Field(max_length=500)]


class EndpointCreate(ApiModel):
    url: Url
    event_types: EventTypes
    description: Description | None = None


class EndpointPatch(ApiModel):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = Field(default=None, description="true re-enables an endpoint that was disabled")


class RotateSecret(ApiModel):
    overlap_hours: Annotated[float, Field(ge=0, le=24 * 30)] | None = Field(
        default=None, description="How long the previous secret keeps signing beside the new one (default 24 h)")


class EndpointOut(OutModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="Why the endpoint was disabled (410 Gone, or every attempt "
                                        "failed for 3 days): the notice")
    disabled_at: datetime | None
    last_success_at: datetime | None
    previous_secret_valid_until: datetime | None = Field(description="During a rotation: until when the previous "
                                                         "secret still signs")
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="`whsec_` + base64: shown once, never again")


class AttemptOut(OutModel):
    attempt: int
    at: datetime
    response_code: int | None
    latency_ms: float | None
    error: str | None


DeliveryStatus = Literal["pending", "delivered", "failed", "exhausted", "aborted", "cancelled"]


class DeliveryOut(OutModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    message_id: str = Field(description="webhook-id: the same on every attempt and on a redelivery")
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_response_code: int | None
    last_latency_ms: float | None
    last_error: str | None
    redelivery_of: uuid.UUID | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any]
    attempt_log: list[AttemptOut]
