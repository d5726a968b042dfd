"""`/api/v1/brokers/{brokerId}/sso`: the broker's OIDC connection (permission `sso:manage:own`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.admin.sso import service
from app.admin.sso.schemas import SsoConfigIn, SsoConfigOut
from app.auth.service import require
from app.deps import DB, Auth, BrokerScope, CurrentPrincipal
from app.jsonbody import StrictRoute

router = APIRouter(prefix="/api/v1/brokers", tags=["sso"], route_class=StrictRoute)


@router.get("/{broker_id}/sso", response_model=SsoConfigOut, summary="The OIDC connection (never its secret)")
async def get_sso(target: BrokerScope, principal: CurrentPrincipal, db: DB, auth: Auth) -> dict[str, Any]:
    require(principal, "sso:manage:own")
    async with db.tenant(target) as session:
        return await service.get(session, auth, target)


@router.put("/{broker_id}/sso", response_model=SsoConfigOut, summary="Create or replace the OIDC connection")
async def put_sso(target: BrokerScope, spec: SsoConfigIn, principal: CurrentPrincipal, db: DB, auth: Auth,
                  request: Request) -> dict[str, Any]:
    require(principal, "sso:manage:own")
    async with db.tenant(target) as session:
        return await service.put(session, auth, principal, target, spec, request)


@router.delete("/{broker_id}/sso", status_code=204, summary="Remove the OIDC connection")
async def delete_sso(target: BrokerScope, principal: CurrentPrincipal, db: DB, request: Request) -> Response:
    require(principal, "sso:manage:own")
    async with db.tenant(target) as session:
        await service.remove(session, principal, target, request)
    return Response(status_code=204)
