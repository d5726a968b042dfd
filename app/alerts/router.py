"""`GET /api/v1/brokers/{brokerId}/accounts/{traderId}/risk` (the live book, app.alerts.book),
`/api/v1/brokers/{brokerId}/alert-rules` and `/api/v1/brokers/{brokerId}/alerts`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.alerts import service
from app.alerts.book import live_book
from app.alerts.schemas import AlertOut, LiveRiskOut, RuleCreate, RuleOut, RulePatch
from app.auth.service import require
from app.deps import BrokerScope, CurrentPrincipal
from app.errors import NotFound
from app.jsonbody import StrictRoute
from app.services import services

router = APIRouter(prefix="/api/v1/brokers", tags=["alerts"], route_class=StrictRoute)
TraderPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]


@router.get("/{broker_id}/accounts/{trader_id}/risk", response_model=LiveRiskOut,
            summary="A trader's live risk: risk at the stops, margin, margin level, exposure by currency, VaR")
async def account_risk(target: BrokerScope, trader_id: TraderPath, principal: CurrentPrincipal,
                       request: Request) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    svc = services(request.app)
    account = await svc.platform_events.account(target, trader_id)
    if account is None:
        raise NotFound("No account with this trader id.")
    return await live_book(svc, target, account)


@router.post("/{broker_id}/alert-rules", response_model=RuleOut, status_code=201, summary="Create an alert rule")
async def create_rule(target: BrokerScope, body: RuleCreate, principal: CurrentPrincipal,
                      request: Request) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    return await service.create_rule(services(request.app), target, body.model_dump())


@router.get("/{broker_id}/alert-rules", response_model=list[RuleOut], summary="The broker's alert rules")
async def list_rules(target: BrokerScope, principal: CurrentPrincipal, request: Request) -> list[dict[str, Any]]:
    require(principal, "brokers:read:own")
    return await service.list_rules(services(request.app), target)


@router.get("/{broker_id}/alert-rules/{rule_id}", response_model=RuleOut, summary="One alert rule")
async def get_rule(target: BrokerScope, rule_id: uuid.UUID, principal: CurrentPrincipal,
                   request: Request) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    return await service.get_rule(services(request.app), target, rule_id)


@router.patch("/{broker_id}/alert-rules/{rule_id}", response_model=RuleOut, summary="Change an alert rule")
async def patch_rule(target: BrokerScope, rule_id: uuid.UUID, body: RulePatch, principal: CurrentPrincipal,
                     request: Request) -> dict[str, Any]:
    require(principal, "brokers:update:own")
    return await service.update_rule(services(request.app), target, rule_id, body.model_dump(exclude_unset=True))


@router.delete("/{broker_id}/alert-rules/{rule_id}", status_code=204, summary="Delete an alert rule and its alerts")
async def delete_rule(target: BrokerScope, rule_id: uuid.UUID, principal: CurrentPrincipal,
                      request: Request) -> Response:
    require(principal, "brokers:update:own")
    await service.delete_rule(services(request.app), target, rule_id)
    return Response(status_code=204)


@router.get("/{broker_id}/alerts", response_model=list[AlertOut], summary="Alerts, newest first, with evidence")
async def list_alerts(target: BrokerScope, principal: CurrentPrincipal, request: Request,
                      status: Literal["active", "cleared"] | None = None,
                      trader_id: Annotated[str | None, Query(alias="traderId", max_length=128)] = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    require(principal, "brokers:read:own")
    return await service.list_alerts(services(request.app), target, status, trader_id, limit)


@router.get("/{broker_id}/alerts/{alert_id}", response_model=AlertOut, summary="One alert and its evidence")
async def get_alert(target: BrokerScope, alert_id: uuid.UUID, principal: CurrentPrincipal,
                    request: Request) -> dict[str, Any]:
    require(principal, "brokers:read:own")
    return await service.get_alert(services(request.app), target, alert_id)
