"""Platform events over HTTP.

- `POST /api/v1/integrations/events?broker={brokerId}`: the broker's platform posts signed messages (Standard
  Webhooks headers, the broker's inbound secret). No API key: the signature is the credential, and a missing,
  malformed or wrong one is a 401 like an unknown broker.
- `/api/v1/brokers/{brokerId}/platform-events/secret`: create or rotate the inbound secret (shown once), read
  whether one is set.
- `GET /api/v1/brokers/{brokerId}/accounts/{traderId}`: the account state the events keep current.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request

from app.admin.platform_events.schemas import (
    AccountOut,
    InboundSecretInfo,
    InboundSecretOut,
    SecretRotate,
)
from app.auth.service import require
from app.deps import BrokerScope, CurrentPrincipal
from app.errors import NotFound, Unauthorized
from app.integrations.platform_events.schemas import EventsIn, EventsOut
from app.integrations.platform_events.service import Received, evaluation_job_id
from app.jobs.queue import JobsUnavailable
from app.jsonbody import StrictRoute
from app.services import Services, services

router = APIRouter(tags=["platform events"], route_class=StrictRoute)
log = structlog.get_logger(__name__)
TraderPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]

EVENTS_DOC = (
    "Signed with the broker's inbound secret per Standard Webhooks: `webhook-id` (the message id; a replay is a "
    "no-op answered 200 with `replay: true`), `webhook-timestamp` (Unix seconds, within 5 minutes of our clock), "
    "`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, several separated by spaces). Up to 500 "
    "events; each is applied or refused by its index (an unknown `type` is refused as a 422 item). When no event "
    "can be applied the answer is a 422 problem naming each field.")


async def schedule_alerts(svc: Services, broker_id: uuid.UUID, received: Received) -> None:
    """The alert rules of the traders whose state changed are evaluated by one job (after the commit). The
    events are stored whatever happens here: with the queue down the message is still a 200 (a retry would be
    a replay, applied already), and the traders' next events evaluate their rules again."""
    if not received.traders:
        return
    try:
        await svc.jobs.enqueue("evaluate_alerts", str(broker_id), received.traders,
                               job_id=evaluation_job_id(broker_id, received.body["messageId"]))
    except JobsUnavailable:
        log.warning("alerts_not_scheduled", broker_id=str(broker_id), traders=len(received.traders))


@router.post("/api/v1/integrations/events", response_model=EventsOut, summary="Receive platform events (signed)",
             description=EVENTS_DOC,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": EventsIn.model_json_schema(by_alias=True)}}}})
async def receive_events(request: Request, broker: Annotated[uuid.UUID | None, Query(
        description="The broker's id (the inbound secret is looked up by it)")] = None) -> dict[str, Any]:
    if broker is None:
        raise Unauthorized("The message signature is not valid: name the broker (?broker=<brokerId>).")
    svc = services(request.app)
    received = await svc.platform_events.receive(broker, request.headers, await request.body())
    await schedule_alerts(svc, broker, received)
    return received.body


@router.post("/api/v1/brokers/{broker_id}/platform-events/secret", response_model=InboundSecretOut,
             status_code=201, summary="Create or rotate the inbound secret (shown once)")
async def rotate_secret(target: BrokerScope, principal: CurrentPrincipal, request: Request,
                        body: SecretRotate | None = None) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    return await services(request.app).platform_events.rotate_secret(target, body.overlap_hours if body else None)


@router.get("/api/v1/brokers/{broker_id}/platform-events/secret", response_model=InboundSecretInfo,
            summary="Whether an inbound secret is set (never the secret)")
async def secret_info(target: BrokerScope, principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    return await services(request.app).platform_events.secret_info(target)


@router.get("/api/v1/brokers/{broker_id}/accounts/{trader_id}", response_model=AccountOut,
            summary="A trader's account state: balance, equity, open positions")
async def get_account(target: BrokerScope, trader_id: TraderPath, principal: CurrentPrincipal,
                      request: Request) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    found = await services(request.app).platform_events.account(target, trader_id)
    if found is None:
        raise NotFound("No account with this trader id.")
    return account_out(found)


def account_out(a: Any) -> dict[str, Any]:
    return {"traderId": a.trader_id, "currency": a.currency, "balance": a.balance, "equity": a.equity,
            "freeMargin": a.free_margin, "margin": a.margin, "updatedAt": a.updated_at,
            "marginCallAt": a.margin_call_at, "marginCallLevel": a.margin_call_level,
            "positions": [{"positionId": p.position_id, "symbol": p.symbol, "side": p.side, "lots": p.lots,
                           "openPrice": p.open_price, "stopLoss": p.stop_loss, "takeProfit": p.take_profit,
                           "openedAt": p.opened_at, "updatedAt": p.updated_at} for p in a.positions]}
