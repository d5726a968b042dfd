"""`GET /api/v1/brokers/{brokerId}/accounts/{traderId}/risk`: the live book (app.alerts.book)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from app.alerts.book import live_book
from app.alerts.schemas import LiveRiskOut
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
