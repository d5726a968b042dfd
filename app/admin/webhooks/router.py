"""`/api/v1/brokers/{brokerId}/webhook-endpoints`: endpoints (the secret shown once), rotation with an overlap,
the delivery log and manual redelivery. Reads need `brokers:read:own`, changes `brokers:update:own`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.admin.webhooks.schemas import (
    DeliveryDetail,
    DeliveryOut,
    DeliveryStatus,
    EndpointCreate,
    EndpointOut,
    EndpointPatch,
    EndpointWithSecret,
    RotateSecret,
)
from app.auth.service import require
from app.deps import BrokerScope, CurrentPrincipal
from app.integrations.webhooks.service import WebhookService
from app.jsonbody import StrictRoute
from app.services import services

router = APIRouter(prefix="/api/v1/brokers/{broker_id}/webhook-endpoints", tags=["webhooks"],
                   route_class=StrictRoute)


def _svc(request: Request) -> WebhookService:
    return services(request.app).webhooks


@router.post("", response_model=EndpointWithSecret, status_code=201,
             summary="Register an endpoint (its signing secret is in this answer only)")
async def create_endpoint(target: BrokerScope, body: EndpointCreate, principal: CurrentPrincipal,
                          request: Request) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    return await _svc(request).create(target, body.url, body.event_types, body.description)


@router.get("", response_model=list[EndpointOut], summary="The broker's webhook endpoints")
async def list_endpoints(target: BrokerScope, principal: CurrentPrincipal, request: Request) -> list[dict[str, Any]]:
    require(principal, "brokers:read:own")
    return await _svc(request).endpoints(target)


@router.get("/{endpoint_id}", response_model=EndpointOut, summary="One endpoint")
async def get_endpoint(target: BrokerScope, endpoint_id: uuid.UUID, principal: CurrentPrincipal,
                       request: Request) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    return await _svc(request).get(target, endpoint_id)


@router.patch("/{endpoint_id}", response_model=EndpointOut, summary="Change the URL, event types, or re-enable")
async def patch_endpoint(target: BrokerScope, endpoint_id: uuid.UUID, body: EndpointPatch,
                         principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    return await _svc(request).update(target, endpoint_id, body.model_dump(exclude_unset=True))


@router.delete("/{endpoint_id}", status_code=204, summary="Remove an endpoint and its delivery log")
async def delete_endpoint(target: BrokerScope, endpoint_id: uuid.UUID, principal: CurrentPrincipal,
                          request: Request) -> Response:
    require(principal, "brokers:update:own")
    await _svc(request).delete(target, endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret,
             summary="A new signing secret (shown once); the previous one signs beside it for the overlap")
async def rotate_secret(target: BrokerScope, endpoint_id: uuid.UUID, principal: CurrentPrincipal,
                        request: Request, body: RotateSecret | None = None) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    return await _svc(request).rotate(target, endpoint_id, body.overlap_hours if body else None)


@router.get("/{endpoint_id}/deliveries", response_model=list[DeliveryOut], summary="The delivery log, newest first")
async def list_deliveries(target: BrokerScope, endpoint_id: uuid.UUID, principal: CurrentPrincipal,
                          request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                          status: DeliveryStatus | None = None) -> list[dict[str, Any]]:
    require(principal, "brokers:read:own")
    return await _svc(request).deliveries(target, endpoint_id, limit, status)


@router.get("/{endpoint_id}/deliveries/{delivery_id}", response_model=DeliveryDetail,
            summary="One delivery: its payload and every attempt (status, latency, response code)")
async def get_delivery(target: BrokerScope, endpoint_id: uuid.UUID, delivery_id: uuid.UUID,
                       principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    return await _svc(request).delivery(target, endpoint_id, delivery_id)


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryDetail, status_code=202,
             summary="Send the same message again (same webhook-id) on a fresh schedule")
async def redeliver(target: BrokerScope, endpoint_id: uuid.UUID, delivery_id: uuid.UUID,
                    principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    return await _svc(request).redeliver(target, endpoint_id, delivery_id)
